// The identity ledger: registration by policy (open-pow, admin-only, closed), rotation signed by
// the previous key (classic and composite hybrid), revocation and admin re-registration, batches,
// served domains, rate limits, the log key binding, and the persisted store.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  EXT_QUIC_TLS_SPKI,
  PURPOSE_REGISTER,
  PURPOSE_REVOKE,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  decodeEntry,
  encodeEntry,
  registerTranscript,
  revokeTranscript,
  rotateTranscript,
} from '../../src/ledger/entries.js';
import { IdentityLedger, OTHER_WRITERS_RECHECK_MS } from '../../src/ledger/ledger.js';
import {
  MemoryTree,
  consistencyProof,
  inclusionProof,
  leafHash,
  rootAt,
  type NodeSource,
} from '../../src/identity/merkle.js';
import { TokenBucketLimiter } from '../../src/ledger/ratelimit.js';
import { LogStore } from '../../src/ledger/store.js';
import type { SecretKeySet } from '../../src/identity/index.js';
import {
  DOMAIN,
  hasCode,
  identity,
  logSigner,
  openLedger,
  registerRequest,
  tempDir,
} from './helpers.js';

function rotation(ledger: IdentityLedger, old: SecretKeySet, next: SecretKeySet, signer = old) {
  const { leafIndex } = ledger.lookup(old.did);
  const t = rotateTranscript(old.did, leafIndex, old.keyId, next.record, []);
  return {
    did: old.did,
    prevLeaf: leafIndex,
    prevKeyId: old.keyId,
    record: next.record,
    previousKeySignature: signer.sign(t, PURPOSE_ROTATE),
    proofOfPossession: next.sign(t, PURPOSE_ROTATE_POP),
  };
}

test('register, rotate (classic), revoke, admin re-registration: the whole life of a DID', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    const alice = identity('alice');
    const r1 = ledger.register(await registerRequest(ledger, alice));
    assert.equal(r1.leafIndex, 0);
    assert.equal(r1.treeSize, 1);
    const e1 = decodeEntry(r1.entry);
    assert.equal(e1.type, 'register');
    assert.deepEqual(encodeEntry(e1), r1.entry);

    // A second registration of the same DID is refused.
    await assert.rejects(
      async () => ledger.register(await registerRequest(ledger, identity('alice'))),
      hasCode('ERR_DID_EXISTS'),
    );

    // Rotation signed by the previous key: accepted.
    const alice2 = identity('alice');
    const r2 = ledger.rotate(rotation(ledger, alice, alice2));
    assert.equal(r2.leafIndex, 1);
    const cur = decodeEntry(ledger.lookup(alice.did).entry);
    assert.equal(cur.type, 'rotate');
    assert.deepEqual(cur.type === 'rotate' && cur.record.keyId, alice2.keyId);

    // A rotation not signed by the previous key is refused (signed by the new key instead).
    const alice3 = identity('alice');
    assert.throws(
      () => ledger.rotate(rotation(ledger, alice2, alice3, alice3)),
      hasCode('ERR_LEDGER_ROTATE_SIGNATURE'),
    );
    // ...and so is one signed by the key before it (stale: names the old key / leaf).
    assert.throws(
      () => ledger.rotate({ ...rotation(ledger, alice2, alice3), prevLeaf: 0 }),
      hasCode('ERR_LEDGER_STALE'),
    );
    assert.throws(
      () => ledger.rotate(rotation(ledger, alice2, alice3, alice)),
      hasCode('ERR_LEDGER_ROTATE_SIGNATURE'),
    );

    // Self-revocation with the current key.
    const reason = 'key compromised';
    const revokeReq = {
      did: alice.did,
      prevLeaf: 1,
      keyId: alice2.keyId,
      reason,
      signature: alice2.sign(revokeTranscript(alice.did, 1, alice2.keyId, reason), PURPOSE_REVOKE),
    };
    assert.throws(
      () =>
        ledger.revoke({
          ...revokeReq,
          signature: alice.sign(
            revokeTranscript(alice.did, 1, alice2.keyId, reason),
            PURPOSE_REVOKE,
          ),
        }),
      hasCode('ERR_LEDGER_REVOKE_SIGNATURE'),
    );
    const r3 = ledger.revoke(revokeReq);
    assert.equal(decodeEntry(ledger.lookup(alice.did).entry).type, 'revoke');
    assert.equal(r3.leafIndex, 2);

    // Nothing but an admin re-registration after a revocation.
    assert.throws(
      () => ledger.rotate(rotation(ledger, alice2, alice3)),
      hasCode('ERR_DID_REVOKED'),
    );
    await assert.rejects(
      async () => ledger.register(await registerRequest(ledger, alice3)),
      hasCode('ERR_DID_REVOKED'),
    );
    const pop = alice3.sign(registerTranscript(alice3.record, []), PURPOSE_REGISTER);
    const r4 = ledger.adminRegister(
      { record: alice3.record, proofOfPossession: pop },
      'root',
      'ticket-42',
    );
    const e4 = decodeEntry(r4.entry);
    assert.deepEqual(e4.type === 'register' && e4.auth, {
      kind: 'admin',
      admin: 'root',
      reference: 'ticket-42',
    });
    assert.deepEqual(ledger.history(alice.did), [0, 1, 2, 3]);

    // Admin revocation needs a reason, and is recorded with it.
    assert.throws(() => ledger.adminRevoke(alice.did, 'root', '  '), hasCode('ERR_LEDGER_ENTRY'));
    const r5 = ledger.adminRevoke(alice.did, 'root', 'account closed');
    const e5 = decodeEntry(r5.entry);
    assert.deepEqual(e5.type === 'revoke' && [e5.reason, e5.auth], [
      'account closed',
      { kind: 'admin', admin: 'root' },
    ]);
    assert.equal(ledger.store.verifyFromScratch().size, 5);
  } finally {
    cleanup();
  }
});

