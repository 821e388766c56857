// The spam policy's pieces without servers: the spam_policy map (parsing, normal form, lookup
// order), the envelope's spam part (bounds, transcript, old envelopes unchanged), mergeEffects for
// the shared Effects fields, the per-recipient rules (keptRecipients), and the AMP sender rule.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  decodeEnvelope,
  encodeEnvelope,
  spamDecimal,
  type SpamPart,
} from '../../src/envelope/codec.js';
import {
  GatewaySigner,
  addGatewaySignature,
  verifyGatewaySignature,
} from '../../src/envelope/gateway.js';
import { gatewayTranscript } from '../../src/envelope/transcript.js';
import { AuthorSigner } from '../../src/envelope/envelope.js';
import { mergeEffects } from '../../src/pipeline/admission.js';
import { ampSenderCheck, keptRecipients } from '../../src/pipeline/spam.js';
import { messageFacts, sealCopies } from '../../src/pipeline/transform.js';
import type { AmpSubmission, Refusal } from '../../src/pipeline/types.js';
import { MappingEngine, formatSpamPolicy, parseSpamPolicy } from '../../src/routing/index.js';
import { identity } from '../ledger/helpers.js';

const gateway = identity('gateway');
const alice = identity('alice');

describe('spam_policy', () => {
  test('values parse to one normal form; bad ones are refused with the reason', () => {
    assert.equal(
      formatSpamPolicy(parseSpamPolicy('unavailable=accept  REJECT=15 junk=6 scanners=both')),
      'scanners=rspamd,spamassassin junk=6 reject=15 unavailable=accept',
    );
    assert.equal(
      formatSpamPolicy(parseSpamPolicy('scanners=none')),
      'scanners=none unavailable=tempfail',
    );
    for (const [bad, why] of [
      ['junk=5', /no scanners=/],
      ['scanners=clamav', /unknown scanner/],
      ['scanners=rspamd junk=9 reject=5', /lower than/],
      ['scanners=rspamd junk=1e3', /not a number/],
      ['scanners=rspamd reject=5000', /outside/],
      ['scanners=rspamd unavailable=maybe', /accept or tempfail/],
      ['scanners=rspamd junk=1 junk=2', /twice/],
      ['scanners=rspamd colour=red', /unknown setting/],
    ] as const) {
      assert.throws(() => parseSpamPolicy(bad), why, bad);
    }
  });

  test('lookup order: user+ext@domain, user@domain, domain, .parent, *', () => {
    const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    try {
      maps.set('spam_policy', '*', 'scanners=rspamd junk=6 reject=15');
      maps.set('spam_policy', '.example.org', 'scanners=spamassassin junk=5');
      maps.set('spam_policy', 'example.org', 'scanners=both junk=4 reject=10');
      maps.set('spam_policy', 'ceo@example.org', 'scanners=none');
      assert.throws(() => maps.set('spam_policy', '/x/', 'scanners=none'), /regexp/);
      const snap = maps.snapshot();
      assert.deepEqual(snap.spamPolicy('ceo+x@example.org')?.scanners, []);
      assert.deepEqual(snap.spamPolicy('bob@Example.ORG')?.scanners, ['rspamd', 'spamassassin']);
      assert.deepEqual(snap.spamPolicy('bob@eu.example.org')?.scanners, ['spamassassin']);
      assert.equal(snap.spamPolicy('x@other.test')?.reject, 15);
      assert.deepEqual(maps.test('spam_policy', 'bob@eu.example.org').tried, [
        'bob@eu.example.org',
        'eu.example.org',
        '.example.org',
      ]);
    } finally {
      maps.close();
    }
  });
});

function part(over: Partial<SpamPart> = {}): SpamPart {
  return {
    verdict: 'junk',
    score: '7.25',
    junkScore: '6',
    rejectScore: '15',
    scans: [{ scanner: 'rspamd', result: 'ok', score: '7.25', symbols: 'A,B' }],
    scannedAt: 1_700_000_000_000,
    ...over,
  };
}

