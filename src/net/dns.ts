/**
 * The gateway's DNS stub client: one question at a time to the configured recursive resolvers
 * (AFTERSMTP_DNS_SERVERS, else the system's from /etc/resolv.conf), with EDNS0 and the DO bit
 * set, so that the answer says whether the resolver validated it (the AD bit, RFC 4035 §3.2.3).
 * node:dns does not expose the AD bit, and DANE (RFC 7672) may use only validated answers; the
 * off-ramp's MX, address, TXT and TLSA lookups and the on-ramp's SPF, DKIM, DMARC and ARC
 * lookups (through src/net/dns-node.ts) all go through here, so that one client decides what
 * is secure. src/net/dns-cache.ts keeps its answers for their TTL.
 *
 * The AD bit is the resolver's word: it is worth something only from a validating resolver on
 * a path an attacker cannot forge (this host, or a trusted network). docs/OPERATIONS.md says so.
 *
 * Guarantees: every query is bounded in time (per try and per server) and size (a UDP answer in
 * one datagram of at most 4096 bytes, a TCP answer of at most 65535 bytes, as DNS itself); an
 * answer must carry the query's id and question, from the server asked (the UDP socket is
 * connected to it, so the kernel drops datagrams from elsewhere and reports an ICMP "port
 * unreachable" at once); a truncated UDP answer is asked again over TCP; SERVFAIL, REFUSED,
 * silence and an unreachable server move on to the next server. Failures are DnsError with a
 * stable code: ERR_DNS_TIMEOUT, ERR_DNS_SERVFAIL (the answer of a validating resolver for bogus
 * data, too), ERR_DNS_REFUSED, ERR_DNS_FORMAT, ERR_DNS_UNREACHABLE (the server's host refused
 * the datagram or the connection: nothing listens there); a name that cannot be asked (an empty
 * label, a label over 63 octets, over 253 in all) is ERR_DNS_NAME before anything is sent.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect, isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import { AfterSmtpError } from '../errors.js';

export class DnsError extends AfterSmtpError {}

export type DnsType = 'MX' | 'A' | 'AAAA' | 'TXT' | 'TLSA' | 'PTR' | 'CNAME';

/** One answer: NOERROR (records may be empty: NODATA) or NXDOMAIN, and whether it was validated. */
export interface DnsAnswer {
  readonly rcode: 'NOERROR' | 'NXDOMAIN';
  /** The resolver set AD: every RRset in the answer was validated by DNSSEC. */
  readonly secure: boolean;
  /** The answer section (a CNAME chain and its target's records). */
  readonly answers: readonly dnsPacket.Answer[];
  /**
   * For a negative answer (NXDOMAIN, or NOERROR without records of the type asked): how long it
   * may be kept, in seconds, from the SOA of the authority section, the smaller of the SOA
   * record's TTL and its MINIMUM field (RFC 2308 §5); undefined when the answer has no SOA.
   */
  readonly negativeTtl?: number;
  /** The answer's size on the wire, bytes (what a cache counts it as). */
  readonly wireBytes: number;
}

/** Anything that answers DNS questions as DnsClient does: the client itself, or a cache. */
export interface DnsResolver {
  /** Asks `type` of `name`; resolves NOERROR (possibly no records) or NXDOMAIN; throws DnsError. */
  query(name: string, type: DnsType): Promise<DnsAnswer>;
}

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export interface DnsClientOptions {
  /** ip, ip:port or [ipv6]:port (AFTERSMTP_DNS_SERVERS); undefined or empty: the system's. */
  readonly servers?: readonly string[];
  /** Time for one try at one server (default 3 s). */
  readonly timeoutMs?: number;
  /** Tries per server (default 2). */
  readonly tries?: number;
}

const UDP_PAYLOAD = 1232; // RFC 9715's safe EDNS0 size: no IP fragmentation
const MAX_UDP_ANSWER = 4096;
const MAX_TCP_ANSWER = 65535;

/** Parses `ip`, `ip:port` and `[ipv6]:port`, as AFTERSMTP_DNS_SERVERS and dns.getServers() give them. */
export function parseDnsServer(s: string): DnsServer {
  if (isIP(s) !== 0) return { host: s, port: 53 };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(s);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined || isIP(host) === 0) {
    throw new DnsError('ERR_DNS_CONFIG', `not a DNS server address: ${JSON.stringify(s)}`);
  }
  return { host, port: Number(m[3]) };
}

