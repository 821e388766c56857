/**
 * `aftersmtp dns`: every DNS record this gateway's domain needs, in zone-file form, and with
 * --check, each one looked up (at AFTERSMTP_DNS_SERVERS, --server, or the system's servers) and
 * compared with what it must say.
 *
 * The records (docs/PROTOCOL.md §10.4, §13.1; docs/OPERATIONS.md):
 * - `_aftersmtp._tcp.<domain>` TXT "v=aftersmtp1; p=<host>:<quic port>; c=<host>:<api port>;
 *   k=<log key>": the QUIC relay, the client API and the ledger's verifier key (from the data
 *   directory's ledger.key; no passphrase needed);
 * - the host's A and/or AAAA records, when the host is a name: peers look it up (the gateway
 *   cannot know its public address, so --check reports what it finds, and --address says what
 *   it must be).
 * - the SMTP bridge's: MX (mail for the domain comes to this host), SPF (`v=spf1 mx -all`: the
 *   host sends the domain's mail), each DKIM key that signs (from the data directory's public
 *   halves, src/mail/dkim-keys.ts) and a DMARC policy to start from (`p=none`; tighten it once
 *   reports show only your own mail).
 * --check compares the discovery record and the DKIM keys exactly, the MX by its host, and SPF
 * and DMARC by their presence (their content is the operator's).
 *
 * Exit 0 when every check passes (or nothing was checked), 1 when a record is missing or differs.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DISCOVERY_PREFIX, parseDiscoveryRecord, parseDnsServers } from '../../amp/discovery.js';
import { loadConfig } from '../../config/load.js';
import { parseListenAddress } from '../../net/listen.js';
import { AfterSmtpError } from '../../errors.js';
import { checkDomain } from '../../identity/did.js';
import { ledgerKey } from '../../ledger/cli-support.js';
import { DkimKeys, type DkimKeyInfo } from '../../mail/dkim-keys.js';
import { UsageError, flag, optionalString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';

interface Check {
  readonly name: string;
  readonly type: 'TXT' | 'A/AAAA' | 'MX';
  readonly want: string;
  /** TXT: the discovery record (parsed), an exact value, or one record with this prefix. */
  readonly compare?: 'discovery' | 'exact' | 'prefix';
  got?: string[];
  status?: 'ok' | 'missing' | 'differs' | 'error';
  detail?: string;
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A TXT value in zone-file form: character-strings of at most 255 bytes (RFC 1035 §3.3.14). */
export function zoneTxt(text: string): string {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += 255) parts.push(`"${text.slice(i, i + 255)}"`);
  return parts.join(' ');
}

const LOOPBACK_OR_ANY = /^(0\.0\.0\.0|::|127\.|::1$|localhost$)/;

