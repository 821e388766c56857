// Expiry without a trusted local clock (docs/EXPIRY.md): the trusted clock never goes back, time
// statements verify only for their gateway and nonce, an ephemeral envelope opens only with its
// key share, and the client's opener refuses an expired message with the local clock moved back
// (clocks injected; nothing sleeps).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  gatewayClock,
  loadTrustedTime,
  saveTrustedTime,
} from '../../src/amp/client-api/gateway.js';
import type { Attestation } from '../../src/amp/client-api/server.js';
import { tempDir } from '../helpers/cli.js';
import { ExpiryOpener } from '../../src/amp/client-api/opener.js';
import type { IdentityLedger } from '../../src/ledger/index.js';
import { timeToMsg, type TimeStatementMsg } from '../../src/amp/client-api/messages.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
} from '../../src/envelope/index.js';
import { signTimeStatement, TrustedClock, verifyTimeStatement } from '../../src/envelope/time.js';
import fc from 'fast-check';
import { AfterSmtpError } from '../../src/errors.js';
import { SecretKeySet } from '../../src/identity/index.js';
import { BODY, HOUR, NOW, cast, flip } from './helpers.js';

const DAY = 86_400_000;
const T0 = 1_800_000_000_000;
const alice = SecretKeySet.generate('did:aftersmtp:example.org:alice', 'classic-v1', T0 - DAY);
const bob = SecretKeySet.generate('did:aftersmtp:example.org:bob', 'classic-v1', T0 - DAY);
const gateway = SecretKeySet.generate('did:aftersmtp:example.org:gateway', 'classic-v1', T0 - DAY);
const CHECKPOINT = 'example.org/aftersmtp-ledger/v1\n1\nAAAA\n\n— example.org x\n';

function sealEphemeral(expiresAt: number) {
  const [s] = sealMessage({
    author: alice,
    to: [bob.record],
    body: { subject: 'burn', contentType: 'text/plain', content: Buffer.from('after reading') },
    createdAt: T0,
    expiresAt,
    ephemeral: { holder: gateway.did },
  });
  return s!;
}

/** A gateway in a test: its own (trusted) clock, the shares it holds, GetTime and ReleaseKey. */
function fakeGateway(clock: () => number) {
  const shares = new Map<string, { share: Buffer; expiresAt: number }>();
  const statement = (nonce: Buffer): TimeStatementMsg =>
    timeToMsg(signTimeStatement({ time: clock(), nonce, checkpoint: CHECKPOINT }, gateway));
  return {
    shares,
    released: 0,
    async getTime(_token: string, req: { nonce: Buffer }) {
      return statement(req.nonce);
    },
    async releaseKey(_token: string, req: { message_id: string; nonce: Buffer }) {
      const s = shares.get(req.message_id);
      if (s === undefined || s.expiresAt <= clock()) throw new Error('ERR_KEY_RELEASE_REFUSED');
      this.released++;
      return { share: s.share, time: statement(req.nonce) };
    },
  };
}

describe('trusted clock', () => {
  it('never goes back when the local clock does, and rises to floors and observed times', () => {
    let local = T0;
    const signed: { floor?: number } = {};
    const c = new TrustedClock({ local: () => local, floors: [() => signed.floor], floorTtlMs: 0 });
    assert.equal(c.now(), T0);
    local = T0 - DAY;
    assert.equal(c.now(), T0, 'set back a day: still T0');
    signed.floor = T0 + 5000;
    assert.equal(c.now(), T0 + 5000, 'a signed floor ahead of the local clock');
    c.observe(T0 + 9000);
    assert.equal(c.now(), T0 + 9000);
    c.observe(T0);
    assert.equal(c.now(), T0 + 9000, 'an older statement lowers nothing');
  });
});