test('hybrid-v1 rotation needs both halves of the composite signature', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    const bob = identity('bob', 'hybrid-v1');
    ledger.register(await registerRequest(ledger, bob));
    const bob2 = identity('bob', 'hybrid-v1');
    const good = rotation(ledger, bob, bob2);
    const wrong = rotation(ledger, bob, bob2, identity('mallory', 'hybrid-v1'));
    // Ed25519 half from the right key, ML-DSA-65 half from another: refused.
    const mixed = {
      ...good,
      previousKeySignature: {
        ed25519: good.previousKeySignature.ed25519,
        mldsa65: wrong.previousKeySignature.mldsa65 as Buffer,
      },
    };
    assert.throws(() => ledger.rotate(mixed), hasCode('ERR_LEDGER_ROTATE_SIGNATURE'));
    const noPq = { ...good, previousKeySignature: { ed25519: good.previousKeySignature.ed25519 } };
    assert.throws(() => ledger.rotate(noPq), hasCode('ERR_LEDGER_ROTATE_SIGNATURE'));
    // Rotating from hybrid to classic is allowed when the hybrid key signs it.
    const bob3 = identity('bob', 'classic-v1');
    ledger.rotate(rotation(ledger, bob, bob3));
    const e = decodeEntry(ledger.lookup(bob.did).entry);
    assert.equal(e.type === 'rotate' && e.record.suite, 'classic-v1');
  } finally {
    cleanup();
  }
});

