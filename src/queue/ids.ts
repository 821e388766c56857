/**
 * Queue ids. An entry id is 48 bits of milliseconds then 80 random bits, as 32 hex digits: ids
 * sort by enqueue time (so the oldest entry is the first key) and two processes sharing a store
 * never collide. A job id is `<entry id>.<index of its destination>`.
 */
import { randomInto } from '../random.js';

export function newEntryId(now: number = Date.now()): string {
  const b = Buffer.allocUnsafe(16);
  b.writeUIntBE(Math.max(0, Math.floor(now)), 0, 6);
  randomInto(b, 6, 10);
  return b.toString('hex');
}

export function jobIdOf(entryId: string, index: number): string {
  return `${entryId}.${index}`;
}

/** The entry id inside a job id, or the id itself when it is an entry id. */
export function entryIdOf(id: string): string {
  const dot = id.indexOf('.');
  return dot < 0 ? id : id.slice(0, dot);
}

export function isQueueId(id: string): boolean {
  return /^[0-9a-f]{32}(\.[0-9]{1,6})?$/.test(id);
}
