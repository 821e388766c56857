/**
 * How many messages this process is working on: those going through the pipeline (every
 * entrance's submission), those the queue's delivery worker holds, and those on their way in
 * elsewhere (the SMTP sessions open on the listener thread besides the one whose message is
 * here). One number, for the few choices that depend on whether a message is alone:
 *
 * - alone, a message's cheap cryptography (Ed25519 signatures, HPKE key wraps) runs on the event
 *   loop and its durable write commits there (src/storage/space.ts), since handing that work to
 *   the thread pool or to lmdb-js's write thread and back costs more wall time than doing it
 *   (each hand-off waits for a thread to wake, 50-150 µs on a 2-core virtual machine, several
 *   per message);
 * - with others in flight, the same work runs beside the event loop, where it overlaps theirs
 *   and commits are grouped (one flush for many).
 *
 * Both ways write the same bytes with the same durability (an acknowledgement follows the flush
 * of its commit); only where the work runs differs. ML-DSA-65 signatures always go to the thread
 * pool (0.1-0.2 ms each, two at once for a hybrid-v1 message). bench/onramp.ts with one session
 * measures the difference. Work started outside a message (start-up, the command line, tests of
 * one component) counts as alone.
 */

let inFlight = 0;
const elsewhere = new Set<() => number>();

/** Counts one message as in flight until the returned function is called (more calls do nothing). */
export function beginWork(): () => void {
  inFlight++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    inFlight--;
  };
}

/** Counts what `count` reports as messages in flight, until the returned function is called. */
export function countWorkElsewhere(count: () => number): () => void {
  elsewhere.add(count);
  return () => elsewhere.delete(count);
}

/** True when no other message is in flight: work for this one may run on the event loop. */
export function workAlone(): boolean {
  let n = inFlight;
  for (const count of elsewhere) n += count();
  return n <= 1;
}
