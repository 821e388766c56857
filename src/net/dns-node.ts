/**
 * The gateway's DNS client (src/net/dns.ts, usually through its cache) seen as node's
 * `dns.promises.resolve(name, rrtype)`: the shape mailauth's resolver option takes (SPF, DKIM,
 * DMARC and ARC of legacy mail), so that mailauth asks the gateway's one client and cache.
 *
 * Results have node's shapes: A and AAAA as address strings, TXT as string[][] (each record's
 * character-strings, decoded as Latin-1 as node does), MX as { exchange, priority }[], PTR and
 * CNAME as name strings; records in the order of the answer. Failures carry node's codes,
 * because mailauth decides on them: ENOTFOUND (NXDOMAIN) and ENODATA (no record of the type)
 * mean "no record" (SPF none, DKIM "no key", no DMARC policy, a void lookup), anything else is a
 * temporary failure (SPF, DKIM temperror): ETIMEOUT, ESERVFAIL, EREFUSED, EBADRESP (an answer
 * that does not decode), ECONNREFUSED (nothing listens at the server) and EBADNAME (a name
 * that cannot be asked, such as a label over 63 octets). The error's message,
 * `syscall` and `hostname` are node's too ("queryTxt ENOTFOUND example.org"), since mailauth
 * copies a message into its header comments.
 */
import type dnsPacket from 'dns-packet';
import { DnsError, type DnsResolver, type DnsType } from './dns.js';

export type NodeRecord = string | string[] | { exchange: string; priority: number };

/** node's `resolve(name, rrtype)`; rrtype one of A, AAAA, TXT, MX, PTR, CNAME. */
export type NodeStyleResolve = (name: string, rrtype: string) => Promise<NodeRecord[]>;

const SYSCALL: Readonly<Record<string, string>> = {
  A: 'queryA',
  AAAA: 'queryAaaa',
  TXT: 'queryTxt',
  MX: 'queryMx',
  PTR: 'queryPtr',
  CNAME: 'queryCname',
};

/** The types whose NOERROR answer with only other records (a CNAME) is [] in node, not ENODATA. */
const EMPTY_OK: ReadonlySet<DnsType> = new Set(['A', 'AAAA', 'TXT', 'MX']);

/** DnsError codes as the node (c-ares) codes that mean the same. */
const NODE_CODE: Readonly<Record<string, string>> = {
  ERR_DNS_TIMEOUT: 'ETIMEOUT',
  ERR_DNS_SERVFAIL: 'ESERVFAIL',
  ERR_DNS_REFUSED: 'EREFUSED',
  ERR_DNS_FORMAT: 'EBADRESP',
  ERR_DNS_UNREACHABLE: 'ECONNREFUSED',
  ERR_DNS_NAME: 'EBADNAME',
};

/** node's dnsException: `${syscall} ${code} ${hostname}`, with those as properties. */
function nodeError(code: string, syscall: string, hostname: string, cause?: unknown): Error {
  return Object.assign(
    new Error(`${syscall} ${code} ${hostname}`, cause !== undefined ? { cause } : {}),
    { code, syscall, hostname },
  );
}

function convert(r: dnsPacket.Answer): NodeRecord | undefined {
  switch (r.type) {
    case 'A':
    case 'AAAA':
    case 'PTR':
    case 'CNAME':
      return r.data;
    case 'TXT':
      return ([] as (string | Buffer)[])
        .concat(r.data)
        .map((c) => (typeof c === 'string' ? c : c.toString('latin1')));
    case 'MX':
      return { exchange: r.data.exchange, priority: r.data.preference ?? 0 };
    default:
      return undefined;
  }
}

export function nodeStyleResolve(dns: DnsResolver): NodeStyleResolve {
  return async (name, rrtype) => {
    const syscall = SYSCALL[rrtype];
    if (syscall === undefined) throw nodeError('ENOTIMP', `query${rrtype}`, name);
    const type = rrtype as DnsType;
    let answer;
    try {
      answer = await dns.query(name, type);
    } catch (err) {
      const code = err instanceof DnsError ? NODE_CODE[err.code] : undefined;
      throw nodeError(code ?? 'ESERVFAIL', syscall, name, err);
    }
    if (answer.rcode === 'NXDOMAIN') throw nodeError('ENOTFOUND', syscall, name);
    const out: NodeRecord[] = [];
    for (const r of answer.answers) {
      if (r.type !== type) continue;
      const v = convert(r);
      if (v !== undefined) out.push(v);
    }
    // c-ares' parsers differ on an answer section without records of the type asked (a CNAME
    // whose target has none): A, AAAA, TXT and MX give no records, PTR and CNAME ENODATA. SPF
    // counts the one as a lookup and the other as a void lookup (RFC 7208 §4.6.4), so as node.
    if (out.length === 0 && (answer.answers.length === 0 || !EMPTY_OK.has(type))) {
      throw nodeError('ENODATA', syscall, name);
    }
    return out;
  };
}
