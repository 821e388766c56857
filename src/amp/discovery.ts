/**
 * AMP discovery in DNS (DESIGN.md §4, PROTOCOL.md §10.4): the TXT record at
 * `_aftersmtp._tcp.<domain>` = `"v=aftersmtp1; p=<host>:<port>[,<host>:<port>...]; k=<log
 * verifier key>"`, where `p` lists the domain's QUIC relay endpoints (one per gateway node, up to
 * MAX_RELAY_ENDPOINTS, all serving the one gateway identity) and `k` the note verifier key of the
 * domain's ledger (§9.2), which resolvers pin on first use.
 *
 * Guarantees: parseDiscoveryRecord is strict and bounded (at most 1024 bytes, printable ASCII,
 * `tag=value` pairs separated by `;`, `v=aftersmtp1` first, no duplicate tags, unknown tags
 * ignored as in DKIM, RFC 6376 §3.2) and either returns a typed record or throws InputError with
 * an ERR_DISCOVERY_* code; never anything else. A name with several aftersmtp1 records is an
 * error (ERR_DISCOVERY_AMBIGUOUS), as SPF treats two policies (RFC 7208 §4.5): a resolver must not
 * pick one of two keys. DNS failures are ERR_DISCOVERY_DNS; no record is ERR_DISCOVERY_NONE.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { InputError } from '../errors.js';
import { parseVerifierKey } from '../ledger/note.js';

export const DISCOVERY_PREFIX = '_aftersmtp._tcp.';
export const DISCOVERY_VERSION = 'aftersmtp1';
export const MAX_DISCOVERY_RECORD_BYTES = 1024;
/** Relay endpoints one record may list in `p=`. */
export const MAX_RELAY_ENDPOINTS = 8;
const MAX_TAGS = 16;

export interface DiscoveryRecord {
  /** The QUIC relay endpoints (UDP), in the order published; no two the same. */
  readonly relays: readonly { readonly host: string; readonly port: number }[];
  /** The domain log's note verifier key, if published. */
  readonly logKey: string | undefined;
}

function bad(why: string): InputError {
  return new InputError('ERR_DISCOVERY_SYNTAX', `invalid ${DISCOVERY_PREFIX} record: ${why}`);
}

const HOSTNAME =
  /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;

/** `host:port` or `[v6]:port` with a port 1..65535. */
export function parseHostPort(raw: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]{2,45})\]|([^:[\]]{1,253})):([0-9]{1,5})$/.exec(raw);
  if (m === null) throw bad(`${JSON.stringify(raw.slice(0, 80))} is not host:port`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
  if (m[1] !== undefined) {
    if (isIP(m[1]) !== 6) throw bad(`[${m[1]}] is not an IPv6 address`);
    return { host: m[1], port };
  }
  const host = m[2] as string;
  if (isIP(host) !== 4 && !HOSTNAME.test(host)) {
    throw bad(`${JSON.stringify(host.slice(0, 80))} is not a host name or IPv4 address`);
  }
  return { host, port };
}

/** Parses one TXT record's text (the character-strings already concatenated, RFC 7208 §3.3). */
export function parseDiscoveryRecord(text: string): DiscoveryRecord {
  if (typeof text !== 'string') throw bad('not text');
  if (Buffer.byteLength(text) > MAX_DISCOVERY_RECORD_BYTES) {
    throw bad(`longer than ${MAX_DISCOVERY_RECORD_BYTES} bytes`);
  }
  if (!/^[\x20-\x7e]*$/.test(text)) throw bad('only printable ASCII is allowed');
  const parts = text.split(';').map((p) => p.trim());
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop(); // one trailing ';'
  if (parts.length > MAX_TAGS) throw bad(`more than ${MAX_TAGS} tags`);
  const tags = new Map<string, string>();
  for (const [i, part] of parts.entries()) {
    const m = /^([a-z][a-z0-9]{0,15})[ \t]*=[ \t]*([\x21-\x3a\x3c-\x7e]*)$/.exec(part);
    if (m === null) throw bad(`${JSON.stringify(part.slice(0, 80))} is not tag=value`);
    const [, tag, value] = m as unknown as [string, string, string];
    if (tags.has(tag)) throw bad(`the tag ${tag} appears twice`);
    if (i === 0 && tag !== 'v') throw bad('the first tag must be v=');
    tags.set(tag, value);
  }
  if (tags.get('v') !== DISCOVERY_VERSION) throw bad(`v must be ${DISCOVERY_VERSION}`);
  const p = tags.get('p');
  if (p === undefined || p === '') throw bad('p= (the relay endpoint) is required');
  const relays = parseHostPortList(p, 'p=');
  const k = tags.get('k');
  let logKey: string | undefined;
  if (k !== undefined) {
    try {
      parseVerifierKey(k);
    } catch (err) {
      throw bad(`k= is not a note verifier key (${(err as Error).message})`);
    }
    logKey = k;
  }
  return { relays, logKey };
}