test('policies: admin-only needs an approval, closed refuses requests, open-pow needs a stamp', async () => {
  const { ledger, cleanup } = openLedger({}, { policy: 'admin-only', bits: 6 });
  try {
    const carol = identity('carol');
    const pop = carol.sign(registerTranscript(carol.record, []), PURPOSE_REGISTER);
    assert.throws(() => ledger.issueChallenge(DOMAIN), hasCode('ERR_POLICY_ADMIN_ONLY'));
    assert.throws(
      () => ledger.register({ record: carol.record, proofOfPossession: pop }),
      hasCode('ERR_POLICY_ADMIN_ONLY'),
    );
    const dave = identity('dave');
    const refDave = ledger.approveRegistration(dave.did, 'root');
    assert.throws(
      () => ledger.register({ record: carol.record, proofOfPossession: pop, approval: refDave }),
      hasCode('ERR_APPROVAL_INVALID'),
    );
    const ref = ledger.approveRegistration(carol.did, 'root');
    const r = ledger.register({ record: carol.record, proofOfPossession: pop, approval: ref });
    const e = decodeEntry(r.entry);
    assert.deepEqual(e.type === 'register' && e.auth, {
      kind: 'admin',
      admin: 'root',
      reference: ref,
    });
    // The approval is single-use.
    const erin = identity('erin');
    assert.throws(
      () =>
        ledger.register({
          record: erin.record,
          proofOfPossession: erin.sign(registerTranscript(erin.record, []), PURPOSE_REGISTER),
          approval: ref,
        }),
      hasCode('ERR_APPROVAL_INVALID'),
    );

    ledger.setPolicy(DOMAIN, { policy: 'closed', bits: 6 });
    const refDave2 = ledger.approveRegistration(dave.did, 'root');
    const davePop = dave.sign(registerTranscript(dave.record, []), PURPOSE_REGISTER);
    assert.throws(
      () =>
        ledger.register({ record: dave.record, proofOfPossession: davePop, approval: refDave2 }),
      hasCode('ERR_POLICY_CLOSED'),
    );
    assert.throws(() => ledger.issueChallenge(DOMAIN), hasCode('ERR_POLICY_CLOSED'));
    ledger.adminRegister({ record: dave.record, proofOfPossession: davePop }, 'root', 'manual');

    ledger.setPolicy(DOMAIN, { policy: 'open-pow', bits: 6 });
    assert.throws(
      () =>
        ledger.register({
          record: erin.record,
          proofOfPossession: erin.sign(registerTranscript(erin.record, []), PURPOSE_REGISTER),
        }),
      hasCode('ERR_STAMP_MISSING'),
    );
    ledger.register(await registerRequest(ledger, erin));
  } finally {
    cleanup();
  }
});

test('only served domains, valid proofs of possession and well-formed records are accepted', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    const stranger = identity('x', 'classic-v1', 'other.example');
    const pop = stranger.sign(registerTranscript(stranger.record, []), PURPOSE_REGISTER);
    assert.throws(
      () => ledger.register({ record: stranger.record, proofOfPossession: pop }),
      hasCode('ERR_DOMAIN_NOT_SERVED'),
    );
    assert.throws(() => ledger.issueChallenge('other.example'), hasCode('ERR_DOMAIN_NOT_SERVED'));
    assert.throws(() => ledger.lookup(stranger.did), hasCode('ERR_DOMAIN_NOT_SERVED'));
    const frank = identity('frank');
    const req = await registerRequest(ledger, frank);
    assert.throws(
      () =>
        ledger.register({
          ...req,
          proofOfPossession: identity('frank').sign(
            registerTranscript(frank.record, []),
            PURPOSE_REGISTER,
          ),
        }),
      hasCode('ERR_LEDGER_SIGNATURE'),
    );
    const badRecord = { ...frank.record, keyId: Buffer.alloc(16) };
    assert.throws(
      () => ledger.register({ ...req, record: badRecord }),
      hasCode('ERR_LEDGER_ENTRY'),
    );
    assert.throws(() => ledger.lookup(frank.did), hasCode('ERR_DID_UNKNOWN'));
    assert.equal(ledger.store.size(), 0);
  } finally {
    cleanup();
  }
});

test('the gateway record publishes its QUIC/TLS key as an extension', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    const gw = identity('gateway');
    const spki = Buffer.from('302a300506032b6570032100' + '11'.repeat(32), 'hex');
    const ext = [{ name: EXT_QUIC_TLS_SPKI, value: spki }];
    ledger.register(await registerRequest(ledger, gw, ext));
    const e = decodeEntry(ledger.lookup(gw.did).entry);
    assert.deepEqual(e.type === 'register' && e.extensions, ext);
  } finally {
    cleanup();
  }
});

