/**
 * `aftersmtp users add|list|del|passwd`: the submission users of ports 587 and 465, each a login
 * bound to a DID, in <AFTERSMTP_DATA_DIR>/users.sqlite (src/legacy/users.ts). A running gateway
 * reads the file on every AUTH, so a change is live at once. The password comes from standard
 * input (first line) or from a file (--password-file), never from the command line.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../../config/load.js';
import { InputError } from '../../errors.js';
import { SubmissionUsers } from '../../legacy/users.js';
import { UsageError, flag, optionalString, type Command, type ParsedArgs } from '../command.js';
import { printJson, printLines } from '../output.js';

function withUsers<T>(fn: (users: SubmissionUsers) => Promise<T> | T): Promise<T> {
  const { dataDir } = loadConfig();
  if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true });
  const users = SubmissionUsers.open(dataDir);
  return Promise.resolve()
    .then(() => fn(users))
    .finally(() => users.close());
}

/** The password: the first line of --password-file, or of standard input (`-` or no option). */
async function readPassword(args: ParsedArgs): Promise<string> {
  const file = optionalString(args, 'password-file') ?? '-';
  let text: string;
  if (file === '-') {
    if (process.stdin.isTTY) {
      throw new UsageError('give the password on standard input or with --password-file');
    }
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = await readFile(file, 'utf8');
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new UsageError('the password is empty');
  return line;
}

function positionals(args: ParsedArgs, names: readonly string[]): string[] {
  if (args.positionals.length !== names.length) {
    throw new UsageError(`expected ${names.map((n) => `<${n}>`).join(' ')}`);
  }
  return args.positionals;
}

const json = { json: { type: 'boolean' as const } };
const password = { 'password-file': { type: 'string' as const } };

export const usersCommands: readonly Command[] = [
  {
    path: ['users', 'add'],
    summary:
      'Add a submission user: a login (the address typed in the mail client) bound to a DID; the password is read from standard input or --password-file.',
    usage: '<login> <did> [--password-file FILE|-] [--json]',
    options: { ...json, ...password },
    positionals: true,
    async run(args) {
      const [login, did] = positionals(args, ['login', 'did']) as [string, string];
      const pass = await readPassword(args);
      const user = await withUsers((u) => u.add(login, did, pass));
      if (flag(args, 'json')) printJson(user);
      else printLines([`added ${user.login} -> ${user.did}`]);
    },
  },
  {
    path: ['users', 'list'],
    summary: 'List the submission users and the DIDs they are bound to.',
    usage: '[--json]',
    options: json,
    async run(args) {
      const list = await withUsers((u) => u.list());
      if (flag(args, 'json')) printJson(list);
      else
        printLines(
          list.length === 0
            ? ['no submission users']
            : list.map((x) => `${x.login}  ${x.did}  since ${new Date(x.createdAt).toISOString()}`),
        );
    },
  },
  {
    path: ['users', 'del'],
    summary: 'Delete a submission user (its next login fails).',
    usage: '<login> [--json]',
    options: json,
    positionals: true,
    async run(args) {
      const [login] = positionals(args, ['login']) as [string];
      const deleted = await withUsers((u) => u.del(login));
      if (!deleted) throw new InputError('ERR_USER_UNKNOWN', `no user ${login}`);
      if (flag(args, 'json')) printJson({ login, deleted });
      else printLines([`deleted ${login}`]);
    },
  },
  {
    path: ['users', 'passwd'],
    summary: "Set a submission user's password (read from standard input or --password-file).",
    usage: '<login> [--password-file FILE|-] [--json]',
    options: { ...json, ...password },
    positionals: true,
    async run(args) {
      const [login] = positionals(args, ['login']) as [string];
      const pass = await readPassword(args);
      await withUsers((u) => u.passwd(login, pass));
      if (flag(args, 'json')) printJson({ login, changed: true });
      else printLines([`password of ${login} changed`]);
    },
  },
];
