/**
 * The SMTP off-ramp (DESIGN.md §1b, §4): the delivery worker's handler for `smtp:<domain>` jobs.
 * It sends the queued message (outbound.ts: reverse path + the signed message, byte for byte)
 * to the domain's mail servers and answers one outcome per recipient.
 *
 * Where (mx.ts): the recipient's mx_record_map route (`smtp:[host]:port` without MX lookup,
 * `smtp:host:port` with the MX records of host, `smtps:` likewise over implicit TLS; an `error:`
 * route bounces with its text), else
 * the domain's MX records in preference order, the A/AAAA fallback, null MX. Hosts are tried in
 * order, each address in turn, at most `maxAddresses` addresses and `maxSessions` SMTP sessions
 * per attempt (Postfix's smtp_mx_address_limit and smtp_mx_session_limit).
 *
 * TLS, per host, strongest first (docs/OPERATIONS.md, "SMTP out: the off-ramp"):
 * 1. DANE (dane.ts) when the host's name and addresses came from DNSSEC-validated answers and
 *    `_<port>._tcp.<host>` has a validated TLSA RRset: TLS required, the chain must match. A
 *    TLSA lookup that fails (bogus data, SERVFAIL) skips the host (RFC 7672 §2.2.1).
 * 2. MTA-STS (mta-sts.ts) for MX delivery to a domain with a policy: `enforce` skips MX hosts
 *    the policy does not name and requires TLS with a certificate valid for the host name;
 *    `testing` checks and reports the same but delivers.
 * 3. Otherwise opportunistic: STARTTLS when offered, no certificate check, a plaintext retry
 *    when the handshake fails (Postfix's `may`).
 * A route `smtps:` (implicit TLS, RFC 8314 §3) and a host the credentials file names (a login)
 * instead require TLS with a certificate that verifies for the host's name.
 * A policy failure is checked before MAIL FROM, so nothing of the message goes to a server that
 * fails its policy, and it is a temporary failure (retried), never a fallback to less.
 *
 * Outcomes: RCPT replies per recipient (4xx temporary, 5xx permanent), the DATA reply for the
 * accepted ones; a session lost during the transaction is temporary for all (the message may
 * have arrived: SMTP's lost-reply case, RFC 5321 §4.1.1.4 — at least once, as the queue).
 * Temporary codes: ERR_SMTP_UNREACHABLE (no host answered at all: the worker leaves the
 * destination alone for a while), ERR_SMTP_DNS, ERR_SMTP_DANE, ERR_SMTP_MTA_STS,
 * ERR_SMTP_DEFERRED (a 4xx reply), ERR_SMTP_CONNECTION_LOST. Permanent: ERR_SMTP_REJECTED (5xx),
 * ERR_SMTP_NULL_MX, ERR_SMTP_NO_DOMAIN, ERR_OUTBOUND_FORMAT, ERR_ROUTE_ERROR.
 */
import { isIP } from 'node:net';
import { AfterSmtpError } from '../../errors.js';
import type { LeasedJob, RecipientOutcome } from '../../queue/types.js';
import { parseRoute, type MapSnapshot, type Route } from '../../routing/index.js';
import type { CredentialLookup, Credentials } from './credentials.js';
import { type Tlsa, isUsable, tlsaRecords } from './dane.js';
import { DnsClient, DnsError, type DnsResolver } from '../../net/dns.js';
import { NO_OFFRAMP_METRICS, type OffRampMetrics } from './metrics.js';
import { MtaSts, mxMatches, type StsLookup } from './mta-sts.js';
import { hostAddresses, planHosts, type HostAddresses, type NextHop } from './mx.js';
import { decodeOutbound, type OutboundMessage } from '../../queue/outbound.js';
import {
  runSession,
  SessionCache,
  type SessionResult,
  type SessionTimeouts,
  type TlsRequirement,
} from './session.js';

export interface OffRampLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface OffRampTimeouts extends SessionTimeouts {
  /** One DNS try at one server (default 5 s; two tries per server). */
  readonly dnsMs: number;
  /** One MTA-STS policy fetch (default 15 s). */
  readonly policyFetchMs: number;
}