test('a batch is one transaction in which each registration succeeds or fails alone', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    const ids = ['a', 'b', 'c', 'd'].map((l) => identity(l));
    const reqs = await Promise.all(ids.map((k) => registerRequest(ledger, k)));
    const dup = await registerRequest(ledger, identity('a'));
    const badPop = { ...reqs[2]!, proofOfPossession: reqs[0]!.proofOfPossession };
    const out = ledger.registerBatch([reqs[0]!, reqs[1]!, dup, badPop, reqs[3]!]);
    assert.deepEqual(
      out.map((o) => o.ok),
      [true, true, false, false, true],
    );
    assert.deepEqual(
      out.map((o) => (o.ok ? o.result.leafIndex : (o.error as { code?: string }).code)),
      [0, 1, 'ERR_DID_EXISTS', 'ERR_LEDGER_SIGNATURE', 2],
    );
    // A failed item left nothing behind: its stamp was not spent, so it can be retried.
    ledger.register(reqs[2]!);
    assert.equal(ledger.store.size(), 4);
  } finally {
    cleanup();
  }
});

test('registrations are rate limited per source', async () => {
  let now = 1_000_000;
  const limiter = new TokenBucketLimiter({ capacity: 2, refillPerSecond: 1, clock: () => now });
  const { ledger, cleanup } = openLedger({ limiter });
  try {
    const reqs = await Promise.all(
      ['p', 'q', 'r'].map((l) => registerRequest(ledger, identity(l))),
    );
    ledger.register(reqs[0]!, '192.0.2.1');
    ledger.register(reqs[1]!, '192.0.2.1');
    assert.throws(
      () => ledger.register(reqs[2]!, '192.0.2.1'),
      (err: unknown) => {
        assert.equal((err as { code: string }).code, 'ERR_RATE_LIMITED');
        assert.equal((err as { retryAfterMs: number }).retryAfterMs, 1000);
        return true;
      },
    );
    now += 1000;
    ledger.register(reqs[2]!, '192.0.2.1');
  } finally {
    cleanup();
  }
  const l = new TokenBucketLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 2, clock: () => 0 });
  assert.equal(l.take('a').allowed, true);
  assert.equal(l.take('b').allowed, true);
  assert.equal(l.take('c').allowed, true);
  assert.equal(l.size, 2);
});

test('a log database refuses another signing key, and survives a reopen', async () => {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'ledger.sqlite');
  try {
    const l1 = new IdentityLedger({ path, signer: logSigner(), domains: [DOMAIN] });
    l1.setPolicy(DOMAIN, { policy: 'open-pow', bits: 6 });
    l1.register(await registerRequest(l1, identity('g')));
    const cp1 = l1.checkpoint();
    l1.close();
    assert.throws(
      () => new IdentityLedger({ path, signer: logSigner(DOMAIN, 8), domains: [DOMAIN] }),
      hasCode('ERR_LOG_KEY_MISMATCH'),
    );
    assert.throws(
      () =>
        new IdentityLedger({
          path,
          signer: logSigner(DOMAIN),
          domains: [DOMAIN],
          origin: 'x.example/log',
        }),
      hasCode('ERR_LOG_KEY'),
    );
    const l2 = new IdentityLedger({ path, signer: logSigner(), domains: [DOMAIN] });
    assert.equal(l2.checkpoint().note, cp1.note); // same size, same root, same signature
    assert.equal(l2.policy(DOMAIN).bits, 6);
    l2.close();
  } finally {
    cleanup();
  }
});

