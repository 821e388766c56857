/**
 * What the gateway verifies of a legacy message before it lets it into AMP (transform stage):
 * SPF (RFC 7208) for the client address, EHLO name and reverse path, DKIM (RFC 6376), DMARC
 * (RFC 7489) and ARC (RFC 8617), all with mailauth, through the configured DNS servers. The
 * result is the header block to put in front of the message (Received-SPF and an RFC 8601
 * Authentication-Results naming this gateway) and the four result keywords, which go into the
 * envelope's signed origin (docs/PROTOCOL.md §6.8) so the recipient sees what was verified.
 *
 * A submission (ports 587 and 465) is authenticated by its login: no SPF or DKIM is evaluated
 * for it, and the results say `auth=pass` with the login. DNS trouble gives `temperror`
 * results (mailauth's behaviour); the message is not refused for it: the policy stage decides.
 * Not verified: BIMI (it fetches from the web).
 *
 * mailauth asks the gateway's DNS client (src/net/dns.ts), which serve puts behind its cache
 * (src/net/dns-cache.ts), so that the same SPF, DMARC and DKIM key records are not asked again
 * for every message; src/net/dns-node.ts gives the answers the shapes and error codes of node's
 * dns.resolve, on which mailauth's results depend.
 */
import { authenticate, type DNSResolver } from 'mailauth';
import { DnsClient, type DnsResolver } from '../net/dns.js';
import { nodeStyleResolve } from '../net/dns-node.js';
import { lookupDomain } from '../routing/addresses.js';
import type { ArcChainState } from '../mail/arc.js';
import type { ArcSeal, AuthResults, Client, DmarcPolicy } from './types.js';

export type { AuthResults };

export interface MessageAuthenticator {
  check(message: Buffer, client: Client, mailFrom: string): Promise<AuthResults>;
}

export interface AuthenticatorOptions {
  /** This gateway's host name, as Authentication-Results' authserv-id. */
  readonly hostname: string;
  /** The gateway's DNS resolver (serve's cached client); unset: a DnsClient of `dnsServers`. */
  readonly dns?: DnsResolver;
  /** DNS servers (ip or ip:port); empty: the system's. Not used when `dns` is given. */
  readonly dnsServers?: readonly string[];
  /** Time for one try at one server (default 5 s), when `dns` is not given. */
  readonly timeoutMs?: number;
}

interface Status {
  status?: { result?: string };
}

interface ArcStatus {
  status?: { result?: string; shouldSeal?: boolean };
  authResults?: string;
  authenticationResults?: { dmarc?: { result?: string } };
  /** mailauth's parsed ARC sets, by instance (not enumerable). */
  chain?: readonly { 'arc-seal'?: { parsed?: { d?: { value?: string } } } }[];
}

/**
 * The last set of a chain that passed: its sealer (the ARC-Seal's d=) and the DMARC result its
 * ARC-Authentication-Results recorded, which is what that hop saw before it changed the message.
 */
function arcSealOf(r: ArcStatus | false | undefined): { arcSeal?: ArcSeal } {
  if (r === undefined || r === false || r.status?.result !== 'pass') return {};
  const d = r.chain?.at(-1)?.['arc-seal']?.parsed?.d?.value;
  const sealer = typeof d === 'string' ? lookupDomain(d) : undefined;
  if (sealer === undefined) return {};
  const dmarc = r.authenticationResults?.dmarc?.result;
  return { arcSeal: { sealer, dmarc: typeof dmarc === 'string' ? dmarc.toLowerCase() : 'none' } };
}

/**
 * RFC 8617 §5.1.2 as mailauth reports it: a message without a chain is sealed with cv=none, a
 * chain that validated with cv=pass, a chain that failed with cv=fail when its last seal still
 * claimed none or pass; a chain that already ended in cv=fail is not sealed.
 */
function arcChainState(r: ArcStatus | false | undefined): ArcChainState | undefined {
  if (r === undefined || r === false || r.authResults === undefined) return undefined;
  const result = r.status?.result;
  if (result === 'none' || result === 'pass') return { cv: result, authResults: r.authResults };
  if (result === 'fail' && r.status?.shouldSeal === true) {
    return { cv: 'fail', authResults: r.authResults };
  }
  return undefined;
}

function keyword(r: Status | Status[] | false | undefined): string {
  if (r === undefined || r === false) return 'none';
  if (Array.isArray(r)) {
    // DKIM: several signatures may be present; pass if any passes, else the first result.
    if (r.length === 0) return 'none';
    return r.some((x) => x.status?.result === 'pass') ? 'pass' : (r[0]?.status?.result ?? 'none');
  }
  return r.status?.result ?? 'none';
}

interface DmarcStatus extends Status {
  domain?: string;
  policy?: string;
  pct?: number | string;
}

/** mailauth's DMARC result, when the From domain has a record: the policy that applies. */
function dmarcPolicyOf(r: DmarcStatus | false | undefined): { dmarcPolicy?: DmarcPolicy } {
  if (r === undefined || r === false || typeof r.policy !== 'string' || r.domain === undefined) {
    return {};
  }
  const pct = Number(r.pct ?? 100);
  return {
    dmarcPolicy: {
      domain: r.domain,
      policy: r.policy.toLowerCase(),
      pct: Number.isInteger(pct) && pct >= 0 && pct <= 100 ? pct : 100,
    },
  };
}

/** RFC 8601 §2.2: one header field value; a CR or LF from a peer never reaches it. */
function clean(s: string): string {
  return s.replace(/[\r\n\0]/g, ' ');
}

export function mailAuthenticator(options: AuthenticatorOptions): MessageAuthenticator {
  const dns =
    options.dns ??
    new DnsClient({
      ...(options.dnsServers !== undefined ? { servers: options.dnsServers } : {}),
      timeoutMs: options.timeoutMs ?? 5000,
      tries: 2,
    });
  // MX answers are objects ({ exchange, priority }), as node's; mailauth's type omits them.
  const resolve = nodeStyleResolve(dns) as DNSResolver;
  const mta = options.hostname;
  return {
    async check(message, client, mailFrom) {
      if (client.entrance === 'submission') {
        const value = `${mta}; auth=pass smtp.auth=${clean(client.login ?? '')}`;
        return {
          headers: `Authentication-Results: ${value}\r\n`,
          authenticationResults: value,
          spf: 'none',
          dkim: 'none',
          dmarc: 'none',
          arc: 'none',
        };
      }
      const r = await authenticate(message, {
        ip: client.address,
        helo: client.helo ?? client.address,
        sender: mailFrom,
        mta,
        resolver: resolve,
        disableBimi: true,
      });
      // mailauth folds its fields with CRLF + space; every value in them came through the SMTP
      // dialogue, whose bare CR, LF and NUL the listener refuses.
      const headers = r.headers.replace(/\r?\n/g, '\r\n');
      const chain = arcChainState(r.arc as ArcStatus | false);
      const ar = /(?:^|\n)Authentication-Results: ([^]*)$/.exec(headers.replace(/\r/g, ''));
      return {
        headers,
        authenticationResults: clean(ar?.[1] ?? '')
          .replace(/\s+/g, ' ')
          .trim(),
        spf: keyword(r.spf as Status | false),
        dkim: keyword((r.dkim as { results?: Status[] }).results ?? []),
        dmarc: keyword(r.dmarc as Status | false),
        arc: keyword(r.arc as Status | false),
        ...(chain !== undefined ? { arcChain: chain } : {}),
        ...arcSealOf(r.arc as ArcStatus | false),
        ...dmarcPolicyOf(r.dmarc as DmarcStatus | false),
      };
    },
  };
}