export const DEFAULT_TIMEOUTS: OffRampTimeouts = {
  dnsMs: 5_000,
  policyFetchMs: 15_000,
  connectMs: 30_000,
  greetingMs: 120_000,
  // RFC 5321 §4.5.3.2: 5 minutes for MAIL and RCPT, 3 per data block, 10 for the final reply.
  commandMs: 300_000,
  dataMs: 900_000,
};

export interface OffRampOptions {
  /** The maps as they are now (mx_record_map routes); read once per job. */
  readonly maps: () => MapSnapshot;
  /**
   * AFTERSMTP_DNS_SERVERS (ip, ip:port, [ipv6]:port); undefined or empty: the system's. DANE is
   * applied only where this resolver validates DNSSEC and sets the AD bit.
   */
  readonly dnsServers?: readonly string[];
  /**
   * The gateway's DNS resolver (serve passes its one cached client, src/net/dns-cache.ts, which
   * keeps each answer's AD bit and honours its TTL); unset: a DnsClient of `dnsServers`.
   */
  readonly dns?: DnsResolver;
  /** This gateway's host name, given in EHLO. */
  readonly hostname: string;
  readonly log: OffRampLogger;
  readonly metrics?: OffRampMetrics;
  /** Where MTA-STS policies are kept across restarts (a folder in the data dir); unset: memory. */
  readonly policyCacheDir?: string;
  readonly timeouts?: Partial<OffRampTimeouts>;
  /** TCP port of MX hosts (default 25); a route's own port wins. Other values: tests. */
  readonly port?: number;
  /** CA certificates trusted besides Node's bundled roots, for MTA-STS (policy fetch, MX certs). */
  readonly ca?: readonly (string | Buffer)[];
  /** Addresses tried per attempt, all hosts together (default 5). */
  readonly maxAddresses?: number;
  /** SMTP sessions (a greeting reached) per attempt (default 2). */
  readonly maxSessions?: number;
  /** Largest server reply accepted, bytes (default 64 KiB). */
  readonly maxReplyBytes?: number;
  /**
   * How long a session stays open after its message for the next one to the same server, ms
   * (AFTERSMTP_OFFRAMP_CONNECTION_CACHE_MS; default 2,000; 0: a new session for every message).
   */
  readonly connectionCacheMs?: number;
  /**
   * SMTP AUTH credentials per server (AFTERSMTP_OFFRAMP_CREDENTIALS_FILE, credentials.ts): a
   * server that has them is reached only over TLS that verifies for its name, then logged in to.
   */
  readonly credentials?: CredentialLookup;
  readonly now?: () => number;
}

/**
 * A recipient's outcome with its stable code: the delivery worker's `DeliveryOutcome` (the
 * worker is a layer above, docs/ARCHITECTURE.md "Layers", so the type is restated here).
 */
export type OffRampOutcome = RecipientOutcome & { readonly code?: string };

/**
 * The delivery worker's `DestinationHandler` for `smtp:` destinations; `close` ends the sessions
 * it keeps for the next message (QUIT), for a stop after the worker's.
 */
export interface OffRampHandler {
  (job: LeasedJob): Promise<OffRampOutcome[]>;
  close(): Promise<void>;
}

type DeliveryOutcome = OffRampOutcome;

type Failure = { readonly code: string; readonly reason: string };

interface Group {
  readonly hop: NextHop;
  readonly recipients: string[];
}

/** The outcome code of a session that did not meet its TLS requirement. */
function policyFailureCode(tls: TlsRequirement): string {
  if (tls.kind === 'dane') return 'ERR_SMTP_DANE';
  if (tls.kind === 'verified' || tls.kind === 'implicit') return 'ERR_SMTP_TLS';
  return 'ERR_SMTP_MTA_STS';
}

function reasonOf(err: unknown): string {
  return err instanceof AfterSmtpError ? err.message : 'internal error';
}