async function sealed(spam?: SpamPart) {
  const message = Buffer.from('Subject: s\r\n\r\nbody\r\n');
  const [c] = await sealCopies(
    [{ kind: 'did', did: alice.did, record: alice.record, local: true }],
    message,
    await messageFacts(message),
    {
      entrance: 'smtp',
      mailFrom: '',
      headerFrom: '',
      clientAddress: '192.0.2.1',
      helo: 'h',
      login: '',
      authenticationResults: 'mx; none',
      spf: 'none',
      dkim: 'none',
      dmarc: 'none',
      arc: 'none',
      receivedAt: 1_700_000_000_000,
    },
    randomBytes(16),
    {
      gatewayKeys: gateway,
      authorSigner: new AuthorSigner(gateway),
      gatewaySigner: new GatewaySigner(gateway),
      hostname: 'mx',
      maxEnvelopeBytes: 1 << 24,
      legacyTtlMs: 86_400_000,
    },
    () => (spam !== undefined ? { spam } : undefined),
  );
  assert.ok(c);
  return c;
}

describe("the envelope's spam part", () => {
  test('round-trips, is signed, and an envelope without one signs what it signed before', async () => {
    const withSpam = await sealed(part());
    const back = decodeEnvelope(withSpam.bytes);
    assert.deepEqual(back.spam, part());
    verifyGatewaySignature(back, gateway.record);
    assert.throws(() =>
      verifyGatewaySignature({ ...back, spam: part({ score: '1' }) }, gateway.record),
    );
    const { spam: _drop, ...stripped } = back;
    void _drop;
    assert.throws(() => verifyGatewaySignature(stripped, gateway.record), 'cannot be stripped');
    const plain = decodeEnvelope((await sealed()).bytes);
    assert.equal(plain.spam, undefined);
    verifyGatewaySignature(plain, gateway.record);
    // Without an origin, a spam part still cannot pass for one: an empty element holds its place.
    const { origin: _o, ...noOrigin } = plain;
    void _o;
    const a = gatewayTranscript({ ...noOrigin, gateway: gateway.record, spam: part() });
    const b = gatewayTranscript({ ...plain, gateway: gateway.record });
    assert.notDeepEqual(a, b);
    const resigned = addGatewaySignature({ ...noOrigin, spam: part() }, gateway);
    verifyGatewaySignature(decodeEnvelope(encodeEnvelope(resigned)), gateway.record);
  });

  test('bounds: verdict, decimals, scan count and sizes are checked by the decoder', async () => {
    const env = decodeEnvelope((await sealed(part())).bytes);
    const bad: Partial<SpamPart>[] = [
      { verdict: 'reject' as 'junk' },
      { score: '7.12345' },
      { score: '1e3' },
      { junkScore: '12345678' },
      { scans: Array.from({ length: 5 }, () => part().scans[0]!) },
      { scans: [{ scanner: 'x'.repeat(33), result: 'ok', score: '', symbols: '' }] },
      { scans: [{ scanner: 'rspamd', result: 'ok', score: '', symbols: 'S'.repeat(1025) }] },
    ];
    for (const over of bad) {
      assert.throws(
        () => encodeEnvelope({ ...env, spam: part(over) }),
        /spam/,
        JSON.stringify(over).slice(0, 60),
      );
    }
    assert.deepEqual(
      [spamDecimal(7.2500001), spamDecimal(-0.0001), spamDecimal(15)],
      ['7.25', '0', '15'],
    );
  });
});

