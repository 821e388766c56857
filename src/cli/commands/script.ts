/**
 * `aftersmtp script list|set|test|del`: MailScript (docs/MAILSCRIPT.md) per scope (`global` or a
 * domain), kept in <AFTERSMTP_DATA_DIR>/maps.sqlite beside the maps, or on PostgreSQL beside the
 * shared maps when AFTERSMTP_MAPS=postgres (script/shared.ts). `set` compiles the script in
 * the sandbox first and stores it as a new version; a running gateway picks it up within
 * AFTERSMTP_SCRIPT_POLL_MS. `test` runs a script (stored, or from a file) on a sample envelope
 * and message and prints the actions and what the gateway would do, doing none of it.
 */
import { loadConfig } from '../../config/load.js';
import { AfterSmtpError } from '../../errors.js';
import { readBoundedFile } from '../../identity/files.js';
import type { PolicySubject } from '../../pipeline/policy.js';
import type { Entrance, Verdict } from '../../pipeline/types.js';
import { mapsDatabasePath } from '../../routing/index.js';
import { actionsToVerdict, runScript } from '../../script/check.js';
import { scriptInput } from '../../script/input.js';
import { ScriptSandbox } from '../../script/sandbox.js';
import { SharedScripts, sharedScriptDocuments } from '../../script/shared.js';
import {
  MAX_SCRIPT_BYTES,
  ScriptStore,
  checkScope,
  type StoredScript,
} from '../../script/store.js';
import {
  UsageError,
  flag,
  optionalString,
  requireStrings,
  type Command,
  type ParsedArgs,
} from '../command.js';
import { printJson, printLines } from '../output.js';

export class ScriptNotFoundError extends AfterSmtpError {
  constructor(scope: string) {
    super('ERR_SCRIPT_NOT_FOUND', `no script for ${scope}`);
  }
}

/** Where `script` reads and writes: the node's maps database, or the server's shared scripts. */
interface Scripts {
  list(): StoredScript[] | Promise<StoredScript[]>;
  get(scope: string): StoredScript | undefined | Promise<StoredScript | undefined>;
  set(scope: string, source: string): StoredScript | Promise<StoredScript>;
  del(scope: string): boolean | Promise<boolean>;
}

async function withStore<T>(fn: (store: Scripts) => T | Promise<T>): Promise<T> {
  const config = loadConfig();
  if (config.mapsBackend === 'postgres') {
    // Shared by every node (script/shared.ts); each running gateway follows within its poll.
    const docs = sharedScriptDocuments(config.postgresUrl);
    try {
      return await fn(new SharedScripts(docs));
    } finally {
      await docs.close();
    }
  }
  const store = ScriptStore.open({ path: mapsDatabasePath(config.dataDir), pollMs: 0 });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

async function sandbox(): Promise<ScriptSandbox> {
  const config = loadConfig();
  return ScriptSandbox.create({
    timeoutMs: config.scriptTimeoutMs,
    memoryBytes: config.scriptMemoryMb * 1024 * 1024,
    poolSize: 1,
  });
}

function scopeArg(args: ParsedArgs, count: number): string {
  const raw = args.positionals[0];
  if (raw === undefined) throw new UsageError('name a scope: global or a domain');
  if (args.positionals.length > count) {
    throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[count])}`);
  }
  try {
    return checkScope(raw);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function readSource(path: string): Promise<string> {
  const bytes = await readBoundedFile(path, MAX_SCRIPT_BYTES, 'ERR_SCRIPT_INPUT');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${path === '-' ? 'standard input' : path} is not UTF-8 text`);
  }
}

function summary(s: StoredScript): object {
  return {
    scope: s.scope,
    version: s.version,
    bytes: Buffer.byteLength(s.source),
    updatedAt: new Date(s.updatedAt).toISOString(),
  };
}

const ENTRANCES: readonly Entrance[] = ['smtp', 'submission', 'client-api', 'relay'];

function describeVerdict(v: Verdict): string[] {
  if (v.kind === 'refuse') {
    const r = v.refusal;
    return [`refuse: ${r.smtpCode ?? ''} ${r.text} (${r.temporary ? 'temporary' : 'permanent'})`];
  }
  const e = v.effects ?? {};
  const lines: string[] = [];
  if (e.discard !== undefined) lines.push('discard');
  for (const h of e.headers ?? []) lines.push(`add header: ${h}`);
  if (e.junk !== undefined) lines.push(`junk: ${e.junk.join(', ')}`);
  if (e.redirect !== undefined) lines.push(`redirect: ${e.redirect}`);
  if (e.route !== undefined) lines.push(`route: ${e.route}`);
  for (const w of e.webhooks ?? []) lines.push(`webhook: ${w.name} ${w.url} ${w.payload}`);
  return lines.length === 0 ? ['continue (deliver as usual)'] : lines;
}

const json = { json: { type: 'boolean' as const } };

