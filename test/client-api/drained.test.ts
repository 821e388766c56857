// Waiting for a stream to drain leaves nothing behind: a long call under back-pressure waits many
// times, and each wait's listeners on the stream and on the call's abort signal must go with it.
import assert from 'node:assert/strict';
import { EventEmitter, getEventListeners } from 'node:events';
import { test } from 'node:test';
import { drained } from '../../src/amp/client-api/drained.js';

test('many waits, each ended by drain, leave no listener on the stream or the signal', async () => {
  const stream = new EventEmitter();
  const call = new AbortController();
  for (let i = 0; i < 50; i++) {
    const wait = drained(stream, call.signal);
    stream.emit('drain');
    await wait;
  }
  assert.equal(stream.listenerCount('drain'), 0);
  assert.equal(stream.listenerCount('error'), 0);
  assert.equal(getEventListeners(call.signal, 'abort').length, 0);
});

test("a wait ends when the call's signal aborts, and on the stream's error", async () => {
  const stream = new EventEmitter();
  const call = new AbortController();
  const wait = drained(stream, call.signal);
  call.abort();
  await wait;
  assert.equal(stream.listenerCount('drain'), 0);
  await drained(stream, call.signal); // already aborted: at once

  const failing = drained(stream, new AbortController().signal);
  stream.emit('error', new Error('reset'));
  await assert.rejects(failing, /reset/);
  assert.equal(stream.listenerCount('drain'), 0);
});
