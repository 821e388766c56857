// Hashcash stamps: minting, and every refusal with its own code (reused, expired,
// under-difficulty, bound to another DID or key, another log's or domain's challenge, malformed),
// plus a fuzz property for the stamp decoder.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ChallengeIssuer,
  checkStamp,
  encodeStamp,
  leadingZeroBits,
  mint,
  mintSearch,
  mintStamp,
  parseStamp,
  stampBinding,
  workHash,
  type MintKernel,
} from '../../src/ledger/hashcash.js';
import { recordHash } from '../../src/ledger/entries.js';
import { parsePolicySpec } from '../../src/ledger/policy.js';
import { AfterSmtpError } from '../../src/errors.js';
import { join } from 'node:path';
import { IdentityLedger } from '../../src/ledger/ledger.js';
import {
  DOMAIN,
  TEST_BITS,
  flipBit,
  hasCode,
  identity,
  logSigner,
  openLedger,
  registerRequest,
} from './helpers.js';

const issuer = new ChallengeIssuer(Buffer.alloc(32, 5));
const alice = identity('alice');
const rh = recordHash(alice.record);

test('leading zero bits are counted bit-exactly', () => {
  assert.equal(leadingZeroBits(Buffer.from([0x80])), 0);
  assert.equal(leadingZeroBits(Buffer.from([0x01])), 7);
  assert.equal(leadingZeroBits(Buffer.from([0x00, 0x00, 0x3f])), 18);
  assert.equal(leadingZeroBits(Buffer.alloc(4)), 32);
});

test('a minted stamp verifies, reports progress, and the kernel is replaceable', async () => {
  const challenge = issuer.issue(DOMAIN, 2_000_000);
  const progress: number[] = [];
  const stamp = await mintStamp(challenge, alice.did, rh, 17, (p) => progress.push(p.hashes));
  const s = parseStamp(stamp);
  assert.ok(leadingZeroBits(workHash(stampBinding(challenge, alice.did, rh, 17), s.counter)) >= 17);
  assert.equal(progress.length, Math.floor(s.counter / 65536));
  const expect = {
    domain: DOMAIN,
    did: alice.did,
    recordHash: rh,
    requiredBits: 17,
    now: 1_000_000,
  };
  assert.equal(checkStamp(stamp, expect, issuer).stamp.counter, s.counter);
  // A replacement kernel (as the native core will provide) gets the same slices.
  const calls: number[] = [];
  const kernel: MintKernel = (b, bits, start, count) => (
    calls.push(start),
    mintSearch(b, bits, start, count)
  );
  const again = await mint(stampBinding(challenge, alice.did, rh, 17), 17, undefined, { kernel });
  assert.equal(again.counter, s.counter);
  assert.equal(calls.length, Math.floor(s.counter / 65536) + 1);
});

test('each kind of bad stamp is refused with its own code', async () => {
  const now = 1_000_000;
  const challenge = issuer.issue(DOMAIN, now + 60_000);
  const stamp = await mintStamp(challenge, alice.did, rh, 8);
  const expect = { domain: DOMAIN, did: alice.did, recordHash: rh, requiredBits: 8, now };
  const other = identity('bob');
  assert.throws(
    () => checkStamp(stamp, { ...expect, did: other.did }, issuer),
    hasCode('ERR_STAMP_WRONG_DID'),
  );
  assert.throws(
    () =>
      checkStamp(stamp, { ...expect, recordHash: recordHash(identity('alice').record) }, issuer),
    hasCode('ERR_STAMP_WRONG_KEY'),
  );
  assert.throws(
    () => checkStamp(stamp, { ...expect, now: now + 60_000 }, issuer),
    hasCode('ERR_STAMP_EXPIRED'),
  );
  assert.throws(
    () => checkStamp(stamp, { ...expect, requiredBits: 9 }, issuer),
    hasCode('ERR_STAMP_DIFFICULTY'),
  );
  assert.throws(
    () => checkStamp(stamp, { ...expect, domain: 'example.net' }, issuer),
    hasCode('ERR_STAMP_BAD_CHALLENGE'),
  );
  assert.throws(
    () => checkStamp(stamp, expect, new ChallengeIssuer(Buffer.alloc(32, 6))),
    hasCode('ERR_STAMP_BAD_CHALLENGE'),
  );
  // Claiming more bits than the work carries.
  const s = parseStamp(stamp);
  const inflated = encodeStamp({ ...s, bits: 30 });
  assert.throws(() => checkStamp(inflated, expect, issuer), hasCode('ERR_STAMP_DIFFICULTY'));
  // A wrong counter: under-difficulty (with 8 bits, 255 of 256 counters fail).
  let c = s.counter + 1;
  while (leadingZeroBits(workHash(stampBinding(challenge, alice.did, rh, 8), c)) >= 8) c++;
  assert.throws(
    () => checkStamp(encodeStamp({ ...s, counter: c }), expect, issuer),
    hasCode('ERR_STAMP_DIFFICULTY'),
  );
  for (const bad of [
    Buffer.alloc(0),
    stamp.subarray(0, stamp.length - 1),
    Buffer.concat([stamp, Buffer.from([0])]),
    Buffer.alloc(2000),
  ]) {
    assert.throws(() => checkStamp(bad, expect, issuer), hasCode('ERR_STAMP_MALFORMED'));
  }
});