export const dnsCommand: Command = {
  path: ['dns'],
  summary: 'Print the DNS records your domain needs; --check looks them up and compares.',
  usage:
    '[--host <name>] [--address <ip>...] [--check] [--server <ip[:port]>...] [--json]\n\n' +
    '  --host <name>        the name peers reach this gateway by (p= and c=); default: the\n' +
    '                       address of AFTERSMTP_QUIC_LISTEN when it is a public one\n' +
    '  --address <ip>       the public address(es) the host name must resolve to (checked)\n' +
    '  --check              look every record up and compare (exit 1 if one is missing or differs)\n' +
    '  --server <ip[:port]> the DNS server to ask (default AFTERSMTP_DNS_SERVERS, else the system)\n\n' +
    'The domain, the ports and the log key come from the gateway settings (AFTERSMTP_DOMAIN,\n' +
    'AFTERSMTP_QUIC_LISTEN, AFTERSMTP_GRPC_LISTEN, the ledger key in AFTERSMTP_DATA_DIR).',
  options: {
    host: { type: 'string' },
    address: { type: 'string', multiple: true },
    check: { type: 'boolean' },
    server: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  },
  async run(args) {
    const config = loadConfig();
    const domain = checkDomain(config.domain);
    let host = optionalString(args, 'host');
    if (host === undefined) {
      if (LOOPBACK_OR_ANY.test(config.quicListen.host)) {
        throw new UsageError(
          `--host is required: AFTERSMTP_QUIC_LISTEN is ${hostPort(config.quicListen.host, config.quicListen.port)}, not an address peers can reach (give the public name of this gateway)`,
        );
      }
      host = config.quicListen.host;
    }
    try {
      parseListenAddress(hostPort(host, 1));
    } catch {
      throw new UsageError(`--host ${JSON.stringify(host)} is not a host name or address`);
    }
    const addresses = ((args.values.address as string[] | undefined) ?? []).map((a) => {
      if (isIP(a) === 0)
        throw new UsageError(`--address ${JSON.stringify(a)} is not an IP address`);
      return a;
    });
    let key: string;
    try {
      key = (await ledgerKey({ dataDir: config.dataDir, domain })).verifierKey;
    } catch (err) {
      if (err instanceof AfterSmtpError && /no log key/.test(err.message)) {
        throw new AfterSmtpError(
          'ERR_LOG_KEY',
          `no log key in ${config.dataDir} (AFTERSMTP_DATA_DIR) yet: start the gateway once, or run "aftersmtp ledger key"`,
        );
      }
      throw err;
    }
    const txtName = `${DISCOVERY_PREFIX}${domain}`;
    const txt = `v=aftersmtp1; p=${hostPort(host, config.quicListen.port)}; c=${hostPort(host, config.grpcListen.port)}; k=${key}`;
    const checks: Check[] = [{ name: txtName, type: 'TXT', want: txt, compare: 'discovery' }];
    if (isIP(host) === 0) {
      checks.push({
        name: host,
        type: 'A/AAAA',
        want: addresses.length > 0 ? addresses.join(' ') : "this gateway's public address",
      });
    }
    const bridge = bridgeChecks(domain, host, new DkimKeys(config.dataDir).list(domain));
    checks.push(...bridge);

    if (flag(args, 'check')) {
      const given = args.values.server as string[] | undefined;
      const resolver = new Resolver({ timeout: 3000, tries: 2 });
      try {
        const servers = given !== undefined ? parseDnsServers(given.join(',')) : config.dnsServers;
        if (servers !== undefined) resolver.setServers(servers);
      } catch (err) {
        throw new UsageError(`--server: ${(err as Error).message}`);
      }
      await Promise.all(checks.map((c) => check(resolver, c, addresses)));
    }

    const failed = checks.filter((c) => c.status !== undefined && c.status !== 'ok');
    if (flag(args, 'json')) {
      printJson({ domain, records: checks });
    } else {
      const lines = [
        `; DNS records for ${domain} (AFTERSMTP_DOMAIN)`,
        `${txtName}. 3600 IN TXT ${zoneTxt(txt)}`,
      ];
      if (isIP(host) === 0) {
        if (addresses.length > 0) {
          for (const a of addresses)
            lines.push(`${host}. 3600 IN ${a.includes(':') ? 'AAAA' : 'A'} ${a}`);
        } else {
          lines.push(`; ${host} must have an A and/or AAAA record: this gateway's public address`);
        }
      }
      lines.push(
        `; peers send to UDP ${config.quicListen.port} (QUIC) and resolve identities at TCP ${config.grpcListen.port} (gRPC): open both to ${host}`,
        '; the SMTP bridge: mail for the domain to this host, mail from it signed here',
      );
      if (isIP(host) !== 0)
        lines.push(`; MX: give ${host} a name (an MX names a host, not an address)`);
      for (const c of bridge) {
        const value = c.type === 'MX' ? `10 ${c.want}.` : zoneTxt(c.want);
        lines.push(`${c.name}. 3600 IN ${c.type} ${value}`);
      }
      if (!bridge.some((c) => c.name.includes('._domainkey.'))) {
        lines.push(
          '; DKIM: no key yet (the gateway makes one at its first start: aftersmtp dkim list)',
        );
      }
      if (flag(args, 'check')) {
        lines.push('', '; checked:');
        for (const c of checks) {
          lines.push(
            `${c.name} ${c.type}  ${c.status}${c.detail !== undefined ? `: ${c.detail}` : ''}`,
          );
        }
      }
      printLines(lines);
    }
    if (failed.length > 0) {
      throw new AfterSmtpError(
        'ERR_DNS_CHECK',
        `${failed.length} record(s) missing or different: ${failed.map((c) => `${c.name} ${c.type}`).join(', ')}`,
      );
    }
  },
};

/** The records of the SMTP bridge: MX, SPF, the signing DKIM keys, DMARC. */
function bridgeChecks(domain: string, host: string, keys: readonly DkimKeyInfo[]): Check[] {
  const out: Check[] = [];
  if (isIP(host) === 0) out.push({ name: domain, type: 'MX', want: host });
  out.push({ name: domain, type: 'TXT', want: 'v=spf1 mx -all', compare: 'prefix' });
  for (const k of keys.filter((x) => x.active)) {
    out.push({ name: k.dnsName, type: 'TXT', want: k.dnsValue, compare: 'exact' });
  }
  out.push({ name: `_dmarc.${domain}`, type: 'TXT', want: 'v=DMARC1; p=none', compare: 'prefix' });
  return out;
}