describe("the gateway's trusted clock", () => {
  it('starts from the newest ledger entry, anchor and saved time when its clock is set back', async () => {
    const ledger = {
      checkpoint: () => ({ size: 3 }),
      entryAt: (leaf: number) => ({ loggedAt: leaf === 2 ? T0 : 0 }),
    } as unknown as IdentityLedger;
    const back = () => T0 - DAY;
    assert.equal(gatewayClock(ledger, undefined, back).now(), T0, 'the newest entry');
    const anchored = () =>
      [{ note: '', size: 3, anchor: { blockTime: T0 + 60_000 } }] as unknown as Attestation[];
    assert.equal(gatewayClock(ledger, anchored, back).now(), T0 + 60_000, 'the anchor');
    const dir = tempDir('trusted-time');
    assert.equal(await loadTrustedTime(dir), undefined);
    await saveTrustedTime(dir, T0 + 120_000);
    const saved = await loadTrustedTime(dir);
    assert.equal(saved, T0 + 120_000);
    assert.equal(gatewayClock(ledger, anchored, back, saved).now(), T0 + 120_000, 'the saved');
  });
});

describe('time statements', () => {
  it('verify for their gateway and nonce only', () => {
    const nonce = randomBytes(16);
    const s = signTimeStatement({ time: T0, nonce, checkpoint: CHECKPOINT }, gateway);
    verifyTimeStatement(s, gateway.record, nonce);
    const code = (f: () => void): string => {
      try {
        f();
      } catch (err) {
        return (err as { code: string }).code;
      }
      return 'none';
    };
    assert.equal(
      code(() => verifyTimeStatement(s, gateway.record, randomBytes(16))),
      'ERR_TIME_NONCE',
    );
    assert.equal(
      code(() => verifyTimeStatement({ ...s, time: T0 + DAY }, gateway.record, nonce)),
      'ERR_TIME_SIGNATURE',
    );
    assert.equal(
      code(() => verifyTimeStatement({ ...s, checkpoint: 'other' }, gateway.record, nonce)),
      'ERR_TIME_SIGNATURE',
    );
    assert.equal(
      code(() => verifyTimeStatement(s, alice.record, nonce)),
      'ERR_TIME_SIGNATURE',
    );
  });
});

describe('ephemeral envelopes', () => {
  it('open with the share only; the share is bound to the header', () => {
    const s = sealEphemeral(T0 + DAY);
    assert.ok(s.share !== undefined && s.share.length === 32);
    const bytes = encodeEnvelope(s.envelope);
    assert.equal(decodeEnvelope(bytes).ephemeral?.holder, gateway.did);
    const opened = openEnvelope(bytes, bob, { now: T0 + 1, share: s.share });
    assert.equal(opened.content.toString(), 'after reading');
    assert.throws(() => openEnvelope(bytes, bob, { now: T0 + 1 }), {
      code: 'ERR_ENVELOPE_SHARE_MISSING',
    });
    assert.throws(() => openEnvelope(bytes, bob, { now: T0 + 1, share: randomBytes(32) }), {
      code: 'ERR_ENVELOPE_CONTENT',
    });
    // Without the ephemeral field the wrapped key alone does not open it either.
    const stripped = { ...s.envelope, ephemeral: undefined };
    assert.throws(() => openEnvelope(stripped, bob, { now: T0 + 1, share: s.share }), {
      code: 'ERR_ENVELOPE_CONTENT',
    });
    // Another holder named in the header: another key.
    const moved = { ...s.envelope, ephemeral: { holder: 'did:aftersmtp:example.org:mallory' } };
    assert.throws(() => openEnvelope(moved, bob, { now: T0 + 1, share: s.share }), {
      code: 'ERR_ENVELOPE_CONTENT',
    });
    // Expired: refused before any key is used, share or not.
    assert.throws(() => openEnvelope(bytes, bob, { now: T0 + DAY, share: s.share }), {
      code: 'ERR_ENVELOPE_EXPIRED',
    });
  });

  it('a message that is not ephemeral has no share and no field', () => {
    const [s] = sealMessage({
      author: alice,
      to: [bob.record],
      body: { subject: 's', contentType: 'text/plain', content: Buffer.from('x') },
      createdAt: T0,
    });
    assert.equal(s!.share, undefined);
    assert.equal(decodeEnvelope(encodeEnvelope(s!.envelope)).ephemeral, undefined);
  });
});