test('a reused stamp is refused by the ledger, also after a restart', async () => {
  const { ledger, dir, cleanup } = openLedger();
  let reopened: IdentityLedger | undefined;
  try {
    const req = await registerRequest(ledger, alice);
    ledger.register(req);
    const bob = identity('bob');
    const bobReq = await registerRequest(ledger, bob);
    // Alice's stamp with Bob's registration: bound to another DID.
    assert.throws(
      () => ledger.register({ ...bobReq, stamp: req.stamp }),
      hasCode('ERR_STAMP_WRONG_DID'),
    );
    // A new stamp for Bob over Alice's (spent) challenge: reused.
    const parsed = parseStamp(req.stamp as Buffer);
    const reuse = await mintStamp(parsed.challenge, bob.did, recordHash(bob.record), parsed.bits);
    assert.throws(() => ledger.register({ ...bobReq, stamp: reuse }), hasCode('ERR_STAMP_REUSED'));
    ledger.close();
    reopened = new IdentityLedger({
      path: join(dir, 'ledger.sqlite'),
      signer: logSigner(),
      domains: [DOMAIN],
      policies: new Map([[DOMAIN, { policy: 'open-pow', bits: TEST_BITS }]]),
    });
    assert.throws(
      () => reopened?.register({ ...bobReq, stamp: reuse }),
      hasCode('ERR_STAMP_REUSED'),
    );
    reopened.register(bobReq);
  } finally {
    reopened?.close();
    cleanup();
  }
});

test('property: the stamp decoder accepts nothing but stamps, and rejects single-bit changes', async () => {
  const challenge = issuer.issue(DOMAIN, 2_000_000);
  const stamp = await mintStamp(challenge, alice.did, rh, 8);
  const expect = {
    domain: DOMAIN,
    did: alice.did,
    recordHash: rh,
    requiredBits: 8,
    now: 1_000_000,
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        parseStamp(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof AfterSmtpError && err.code === 'ERR_STAMP_MALFORMED');
      }
    }),
    { numRuns: 500 },
  );
  // A flipped bit outside the counter always breaks the stamp. Inside the counter (the last 64
  // bits) it names another counter, which is itself valid work with probability 2^-bits: that
  // stamp must be accepted exactly when its work really meets the difficulty.
  const counterBits = stamp.length * 8 - 64;
  const binding = stampBinding(challenge, alice.did, rh, 8);
  fc.assert(
    fc.property(fc.nat(stamp.length * 8 - 1), (bit) => {
      const flipped = flipBit(stamp, bit);
      const genuineWork = ((): boolean => {
        if (bit < counterBits) return false;
        try {
          return leadingZeroBits(workHash(binding, parseStamp(flipped).counter)) >= 8;
        } catch {
          return false; // a counter the decoder refuses (e.g. above 2^53) is no work at all
        }
      })();
      if (genuineWork) {
        assert.doesNotThrow(() => checkStamp(flipped, expect, issuer));
        return;
      }
      assert.throws(
        () => checkStamp(flipped, expect, issuer),
        (err: unknown) => err instanceof AfterSmtpError,
      );
    }),
    { numRuns: 300 },
  );
});

test('policy specs are parsed strictly', () => {
  const m = parsePolicySpec('example.org=open-pow:20, corp.example=admin-only,x.example=closed');
  assert.deepEqual(m.get('example.org'), { policy: 'open-pow', bits: 20 });
  assert.equal(m.get('corp.example')?.policy, 'admin-only');
  for (const bad of [
    'example.org',
    'example.org=open',
    'example.org=closed:20',
    'a=open-pow',
    'example.org=open-pow:99',
    'x.example=closed,x.example=closed',
  ]) {
    assert.throws(() => parsePolicySpec(bad), hasCode('ERR_LEDGER_POLICY'), bad);
  }
});
