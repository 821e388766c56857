/**
 * `aftersmtp maps list|get|set|del|import|test`: the operator's hands on the MappingEngine's maps
 * in <AFTERSMTP_DATA_DIR>/maps.sqlite (docs/MAPS.md). The CLI writes the database directly; a
 * running gateway picks the change up within AFTERSMTP_MAPS_POLL_MS. Every subcommand prints text
 * or, with --json, one JSON document; a missing entry or a refused key, value or import line exits
 * 1 with a message naming it, a malformed call exits 2. With AFTERSMTP_MAPS=postgres the CLI
 * works on the maps on the server instead: it loads them into a scratch engine (the same checks),
 * runs the command there and writes each changed map back under the map's row lock, refusing
 * (ERR_MAP_CONFLICT, nothing written) if another change came in between.
 */
import { loadConfig } from '../../config/load.js';
import { AfterSmtpError } from '../../errors.js';
import { readBoundedFile } from '../../identity/files.js';
import {
  ENTRY_CLASSES,
  LIMITS,
  MAP_FORMATS,
  MAP_NAMES,
  MappingEngine,
  formatSpamPolicy,
  PgMapsFollower,
  isMapName,
  mapsDatabasePath,
  sharedMaps,
  type EntryClass,
  type ImportFormat,
  type MapEntry,
  type MapName,
  type MapTestResult,
  type TestAs,
} from '../../routing/index.js';
import { UsageError, flag, optionalString, type Command, type ParsedArgs } from '../command.js';
import { printJson, printLines } from '../output.js';

/** No entry with that key. */
export class MapNotFoundError extends AfterSmtpError {
  constructor(map: MapName, key: string) {
    super('ERR_MAP_NOT_FOUND', `${map} has no entry ${JSON.stringify(key)}`);
  }
}

/** Another change to the shared map came in while this command ran. */
export class MapConflictError extends AfterSmtpError {
  constructor(map: MapName) {
    super(
      'ERR_MAP_CONFLICT',
      `${map} was changed by another node meanwhile; nothing written, retry`,
    );
  }
}

async function withSharedEngine<T>(
  config: ReturnType<typeof loadConfig>,
  fn: (engine: MappingEngine) => T | Promise<T>,
): Promise<T> {
  const docs = sharedMaps(config.postgresUrl);
  const engine = MappingEngine.open({
    path: ':memory:',
    maxEntriesPerMap: config.mapsMaxEntries,
    parentDomainMatches: config.mapsParentDomainMatches,
    recipientDelimiter: config.recipientDelimiter,
    pollMs: 0,
    loadSnapshot: false,
  });
  try {
    await new PgMapsFollower(engine, docs).syncOnce();
    // Compared by content and order (the server's JSON has its own key order and positions).
    const same = (rows: readonly MapEntry[]): string =>
      JSON.stringify(rows.map((r) => [r.key, r.value, r.class, r.kind]));
    const before = new Map(MAP_NAMES.map((m) => [m, same(engine.list(m))]));
    const result = await fn(engine);
    for (const map of MAP_NAMES) {
      const after = engine.list(map);
      if (same(after) === before.get(map)) continue;
      await docs.update(map, (rows) => {
        if (same(rows) !== before.get(map)) throw new MapConflictError(map);
        return after;
      });
    }
    return result;
  } finally {
    engine.close();
    await docs.close();
  }
}

function withEngine<T>(fn: (engine: MappingEngine) => T | Promise<T>): Promise<T> {
  const config = loadConfig();
  if (config.mapsBackend === 'postgres') return withSharedEngine(config, fn);
  const engine = MappingEngine.open({
    path: mapsDatabasePath(config.dataDir),
    maxEntriesPerMap: config.mapsMaxEntries,
    parentDomainMatches: config.mapsParentDomainMatches,
    recipientDelimiter: config.recipientDelimiter,
    pollMs: 0,
    loadSnapshot: false,
  });
  return Promise.resolve()
    .then(() => fn(engine))
    .finally(() => engine.close());
}

const MAP_LIST = MAP_NAMES.join(', ');

function mapArg(args: ParsedArgs): MapName {
  const name = args.positionals[0];
  if (name === undefined) throw new UsageError(`name a map: ${MAP_LIST}`);
  if (!isMapName(name))
    throw new UsageError(`unknown map ${JSON.stringify(name)} (maps: ${MAP_LIST})`);
  return name;
}

function keyArg(args: ParsedArgs, what = 'key'): string {
  const key = args.positionals[1];
  if (key === undefined) throw new UsageError(`expected a ${what} after the map name`);
  return key;
}

