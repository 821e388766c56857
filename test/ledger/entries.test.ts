// The leaf format: every entry type round-trips byte-exactly (classic-v1 and hybrid-v1), the
// decoder accepts nothing else (fuzz), and any single-bit change to an encoded entry is either
// refused or decodes to a different entry (so its leaf hash, and every proof, changes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  PURPOSE_REGISTER,
  decodeEntry,
  encodeEntry,
  encodeRecord,
  registerTranscript,
  type LedgerEntry,
} from '../../src/ledger/entries.js';
import { AfterSmtpError } from '../../src/errors.js';
import { flipBit, hasCode, identity } from './helpers.js';

const classic = identity('alice');
const hybrid = identity('bob', 'hybrid-v1');
const sig = (k: typeof classic) => k.sign(registerTranscript(k.record, []), PURPOSE_REGISTER);

const ENTRIES: LedgerEntry[] = [
  {
    version: 1,
    type: 'register',
    loggedAt: 1_700_000_000_123,
    did: classic.did,
    record: classic.record,
    extensions: [{ name: 'quic-tls-spki', value: Buffer.from([1, 2, 3]) }],
    auth: { kind: 'hashcash', stamp: Buffer.from('stamp') },
    proofOfPossession: sig(classic),
  },
  {
    version: 1,
    type: 'register',
    loggedAt: 5,
    did: hybrid.did,
    record: hybrid.record,
    extensions: [],
    auth: { kind: 'admin', admin: 'root', reference: 'ticket 1' },
    proofOfPossession: sig(hybrid),
  },
  {
    version: 1,
    type: 'rotate',
    loggedAt: 6,
    did: hybrid.did,
    prevLeaf: 1,
    prevKeyId: hybrid.keyId,
    record: hybrid.record,
    extensions: [],
    previousKeySignature: sig(hybrid),
    proofOfPossession: sig(hybrid),
  },
  {
    version: 1,
    type: 'revoke',
    loggedAt: 7,
    did: classic.did,
    prevLeaf: 0,
    keyId: classic.keyId,
    reason: 'lost device',
    auth: { kind: 'self', signature: sig(classic) },
  },
  {
    version: 1,
    type: 'revoke',
    loggedAt: 8,
    did: classic.did,
    prevLeaf: 3,
    keyId: classic.keyId,
    reason: 'abuse',
    auth: { kind: 'admin', admin: 'root' },
  },
];

test('every entry type round-trips byte-exactly', () => {
  for (const e of ENTRIES) {
    const bytes = encodeEntry(e);
    assert.deepEqual(decodeEntry(bytes), e);
    assert.deepEqual(encodeEntry(decodeEntry(bytes)), bytes);
  }
  // The documented header: version 1, type, u64 loggedAt, lp(did).
  const b = encodeEntry(ENTRIES[0] as LedgerEntry);
  assert.equal(b[0], 1);
  assert.equal(b[1], 1);
  assert.equal(b.readBigUInt64BE(2), 1_700_000_000_123n);
  assert.equal(b.readUInt32BE(10), Buffer.byteLength(classic.did));
  assert.equal(
    encodeRecord(classic.record).length,
    4 + Buffer.byteLength(classic.did) + 4 + 10 + 4 + 16 + 4 + 32 + 4 + 32 + 4 + 8,
  );
});

test('invalid entries are refused on encode and decode', () => {
  const reg = ENTRIES[0] as Extract<LedgerEntry, { type: 'register' }>;
  assert.throws(() => encodeEntry({ ...reg, did: hybrid.did }), hasCode('ERR_LEDGER_ENTRY'));
  assert.throws(
    () =>
      encodeEntry({
        ...reg,
        extensions: [
          { name: 'b', value: Buffer.alloc(0) },
          { name: 'a', value: Buffer.alloc(0) },
        ],
      }),
    hasCode('ERR_LEDGER_ENTRY'),
  );
  assert.throws(
    () => encodeEntry({ ...reg, record: { ...reg.record, keyId: Buffer.alloc(16) } }),
    hasCode('ERR_LEDGER_ENTRY'),
  );
  const bytes = encodeEntry(reg);
  assert.throws(
    () => decodeEntry(Buffer.concat([bytes, Buffer.from([0])])),
    hasCode('ERR_LEDGER_ENTRY'),
  );
  assert.throws(() => decodeEntry(bytes.subarray(0, -1)), hasCode('ERR_LEDGER_ENTRY'));
  assert.throws(
    () => decodeEntry(Buffer.concat([Buffer.from([2]), bytes.subarray(1)])),
    hasCode('ERR_LEDGER_ENTRY'),
  );
  assert.throws(() => decodeEntry(Buffer.alloc(40 * 1024)), hasCode('ERR_LEDGER_ENTRY'));
});

test('property: the decoder refuses garbage with ERR_LEDGER_ENTRY only', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      try {
        decodeEntry(bytes);
      } catch (err) {
        assert.ok(err instanceof AfterSmtpError && err.code === 'ERR_LEDGER_ENTRY', String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

test('property: a single-bit change to an entry is refused or changes the decoded entry', () => {
  const encoded = ENTRIES.map((e) => encodeEntry(e));
  fc.assert(
    fc.property(fc.nat(encoded.length - 1), fc.nat(), (which, bit) => {
      const original = encoded[which] as Buffer;
      const flipped = flipBit(original, bit % (original.length * 8));
      let decoded: LedgerEntry;
      try {
        decoded = decodeEntry(flipped);
      } catch (err) {
        assert.ok(err instanceof AfterSmtpError);
        return;
      }
      assert.notDeepEqual(encodeEntry(decoded), original);
    }),
    { numRuns: 1000 },
  );
});