/** RFC 2308 §5: a negative answer lives as long as the smaller of its SOA's TTL and MINIMUM. */
function soaTtl(authorities: readonly dnsPacket.Answer[]): number | undefined {
  for (const r of authorities) {
    if (r.type === 'SOA') return Math.min(r.ttl ?? 0, r.data.minimum ?? 0);
  }
  return undefined;
}

/** A socket's failure (ECONNREFUSED, ENETUNREACH...) as a DnsError naming the server. */
function socketError(err: unknown, server: DnsServer, name: string, type: DnsType): DnsError {
  const errno = (err as NodeJS.ErrnoException).code;
  const where = `${server.host}:${server.port}`;
  return new DnsError(
    'ERR_DNS_UNREACHABLE',
    `${type} ${name}: ${where} unreachable${errno !== undefined ? ` [${errno}]` : ''}`,
    { cause: err },
  );
}

/**
 * RFC 1035 §2.3.4: a name of at most 255 octets on the wire, labels of 1 to 63 octets. Names
 * come from peers (a DKIM selector, an SPF macro); one that cannot be asked is an error here,
 * before a malformed query is encoded.
 */
function checkName(name: string, type: DnsType): void {
  const bare = name.replace(/\.$/, '');
  const labels = bare.split('.');
  if (
    bare.length === 0 ||
    Buffer.byteLength(bare) > 253 ||
    labels.some((l) => l.length === 0 || Buffer.byteLength(l) > 63) ||
    /[\0\r\n]/.test(bare)
  ) {
    throw new DnsError(
      'ERR_DNS_NAME',
      `${type} ${JSON.stringify(name).slice(0, 300)}: not a name that can be asked`,
    );
  }
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

export class DnsClient implements DnsResolver {
  readonly #servers: readonly DnsServer[];
  readonly #timeoutMs: number;
  readonly #tries: number;

  constructor(o: DnsClientOptions = {}) {
    const list = o.servers !== undefined && o.servers.length > 0 ? o.servers : getServers();
    this.#servers = list.map(parseDnsServer);
    if (this.#servers.length === 0) {
      throw new DnsError('ERR_DNS_CONFIG', 'no DNS server: set AFTERSMTP_DNS_SERVERS');
    }
    this.#timeoutMs = o.timeoutMs ?? 3000;
    this.#tries = o.tries ?? 2;
  }

  /** The servers asked, for messages. */
  describe(): string {
    return this.#servers.map((s) => `${s.host}:${s.port}`).join(', ');
  }

  /** Asks `type` of `name`; resolves NOERROR (possibly no records) or NXDOMAIN; throws DnsError. */
  async query(name: string, type: DnsType): Promise<DnsAnswer> {
    checkName(name, type);
    let last: DnsError | undefined;
    for (let t = 0; t < this.#tries; t++) {
      for (const server of this.#servers) {
        try {
          return await this.#ask(server, name, type);
        } catch (err) {
          last = err instanceof DnsError ? err : socketError(err, server, name, type);
        }
      }
    }
    throw last ?? new DnsError('ERR_DNS_TIMEOUT', `${type} ${name}: no answer`);
  }

  async #ask(server: DnsServer, name: string, type: DnsType): Promise<DnsAnswer> {
    const id = randomInt(0, 65536);
    const query = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
      questions: [{ type, name, class: 'IN' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: UDP_PAYLOAD,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: dnsPacket.DNSSEC_OK,
          flag_do: true,
          options: [],
        },
      ],
    });
    let raw = await this.#udp(server, query);
    let packet = this.#check(raw, id, name, type);
    if (packet.flag_tc) {
      raw = await this.#tcp(server, query);
      packet = this.#check(raw, id, name, type);
    }
    const rcode = (packet as unknown as { rcode: string }).rcode;
    if (rcode === 'NOERROR' || rcode === 'NXDOMAIN') {
      const answers = packet.answers ?? [];
      const negative = rcode === 'NXDOMAIN' || !answers.some((r) => r.type === type);
      const negativeTtl = negative ? soaTtl(packet.authorities ?? []) : undefined;
      return {
        rcode,
        secure: packet.flag_ad,
        answers,
        ...(negativeTtl !== undefined ? { negativeTtl } : {}),
        wireBytes: raw.length,
      };
    }
    throw new DnsError(
      rcode === 'SERVFAIL' ? 'ERR_DNS_SERVFAIL' : 'ERR_DNS_REFUSED',
      `${type} ${name}: ${rcode} from ${server.host}:${server.port}`,
    );
  }

  #check(raw: Buffer, id: number, name: string, type: DnsType): dnsPacket.DecodedPacket {
    let p: dnsPacket.DecodedPacket;
    try {
      p = dnsPacket.decode(raw);
    } catch {
      throw new DnsError('ERR_DNS_FORMAT', `${type} ${name}: an answer that does not decode`);
    }
    const q = p.questions?.[0];
    if (
      p.id !== id ||
      !p.flag_qr ||
      p.questions?.length !== 1 ||
      q === undefined ||
      q.type !== type ||
      !sameName(q.name, name)
    ) {
      throw new DnsError('ERR_DNS_FORMAT', `${type} ${name}: an answer to another question`);
    }
    return p;
  }

  #udp(server: DnsServer, query: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      let closed = false;
      const done = (err: Error | undefined, msg?: Buffer): void => {
        clearTimeout(timer);
        if (closed) return;
        closed = true;
        sock.close();
        if (err !== undefined) reject(err);
        else resolve(msg as Buffer);
      };
      const timer = setTimeout(
        () => done(new DnsError('ERR_DNS_TIMEOUT', `no answer from ${server.host}:${server.port}`)),
        this.#timeoutMs,
      );
      sock.on('error', (err) => done(err));
      sock.on('message', (msg, rinfo) => {
        // Anything from elsewhere, or too large, is not the answer: keep waiting.
        if (rinfo.address !== server.host || rinfo.port !== server.port) return;
        if (
          msg.length > MAX_UDP_ANSWER ||
          msg.length < 12 ||
          msg.readUInt16BE(0) !== query.readUInt16BE(0)
        )
          return;
        done(undefined, msg);
      });
      // Connected: only the server's datagrams are received, and an ICMP "port unreachable"
      // from its host comes back as ECONNREFUSED instead of a timeout.
      sock.connect(server.port, server.host, () => {
        sock.send(query, (err) => {
          if (err) done(err);
        });
      });
    });
  }

  #tcp(server: DnsServer, query: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: server.host, port: server.port });
      const chunks: Buffer[] = [];
      let got = 0;
      const done = (err: Error | undefined, msg?: Buffer): void => {
        clearTimeout(timer);
        sock.destroy();
        if (err !== undefined) reject(err);
        else resolve(msg as Buffer);
      };
      const timer = setTimeout(
        () =>
          done(
            new DnsError('ERR_DNS_TIMEOUT', `no answer from ${server.host}:${server.port} (TCP)`),
          ),
        this.#timeoutMs,
      );
      sock.on('error', (err) => done(err));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        sock.write(Buffer.concat([len, query]));
      });
      sock.on('data', (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        if (got > MAX_TCP_ANSWER + 2) {
          done(new DnsError('ERR_DNS_FORMAT', 'a TCP answer longer than DNS allows'));
          return;
        }
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
          done(undefined, all.subarray(2, 2 + all.readUInt16BE(0)));
        }
      });
      sock.on('end', () =>
        done(new DnsError('ERR_DNS_FORMAT', 'the server closed the TCP connection early')),
      );
    });
  }
}

/** The records of `type` in an answer (a CNAME chain's target's included), lower-cased names. */
export function recordsOf<T extends dnsPacket.Answer['type']>(
  a: DnsAnswer,
  type: T,
): Extract<dnsPacket.Answer, { type: T }>[] {
  return a.answers.filter((r): r is Extract<dnsPacket.Answer, { type: T }> => r.type === type);
}

/**
 * A null MX (RFC 7505 §3): MX records, every one of them with the root as its exchange. The
 * domain accepts no mail, and (§4.2) sends none.
 */
export function isNullMx(a: DnsAnswer): boolean {
  const mx = recordsOf(a, 'MX');
  return mx.length > 0 && mx.every((r) => r.data.exchange.replace(/\.$/, '') === '');
}

/**
 * The answer of `lookup`, or undefined once `ms` have passed (the lookup goes on, its result
 * unused): for checks that must not wait on DNS longer than their own bound.
 */
export function answerWithin<T>(lookup: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([lookup, late]).finally(() => clearTimeout(timer));
}
