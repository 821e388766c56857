// The log's shape (src/log.ts): level names, ISO times, pid and hostname on every line; a typed
// error (a routine condition with a stable code) without a stack, a bug with its stack.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { EnvironmentError } from '../../src/errors.js';
import { createLogger, isRoutine } from '../../src/log.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('level names, ISO times, pid and hostname', () => {
  const out = capture();
  const log = createLogger('info', out.stream);
  log.info({ did: 'did:aftersmtp:example.org:alice' }, 'ledger register logged');
  log.debug('not at info');
  const [line, ...rest] = out.lines();
  assert.equal(rest.length, 0);
  assert.equal(line?.level, 'info');
  assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line?.pid, process.pid);
  assert.equal(line?.hostname, hostname());
  assert.equal(line?.service, 'aftersmtp');
  assert.equal(line?.msg, 'ledger register logged');
});

test('a typed error is logged without a stack; a bug keeps its stack', () => {
  const out = capture();
  const log = createLogger('info', out.stream);
  const routine = new EnvironmentError('ERR_QUEUE_UNAVAILABLE', 'cannot reach NATS', {
    cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
  });
  log.warn({ err: routine }, 'delivery: lease failed');
  log.error({ err: new TypeError('x is undefined') }, 'bug');
  const [a, b] = out.lines();
  assert.deepEqual(a?.err, {
    type: 'EnvironmentError',
    code: 'ERR_QUEUE_UNAVAILABLE',
    message: 'cannot reach NATS',
    cause: { type: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' },
  });
  assert.match(String((b?.err as { stack: string }).stack), /TypeError: x is undefined/);
  assert.equal(isRoutine(routine), true);
  assert.equal(isRoutine(new TypeError('x')), false);
});