function noMore(args: ParsedArgs, count: number): void {
  if (args.positionals.length > count) {
    throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[count])}`);
  }
}

function classOption(args: ParsedArgs): EntryClass | undefined {
  const raw = optionalString(args, 'class');
  if (raw === undefined) return undefined;
  const cls = ENTRY_CLASSES.find((c) => c === raw);
  if (cls === undefined) throw new UsageError(`--class must be one of ${ENTRY_CLASSES.join(', ')}`);
  return cls;
}

function entryLine(e: MapEntry): string {
  return `${e.key}\t${e.value}${e.class === 'both' ? '' : `\t(${e.class})`}`;
}

function warn(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
}

function describe(result: MapTestResult['result']): string {
  if (result === undefined) return '(no match)';
  if (typeof result === 'boolean') return result ? 'yes' : 'no';
  if (typeof result === 'string') return result;
  if ('action' in result) {
    return [result.action, result.code, result.text].filter((p) => p !== undefined).join(' ');
  }
  if ('scanners' in result) return formatSpamPolicy(result);
  switch (result.kind) {
    case 'none':
      return 'none (no alias: deliver to the address itself)';
    case 'expanded':
      return result.targets.join(', ');
    case 'limit':
      return `limit: ${result.reason} (4.6.0)`;
    case 'error':
      return `error:${result.text}`;
    case 'amp':
      return `amp ${result.host} port ${result.port}`;
    case 'smtp':
      return `${result.implicitTls ? 'smtps (implicit TLS)' : 'smtp'} ${result.host} port ${result.port}${result.mxLookup ? ' (MX lookup)' : ' (no MX lookup)'}`;
  }
}

async function readInput(source: string): Promise<string> {
  let bytes: Buffer;
  if (source === '-') {
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > LIMITS.maxImportBytes) {
        throw new UsageError(`standard input is larger than ${LIMITS.maxImportBytes} bytes`);
      }
      chunks.push(chunk);
    }
    bytes = Buffer.concat(chunks);
  } else {
    bytes = await readBoundedFile(source, LIMITS.maxImportBytes, 'ERR_MAP_IMPORT');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${source === '-' ? 'standard input' : source} is not UTF-8 text`);
  }
}

const json = { json: { type: 'boolean' as const } };
const MAPS_HELP = `\n\nmaps: ${MAP_LIST}\nSee docs/MAPS.md for each map's keys, values and lookup order.`;

