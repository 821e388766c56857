// The mailbox writer files a copy where its signed spam part says (the path of a copy the
// delivery worker takes from the queue), on both store backends: LMDB and PostgreSQL (the real
// server, scripts/services/postgres.sh). A copy without a spam part, or whose part says ham or
// unavailable, goes to the inbox; an explicit folder wins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { SpamPart } from '../../src/envelope/codec.js';
import { MailboxWriter, folderOf } from '../../src/mailbox/writer.js';
import { commitToMailboxes } from '../../src/pipeline/commit.js';
import { messageFacts, sealCopies, type SealedCopy } from '../../src/pipeline/transform.js';
import { Keyring, generateKey } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { PostgresMailboxStore } from '../../src/store/postgres.js';
import { GatewaySigner } from '../../src/envelope/gateway.js';
import { AuthorSigner } from '../../src/envelope/envelope.js';
import type { MailboxStore } from '../../src/store/types.js';
import { identity } from '../ledger/helpers.js';
import { freshDatabase, postgresService } from '../store/services.js';

const gateway = identity('gateway');
const alice = identity('alice');

function part(verdict: SpamPart['verdict']): SpamPart {
  return {
    verdict,
    score: verdict === 'unavailable' ? '' : '7.5',
    junkScore: '6',
    rejectScore: '15',
    scans: [{ scanner: 'rspamd', result: 'ok', score: '7.5', symbols: 'A,B' }],
    scannedAt: 1_700_000_000_000,
  };
}

async function copy(spam?: SpamPart): Promise<SealedCopy> {
  const message = Buffer.from('From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n');
  const [c] = await sealCopies(
    [{ kind: 'did', did: alice.did, record: alice.record, local: true }],
    message,
    await messageFacts(message),
    {
      entrance: 'smtp',
      mailFrom: 'a@b.test',
      headerFrom: 'a@b.test',
      clientAddress: '192.0.2.1',
      helo: 'b.test',
      login: '',
      authenticationResults: 'mx; none',
      spf: 'none',
      dkim: 'none',
      dmarc: 'none',
      arc: 'none',
      receivedAt: Date.now(),
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

async function fileAll(store: MailboxStore): Promise<void> {
  const writer = new MailboxWriter({ store, gatewayKeys: gateway });
  const cases: [SpamPart | undefined, string, 'inbox' | 'junk' | undefined][] = [
    [part('junk'), 'junk', undefined],
    [part('ham'), 'inbox', undefined],
    [part('unavailable'), 'inbox', undefined],
    [undefined, 'inbox', undefined],
    [part('ham'), 'junk', 'junk'],
  ];
  const ids: string[] = [];
  for (const [spam, , folder] of cases) {
    const c = await copy(spam);
    ids.push(c.envelope.messageId.toString('hex'));
    await writer.deliver({
      recipient: alice.did,
      messageId: c.envelope.messageId,
      sender: c.envelope.sender,
      receivedAt: Date.now(),
      expiresAt: c.envelope.expiresAt,
      ciphertextHash: randomBytes(32),
      envelope: c.bytes,
      ...(folder !== undefined ? { folder } : {}),
    });
  }
  const all = (await store.list(alice.did)).envelopes;
  assert.deepEqual(
    all.map((e) => e.folder ?? 'inbox'),
    cases.map(([, want]) => want),
  );
  const junk = (await store.list(alice.did, { folder: 'junk' })).envelopes.map((e) => e.messageId);
  assert.deepEqual(junk, [ids[0], ids[4]]);
}

describe('the mailbox writer files junk from the signed spam part', () => {
  test('folderOf: junk only for a decodable envelope whose part says junk', async () => {
    assert.equal(folderOf((await copy(part('junk'))).bytes), 'junk');
    assert.equal(folderOf((await copy(part('ham'))).bytes), 'inbox');
    assert.equal(folderOf((await copy()).bytes), 'inbox');
    assert.equal(folderOf(Buffer.from('not an envelope')), 'inbox');
  });

  test('relayed AMP: commitToMailboxes files the recipients the sender rule named in Junk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-spam-'));
    const store = await LmdbMailboxStore.open({ path: dir, keyring: new Keyring([generateKey()]) });
    try {
      const bob = identity('bob');
      const c = await copy();
      const results = await commitToMailboxes(
        new MailboxWriter({ store, gatewayKeys: gateway }),
        c.envelope,
        c.bytes,
        [alice.did, bob.did],
        Date.now(),
        new Set([bob.did]),
      );
      assert.ok(results.every((r) => r.receipt !== undefined));
      assert.equal((await store.list(alice.did)).envelopes[0]?.folder ?? 'inbox', 'inbox');
      assert.equal((await store.list(bob.did, { folder: 'junk' })).envelopes.length, 1);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('LMDB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-spam-'));
    const store = await LmdbMailboxStore.open({ path: dir, keyring: new Keyring([generateKey()]) });
    try {
      await fileAll(store);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PostgreSQL', async (t) => {
    const service = await postgresService();
    if (service.skip !== undefined) return t.skip(service.skip);
    const db = await freshDatabase(service.url);
    const store = await PostgresMailboxStore.open({
      url: db.url,
      keyring: new Keyring([generateKey()]),
      poolSize: 2,
    });
    try {
      await fileAll(store);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