describe('the client opener judges expiry by the gateway signed time', () => {
  it('opens before the expiry; after it refuses with the local clock set back, and never asks for the share', async () => {
    const expiresAt = T0 + 60_000;
    const s = sealEphemeral(expiresAt);
    const bytes = encodeEnvelope(s.envelope);
    const id = s.envelope.messageId.toString('hex');
    let gatewayNow = T0 + 1000;
    const gw = fakeGateway(() => gatewayNow);
    gw.shares.set(id, { share: s.share!, expiresAt });
    let mono = 0;
    const opener = (local: () => number) =>
      new ExpiryOpener({
        client: gw,
        token: 't',
        gateway: async () => gateway.record,
        local,
        monotonic: () => mono,
      });

    // Before the expiry: the share is released and the message opens.
    const before = opener(() => T0 + 1000);
    await before.refresh();
    const opened = await before.open(bytes, id, [bob]);
    assert.equal(opened.content.toString(), 'after reading');
    assert.equal(gw.released, 1);

    // After it, with the recipient's clock set back a day: the gateway's signed time decides.
    gatewayNow = expiresAt + 1;
    const back = opener(() => T0 - DAY);
    assert.equal(back.now(), T0 - DAY, 'before a statement, only the local clock is known');
    await back.refresh();
    assert.equal(back.now(), expiresAt + 1);
    await assert.rejects(back.open(bytes, id, [bob]), { code: 'ERR_ENVELOPE_EXPIRED' });
    assert.equal(gw.released, 1, 'no share asked for an expired message');
    // The gateway refuses the share too, and the envelope does not open without it.
    await assert.rejects(back.share(id), /ERR_KEY_RELEASE_REFUSED/);
    assert.throws(() => openEnvelope(bytes, bob, { now: T0 }), {
      code: 'ERR_ENVELOPE_SHARE_MISSING',
    });

    // Time goes on from the statement by the monotonic clock, not the local one.
    mono = 5000;
    assert.equal(back.now(), expiresAt + 5001);
  });

  it('refuses a time statement of another key or for another nonce', async () => {
    const gw = fakeGateway(() => T0);
    const wrongKey = new ExpiryOpener({
      client: gw,
      token: 't',
      gateway: async () => alice.record,
      local: () => T0,
    });
    await assert.rejects(wrongKey.refresh(), { code: 'ERR_TIME_SIGNATURE' });
    const replay = new ExpiryOpener({
      client: {
        ...gw,
        getTime: async () => gw.getTime('t', { nonce: randomBytes(16) }),
      },
      token: 't',
      gateway: async () => gateway.record,
      local: () => T0,
    });
    await assert.rejects(replay.refresh(), { code: 'ERR_TIME_NONCE' });
  });
});

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`ephemeral envelope properties ${suite}`, () => {
    const c = cast(suite);
    const holder = 'did:aftersmtp:example.org:gateway';
    const [s] = sealMessage({
      author: c.alice,
      to: [c.bob.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
      ephemeral: { holder },
    });
    const valid = encodeEnvelope(s!.envelope);
    const share = s!.share!;

    it('a flipped bit or a wrong share: a typed error, or exactly the original message', () => {
      const want = openEnvelope(valid, c.bob, { now: NOW, share });
      fc.assert(
        fc.property(
          fc.nat({ max: valid.length * 8 - 1 }),
          fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 })),
          (bit, other) => {
            const bytes = flip(valid, bit >> 3, bit & 7);
            const key = other === null ? share : Buffer.from(other);
            let got;
            try {
              got = openEnvelope(bytes, c.bob, { now: NOW, share: key });
            } catch (err) {
              assert.ok(
                err instanceof AfterSmtpError && typeof err.code === 'string',
                `untyped error: ${String(err)}`,
              );
              return;
            }
            assert.deepEqual(got, want);
            assert.ok(key.equals(share), 'only the right share opens it');
          },
        ),
        { numRuns: suite === 'hybrid-v1' ? 100 : 300 },
      );
    });
  });
}
