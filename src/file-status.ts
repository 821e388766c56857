/**
 * Whether a file that a running gateway follows (the off-ramp's credentials, the store's keyring,
 * the log-key pins, the DKIM keys) has changed since it was last read: its status (inode, size,
 * modification time, mode) taken with a stat, a few µs, compared with the status taken just before
 * that reading.
 */
import { statSync, type Stats } from 'node:fs';

/** The file's status; undefined when it cannot be stat'ed (gone, or not accessible). */
export function fileStatus(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** Whether two statuses are of the same, unchanged file (or both of no file). */
export function sameFileStatus(a: Stats | undefined, b: Stats | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.mode === b.mode;
}
