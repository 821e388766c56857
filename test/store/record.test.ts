// The store's record decoder and sealed frames under hostile bytes (fast-check), and the keyring
// file: generated 0600 on first start, refused when readable by others, rotated and retired.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StoreCorruptError, StoreKeyError } from '../../src/store/errors.js';
import {
  generateKey,
  Keyring,
  loadKeyring,
  parseKeyList,
  retireKey,
  rotateKeyFile,
} from '../../src/store/keys.js';
import {
  decodeEnvelopeRecord,
  decodeReceiptRecord,
  encodeEnvelopeRecord,
  openFrame,
  RecipientHashes,
  recipientHash,
  sealFrame,
} from '../../src/store/record.js';

const typed = (err: unknown): boolean =>
  err instanceof StoreCorruptError || err instanceof StoreKeyError;

describe('store record decoder (property)', () => {
  it('decodes any bytes to a valid record or a StoreCorruptError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        for (const decode of [decodeEnvelopeRecord, decodeReceiptRecord]) {
          try {
            decode(bytes);
          } catch (err) {
            if (!(err instanceof StoreCorruptError)) throw err;
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every valid record through seal and open', () => {
    const ring = new Keyring([generateKey()]);
    fc.assert(
      fc.property(
        fc.record({
          local: fc.stringMatching(/^[a-z0-9]{1,20}$/),
          messageId: fc.stringMatching(/^[!-~]{1,128}$/),
          receivedAt: fc.nat(),
          expiresAt: fc.nat(),
          hash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          body: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
        }),
        (r) => {
          const input = {
            recipient: `did:aftersmtp:a.example:${r.local}`,
            sender: 'did:aftersmtp:b.example:s',
            messageId: r.messageId,
            receivedAt: r.receivedAt,
            expiresAt: r.expiresAt,
            ciphertextHash: Buffer.from(r.hash),
            envelope: Buffer.from(r.body),
          };
          const id = Buffer.from('slot');
          const frame = sealFrame(
            ring.write,
            'envelope',
            id,
            Buffer.from('hdr'),
            encodeEnvelopeRecord(input),
          );
          const opened = openFrame(ring, 'envelope', id, frame);
          assert.deepEqual(decodeEnvelopeRecord(opened.plaintext), input);
          assert.equal(opened.header.toString(), 'hdr');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects every mutated, truncated or moved frame with a typed error', () => {
    const ring = new Keyring([generateKey()]);
    const frame = sealFrame(
      ring.write,
      'receipt',
      Buffer.from('id-1'),
      Buffer.alloc(8),
      Buffer.from('plaintext'),
    );
    assert.throws(() => openFrame(ring, 'receipt', Buffer.from('id-2'), frame), StoreCorruptError);
    assert.throws(() => openFrame(ring, 'envelope', Buffer.from('id-1'), frame), StoreCorruptError);
    assert.throws(
      () => openFrame(new Keyring([generateKey()]), 'receipt', Buffer.from('id-1'), frame),
      StoreKeyError,
    );
    fc.assert(
      fc.property(
        fc.nat(frame.length - 1),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(frame.length),
        (at, x, cut) => {
          const bad = Buffer.from(frame);
          bad[at] = (bad[at] as number) ^ x;
          assert.throws(() => openFrame(ring, 'receipt', Buffer.from('id-1'), bad), typed);
          if (cut < frame.length) {
            assert.throws(
              () => openFrame(ring, 'receipt', Buffer.from('id-1'), frame.subarray(0, cut)),
              typed,
            );
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('store keyring', () => {
  it('generates the key file with mode 0600 on first start and reads the same key after', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-keys-'));
    try {
      const a = loadKeyring({ dataDir: dir });
      assert.equal(statSync(join(dir, 'store.key')).mode & 0o777, 0o600);
      const b = loadKeyring({ dataDir: dir });
      assert.equal(a.write.id, b.write.id);
      chmodSync(join(dir, 'store.key'), 0o644);
      assert.throws(() => loadKeyring({ dataDir: dir }), StoreKeyError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rotates (new write key first, old kept) and retires a key from the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-keys-'));
    const file = join(dir, 'ring');
    try {
      const first = loadKeyring({ dataDir: dir, keyFile: file }).write.id;
      const second = rotateKeyFile(file);
      const ring = loadKeyring({ dataDir: dir, keyFile: file });
      assert.deepEqual(ring.ids(), [second, first]);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.throws(() => retireKey(file, second), StoreKeyError);
      retireKey(file, first);
      assert.deepEqual(loadKeyring({ dataDir: dir, keyFile: file }).ids(), [second]);
      assert.match(readFileSync(file, 'utf8'), /write key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes keys from AFTERSMTP_STORE_KEY and refuses malformed ones', () => {
    const k1 = generateKey();
    const k2 = generateKey();
    const ring = parseKeyList(`${k1.key.toString('base64')},${k2.key.toString('base64')}`);
    assert.deepEqual(ring.ids(), [k1.id, k2.id]);
    assert.equal(
      loadKeyring({ dataDir: '/nonexistent', keyEnv: k1.key.toString('base64') }).write.id,
      k1.id,
    );
    for (const bad of [
      '',
      'abc',
      Buffer.alloc(16).toString('base64'),
      `${k1.key.toString('base64')},`,
    ]) {
      assert.throws(() => parseKeyList(bad), StoreKeyError);
    }
    assert.throws(
      () => parseKeyList(`${k1.key.toString('base64')},${k1.key.toString('base64')}`),
      StoreKeyError,
    );
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-keys-'));
    try {
      writeFileSync(join(dir, 'store.key'), '# only a comment\n', { mode: 0o600 });
      assert.throws(() => loadKeyring({ dataDir: dir }), StoreKeyError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('recipient hashes kept in memory', () => {
  it('are the keyed hash of each recipient under the key asked with, as made anew', () => {
    const keyA = Buffer.alloc(32, 1);
    const keyB = Buffer.alloc(32, 2);
    const hashes = new RecipientHashes();
    for (let round = 0; round < 2; round++) {
      for (const r of ['did:aftersmtp:a.test:alice', 'did:aftersmtp:a.test:bob']) {
        assert.deepEqual(hashes.of(keyA, r), recipientHash(keyA, r));
        assert.notDeepEqual(hashes.of(keyA, r), recipientHash(keyB, r));
      }
    }
    assert.notDeepEqual(
      hashes.of(keyA, 'did:aftersmtp:a.test:alice'),
      hashes.of(keyA, 'did:aftersmtp:a.test:bob'),
    );
  });

  it('forget the hashes of the last key when asked with another', () => {
    const keyA = Buffer.alloc(32, 1);
    const keyB = Buffer.alloc(32, 2);
    const hashes = new RecipientHashes();
    const r = 'did:aftersmtp:a.test:alice';
    assert.deepEqual(hashes.of(keyA, r), recipientHash(keyA, r));
    assert.deepEqual(hashes.of(keyB, r), recipientHash(keyB, r));
    assert.deepEqual(hashes.of(keyA, r), recipientHash(keyA, r));
  });

  it('stay right past the number of recipients kept', () => {
    const key = Buffer.alloc(32, 3);
    const hashes = new RecipientHashes();
    const names = Array.from({ length: 5_000 }, (_, i) => `did:aftersmtp:a.test:u${i}`);
    for (const n of names) hashes.of(key, n);
    for (const n of [names[0], names[4_999]] as string[]) {
      assert.deepEqual(hashes.of(key, n), recipientHash(key, n));
    }
  });
});
