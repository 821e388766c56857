/**
 * `aftersmtp queue list|show|hold|release|retry|drop|dead|stats`: operator actions on the
 * embedded (lmdb) delivery queue in <AFTERSMTP_DATA_DIR>/queue. Every subcommand prints text or,
 * with --json, one JSON document; an unknown id exits 1, a malformed call exits 2.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { loadConfig } from '../../config/load.js';
import { QueueUnsupportedError } from '../../queue/errors.js';
import { QueueAdmin, type EntryView } from '../../queue/lmdb-admin.js';
import { LmdbQueue } from '../../queue/lmdb.js';
import { lmdbQueuePath, retryPolicy } from '../../queue/open.js';
import { UsageError, flag, type Command, type ParsedArgs } from '../command.js';
import { printJson, printLines } from '../output.js';

export async function withAdmin<T>(
  fn: (admin: QueueAdmin, queue: LmdbQueue) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  if (config.queue !== 'lmdb') {
    throw new QueueUnsupportedError(
      `the queue command manages the embedded lmdb queue; AFTERSMTP_QUEUE is ${config.queue} (use the server's own tools)`,
    );
  }
  const path = lmdbQueuePath(config.dataDir);
  if (!existsSync(path)) mkdirSync(path, { recursive: true });
  const queue = new LmdbQueue({
    path,
    retry: retryPolicy(config),
    bounce: { reportingMta: config.domain },
  });
  try {
    return await fn(new QueueAdmin(queue), queue);
  } finally {
    await queue.close();
  }
}

function oneId(args: ParsedArgs): string {
  const [id, ...rest] = args.positionals;
  if (id === undefined || rest.length > 0) throw new UsageError('expected exactly one queue id');
  return id;
}

function entryLine(e: EntryView): string {
  const states = [...new Set(e.jobs.map((j) => j.state))].join(',');
  const rcpts = e.jobs.reduce((n, j) => n + j.recipients.length, 0);
  return `${e.entryId}  ${String(e.ageSeconds).padStart(7)}s  ${states.padEnd(6)}  ${rcpts} rcpt  <${e.sender}>  ${e.messageId}`;
}

function entryLines(e: EntryView): string[] {
  return [
    `entry      ${e.entryId}`,
    `message    ${e.messageId}`,
    `sender     <${e.sender}> (${e.senderKind}${e.bounce ? ', bounce' : ''})`,
    `enqueued   ${e.enqueuedAt} (${e.ageSeconds} s ago)`,
    `body       ${e.bodyBytes} bytes`,
    ...e.jobs.flatMap((j) => [
      `job        ${j.jobId} -> ${j.destination}: ${j.state}, ${j.deliveries} deliveries, next ${j.nextAttempt ?? '-'}`,
      ...j.recipients.map(
        (r) =>
          `  rcpt     ${r.address}  attempts ${r.attempts}${r.lastError ? `  last error: ${r.lastError}` : ''}`,
      ),
    ]),
  ];
}

const json = { json: { type: 'boolean' as const } };

function action(
  word: 'hold' | 'release' | 'drop',
  summary: string,
  run: (admin: QueueAdmin, id: string) => Promise<number>,
): Command {
  return {
    path: ['queue', word],
    summary,
    usage: '<entry id | job id> [--json]',
    options: json,
    positionals: true,
    async run(args) {
      const id = oneId(args);
      const jobs = await withAdmin((admin) => run(admin, id));
      if (flag(args, 'json')) printJson({ id, action: word, jobs });
      else printLines([`${word}: ${id} (${jobs} job${jobs === 1 ? '' : 's'})`]);
    },
  };
}

export const queueCommands: readonly Command[] = [
  {
    path: ['queue', 'list'],
    summary: 'List queued entries, oldest first.',
    usage: '[--limit N] [--json]',
    options: { ...json, limit: { type: 'string' } },
    async run(args) {
      const raw = args.values.limit;
      const limit = typeof raw === 'string' ? Number(raw) : 1000;
      if (!Number.isSafeInteger(limit) || limit < 1)
        throw new UsageError('--limit must be a positive whole number');
      const entries = await withAdmin(async (admin) => admin.list(limit));
      if (flag(args, 'json')) printJson(entries);
      else printLines(entries.length === 0 ? ['the queue is empty'] : entries.map(entryLine));
    },
  },
  {
    path: ['queue', 'show'],
    summary: 'Show one entry: its destinations, recipients, attempts and last errors.',
    usage: '<entry id | job id> [--json]',
    options: json,
    positionals: true,
    async run(args) {
      const id = oneId(args);
      const entry = await withAdmin(async (admin) => admin.show(id));
      if (flag(args, 'json')) printJson(entry);
      else printLines(entryLines(entry));
    },
  },
  action('hold', 'Hold an entry (or one job): it is not delivered until released.', (a, id) =>
    a.hold(id),
  ),
  action('release', 'Release a held entry (or job).', (a, id) => a.release(id)),
  {
    path: ['queue', 'retry'],
    summary: 'Make an entry (or every entry, --all) due for delivery now.',
    usage: '<entry id | job id> | --all [--json]',
    options: { ...json, all: { type: 'boolean' } },
    positionals: true,
    async run(args) {
      const all = flag(args, 'all');
      if (all && args.positionals.length > 0) throw new UsageError('give an id or --all, not both');
      const id = all ? 'all' : oneId(args);
      const jobs = await withAdmin((admin) => admin.retry(id));
      if (flag(args, 'json')) printJson({ id, action: 'retry', jobs });
      else printLines([`retry: ${id} (${jobs} job${jobs === 1 ? '' : 's'})`]);
    },
  },
  action('drop', 'Delete an entry (or one job) from the queue, without a bounce.', (a, id) =>
    a.drop(id),
  ),
  {
    path: ['queue', 'dead'],
    summary: 'List dead letters (recipients given up on), newest first.',
    usage: '[--json]',
    options: json,
    async run(args) {
      const dead = await withAdmin(async (admin) => admin.dead());
      if (flag(args, 'json')) {
        printJson(
          dead.map((d) => ({
            ...d,
            deadAt: new Date(d.deadAt).toISOString(),
            enqueuedAt: new Date(d.enqueuedAt).toISOString(),
          })),
        );
      } else {
        printLines(
          dead.length === 0
            ? ['no dead letters']
            : dead.map(
                (d) =>
                  `${new Date(d.deadAt).toISOString()}  ${d.jobId}  ${d.recipient}  ${d.kind}: ${d.reason}`,
              ),
        );
      }
    },
  },
  {
    path: ['queue', 'stats'],
    summary: 'Print the queue counters: depth, oldest age, retries, dead letters, quarantined.',
    usage: '[--json]',
    options: json,
    async run(args) {
      const stats = await withAdmin((_admin, queue) => queue.stats());
      if (flag(args, 'json')) printJson(stats);
      else printLines(Object.entries(stats).map(([k, v]) => `${k.padEnd(17)} ${String(v)}`));
    },
  },
];