test("current() answers from memory; its own writes are seen at once, another connection's within 50 ms", async () => {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'ledger.sqlite');
  let now = Date.now();
  const own = new IdentityLedger({
    path,
    signer: logSigner(),
    domains: [DOMAIN],
    clock: () => now,
  });
  const other = new IdentityLedger({ path, signer: logSigner(), domains: [DOMAIN] });
  try {
    own.setPolicy(DOMAIN, { policy: 'open-pow', bits: 6 });
    const alice = identity('alice');
    const bob = identity('bob');
    assert.equal(own.current(alice.did).state, 'unknown');
    // Written through this ledger.
    own.register(await registerRequest(own, alice));
    const first = own.current(alice.did);
    assert.equal(first.state, 'current');
    assert.equal(own.current(alice.did), first, 'unchanged database: the same answer object');
    // Written through another connection to the same file (a CLI command, another node): seen
    // once OTHER_WRITERS_RECHECK_MS has passed since the last look.
    assert.equal(own.current(bob.did).state, 'unknown');
    other.register(await registerRequest(other, bob));
    now += OTHER_WRITERS_RECHECK_MS - 1;
    assert.equal(own.current(bob.did).state, 'unknown', 'within the interval: the kept answer');
    now += 1;
    assert.equal(own.current(bob.did).state, 'current');
    other.adminRevoke(alice.did, 'root', 'account closed');
    now += OTHER_WRITERS_RECHECK_MS;
    assert.deepEqual(own.current(alice.did), { state: 'revoked' });
    // A clock set back does not keep the answers for longer.
    const carol = identity('carol');
    assert.equal(own.current(carol.did).state, 'unknown');
    other.register(await registerRequest(other, carol));
    now -= 60_000;
    assert.equal(own.current(carol.did).state, 'current');
    // This ledger's own write: at once, with the clock standing still.

    own.adminRevoke(bob.did, 'root', 'account closed');
    assert.deepEqual(own.current(bob.did), { state: 'revoked' });
  } finally {
    own.close();
    other.close();
    cleanup();
  }
});

test('the store: roots and proofs match an in-memory tree, tampering is found, reads are O(log n)', () => {
  const { dir, cleanup } = tempDir();
  try {
    const store = new LogStore(join(dir, 'log.sqlite'));
    const mem = new MemoryTree();
    let n = 0;
    for (const batch of [1, 2, 5, 100, 1000, 3]) {
      const leaves = Array.from({ length: batch }, () => Buffer.from(`leaf ${n++}`));
      store.append(leaves);
      for (const l of leaves) mem.append(leafHash(l));
    }
    assert.equal(store.size(), mem.size);
    for (const size of [1, 2, 3, 7, 8, 9, 100, 555, 1024, 1111]) {
      assert.deepEqual(store.root(size), mem.root(size));
      assert.deepEqual(store.inclusionProof(size - 1, 1111), inclusionProof(mem, size - 1, 1111));
      assert.deepEqual(store.consistencyProof(size, 1111), consistencyProof(mem, size, 1111));
    }
    assert.deepEqual(store.verifyFromScratch().root, mem.root());
    // Reads: a root and a proof at this size touch at most ~2 log2(n) nodes.
    let reads = 0;
    const counting: NodeSource = { node: (l, i) => (reads++, store.node(l, i)) };
    rootAt(counting, 1111);
    assert.ok(reads <= 2 * Math.ceil(Math.log2(1111)), `root read ${reads} nodes`);
    store.db.prepare('UPDATE leaves SET data = ? WHERE idx = 500').run(Buffer.from('forged'));
    assert.throws(() => store.verifyFromScratch(), hasCode('ERR_LEDGER_CORRUPT'));
    store.close();
  } finally {
    cleanup();
  }
});

test('approvals expire, and spent stamps are pruned once their challenge has expired', async () => {
  let now = 1_000_000;
  const { ledger, cleanup } = openLedger({ clock: () => now, challengeTtlMs: 60_000 });
  try {
    const h = identity('h');
    const ref = ledger.approveRegistration(h.did, 'root', 1000);
    now += 1000;
    const pop = h.sign(registerTranscript(h.record, []), PURPOSE_REGISTER);
    assert.throws(
      () => ledger.register({ record: h.record, proofOfPossession: pop, approval: ref }),
      hasCode('ERR_APPROVAL_INVALID'),
    );
    ledger.register(await registerRequest(ledger, identity('i')));
    const spent = () =>
      (ledger.store.db.prepare('SELECT count(*) AS n FROM spent_stamps').get() as { n: number }).n;
    assert.equal(spent(), 1);
    const late = await registerRequest(ledger, identity('j'));
    now += 60_000; // the first stamp's challenge has expired, and so has this one's
    assert.throws(() => ledger.register(late), hasCode('ERR_STAMP_EXPIRED'));
    ledger.register(await registerRequest(ledger, identity('k')));
    assert.equal(spent(), 1); // the expired entry was pruned, the new one added
  } finally {
    cleanup();
  }
});
