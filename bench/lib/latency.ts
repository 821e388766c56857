/**
 * Where a message's time goes: the latency marks a `serve` recorded (bench/lib/latency-recorder.ts,
 * src/latency.ts) read back into one timeline per message, and the time between consecutive
 * points of a list of phases, over the messages of a measured window. Wall time, not CPU: a phase
 * includes the waits for a busy thread, a disk flush or the client.
 *
 * A message's timeline joins its SMTP session's marks (keyed by the session id) and its
 * pipeline's marks (keyed by the transaction id) through the mark that links them
 * (`smtp.authenticated`, which carries the transaction). A session that carried more than one
 * message is left out (its marks cannot be told apart); each point counts at its first mark.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { median, percentile } from './measure.js';

/** The time from one point to the next. */
export interface Phase {
  readonly name: string;
  readonly from: string;
  readonly to: string;
}

/** The on-ramp's way, from the client's connection to its close (src/legacy/smtp/server.ts). */
export const ONRAMP_PHASES: readonly Phase[] = [
  { name: 'connect to RCPT (banner, EHLO, MAIL)', from: 'smtp.connect', to: 'smtp.rcpt' },
  { name: 'RCPT checks, asked of the main thread', from: 'smtp.rcpt', to: 'smtp.rcpt.answered' },
  { name: 'DATA and the message bytes', from: 'smtp.rcpt.answered', to: 'smtp.received' },
  {
    name: 'SPF, DKIM, DMARC, ARC (listener thread)',
    from: 'smtp.received',
    to: 'smtp.authenticated',
  },
  { name: 'hand-off to the main thread', from: 'smtp.authenticated', to: 'pipeline.start' },
  { name: 'policy, addressing, sealing', from: 'pipeline.start', to: 'pipeline.sealed' },
  { name: 'durable commit (store or queue)', from: 'pipeline.sealed', to: 'pipeline.committed' },
  { name: 'answer to the listener, 250 sent', from: 'pipeline.committed', to: 'smtp.replied' },
  { name: '250 to close (QUIT)', from: 'smtp.replied', to: 'smtp.close' },
  { name: 'connection, whole', from: 'smtp.connect', to: 'smtp.close' },
];

/** The mark that ties a session to its transaction. */
const LINK_POINT = 'smtp.authenticated';

/** Point -> wall-clock ms, for one message. */
export type Timeline = ReadonlyMap<string, number>;

/** Timelines from the recorder's lines (`at point key [link]`; `#` lines are comments). */
export function timelines(lines: Iterable<string>): Timeline[] {
  const byKey = new Map<string, Map<string, number>>();
  const links = new Map<string, string[]>();
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const [at, point, key, link] = line.split(' ');
    const t = Number(at);
    if (point === undefined || key === undefined || !Number.isFinite(t)) continue;
    let marks = byKey.get(key);
    if (marks === undefined) byKey.set(key, (marks = new Map()));
    if (!marks.has(point)) marks.set(point, t);
    if (point === LINK_POINT && link !== undefined)
      links.set(key, [...(links.get(key) ?? []), link]);
  }
  const out: Timeline[] = [];
  for (const [session, transactions] of links) {
    if (transactions.length !== 1) continue;
    const own = byKey.get(session);
    const pipeline = byKey.get(transactions[0] as string);
    if (own === undefined) continue;
    out.push(pipeline === undefined ? own : new Map([...own, ...pipeline]));
  }
  return out;
}

/** The recorder's lines in `dir` (every thread's file). */
export function readMarks(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('latency-') && f.endsWith('.txt'))
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'));
}

/** One phase over a window's messages: median and 90th percentile, µs. */
export interface PhaseFigure {
  readonly phase: string;
  readonly messages: number;
  readonly medianUs: number;
  readonly p90Us: number;
}

/**
 * Each phase over the messages whose first point (`phases[0].from`) lies in [from, to]
 * (wall-clock ms); a message without both points of a phase does not count for it.
 */
export function phaseFigures(
  all: readonly Timeline[],
  phases: readonly Phase[],
  window: { readonly from: number; readonly to: number },
): PhaseFigure[] {
  const start = phases[0]?.from;
  const inWindow = all.filter((m) => {
    const t = start === undefined ? undefined : m.get(start);
    return t !== undefined && t >= window.from && t <= window.to;
  });
  return phases.map((p) => {
    const us: number[] = [];
    for (const m of inWindow) {
      const a = m.get(p.from);
      const b = m.get(p.to);
      if (a !== undefined && b !== undefined) us.push((b - a) * 1000);
    }
    return {
      phase: p.name,
      messages: us.length,
      medianUs: us.length === 0 ? NaN : median(us),
      p90Us: percentile(us, 0.9),
    };
  });
}