export function createOffRamp(o: OffRampOptions): OffRampHandler {
  const timeouts: OffRampTimeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  const dns =
    o.dns ?? new DnsClient({ servers: o.dnsServers, timeoutMs: timeouts.dnsMs, tries: 2 });
  const sts = new MtaSts({
    dns,
    cacheDir: o.policyCacheDir,
    ca: o.ca,
    timeoutMs: timeouts.policyFetchMs,
    now: o.now,
  });
  const metrics = o.metrics ?? NO_OFFRAMP_METRICS;
  const now = o.now ?? Date.now;
  const defaultPort = o.port ?? 25;
  const maxAddresses = o.maxAddresses ?? 5;
  const maxSessions = o.maxSessions ?? 2;
  const maxReplyBytes = o.maxReplyBytes ?? 64 * 1024;
  const cacheMs = o.connectionCacheMs ?? 2_000;
  const cache = cacheMs > 0 ? new SessionCache({ idleMs: cacheMs }) : undefined;

  /** One session, with the plaintext retry of a failed opportunistic handshake. */
  async function session(
    address: string,
    port: number,
    hostName: string | undefined,
    tls: TlsRequirement,
    msg: OutboundMessage,
    recipients: readonly string[],
    login: Credentials | undefined,
  ): Promise<SessionResult> {
    const base = {
      address,
      port,
      hostName,
      helo: o.hostname,
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      ...(login !== undefined ? { login } : {}),
      timeouts,
      maxReplyBytes,
      mailFrom: msg.mailFrom,
      recipients,
      message: msg.message,
      now,
    };
    const r = await runSession({ ...base, tls }, cache);
    if (r.kind !== 'handshake-failed') {
      // TLS-RPT counts sessions: a kept session's result was counted when it was opened.
      if ('report' in r && !('reused' in r && r.reused === true)) {
        metrics.tls(r.report.policy, r.report.result);
      }
      return r;
    }
    o.log.info(
      { host: hostName, address, reason: r.reason },
      'off-ramp: TLS handshake failed; retrying without TLS',
    );
    // One TLS-RPT result for the two sessions: the handshake that failed.
    const failed = { policy: 'no-policy-found', result: 'validation-failure' } as const;
    metrics.tls(failed.policy, failed.result);
    // Kept like any other: the next message to this server that fails its handshake again
    // takes the plaintext session instead of opening one more.
    const retry = await runSession({ ...base, tls: { kind: 'plaintext' } }, cache);
    return 'report' in retry ? { ...retry, report: failed } : retry;
  }

  async function deliverGroup(
    domain: string,
    group: Group,
    msg: OutboundMessage,
  ): Promise<Map<string, DeliveryOutcome>> {
    const out = new Map<string, DeliveryOutcome>();
    const all = (status: 'temporary' | 'permanent', f: Failure): Map<string, DeliveryOutcome> => {
      for (const recipient of group.recipients) {
        out.set(recipient, { recipient, status, code: f.code, reason: `${f.code}: ${f.reason}` });
      }
      return out;
    };
    const plan = await planHosts(dns, group.hop);
    if (plan.kind !== 'hosts') return all(plan.kind, plan);

    // MTA-STS applies to MX delivery of the recipient domain itself (not to a route elsewhere).
    let policy: StsLookup = { kind: 'none' };
    if (group.hop.mxLookup && group.hop.lookup === domain) {
      policy = await sts.policyFor(domain);
      if (policy.kind === 'failed') {
        metrics.tls('sts', policy.result);
        o.log.warn({ domain, reason: policy.reason }, 'off-ramp: MTA-STS policy not fetched');
      }
    }

    let addressesTried = 0;
    let sessions = 0;
    let last: (Failure & { permanent?: boolean }) | undefined;
    // Whether any failure was more than "could not connect" (a session, or a policy refusal).
    let reached = false;
    for (const host of plan.hosts) {
      if (addressesTried >= maxAddresses || sessions >= maxSessions) break;
      let addrs: HostAddresses;
      try {
        addrs = await hostAddresses(dns, host.name);
      } catch (err) {
        last = { code: 'ERR_SMTP_UNREACHABLE', reason: `${host.name}: ${reasonOf(err)}` };
        continue;
      }
      if (addrs.addresses.length === 0) {
        last = { code: 'ERR_SMTP_UNREACHABLE', reason: `${host.name} has no address` };
        continue;
      }
      const literal = isIP(host.name) !== 0;
      const hostName = literal ? undefined : host.name;

      // An smtps: route is TLS from the first byte to the host it names, its name checked; else
      // DANE first (RFC 8461 §2: where DANE applies, MTA-STS does not).
      let tls: TlsRequirement | undefined = group.hop.implicitTls
        ? { kind: 'implicit' }
        : undefined;
      if (tls === undefined && !literal && host.secureName && addrs.secure) {
        try {
          const answer = await dns.query(`_${host.port}._tcp.${host.name}`, 'TLSA');
          const records: Tlsa[] = answer.secure ? tlsaRecords(answer) : [];
          if (answer.rcode === 'NOERROR' && records.length > 0) {
            tls = {
              kind: 'dane',
              records: records.filter(isUsable),
              refs: [host.name, domain],
            };
          }
        } catch (err) {
          // RFC 7672 §2.2.1: a host whose TLSA records cannot be had is not used.
          metrics.tls('tlsa', 'dnssec-invalid');
          last = {
            code: 'ERR_SMTP_DANE',
            reason: `${host.name}: TLSA lookup failed (${err instanceof DnsError ? err.message : 'error'})`,
          };
          reached = true;
          continue;
        }
      }
      if (tls === undefined && policy.kind === 'policy' && host.fromMx) {
        const p = policy.policy;
        if (!mxMatches(host.name, p.mx)) {
          metrics.tls('sts', 'validation-failure');
          if (p.mode === 'enforce') {
            last = {
              code: 'ERR_SMTP_MTA_STS',
              reason: `${host.name} is not an MX host of ${domain}'s MTA-STS policy`,
            };
            reached = true;
            continue;
          }
          tls = { kind: 'opportunistic' };
        } else {
          tls = { kind: 'sts', mode: p.mode === 'enforce' ? 'enforce' : 'testing' };
        }
      }
      tls ??= { kind: 'opportunistic' };
      // A login goes only over TLS that proves the server's name (credentials.ts).
      const login = hostName === undefined ? undefined : o.credentials?.(hostName, host.port);
      if (login !== undefined && tls.kind !== 'implicit') tls = { kind: 'verified' };

      for (const address of addrs.addresses) {
        if (addressesTried >= maxAddresses || sessions >= maxSessions) break;
        addressesTried++;
        const r = await session(address, host.port, hostName, tls, msg, group.recipients, login);
        const where = `${host.name}[${address}]:${host.port}`;
        o.log.info(
          {
            domain,
            host: host.name,
            address,
            port: host.port,
            tls: tls.kind,
            result: r.kind,
            ...('reason' in r ? { reason: r.reason } : {}),
            ...('reused' in r && r.reused === true ? { reused: true } : {}),
          },
          'off-ramp: session',
        );
        if (r.kind === 'unreachable') {
          last = { code: 'ERR_SMTP_UNREACHABLE', reason: `${where}: ${r.reason}` };
          continue;
        }
        sessions++;
        reached = true;
        if (r.kind === 'refused' || r.kind === 'handshake-failed') {
          const permanent = /^5/.test(r.reason);
          last = {
            code: permanent ? 'ERR_SMTP_REJECTED' : 'ERR_SMTP_DEFERRED',
            reason: `${where} said: ${r.reason}`,
            permanent,
          };
          break; // the next host
        }
        if (r.kind === 'auth-failed') {
          // As Postfix (smtp_sasl_auth_soft_bounce): the next server, then a temporary failure.
          last = { code: 'ERR_SMTP_AUTH', reason: `${where}: ${r.reason}` };
          continue;
        }
        if (r.kind === 'policy-failed') {
          last = { code: policyFailureCode(tls), reason: `${where}: ${r.reason}` };
          continue;
        }
        if (r.kind === 'lost') {
          return all('temporary', {
            code: 'ERR_SMTP_CONNECTION_LOST',
            reason: `${where}: ${r.reason}`,
          });
        }
        for (const recipient of group.recipients) {
          const res = r.results.get(recipient);
          if (res === undefined) {
            out.set(recipient, {
              recipient,
              status: 'temporary',
              code: 'ERR_SMTP_CONNECTION_LOST',
              reason: `ERR_SMTP_CONNECTION_LOST: ${where}: no reply for this recipient`,
            });
          } else if (res.status === 'delivered') {
            out.set(recipient, { recipient, status: 'delivered' });
          } else {
            const code = res.status === 'permanent' ? 'ERR_SMTP_REJECTED' : 'ERR_SMTP_DEFERRED';
            out.set(recipient, {
              recipient,
              status: res.status,
              code,
              reason: `${code}: ${where} said: ${res.reply}`,
            });
          }
        }
        return out;
      }
    }
    if (last === undefined) {
      return all('temporary', { code: 'ERR_SMTP_UNREACHABLE', reason: 'no host to try' });
    }
    if (!reached) return all('temporary', { ...last, code: 'ERR_SMTP_UNREACHABLE' });
    return all(last.permanent === true ? 'permanent' : 'temporary', last);
  }

  const deliver = async (job: LeasedJob): Promise<DeliveryOutcome[]> => {
    const domain = job.destination.slice(job.destination.indexOf(':') + 1).toLowerCase();
    let msg: OutboundMessage;
    try {
      msg = decodeOutbound(job.body);
    } catch (err) {
      const outcomes = job.recipients.map((recipient): DeliveryOutcome => ({
        recipient,
        status: 'permanent',
        code: 'ERR_OUTBOUND_FORMAT',
        reason: `ERR_OUTBOUND_FORMAT: ${reasonOf(err)}`,
      }));
      metrics.recipients('permanent', outcomes.length);
      return outcomes;
    }
    const maps = o.maps();
    const done = new Map<string, DeliveryOutcome>();
    const groups = new Map<string, Group>();
    let forced: Route | undefined;
    try {
      forced = msg.route !== undefined ? parseRoute(msg.route) : undefined;
    } catch (err) {
      const outcomes = job.recipients.map((recipient): DeliveryOutcome => ({
        recipient,
        status: 'permanent',
        code: 'ERR_OUTBOUND_FORMAT',
        reason: `ERR_OUTBOUND_FORMAT: ${reasonOf(err)}`,
      }));
      metrics.recipients('permanent', outcomes.length);
      return outcomes;
    }
    for (const recipient of job.recipients) {
      // A route the message carries (MailScript route_via) wins over mx_record_map's.
      const route = forced ?? maps.route(recipient);
      if (route?.kind === 'error') {
        done.set(recipient, {
          recipient,
          status: 'permanent',
          code: 'ERR_ROUTE_ERROR',
          reason: `ERR_ROUTE_ERROR: ${route.text}`,
        });
        continue;
      }
      // `amp:` routes are the pipeline's: such recipients never come here; MX if one does.
      const hop: NextHop =
        route?.kind === 'smtp'
          ? {
              lookup: route.host,
              port: route.port,
              mxLookup: route.mxLookup,
              implicitTls: route.implicitTls,
            }
          : { lookup: domain, port: defaultPort, mxLookup: true, implicitTls: false };
      const key = `${hop.implicitTls ? 'smtps' : 'smtp'}:${hop.mxLookup ? 'mx' : 'host'}:${hop.lookup}:${hop.port}`;
      const g = groups.get(key) ?? { hop, recipients: [] };
      g.recipients.push(recipient);
      groups.set(key, g);
    }
    for (const g of groups.values()) {
      let got: Map<string, DeliveryOutcome>;
      try {
        got = await deliverGroup(domain, g, msg);
      } catch (err) {
        o.log.warn({ domain, err }, 'off-ramp: delivery failed');
        got = new Map(
          g.recipients.map((recipient) => [
            recipient,
            {
              recipient,
              status: 'temporary',
              code: 'ERR_SMTP_INTERNAL',
              reason: `ERR_SMTP_INTERNAL: ${reasonOf(err)}`,
            },
          ]),
        );
      }
      for (const [r, outcome] of got) done.set(r, outcome);
    }
    const outcomes = job.recipients.map(
      (recipient): DeliveryOutcome =>
        done.get(recipient) ?? {
          recipient,
          status: 'temporary',
          code: 'ERR_SMTP_INTERNAL',
          reason: 'ERR_SMTP_INTERNAL: no outcome',
        },
    );
    for (const x of outcomes) metrics.recipients(x.status);
    return outcomes;
  };
  return Object.assign(deliver, { close: async () => cache?.close() });
}
