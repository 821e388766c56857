// Client-side verification of ledger answers: pin on first use, advance with consistency proofs,
// and refuse a changed key, a forged or altered answer, a split view, a shrinking tree and a
// forked log. Also the persisted client state.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { IdentityLedger, type LookupAnswer } from '../../src/ledger/ledger.js';
import { ClientState, observeCheckpoint, verifyAnswer } from '../../src/ledger/verify.js';
import { AfterSmtpError } from '../../src/errors.js';
import {
  DOMAIN,
  TEST_BITS,
  flipBit,
  hasCode,
  identity,
  logSigner,
  openLedger,
  registerRequest,
  tempDir,
} from './helpers.js';

const VKEY = logSigner().verifierKey;

async function populate(ledger: IdentityLedger, names: string[]): Promise<void> {
  for (const n of names) ledger.register(await registerRequest(ledger, identity(n)));
}

test('first use pins the DNS key; later answers must be consistent with what was seen', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    await populate(ledger, ['a', 'b', 'c']);
    const did = `did:aftersmtp:${DOMAIN}:b`;
    const state = new ClientState();
    assert.throws(() => verifyAnswer(did, ledger.lookup(did), state), hasCode('ERR_LEDGER_NO_PIN'));
    const v1 = verifyAnswer(did, ledger.lookup(did), state, { dnsVerifierKey: VKEY });
    assert.equal(v1.previousSize, undefined);
    assert.equal(v1.checkpoint.size, 3);
    assert.equal(v1.record?.did, did);
    await populate(ledger, ['d', 'e']);
    // Without a consistency proof from size 3 the bigger tree is not accepted.
    assert.throws(
      () => verifyAnswer(did, ledger.lookup(did), state),
      hasCode('ERR_LEDGER_CONSISTENCY'),
    );
    const v2 = verifyAnswer(did, ledger.lookup(did, 3), state);
    assert.equal(v2.previousSize, 3);
    assert.equal(state.get(DOMAIN)?.size, 5);
    // A different key in DNS later is refused (no silent re-pinning).
    const other = logSigner(DOMAIN, 9).verifierKey;
    assert.throws(
      () => verifyAnswer(did, ledger.lookup(did, 5), state, { dnsVerifierKey: other }),
      hasCode('ERR_LEDGER_KEY_CHANGED'),
    );
    // An answer about another DID does not pass for this one.
    const a = ledger.lookup(`did:aftersmtp:${DOMAIN}:a`, 5);
    assert.throws(() => verifyAnswer(did, a, state), hasCode('ERR_LEDGER_WRONG_DID'));
    // A revocation verifies and says so.
    ledger.adminRevoke(did, 'root', 'left the company');
    const v3 = verifyAnswer(did, ledger.lookup(did, 5), state);
    assert.equal(v3.revoked, true);
    assert.equal(v3.record, undefined);
  } finally {
    cleanup();
  }
});

test('a split view, a shrinking tree and a fork are detected', async () => {
  // Two logs with the same key and origin: an equivocating operator.
  const honest = openLedger();
  const evil = openLedger();
  try {
    await populate(honest.ledger, ['a', 'b', 'c', 'd']);
    await populate(evil.ledger, ['a', 'b', 'x', 'y']);
    const did = `did:aftersmtp:${DOMAIN}:a`;
    const state = new ClientState();
    verifyAnswer(did, honest.ledger.lookup(did), state, { dnsVerifierKey: VKEY });
    // Same size, different root: split view.
    assert.throws(
      () => verifyAnswer(did, evil.ledger.lookup(did, 4), state),
      hasCode('ERR_LEDGER_SPLIT_VIEW'),
    );
    assert.throws(
      () => observeCheckpoint(DOMAIN, evil.ledger.checkpoint().note, undefined, state),
      hasCode('ERR_LEDGER_SPLIT_VIEW'),
    );
    // The forked log grows: its consistency proof from 4 cannot match the honest root at 4.
    await populate(evil.ledger, ['z']);
    assert.throws(
      () => verifyAnswer(did, evil.ledger.lookup(did, 4), state),
      hasCode('ERR_LEDGER_CONSISTENCY'),
    );
    // A smaller tree than the newest one seen: rollback.
    const small = openLedger();
    try {
      await populate(small.ledger, ['a', 'b']);
      assert.throws(
        () => verifyAnswer(did, small.ledger.lookup(did), state),
        hasCode('ERR_LEDGER_SHRANK'),
      );
    } finally {
      small.cleanup();
    }
    // Nothing above moved the state.
    assert.equal(state.get(DOMAIN)?.size, 4);
    assert.deepEqual(state.get(DOMAIN)?.root, honest.ledger.checkpoint().root);
  } finally {
    honest.cleanup();
    evil.cleanup();
  }
});