export const scriptCommands: readonly Command[] = [
  {
    path: ['script', 'list'],
    summary: 'List the MailScripts: scope, version, size, when set.',
    usage: '[--json]',
    options: json,
    async run(args) {
      const list = await withStore((s) => s.list());
      if (flag(args, 'json')) {
        printJson(list.map(summary));
        return;
      }
      printLines(
        list.map(
          (s) =>
            `${s.scope}\tv${s.version}\t${Buffer.byteLength(s.source)} bytes\t${new Date(s.updatedAt).toISOString()}`,
        ),
      );
    },
  },
  {
    path: ['script', 'set'],
    summary:
      'Store a new version of the script of a scope (global or a domain), read from a file or - (standard input); it is compiled in the sandbox first.',
    usage: '<scope> <file|-> [--json]',
    options: json,
    positionals: true,
    async run(args) {
      const scope = scopeArg(args, 2);
      const file = args.positionals[1];
      if (file === undefined) throw new UsageError('name the script file, or - for standard input');
      const source = await readSource(file);
      const sb = await sandbox();
      try {
        sb.check(source);
      } finally {
        sb.close();
      }
      const stored = await withStore((s) => s.set(scope, source));
      if (flag(args, 'json')) printJson(summary(stored));
      else printLines([`${stored.scope}: version ${stored.version} stored`]);
    },
  },
  {
    path: ['script', 'del'],
    summary: 'Delete the script of a scope.',
    usage: '<scope> [--json]',
    options: json,
    positionals: true,
    async run(args) {
      const scope = scopeArg(args, 1);
      const deleted = await withStore((s) => s.del(scope));
      if (!deleted) throw new ScriptNotFoundError(scope);
      if (flag(args, 'json')) printJson({ scope, deleted: true });
      else printLines([`${scope}: deleted`]);
    },
  },
  {
    path: ['script', 'test'],
    summary:
      "Run a script (the scope's stored one, or --file) on a sample envelope and message and print its actions and what the gateway would do; nothing is done.",
    usage:
      '<scope> --from <sender> --to <recipient> [--to ...] [--file <script|->] [--message <file.eml>] [--header "Name: value" ...] [--entrance smtp|submission|client-api|relay] [--spf r] [--dkim r] [--dmarc r] [--arc r] [--arc-sealer domain] [--json]',
    options: {
      ...json,
      file: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string', multiple: true },
      message: { type: 'string' },
      header: { type: 'string', multiple: true },
      entrance: { type: 'string' },
      spf: { type: 'string' },
      dkim: { type: 'string' },
      dmarc: { type: 'string' },
      arc: { type: 'string' },
      'arc-sealer': { type: 'string' },
    },
    positionals: true,
    async run(args) {
      const scope = scopeArg(args, 1);
      const to = requireStrings(args, 'to');
      const from = optionalString(args, 'from') ?? '';
      const entrance = (optionalString(args, 'entrance') ?? 'smtp') as Entrance;
      if (!ENTRANCES.includes(entrance)) {
        throw new UsageError(`--entrance must be one of ${ENTRANCES.join(', ')}`);
      }
      const file = optionalString(args, 'file');
      let script: StoredScript;
      if (file !== undefined) {
        script = { scope, version: 0, source: await readSource(file), updatedAt: Date.now() };
      } else {
        const stored = await withStore((s) => s.get(scope));
        if (stored === undefined) throw new ScriptNotFoundError(scope);
        script = stored;
      }
      const messageFile = optionalString(args, 'message');
      const extra = (args.values.header as string[] | undefined) ?? [];
      if (extra.some((h) => /[\r\n]/.test(h) || !h.includes(':'))) {
        throw new UsageError('--header takes one "Name: value" line');
      }
      const message =
        messageFile !== undefined
          ? await readBoundedFile(messageFile, 10 * 1024 * 1024, 'ERR_SCRIPT_INPUT')
          : Buffer.from(`${extra.map((h) => `${h}\r\n`).join('')}\r\n`);
      const subject: PolicySubject = {
        kind: 'legacy',
        submission: {
          transaction: 'script-test',
          client: { entrance, address: '127.0.0.1', port: 0, tls: false },
          mailFrom: from,
          recipients: to.map((address) => ({ address, targets: [] })),
          trusted: false,
          effects: {},
          message,
          receivedAt: Date.now(),
        },
      };
      const sealer = optionalString(args, 'arc-sealer')?.toLowerCase();
      if (sealer !== undefined && optionalString(args, 'arc') !== 'pass') {
        throw new UsageError('--arc-sealer goes with --arc pass (a sealer is known only then)');
      }
      const input = scriptInput(
        subject,
        {
          spf: optionalString(args, 'spf') ?? 'none',
          dkim: optionalString(args, 'dkim') ?? 'none',
          dmarc: optionalString(args, 'dmarc') ?? 'none',
          arc: optionalString(args, 'arc') ?? 'none',
          ...(sealer !== undefined ? { arcSeal: { sealer, dmarc: 'none' } } : {}),
        },
        undefined,
      );
      const sb = await sandbox();
      let result: { actions: unknown[]; outcome: string[]; verdict?: Verdict };
      try {
        const actions = runScript(sb, script, JSON.stringify(input));
        const verdict = actionsToVerdict(
          actions,
          subject,
          input,
          loadConfig().scriptWebhooks,
          `${scope} v${script.version}`,
        );
        result = { actions, outcome: describeVerdict(verdict), verdict };
      } finally {
        sb.close();
      }
      if (flag(args, 'json')) {
        printJson({
          scope,
          version: script.version,
          actions: result.actions,
          verdict: result.verdict,
        });
        return;
      }
      printLines([
        `${scope} v${script.version}: ${result.actions.length} action(s)`,
        ...result.actions.map((a) => `  ${JSON.stringify(a)}`),
        'the gateway would:',
        ...result.outcome.map((l) => `  ${l}`),
      ]);
    },
  },
];