export const mapsCommands: readonly Command[] = [
  {
    path: ['maps', 'list'],
    summary: 'List the entries of a map, in map order (key, value, class).',
    usage: `<map> [--json]${MAPS_HELP}`,
    options: json,
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      noMore(args, 1);
      const entries = await withEngine((engine) => engine.list(map));
      if (flag(args, 'json')) printJson(entries);
      else printLines(entries.length === 0 ? [`${map} is empty`] : entries.map(entryLine));
    },
  },
  {
    path: ['maps', 'get'],
    summary: 'Print the value stored under a key (exactly that key: see `maps test` for lookups).',
    usage: `<map> <key> [--json]${MAPS_HELP}`,
    options: json,
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      const key = keyArg(args);
      noMore(args, 2);
      const entry = await withEngine((engine) => engine.get(map, key));
      if (entry === undefined) throw new MapNotFoundError(map, key);
      if (flag(args, 'json')) printJson(entry);
      else printLines([entry.value]);
    },
  },
  {
    path: ['maps', 'set'],
    summary:
      'Add or replace an entry; the value is the rest of the line (relay_domains needs none).',
    usage:
      `<map> <key> [value...] [--class both|sender|recipient] [--json]\n\n` +
      'Examples:\n' +
      '  aftersmtp maps set access_map 192.0.2.0/24 REJECT 5.7.1 no thanks\n' +
      '  aftersmtp maps set canonical_maps helpdesk@msgs.global did:aftersmtp:msgs.global:support-team\n' +
      "  aftersmtp maps set virtual_alias_maps team@example.org 'a@example.org, b@example.org'\n" +
      '  aftersmtp maps set mx_record_map example.net smtp:[mx.example.net]:25\n' +
      `  aftersmtp maps set relay_domains example.net${MAPS_HELP}`,
    options: { ...json, class: { type: 'string' } },
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      const key = keyArg(args);
      const value = args.positionals.slice(2).join(' ');
      if (value === '' && map !== 'relay_domains')
        throw new UsageError(`expected a value after the key`);
      const cls = classOption(args);
      const { entry, result } = await withEngine((engine) => {
        const result = engine.set(map, key, value, cls ? { class: cls } : {});
        return { result, entry: engine.get(map, key) as MapEntry };
      });
      warn(result.warnings);
      if (flag(args, 'json'))
        printJson({ ...entry, version: result.version, warnings: result.warnings });
      else printLines([`${map}: ${entryLine(entry)}`]);
    },
  },
  {
    path: ['maps', 'del'],
    summary: 'Delete an entry.',
    usage: `<map> <key> [--json]${MAPS_HELP}`,
    options: json,
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      const key = keyArg(args);
      noMore(args, 2);
      const deleted = await withEngine((engine) => engine.del(map, key));
      if (!deleted) throw new MapNotFoundError(map, key);
      if (flag(args, 'json')) printJson({ map, key, deleted });
      else printLines([`${map}: deleted ${key}`]);
    },
  },
  {
    path: ['maps', 'import'],
    summary:
      'Import a Postfix table (postmap, cidr or regexp source text) into a map, all or nothing.',
    usage:
      `<map> <file | -> [--format hash|cidr|regexp] [--replace] [--class both|sender|recipient] [--json]\n\n` +
      '--format  hash (default): "key value" lines; cidr: "network value" lines (access_map);\n' +
      '          regexp: "/pattern/flags value" lines. # comments, continuation lines (leading\n' +
      '          whitespace) as in Postfix. - reads standard input.\n' +
      '--replace the map becomes exactly the file (one transaction); without it, entries are\n' +
      '          added and existing keys get the new value.\n' +
      `--class   the class of every imported entry (canonical_maps, access_map).${MAPS_HELP}`,
    options: {
      ...json,
      format: { type: 'string' },
      replace: { type: 'boolean' },
      class: { type: 'string' },
    },
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      const source = keyArg(args, 'file name (or - for standard input)');
      noMore(args, 2);
      const rawFormat = optionalString(args, 'format') ?? 'hash';
      const format = (['hash', 'cidr', 'regexp'] as const).find((f) => f === rawFormat);
      if (format === undefined) throw new UsageError('--format must be hash, cidr or regexp');
      if (!MAP_FORMATS[map].includes(format as ImportFormat)) {
        throw new UsageError(`${map} takes --format ${MAP_FORMATS[map].join(' or ')}`);
      }
      const cls = classOption(args);
      const text = await readInput(source);
      const result = await withEngine((engine) =>
        engine.import(map, text, {
          format,
          replace: flag(args, 'replace'),
          ...(cls ? { class: cls } : {}),
        }),
      );
      warn(result.warnings);
      if (flag(args, 'json')) printJson({ map, ...result });
      else {
        printLines([
          `${map}: imported ${result.imported} entr${result.imported === 1 ? 'y' : 'ies'}${flag(args, 'replace') ? ' (map replaced)' : ''}, version ${result.version}`,
        ]);
      }
    },
  },
  {
    path: ['maps', 'test'],
    summary:
      'Look a key up as the gateway would: the keys tried in order, the entry that matched, the answer.',
    usage:
      `<map> <address | domain | IP | DID> [--as client|sender|recipient] [--json]\n\n` +
      '--as  access_map: client (an IP address), sender or recipient; canonical_maps: sender or\n' +
      `      recipient. By default an IP is a client, '' or <> the null sender, a DID a sender\n` +
      `      (canonical_maps), anything else a recipient.${MAPS_HELP}`,
    options: { ...json, as: { type: 'string' } },
    positionals: true,
    async run(args) {
      const map = mapArg(args);
      const key = keyArg(args);
      noMore(args, 2);
      const rawAs = optionalString(args, 'as');
      const allowed: readonly TestAs[] =
        map === 'access_map'
          ? ['client', 'sender', 'recipient']
          : map === 'canonical_maps'
            ? ['sender', 'recipient']
            : [];
      const as = allowed.find((a) => a === rawAs);
      if (rawAs !== undefined && as === undefined) {
        throw new UsageError(
          allowed.length === 0
            ? `--as does not apply to ${map}`
            : `--as must be ${allowed.join(', ')} for ${map}`,
        );
      }
      const r = await withEngine((engine) => engine.test(map, key, as ? { as } : {}));
      if (flag(args, 'json')) {
        printJson(r);
        return;
      }
      printLines([
        `map      ${r.map}${r.as ? ` (as ${r.as})` : ''}, version ${r.version}`,
        `input    ${r.input === '' ? '<>' : r.input}`,
        `tried    ${r.tried.length === 0 ? '(no lookup key: not a valid input for this map)' : r.tried.join(', ')}`,
        `matched  ${r.matched ? entryLine(r.matched).replaceAll('\t', '  ') : '(nothing)'}`,
        ...(r.steps ?? []).map(
          (s) => `step     ${s.address} -> ${s.targets.join(', ')}  (key ${s.key})`,
        ),
        `result   ${describe(r.result)}`,
      ]);
    },
  },
];
