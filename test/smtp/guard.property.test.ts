// Property tests of the SMTP byte guard (src/legacy/smtp/guard.ts), the reader of untrusted
// SMTP lines: whatever the bytes and however they are split into chunks, it refuses exactly the
// streams that hold a bare CR, a bare LF or a NUL, and never one that holds none.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConnectionGuardState, type Violation } from '../../src/legacy/smtp/guard.js';

/** The reference: does `bytes` hold a NUL, or a CR or LF that is not part of a CRLF? */
function hasBadBytes(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0) return true;
    if (b === 0x0d && bytes[i + 1] !== 0x0a) return i + 1 < bytes.length;
    if (b === 0x0a && bytes[i - 1] !== 0x0d) return true;
  }
  return false;
}

/** Feeds the chunks to a guard (as one socket's data events); the violation it reported. */
function run(chunks: Uint8Array[], takeCommand = () => true): Violation | undefined {
  const socket = new PassThrough();
  let seen: Violation | undefined;
  const guard = new ConnectionGuardState({ onViolation: (v) => (seen = v), takeCommand });
  guard.attach(socket);
  for (const c of chunks) socket.emit('data', Buffer.from(c));
  return seen;
}

/** Bytes biased towards CR, LF, NUL, '.', and text, split at random places. */
const smtpBytes = fc.array(
  fc.oneof(
    fc.constantFrom(0x0d, 0x0a, 0x00, 0x2e),
    fc.constantFrom(...Buffer.from('\r\n')),
    fc.integer({ min: 0x20, max: 0x7e }),
  ),
  { maxLength: 200 },
);

function split(bytes: number[], cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) out.push(Uint8Array.from(bytes.slice(from, p)));
    from = Math.max(from, p);
  }
  return out;
}

test('property: the guard refuses a stream exactly when it holds a bare CR, a bare LF or a NUL', () => {
  fc.assert(
    fc.property(smtpBytes, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const chunks = split(bytes, cuts);
      const verdict = run(chunks);
      const bad = hasBadBytes(Uint8Array.from(bytes));
      const refused = verdict === 'bare-cr' || verdict === 'bare-lf' || verdict === 'nul';
      // A CR as the very last byte may still be followed by its LF: not refused yet.
      assert.equal(refused, bad, JSON.stringify({ bytes, cuts, verdict }));
    }),
    { numRuns: 2000 },
  );
});

test('property: well-formed command lines in any chunking pass, and the rate limit holds', () => {
  const line = fc.stringMatching(/^[A-Z]{4}( [ -~]{0,40})?$/);
  fc.assert(
    fc.property(
      fc.array(line, { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (lines, cuts) => {
        const bytes = [
          ...Buffer.from(
            lines
              .filter((l) => !/^STARTTLS/.test(l))
              .map((l) => `${l}\r\n`)
              .join(''),
          ),
        ];
        assert.equal(run(split(bytes, cuts)), undefined);
        let budget = 3;
        const limited = run(split(bytes, cuts), () => budget-- > 0);
        const count = lines.filter((l) => !/^STARTTLS/.test(l)).length;
        assert.equal(limited, count > 3 ? 'command-rate' : undefined);
      },
    ),
    { numRuns: 500 },
  );
});

test('STARTTLS followed by more bytes in the same read is dropped without a reply', () => {
  assert.equal(
    run([Buffer.from('EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n')]),
    'starttls-pipelining',
  );
  assert.equal(run([Buffer.from('EHLO x\r\nSTARTTLS\r\n')]), undefined);
  assert.equal(run([Buffer.from('EHLO x\r\nstarttls \r\nX')]), 'starttls-pipelining');
});
