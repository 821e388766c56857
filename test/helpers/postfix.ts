// A private Postfix instance (Debian's postfix package) for tests that need a real MTA as a peer:
// its own main.cf/master.cf, queue and data directories under a temporary directory, on
// 127.0.0.1 only, started and stopped with `postfix -c DIR`; the system's instance is neither
// read nor touched. It runs as root (Postfix's master needs it), as CI does; without root or
// without the package, `postfixAvailable()` says why.
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
  chownSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface PostfixOptions {
  /** main.cf lines added after the base settings (relayhost, relay_domains, ...). */
  readonly mainCf: readonly string[];
  readonly myhostname?: string;
  /** master.cf lines added after the services (more listeners, pipe transports), given the port. */
  readonly masterCf?: (port: number) => readonly string[];
}

export interface PostfixInstance {
  readonly port: number;
  readonly dir: string;
  /** The instance's mail log (for assertions and failure messages). */
  log(): string;
  /** Files still in its queue (incoming, active, deferred, hold, maildrop). */
  queued(): Promise<number>;
  stop(): Promise<void>;
}

/** Why a private Postfix cannot run here, or undefined when it can. */
export function postfixUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a private Postfix needs root';
  if (!existsSync('/usr/sbin/postfix')) return 'postfix is not installed (Debian package postfix)';
  return undefined;
}

const SERVICES = `pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
`;

const PARENT = '/var/tmp';
const PREFIX = 'aftersmtp-postfix-';

/** A process's identity that a reused pid does not share: pid and start time (/proc). */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the command name's closing parenthesis.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start === undefined ? undefined : `${pid} ${start}`;
  } catch {
    return undefined;
  }
}

/** Stops a private instance and removes its directory; waits for its master to exit. */
async function stopInstance(dir: string): Promise<void> {
  await run('postfix', ['-c', join(dir, 'etc'), 'stop']).catch(() => undefined);
  const pidFile = join(dir, 'spool', 'pid', 'master.pid');
  for (let i = 0; i < 50 && existsSync(pidFile); i++) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    try {
      process.kill(pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Stops the private instances whose starting process is gone (a test or bench killed before
 * its `stop`), which would otherwise run on, each with its master and port.
 */
export async function stopOrphanedPostfixes(): Promise<number> {
  let stopped = 0;
  for (const name of readdirSync(PARENT).filter((n) => n.startsWith(PREFIX))) {
    const dir = join(PARENT, name);
    let owner: string;
    try {
      owner = readFileSync(join(dir, 'owner'), 'utf8').trim();
    } catch {
      continue; // being set up, or not one of ours
    }
    const pid = Number(owner.split(' ')[0]);
    if (Number.isInteger(pid) && processIdentity(pid) === owner) continue;
    await stopInstance(dir);
    stopped++;
  }
  return stopped;
}

export async function startPostfix(o: PostfixOptions): Promise<PostfixInstance> {
  const why = postfixUnavailable();
  if (why !== undefined) throw new Error(why);
  await stopOrphanedPostfixes();
  const dir = mkdtempSync(join(PARENT, PREFIX));
  chmodSync(dir, 0o755); // Postfix's daemons (user postfix) traverse it
  // Without its start time an owner could not be told from a later process with its pid.
  const owner = processIdentity(process.pid);
  if (owner === undefined) throw new Error('a private Postfix needs /proc to record its owner');
  writeFileSync(join(dir, 'owner'), `${owner}\n`);
  const conf = join(dir, 'etc');
  const spool = join(dir, 'spool');
  const data = join(dir, 'data');
  const logFile = join(dir, 'maillog');
  mkdirSync(conf, { mode: 0o755 });
  mkdirSync(spool, { mode: 0o755 });
  mkdirSync(data, { mode: 0o700 });
  const { stdout: uid } = await run('id', ['-u', 'postfix']);
  const { stdout: gid } = await run('id', ['-g', 'postfix']);
  chownSync(data, Number(uid), Number(gid));
  const port = await freePort('tcp');
  const name = o.myhostname ?? 'peer.localdomain';
  writeFileSync(
    join(conf, 'main.cf'),
    [
      '# A private test instance; not the system one.',
      'compatibility_level = 3.6',
      `queue_directory = ${spool}`,
      `data_directory = ${data}`,
      `myhostname = ${name}`,
      'mydomain = localdomain',
      `syslog_name = postfix-test-${port}`,
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      'mydestination =',
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_tls_security_level = none',
      'smtp_tls_security_level = none',
      'biff = no',
      `maillog_file = ${logFile}`,
      `maillog_file_prefixes = ${dir}`,
      ...o.mainCf,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(conf, 'master.cf'),
    `127.0.0.1:${port} inet n - n - - smtpd\n${SERVICES}${(o.masterCf?.(port) ?? []).map((l) => `${l}\n`).join('')}`,
  );
  await run('postfix', ['-c', conf, 'check']);
  await run('postfix', ['-c', conf, 'start']);
  return {
    port,
    dir,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async queued() {
      const { stdout } = await run('find', [
        ...['incoming', 'active', 'deferred', 'hold', 'maildrop'].map((q) => join(spool, q)),
        '-type',
        'f',
      ]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
      return stdout.split('\n').filter((l) => l.length > 0).length;
    },
    stop: () => stopInstance(dir),
  };
}