/** An exact TXT value (white space aside), or exactly one record with the wanted tag. */
function checkTxt(c: Check, published: readonly string[]): void {
  const squeeze = (t: string) => t.replace(/\s+/g, '');
  if (c.compare === 'exact') {
    c.got = [...published];
    const same = published.some((t) => squeeze(t) === squeeze(c.want));
    c.status = same ? 'ok' : published.length === 0 ? 'missing' : 'differs';
    if (!same && published.length > 0) c.detail = `published: "${published.join('", "')}"`;
    return;
  }
  const tag = (c.want.split(/[ ;]/)[0] ?? '').toLowerCase();
  const ours = published.filter((t) => t.toLowerCase().startsWith(tag));
  c.got = ours;
  c.status = ours.length === 1 ? 'ok' : ours.length === 0 ? 'missing' : 'differs';
  if (ours.length === 0) c.detail = `no ${tag} record`;
  if (ours.length > 1) c.detail = `${ours.length} ${tag} records; exactly one is allowed`;
}

async function check(resolver: Resolver, c: Check, addresses: readonly string[]): Promise<void> {
  const notFound = (err: unknown): boolean => {
    const code = (err as { code?: unknown }).code;
    return code === 'ENOTFOUND' || code === 'ENODATA';
  };
  if (c.type === 'MX') {
    try {
      const mx = await resolver.resolveMx(c.name);
      c.got = mx.map((m) => `${m.priority} ${m.exchange}`);
      const ours = mx.some((m) => m.exchange.toLowerCase() === c.want.toLowerCase());
      c.status = ours ? 'ok' : 'differs';
      if (!ours) c.detail = `published: ${c.got.join(', ')}`;
    } catch (err) {
      c.status = notFound(err) ? 'missing' : 'error';
      c.detail = notFound(err) ? 'no MX record' : String((err as { code?: unknown }).code);
    }
    return;
  }
  if (c.type === 'TXT') {
    let records: string[][];
    try {
      records = await resolver.resolveTxt(c.name);
    } catch (err) {
      c.status = notFound(err) ? 'missing' : 'error';
      c.detail = notFound(err) ? 'no TXT record' : String((err as { code?: unknown }).code);
      return;
    }
    if (c.compare !== 'discovery') {
      checkTxt(
        c,
        records.map((r) => r.join('')),
      );
      return;
    }
    const ours = records.map((r) => r.join('')).filter((t) => /^v[ \t]*=[ \t]*aftersmtp1/.test(t));
    c.got = ours;
    if (ours.length === 0) {
      c.status = 'missing';
      c.detail = 'no v=aftersmtp1 record among the TXT records';
      return;
    }
    if (ours.length > 1) {
      c.status = 'differs';
      c.detail = `${ours.length} aftersmtp1 records; exactly one is allowed`;
      return;
    }
    const got = ours[0] as string;
    let same = got === c.want;
    if (!same) {
      try {
        const a = parseDiscoveryRecord(got);
        const b = parseDiscoveryRecord(c.want);
        const cTag = (t: string) => /(?:^|;)\s*c=([^;\s]*)/.exec(t)?.[1];
        same =
          a.logKey === b.logKey &&
          a.relays.length === b.relays.length &&
          a.relays.every(
            (r, i) =>
              r.host.toLowerCase() === b.relays[i]?.host.toLowerCase() &&
              r.port === b.relays[i]?.port,
          ) &&
          cTag(got) === cTag(c.want);
      } catch (err) {
        c.status = 'differs';
        c.detail = `published: "${got}" (${(err as Error).message})`;
        return;
      }
    }
    c.status = same ? 'ok' : 'differs';
    if (!same) c.detail = `published: "${got}"`;
    return;
  }
  const found: string[] = [];
  let lastError: unknown;
  for (const lookup of [resolver.resolve4.bind(resolver), resolver.resolve6.bind(resolver)]) {
    try {
      found.push(...(await lookup(c.name)));
    } catch (err) {
      if (!notFound(err)) lastError = err;
    }
  }
  c.got = found;
  if (found.length === 0) {
    c.status = lastError === undefined ? 'missing' : 'error';
    c.detail =
      lastError === undefined
        ? 'no A or AAAA record'
        : String((lastError as { code?: unknown }).code);
    return;
  }
  const missing = addresses.filter((a) => !found.includes(a));
  c.status = missing.length === 0 ? 'ok' : 'differs';
  c.detail = `${found.join(' ')}${missing.length > 0 ? ` (expected ${missing.join(' ')})` : ''}`;
}