test('a checkpoint signed by another key or for another log is refused', async () => {
  const { ledger, cleanup } = openLedger();
  const { dir, cleanup: rm } = tempDir();
  const otherKey = new IdentityLedger({
    path: join(dir, 'x.sqlite'),
    signer: logSigner(DOMAIN, 9),
    domains: [DOMAIN],
    policies: new Map([[DOMAIN, { policy: 'open-pow', bits: TEST_BITS }]]),
  });
  try {
    await populate(ledger, ['a']);
    await populate(otherKey, ['a']);
    const did = `did:aftersmtp:${DOMAIN}:a`;
    const state = new ClientState();
    assert.throws(
      () => verifyAnswer(did, otherKey.lookup(did), state, { dnsVerifierKey: VKEY }),
      hasCode('ERR_NOTE_SIGNATURE'),
    );
    assert.equal(state.get(DOMAIN), undefined);
  } finally {
    otherKey.close();
    rm();
    cleanup();
  }
});

test('property: any single-bit change to an answer (entry, proofs, checkpoint) is rejected', async () => {
  const { ledger, cleanup } = openLedger();
  try {
    await populate(ledger, ['a', 'b', 'c', 'd', 'e']);
    const did = `did:aftersmtp:${DOMAIN}:c`;
    const base = new ClientState();
    verifyAnswer(did, ledger.lookup(did), base, { dnsVerifierKey: VKEY });
    await populate(ledger, ['f', 'g']);
    const answer = ledger.lookup(did, 5);
    const fresh = (): ClientState => {
      const s = new ClientState();
      s.set(DOMAIN, base.get(DOMAIN)!);
      return s;
    };
    verifyAnswer(did, answer, fresh());
    const parts = ['entry', 'inclusion', 'consistency', 'checkpoint'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...parts), fc.nat(), fc.nat(), (part, pick, bit) => {
        let bad: LookupAnswer;
        if (part === 'entry') bad = { ...answer, entry: flipBit(answer.entry, bit) };
        else if (part === 'inclusion') {
          const p: Buffer[] = answer.inclusionProof.map((h) => Buffer.from(h));
          p[pick % p.length] = flipBit(p[pick % p.length] as Buffer, bit);
          bad = { ...answer, inclusionProof: p };
        } else if (part === 'consistency') {
          const c: Buffer[] = answer.consistency!.proof.map((h) => Buffer.from(h));
          c[pick % c.length] = flipBit(c[pick % c.length] as Buffer, bit);
          bad = { ...answer, consistency: { fromSize: 5, proof: c } };
        } else {
          const note = Buffer.from(answer.checkpoint);
          const flipped = flipBit(note, bit);
          bad = { ...answer, checkpoint: new TextDecoder().decode(flipped) };
        }
        assert.throws(
          () => verifyAnswer(did, bad, fresh()),
          (err: unknown) => err instanceof AfterSmtpError,
        );
      }),
      { numRuns: 400 },
    );
  } finally {
    cleanup();
  }
});

test('the client state persists atomically and is read strictly', async () => {
  const { dir, cleanup } = tempDir();
  const { ledger, cleanup: close } = openLedger();
  try {
    await populate(ledger, ['a']);
    const path = join(dir, 'resolver.json');
    const s1 = await ClientState.load(path);
    verifyAnswer(`did:aftersmtp:${DOMAIN}:a`, ledger.lookup(`did:aftersmtp:${DOMAIN}:a`), s1, {
      dnsVerifierKey: VKEY,
    });
    await s1.save();
    const s2 = await ClientState.load(path);
    assert.deepEqual(s2.toJSON(), s1.toJSON());
    assert.equal(s2.get(DOMAIN)?.size, 1);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      path,
      '{"format":"aftersmtp-ledger-client/v1","logs":{"x.example":{"verifierKey":"nope"}}}',
    );
    await assert.rejects(ClientState.load(path), hasCode('ERR_NOTE_KEY'));
    await writeFile(path, 'not json');
    await assert.rejects(ClientState.load(path), hasCode('ERR_LEDGER_STATE'));
  } finally {
    close();
    cleanup();
  }
});
