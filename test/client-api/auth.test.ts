// Client tokens against the ledger as it stands: a token stops working when its DID's keys are
// rotated after it was issued, or when the DID is revoked, or when it expires, even once its
// signature was checked and remembered; a login with the new key works.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Authenticator,
  ClientApiRefusal,
  PURPOSE_AUTH,
  authTranscript,
} from '../../src/amp/client-api/index.js';
import { SecretKeySet } from '../../src/identity/index.js';
import {
  PURPOSE_REVOKE,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  revokeTranscript,
  rotateTranscript,
} from '../../src/ledger/entries.js';
import { DOMAIN, identity, openLedger, registerRequest } from '../ledger/helpers.js';

test('a token follows its DID: stale after a key rotation, refused after revocation', async () => {
  let now = Date.now();
  const clock = () => now;
  const { ledger, cleanup } = openLedger({ clock });
  try {
    const auth = new Authenticator({
      gateway: SecretKeySet.generate(`did:aftersmtp:${DOMAIN}:gateway`, 'classic-v1'),
      ledger,
      domain: DOMAIN,
      tokenTtlMs: 900_000,
      now: clock,
    });
    const login = (k: SecretKeySet) => {
      const c = auth.requestChallenge(k.did);
      const t = authTranscript(c.challenge, k.did, c.gateway, c.gatewayKeyId, c.expiresAt);
      return auth.authenticate(k.did, c.challenge, k.sign(t, PURPOSE_AUTH)).token;
    };
    const refusedWith = (token: string, code: string) =>
      assert.throws(
        () => auth.verifyToken(token),
        (err: unknown) => err instanceof ClientApiRefusal && err.code === code,
      );

    const alice = identity('alice');
    ledger.register(await registerRequest(ledger, alice));
    now += 1000;
    const first = login(alice);
    assert.equal(auth.verifyToken(first).did, alice.did);

    // The key is replaced (say, a lost laptop): tokens issued before stop working.
    now += 1000;
    const alice2 = identity('alice');
    const prev = ledger.lookup(alice.did).leafIndex;
    const t = rotateTranscript(alice.did, prev, alice.keyId, alice2.record, []);
    ledger.rotate({
      did: alice.did,
      prevLeaf: prev,
      prevKeyId: alice.keyId,
      record: alice2.record,
      previousKeySignature: alice.sign(t, PURPOSE_ROTATE),
      proofOfPossession: alice2.sign(t, PURPOSE_ROTATE_POP),
    });
    refusedWith(first, 'ERR_TOKEN_STALE');
    now += 1000;
    const second = login(alice2);
    assert.equal(auth.verifyToken(second).did, alice.did);

    // A token checked before (its signature and claims remembered) still expires on time.
    const later = login(alice2);
    assert.equal(auth.verifyToken(later).did, alice.did);
    const saved = now;
    now += 900_000;
    refusedWith(later, 'ERR_TOKEN_EXPIRED');
    now = saved;
    assert.equal(auth.verifyToken(later).did, alice.did);

    // Revoked: even a token issued after the last rotation is refused.
    now += 1000;
    const leaf = ledger.lookup(alice.did).leafIndex;
    ledger.revoke({
      did: alice.did,
      prevLeaf: leaf,
      keyId: alice2.keyId,
      reason: 'left the company',
      signature: alice2.sign(
        revokeTranscript(alice.did, leaf, alice2.keyId, 'left the company'),
        PURPOSE_REVOKE,
      ),
    });
    refusedWith(second, 'ERR_DID_REVOKED');
  } finally {
    cleanup();
  }
});
