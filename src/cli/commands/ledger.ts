/**
 * `aftersmtp ledger ...`: the operator's commands on the local gateway's ledger (the data
 * directory of AFTERSMTP_DATA_DIR, the domain of AFTERSMTP_DOMAIN; the log key's passphrase
 * follows the gateway key's rules, src/identity/gateway.ts). They work while `serve` runs: the
 * log is SQLite in WAL mode, and the gateway reads policies and approvals per request.
 *
 *   ledger key                 the log's note verifier key (the DNS `k=` value)
 *   ledger checkpoint          the current signed checkpoint
 *   ledger consistency <m> [n] a consistency proof between two sizes of the log, with both roots
 *   ledger policy <domain> [p] shows or sets a domain's registration policy
 *   ledger approve <did>       issues a single-use approval reference for one registration
 *   ledger pin <domain> <key>  pins a peer domain's log key (for this gateway, or --client)
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { relayStatePath } from '../../amp/relay/identities.js';
import { checkLogKey, logPinsPath, readLogPins, writeLogPin } from '../../amp/relay/pins.js';
import { AfterSmtpError } from '../../errors.js';
import { checkDomain } from '../../identity/did.js';
import { ClientState } from '../../ledger/verify.js';
import { DEFAULT_STATE_FILE, clientOption } from '../ledger-client.js';
import { loadConfig } from '../../config/load.js';
import { checkDid } from '../../identity/index.js';
import {
  gatewayIdentityFiles,
  gatewayPassphrase,
  wrongGatewayPassphrase,
} from '../../identity/gateway.js';
import {
  formatLedgerCheckpoint,
  formatLedgerConsistency,
  formatLedgerKey,
  ledgerCheckpoint,
  ledgerConsistency,
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

export const ledgerConsistencyCommand: Command = {
  path: ['ledger', 'consistency'],
  summary: "Prove that the local ledger's tree of one size extends that of a smaller size.",
  usage:
    '<from size> [<to size>] [--json]\n\n' +
    'Prints the root hash at each size and the RFC 9162 consistency proof between them (checked\n' +
    'before it is printed); <to size> defaults to the current size. An auditor compares the roots\n' +
    'with checkpoints it kept and verifies the proof independently.',
  options: JSON_OPTION,
  positionals: true,
  async run(args) {
    const sizes = args.positionals.map((p) => {
      if (!/^[0-9]{1,15}$/.test(p)) throw new UsageError(`not a tree size: ${JSON.stringify(p)}`);
      return Number(p);
    });
    const [from, to] = sizes;
    if (from === undefined || sizes.length > 2) {
      throw new UsageError('give one or two tree sizes: <from> [<to>]');
    }
    const info = await withLedger((ledger) => ledgerConsistency(ledger, from, to));
    process.stdout.write(formatLedgerConsistency(info, flag(args, 'json')));
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

export const ledgerPinCommand: Command = {
  path: ['ledger', 'pin'],
  summary: "Pin a peer domain's log key (its `aftersmtp ledger key`), or list the pins.",
  usage:
    '<domain> <log key> [--replace] [--client | --state <file>] [--json]\n' +
    '       aftersmtp ledger pin --list [--client | --state <file>] [--json]\n\n' +
    'For a domain whose _aftersmtp._tcp record has no k= (a peer reached by AFTERSMTP_RELAY_ROUTES,\n' +
    'or a federation without DNS): the key its operator prints with `aftersmtp ledger key`, given\n' +
    'out of band. A pin wins over DNS k=.\n\n' +
    '  (default)        for this gateway: <AFTERSMTP_DATA_DIR>/log-pins.json, read by the running\n' +
    '                   gateway within half a second (no restart)\n' +
    '  --client         for the client commands instead: the client state file (AFTERSMTP_CLIENT_STATE,\n' +
    '                   default ~/.aftersmtp/ledger-client.json)\n' +
    '  --state <file>   for the client commands, in that state file\n' +
    '  --replace        the state already trusts another key for the domain (pinned on first use):\n' +
    '                   forget it and its newest checkpoint. Only when the domain really started a\n' +
    '                   new log; for the gateway, stop it first (it keeps that state in memory).',
  options: {
    ...JSON_OPTION,
    replace: { type: 'boolean' },
    list: { type: 'boolean' },
    client: { type: 'boolean' },
    state: { type: 'string' },
  },
  positionals: true,
  async run(args) {
    const json = flag(args, 'json');
    const clientSide = flag(args, 'client') || optionalString(args, 'state') !== undefined;
    const statePath = clientSide
      ? (clientOption(args, 'state') ?? join(homedir(), DEFAULT_STATE_FILE))
      : relayStatePath(loadConfig().dataDir);
    const pinsPath = clientSide ? undefined : logPinsPath(loadConfig().dataDir);
    if (flag(args, 'list')) {
      if (args.positionals.length > 0) throw new UsageError('--list takes no arguments');
      const state = await ClientState.load(statePath);
      const pins = pinsPath === undefined ? new Map<string, string>() : await readLogPins(pinsPath);
      const rows = [...new Set([...pins.keys(), ...state.domains()])].sort().map((domain) => ({
        domain,
        pinned: pins.get(domain),
        trusted: state.get(domain)?.verifierKey,
        treeSize: state.get(domain)?.size,
      }));
      if (json) printJson(rows);
      else
        printLines(
          rows.length === 0
            ? ['no log keys pinned or trusted']
            : rows.map(
                (r) =>
                  `${r.domain}  ${r.pinned ?? r.trusted}  (${r.pinned !== undefined ? 'pinned' : 'trusted on first use'}${r.treeSize !== undefined ? `, tree size ${r.treeSize}` : ''})`,
              ),
        );
      return;
    }
    if (args.positionals.length !== 2) throw new UsageError('expected <domain> and <log key>');
    const domain = checkDomain((args.positionals[0] as string).toLowerCase());
    const key = args.positionals[1] as string;
    try {
      checkLogKey(domain, key);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (clientSide) await mkdir(dirname(statePath), { recursive: true, mode: 0o700 });
    const state = await ClientState.load(statePath);
    const trusted = state.get(domain)?.verifierKey;
    const replace = flag(args, 'replace');
    if (trusted !== undefined && trusted !== key && !replace) {
      throw new AfterSmtpError(
        'ERR_LOG_PIN_CONFLICT',
        `${statePath} already trusts another log key for ${domain}: a log key changes only with a new log; if that is what happened, add --replace${clientSide ? '' : ' (with the gateway stopped)'}`,
      );
    }
    let replaced = false;
    if (trusted !== undefined && trusted !== key) {
      state.delete(domain);
      replaced = true;
    }
    if (pinsPath !== undefined) {
      await writeLogPin(pinsPath, domain, key);
      if (replaced) await state.save();
    } else if (trusted !== key) {
      state.set(domain, { verifierKey: key });
      await state.save();
    }
    const where = pinsPath ?? statePath;
    if (json) printJson({ domain, key, file: where, replaced });
    else
      printLines([
        `pinned the log key of ${domain} in ${where}${replaced ? ' (the key trusted before is forgotten)' : ''}`,
      ]);
  },
};

export const ledgerRevokeCommand: Command = {
  path: ['ledger', 'revoke'],
  summary: "Revoke a DID's current key as the operator (a lost key): --reason and --yes.",
  usage:
    '<did> --reason <text> --yes [--admin <name>] [--json]\n\n' +
    'Logs an administrator revocation in the local ledger (AFTERSMTP_DATA_DIR); from then on no\n' +
    'one can seal mail to the DID until it registers again. The holder of a key that still\n' +
    'exists revokes it with `aftersmtp revoke` instead. Cannot be undone.',
  options: {
    ...JSON_OPTION,
    reason: { type: 'string' },
    admin: { type: 'string' },
    yes: { type: 'boolean' },
  },
  positionals: true,
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('exactly one DID is expected');
    const did = checkDid(args.positionals[0] as string);
    const reason = optionalString(args, 'reason');
    if (reason === undefined || reason.trim() === '') throw new UsageError('--reason is required');
    if (!flag(args, 'yes')) throw new UsageError('revoking cannot be undone: add --yes');
    const admin = optionalString(args, 'admin') ?? process.env.USER ?? 'admin';
    const r = await withLedger((ledger) => ledger.adminRevoke(did, admin, reason));
    if (flag(args, 'json'))
      printJson({ did, admin, reason, leafIndex: r.leafIndex, treeSize: r.treeSize });
    else
      printLines([`revoked ${did} by ${admin}: ${reason} (leaf ${r.leafIndex} of ${r.treeSize})`]);
  },
};