/** `host:port[,host:port...]`: 1..MAX_RELAY_ENDPOINTS distinct endpoints. */
export function parseHostPortList(
  raw: string,
  what: string,
): { readonly host: string; readonly port: number }[] {
  const items = raw.split(',');
  if (items.length > MAX_RELAY_ENDPOINTS) {
    throw bad(`${what} lists more than ${MAX_RELAY_ENDPOINTS} endpoints`);
  }
  const out = items.map((item) => parseHostPort(item));
  const keys = out.map((e) => `${e.host.toLowerCase()}:${e.port}`);
  if (new Set(keys).size !== keys.length) throw bad(`${what} lists an endpoint twice`);
  return out;
}

/** Picks the one aftersmtp1 record among a name's TXT records (each a list of strings). */
export function selectDiscoveryRecord(domain: string, txt: readonly (readonly string[])[]): string {
  const ours = txt
    .map((chunks) => chunks.join(''))
    .filter((t) => /^v[ \t]*=[ \t]*aftersmtp1[ \t]*(?:;|$)/.test(t));
  if (ours.length === 0) {
    throw new InputError(
      'ERR_DISCOVERY_NONE',
      `no aftersmtp1 record at ${DISCOVERY_PREFIX}${domain}`,
    );
  }
  if (ours.length > 1) {
    throw new InputError(
      'ERR_DISCOVERY_AMBIGUOUS',
      `${ours.length} aftersmtp1 records at ${DISCOVERY_PREFIX}${domain}; exactly one is allowed`,
    );
  }
  return ours[0] as string;
}

/** `ip`, `ip:port` or `[v6]:port`, comma-separated (AFTERSMTP_DNS_SERVERS). */
export function parseDnsServers(raw: string): string[] {
  const out: string[] = [];
  for (const item of raw.split(',').map((s) => s.trim())) {
    if (isIP(item) !== 0) {
      out.push(item);
      continue;
    }
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(item);
    const host = m?.[1] ?? m?.[2];
    const port = Number(m?.[3]);
    if (m === null || host === undefined || isIP(host) === 0 || port < 1 || port > 65535) {
      throw new Error(`expected ip, ip:port or [ipv6]:port, got ${JSON.stringify(item)}`);
    }
    out.push(item);
  }
  if (out.length === 0) throw new Error('expected at least one server');
  return out;
}

export interface DiscoveryOptions {
  /** DNS servers (parseDnsServers form); default: the system's. */
  readonly servers?: readonly string[];
  readonly timeoutMs?: number;
}

/** Looks up and parses `_aftersmtp._tcp.<domain>` with node's resolver (c-ares). */
export class DiscoveryResolver {
  readonly #resolver: Resolver;

  constructor(options: DiscoveryOptions = {}) {
    this.#resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: 2 });
    if (options.servers !== undefined) this.#resolver.setServers([...options.servers]);
  }

  async lookup(domain: string): Promise<DiscoveryRecord> {
    const name = `${DISCOVERY_PREFIX}${domain}`;
    let txt: string[][];
    try {
      txt = await this.#resolver.resolveTxt(name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') {
        throw new InputError('ERR_DISCOVERY_NONE', `no TXT record at ${name}`);
      }
      throw new InputError('ERR_DISCOVERY_DNS', `DNS lookup of ${name} failed (${String(code)})`);
    }
    return parseDiscoveryRecord(selectDiscoveryRecord(domain, txt));
  }

  /** The domain's log key from DNS, or ERR_DISCOVERY_NO_KEY. */
  async logKey(domain: string): Promise<string> {
    const rec = await this.lookup(domain);
    if (rec.logKey === undefined) {
      throw new InputError(
        'ERR_DISCOVERY_NO_KEY',
        `${DISCOVERY_PREFIX}${domain} publishes no k= (log key)`,
      );
    }
    return rec.logKey;
  }

  cancel(): void {
    this.#resolver.cancel();
  }
}
