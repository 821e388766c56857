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
 * The SMTP bridge's records (MX, SPF, DKIM, DMARC) belong to the bridge and are not listed yet.
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
import { UsageError, flag, optionalString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';

interface Check {
  readonly name: string;
  readonly type: 'TXT' | 'A/AAAA';
  readonly want: string;
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
    const checks: Check[] = [{ name: txtName, type: 'TXT', want: txt }];
    if (isIP(host) === 0) {
      checks.push({
        name: host,
        type: 'A/AAAA',
        want: addresses.length > 0 ? addresses.join(' ') : "this gateway's public address",
      });
    }

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
      );
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

async function check(resolver: Resolver, c: Check, addresses: readonly string[]): Promise<void> {
  const notFound = (err: unknown): boolean => {
    const code = (err as { code?: unknown }).code;
    return code === 'ENOTFOUND' || code === 'ENODATA';
  };
  if (c.type === 'TXT') {
    let records: string[][];
    try {
      records = await resolver.resolveTxt(c.name);
    } catch (err) {
      c.status = notFound(err) ? 'missing' : 'error';
      c.detail = notFound(err) ? 'no TXT record' : String((err as { code?: unknown }).code);
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
          a.relay.host.toLowerCase() === b.relay.host.toLowerCase() &&
          a.relay.port === b.relay.port &&
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