describe('the shared Effects fields', () => {
  const r = (code: string, temporary: boolean): Refusal => ({ code, temporary, text: code });

  test('mergeEffects unites junk, keeps the first refusal per recipient and the first report', () => {
    const spam = { scans: [], recipients: [], scannedAt: 1 };
    const m = mergeEffects(
      {
        junk: ['a@x'],
        refusedRecipients: [{ recipient: 'b@x', refusal: r('ERR_SPAM', false) }],
        spam,
      },
      {
        junk: ['a@x', 'c@x'],
        refusedRecipients: [
          { recipient: 'b@x', refusal: r('ERR_OTHER', false) },
          { recipient: 'd@x', refusal: r('ERR_SPAM', false) },
        ],
        spam: { scans: [], recipients: [], scannedAt: 2 },
        headers: ['X: y'],
      },
    );
    assert.deepEqual(m.junk, ['a@x', 'c@x']);
    assert.deepEqual(
      m.refusedRecipients?.map((x) => [x.recipient, x.refusal.code]),
      [
        ['b@x', 'ERR_SPAM'],
        ['d@x', 'ERR_SPAM'],
      ],
    );
    assert.equal(m.spam, spam);
    assert.deepEqual(m.headers, ['X: y']);
    assert.deepEqual(mergeEffects({}, {}), {});
  });

  test('keptRecipients: some refused: the others; all refused: refused; any temporary: all deferred', () => {
    const plans = ['a@x', 'B@x', 'c@x'].map((address) => ({ address }));
    assert.equal(keptRecipients(plans, undefined), plans);
    assert.deepEqual(keptRecipients(plans, [{ recipient: 'b@x', refusal: r('ERR_SPAM', false) }]), [
      { address: 'a@x' },
      { address: 'c@x' },
    ]);
    assert.deepEqual(
      keptRecipients(
        plans,
        ['a@x', 'b@x', 'c@x'].map((recipient) => ({ recipient, refusal: r('ERR_SPAM', false) })),
      ),
      r('ERR_SPAM', false),
    );
    assert.deepEqual(
      keptRecipients(plans, [
        { recipient: 'a@x', refusal: r('ERR_SPAM', false) },
        { recipient: 'c@x', refusal: r('ERR_SPAM_SCANNER_UNAVAILABLE', true) },
      ]),
      r('ERR_SPAM_SCANNER_UNAVAILABLE', true),
    );
  });
});

describe('AMP: the sender rule', () => {
  const sender = identity('newbie', 'classic-v1', 'peer.test');
  const sub = (entrance: 'relay' | 'client-api'): AmpSubmission =>
    ({
      transaction: 't',
      client: { entrance, address: '192.0.2.9', port: 1, tls: true },
      envelope: {
        sender: sender.did,
        wraps: [{ recipient: alice.did }, { recipient: alice.did }],
      },
      bytes: new Uint8Array(0),
      receivedAt: 0,
    }) as unknown as AmpSubmission;
  const remote = {
    lookup: async () => ({ state: 'current' as const, record: sender.record, local: false }),
    gateway: async () => ({ state: 'failed' as const, code: 'X', temporary: true, text: 'x' }),
  };
  const ledger = { current: () => ({ state: 'unknown' as const }) };

  test('a young sender is filed in Junk, never refused; clients of ours are not judged', async () => {
    const check = ampSenderCheck({
      minSenderAgeMs: 86_400_000,
      maxPerHour: 0,
      ledger,
      remote,
      now: () => sender.record.createdAt + 3_600_000,
    });
    const v = await check({ kind: 'amp', submission: sub('relay') }, undefined as never, {});
    assert.equal(v.kind, 'continue');
    assert.deepEqual(v.kind === 'continue' ? v.effects?.junk : undefined, [alice.did]);
    const own = await check({ kind: 'amp', submission: sub('client-api') }, undefined as never, {});
    assert.deepEqual(own, { kind: 'continue' });
    const old = ampSenderCheck({
      minSenderAgeMs: 86_400_000,
      maxPerHour: 0,
      ledger,
      remote,
      now: () => sender.record.createdAt + 2 * 86_400_000,
    });
    assert.deepEqual(await old({ kind: 'amp', submission: sub('relay') }, undefined as never, {}), {
      kind: 'continue',
    });
  });

  test('a sender over its hourly rate is filed in Junk from the next envelope on', async () => {
    let t = 1_800_000_000_000;
    const check = ampSenderCheck({
      minSenderAgeMs: 0,
      maxPerHour: 2,
      ledger,
      remote,
      now: () => t,
    });
    const junk = async () => {
      const v = await check({ kind: 'amp', submission: sub('relay') }, undefined as never, {});
      return v.kind === 'continue' && v.effects?.junk !== undefined;
    };
    assert.deepEqual([await junk(), await junk(), await junk()], [false, false, true]);
    t += 3_600_001;
    assert.equal(await junk(), false, 'an hour later the count starts again');
  });
});
