/**
 * Who holds the embedded queue's leases. Each open LmdbQueue registers itself (its process and
 * that process's identity) and names itself in its lease tokens, so that a queue opening later
 * can tell the leases of a holder that is gone (a process killed or crashed, or a queue closed
 * with leases out) from those of a holder still at work, and make the former due at once
 * instead of when the lease would have expired.
 *
 * A process is identified by its id, the boot it runs in and its start time (Linux:
 * /proc/sys/kernel/random/boot_id and /proc/<pid>/stat), so a process id reused after a crash
 * does not pass for the holder, and a zombie (killed but not yet reaped by its parent, which
 * `kill(pid, 0)` still finds) is dead. Without /proc, `kill(pid, 0)` decides, and a reused
 * process id or a zombie keeps the leases until they expire: the safe side, never a lease taken
 * from a live holder.
 */
import { readFileSync } from 'node:fs';

export interface HolderRecord {
  readonly pid: number;
  /** The boot id ('' where the system does not tell). */
  readonly boot: string;
  /** The process's start time since boot, in clock ticks ('' where unknown). */
  readonly start: string;
  /** The lease length the holder uses, in ms. */
  readonly leaseMs: number;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/**
 * Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, read after the command name, which
 * may hold spaces and parens.
 */
function procStat(pid: number | 'self'): { state: string; start: string } | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  if (stat === '') return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: fields[19] ?? '' };
}

function startTime(pid: number | 'self'): string | undefined {
  return procStat(pid)?.start;
}

function bootId(): string {
  return readOr('/proc/sys/kernel/random/boot_id', '');
}

/** This process, as a holder using leases of `leaseMs`. */
export function thisHolder(leaseMs: number): HolderRecord {
  return { pid: process.pid, boot: bootId(), start: startTime('self') ?? '', leaseMs };
}

/**
 * Whether the process that registered `h` is still running. A zombie (killed, not yet reaped by
 * its parent: state Z, or X while it is being reaped) is dead: it holds nothing any more, and
 * its parent may take long to reap it.
 */
export function holderAlive(h: HolderRecord): boolean {
  if (h.boot !== '') {
    if (h.boot !== bootId()) return false;
    const stat = procStat(h.pid);
    if (stat !== undefined && (stat.state === 'Z' || stat.state === 'X')) return false;
    if (stat !== undefined || h.start !== '') return stat?.start === h.start;
  }
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
