/**
 * `aftersmtp ledger ...`: the operator's commands on the local gateway's ledger (the data
 * directory of AFTERSMTP_DATA_DIR, the domain of AFTERSMTP_DOMAIN; the log key's passphrase
 * follows the gateway key's rules, src/identity/gateway.ts). They work while `serve` runs: the
 * log is SQLite in WAL mode, and the gateway reads policies and approvals per request.
 *
 *   ledger key                 the log's note verifier key (the DNS `k=` value)
 *   ledger checkpoint          the current signed checkpoint
 *   ledger policy <domain> [p] shows or sets a domain's registration policy
 *   ledger approve <did>       issues a single-use approval reference for one registration
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../config/load.js';
import { checkDid } from '../../identity/index.js';
import {
  gatewayIdentityFiles,
  gatewayPassphrase,
  wrongGatewayPassphrase,
} from '../../identity/gateway.js';
import {
  formatLedgerCheckpoint,
  formatLedgerKey,
  ledgerCheckpoint,
  ledgerKey,
  LOG_KEY_FILE,
  openDataDirLedger,
  parsePolicySpec,
  type DomainPolicy,
  type IdentityLedger,
} from '../../ledger/index.js';
import { UsageError, flag, optionalString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';

const JSON_OPTION = { json: { type: 'boolean' } } as const;

async function withLedger<T>(fn: (ledger: IdentityLedger) => T): Promise<T> {
  const config = loadConfig();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const files = gatewayIdentityFiles(config);
  const passphrase = await gatewayPassphrase(config, files, []);
  const { ledger } = await openDataDirLedger({
    dataDir: config.dataDir,
    domains: [config.domain],
    passphrase,
    ledger: config.ledgerPolicy === undefined ? {} : { policies: config.ledgerPolicy },
  }).catch((err: unknown) => {
    throw wrongGatewayPassphrase(err, join(config.dataDir, LOG_KEY_FILE), config, files);
  });
  try {
    return fn(ledger);
  } finally {
    ledger.close();
  }
}

export const ledgerKeyCommand: Command = {
  path: ['ledger', 'key'],
  summary: "Print the local ledger's verifier key (the k= of the domain's _aftersmtp._tcp TXT).",
  usage: '[--json]\n\nCreates the key on first use (AFTERSMTP_DATA_DIR, AFTERSMTP_DOMAIN).',
  options: JSON_OPTION,
  async run(args) {
    const config = loadConfig();
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    let info;
    try {
      info = await ledgerKey({ dataDir: config.dataDir, domain: config.domain });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_LOG_KEY' || !/no log key/.test(String(err))) {
        throw err;
      }
      const files = gatewayIdentityFiles(config);
      const passphrase = await gatewayPassphrase(config, files, []);
      info = await ledgerKey({ dataDir: config.dataDir, domain: config.domain, passphrase }).catch(
        (e: unknown) => {
          throw wrongGatewayPassphrase(e, join(config.dataDir, LOG_KEY_FILE), config, files);
        },
      );
    }
    if (flag(args, 'json')) {
      printJson(info);
      return;
    }
    // The key alone on standard output, so that "$(aftersmtp ledger key)" is the key.
    const [key, ...notes] = formatLedgerKey(info);
    printLines([key as string]);
    process.stderr.write(`${notes.join('\n')}\n`);
  },
};

export const ledgerCheckpointCommand: Command = {
  path: ['ledger', 'checkpoint'],
  summary: "Print the local ledger's current signed checkpoint (a C2SP signed note).",
  usage: '[--json]',
  options: JSON_OPTION,
  async run(args) {
    const info = await withLedger(ledgerCheckpoint);
    process.stdout.write(formatLedgerCheckpoint(info, flag(args, 'json')));
  },
};

export const ledgerPolicyCommand: Command = {
  path: ['ledger', 'policy'],
  summary: "Show or set a served domain's registration policy.",
  usage:
    '<domain> [open-pow[:bits] | admin-only | closed] [--json]\n\n' +
    'A policy set here is stored in the ledger and wins over AFTERSMTP_LEDGER_POLICY.',
  options: JSON_OPTION,
  positionals: true,
  async run(args) {
    const [domain, spec, ...rest] = args.positionals;
    if (domain === undefined || rest.length > 0) {
      throw new UsageError('expected <domain> and optionally a policy');
    }
    let wanted: DomainPolicy | undefined;
    if (spec !== undefined) {
      try {
        wanted = parsePolicySpec(`${domain}=${spec}`).get(domain);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const policy = await withLedger((ledger) => {
      if (wanted !== undefined) ledger.setPolicy(domain, wanted);
      return ledger.policy(domain);
    });
    if (flag(args, 'json')) {
      printJson({ domain, ...policy, changed: wanted !== undefined });
      return;
    }
    printLines([
      `${domain} ${policy.policy}${policy.policy === 'open-pow' ? `:${policy.bits}` : ''}${wanted !== undefined ? ' (set)' : ''}`,
    ]);
  },
};

export const ledgerApproveCommand: Command = {
  path: ['ledger', 'approve'],
  summary: 'Approve one registration of a DID; prints the single-use approval reference.',
  usage:
    '<did> [--admin <name>] [--ttl-hours <n>] [--json]\n\n' +
    'The registrant passes the reference to `aftersmtp register --approval <reference>`.',
  options: { ...JSON_OPTION, admin: { type: 'string' }, 'ttl-hours': { type: 'string' } },
  positionals: true,
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('exactly one DID is expected');
    const did = checkDid(args.positionals[0] as string);
    const admin = optionalString(args, 'admin') ?? process.env.USER ?? 'admin';
    const ttlText = optionalString(args, 'ttl-hours') ?? '168';
    if (!/^[0-9]{1,4}$/.test(ttlText) || Number(ttlText) < 1) {
      throw new UsageError('--ttl-hours must be a whole number from 1 to 9999');
    }
    const ttlMs = Number(ttlText) * 3600 * 1000;
    const reference = await withLedger((ledger) => ledger.approveRegistration(did, admin, ttlMs));
    const expiresAt = new Date(Date.now() + ttlMs).toISOString();
    if (flag(args, 'json')) printJson({ did, admin, reference, expiresAt });
    else printLines([reference, `# approves one registration of ${did} until ${expiresAt}`]);
  },
};
