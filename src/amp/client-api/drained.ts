/**
 * Waiting for a server stream to drain (the client API's streaming methods): resolves on the
 * stream's 'drain' or when the call's signal aborts (the caller then looks at the signal), and
 * rejects on the stream's 'error'. Guarantee: nothing it listens with is left on the stream or
 * the signal once it settles, however many times a long call waits.
 */
import { once } from 'node:events';

export async function drained(stream: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  const done = new AbortController();
  const stop = (): void => done.abort();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await once(stream, 'drain', { signal: done.signal });
  } catch (err) {
    if (!done.signal.aborted) throw err;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
