/**
 * Makes sure AFTERSMTP_DATA_DIR is a directory the gateway can use before anything is opened in
 * it, and says clearly why not otherwise (ERR_DATA_DIR, naming the path and the variable). It never loops:
 * Node's `mkdir(..., { recursive: true })` spins forever under /proc (the kernel answers ENOENT
 * for a child of a directory that exists, which the recursive walk reads as "create the parent
 * first"), so the directory is created here one level at a time and every answer is final.
 *
 * Refused: a path through something that is not a directory, a directory that cannot be
 * created or written (permissions, read-only file system, no space), and kernel pseudo file
 * systems (proc, sysfs, cgroup...), where nothing written is durable. A probe file is written,
 * synced and removed, so a data directory that passes can hold the stores.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  statSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EnvironmentError } from '../errors.js';

/** statfs f_type of kernel pseudo file systems (linux/magic.h). */
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x62656570, 'configfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
]);

function refuse(path: string, why: string): EnvironmentError {
  return new EnvironmentError('ERR_DATA_DIR', `cannot use ${path} (AFTERSMTP_DATA_DIR): ${why}`);
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'no space left on the file system';
    case 'ENOENT':
      return 'cannot be created here';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return e.code ?? String(e.message);
  }
}

/** Creates `dir` (mode 0700) and its missing parents, one level at a time. */
function createLevels(dir: string, shown: string): void {
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(at).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw refuse(shown, reason(err));
      missing.push(at);
      const parent = dirname(at);
      if (parent === at) throw refuse(shown, 'no existing parent directory');
      at = parent;
      continue;
    }
    if (!isDir) throw refuse(shown, `${at} is not a directory`);
    break;
  }
  for (const level of missing.reverse()) {
    try {
      mkdirSync(level, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statSync(level).isDirectory()) {
        continue; // created meanwhile by someone else
      }
      throw refuse(shown, `cannot create ${level}: ${reason(err)}`);
    }
  }
}

/** The pseudo file system `path` lies on, if any. */
function pseudoFileSystem(path: string): string | undefined {
  try {
    return PSEUDO_FILE_SYSTEMS.get(Number(statfsSync(path).type));
  } catch {
    return undefined;
  }
}

/**
 * Checks and creates the data directory; returns its absolute path. Throws an EnvironmentError
 * (ERR_DATA_DIR) naming the path and AFTERSMTP_DATA_DIR when it cannot be used.
 */
export function prepareDataDir(path: string): string {
  const dir = resolve(path);
  // Look at the nearest existing ancestor first: under /proc even the creation fails oddly.
  let existing = dir;
  for (;;) {
    try {
      statSync(existing);
      break;
    } catch {
      const parent = dirname(existing);
      if (parent === existing) break;
      existing = parent;
    }
  }
  const pseudo = pseudoFileSystem(existing);
  if (pseudo !== undefined) {
    throw refuse(path, `is on the ${pseudo} pseudo file system, which cannot hold data`);
  }
  createLevels(dir, path);
  const probe = join(dir, `.aftersmtp-probe-${process.pid}`);
  try {
    const fd = openSync(probe, 'w', 0o600);
    try {
      writeSync(fd, 'probe\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    unlinkSync(probe);
  } catch (err) {
    try {
      unlinkSync(probe);
    } catch {
      // it was never created
    }
    throw refuse(path, `cannot write in it: ${reason(err)}`);
  }
  return dir;
}
