// The transit log (PROTOCOL.md §12.7): commitments of signed receipts appended to an RFC 9162 log
// with signed checkpoints; proofs verify with the key the gateway publishes, and a tampered
// receipt, proof, checkpoint or key is refused with a typed error.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { signReceipt, type DeliveryReceipt } from '../../src/envelope/receipt.js';
import { NoteSigner, leafHash, parseCheckpoint, parseNote } from '../../src/ledger/index.js';
import {
  TransitError,
  TransitLog,
  TransitLogError,
  parseTransitLeaf,
  transitCommitment,
  transitLeaf,
  transitOrigin,
  verifyTransitProof,
} from '../../src/transit/index.js';
import { identity, tempDir } from '../ledger/helpers.js';

const DOMAIN = 'example.net';
const gateway = identity('gateway', 'classic-v1', DOMAIN);
const signer = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 9));

function receipt(n: number): DeliveryReceipt {
  return signReceipt(
    {
      messageId: Buffer.alloc(16, n),
      ciphertextHash: Buffer.alloc(32, n + 1),
      recipient: `did:aftersmtp:${DOMAIN}:bob${n}`,
      sender: 'did:aftersmtp:example.org:alice',
      deliveredAt: 1_700_000_000_000 + n,
    },
    gateway,
  );
}

function code(c: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TransitError, `expected a TransitError, got ${String(err)}`);
    assert.equal(err.code, c);
    return true;
  };
}

describe('transit log', () => {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'transit.sqlite');
  const log = new TransitLog(path, DOMAIN, signer);
  after(() => {
    log.close();
    cleanup();
  });
  const receipts = Array.from({ length: 7 }, (_, i) => receipt(i));

  it('commits to the receipt transcript only: a 33-byte leaf', () => {
    const c = transitCommitment(receipts[0] as DeliveryReceipt);
    assert.equal(c.length, 32);
    const leaf = transitLeaf(c);
    assert.equal(leaf.length, 33);
    assert.equal(leaf[0], 1);
    assert.deepEqual(parseTransitLeaf(leaf), c);
    assert.throws(() => parseTransitLeaf(Buffer.alloc(34)), { code: 'ERR_TRANSIT_LEAF' });
    // Any field changes it.
    const other = { ...(receipts[0] as DeliveryReceipt), deliveredAt: 1 };
    assert.notDeepEqual(transitCommitment(other), c);
  });

  it('appends once per commitment and proves every receipt', async () => {
    const first = receipts.map((r) => transitCommitment(r));
    assert.deepEqual(await log.append([...first, first[1] as Buffer]), [0, 1, 2, 3, 4, 5, 6, 1]);
    assert.deepEqual(await log.append([first[2] as Buffer]), [2]); // a redelivery
    assert.equal(log.size(), 7);
    for (const r of receipts) {
      const p = await log.prove(transitCommitment(r));
      assert.ok(p !== undefined);
      const cp = verifyTransitProof(r, p, signer.publicKey);
      assert.equal(cp.origin, `${DOMAIN}/aftersmtp-transit/v1`);
      assert.equal(cp.size, 7);
    }
    assert.equal(await log.prove(randomBytes(32)), undefined);
  });

  it('holds hashes only', () => {
    const cp = parseCheckpoint(parseNote(log.checkpoint().note).text);
    assert.equal(cp.size, 7);
    const c = transitCommitment(receipts[3] as DeliveryReceipt);
    assert.equal(log.indexOf(c), 3);
    assert.ok(leafHash(transitLeaf(c)).length === 32);
  });

  it('refuses a tampered receipt, proof, checkpoint or key with a typed error', async () => {
    const r = receipts[4] as DeliveryReceipt;
    const p = await log.prove(transitCommitment(r));
    assert.ok(p !== undefined);
    assert.throws(
      () =>
        verifyTransitProof(
          { ...r, recipient: `did:aftersmtp:${DOMAIN}:mallory` },
          p,
          signer.publicKey,
        ),
      code('ERR_TRANSIT_PROOF'),
    );
    const flipped = p.proof.map((h, i) => (i === 0 ? Buffer.from(h.map((b) => b ^ 1)) : h));
    assert.throws(
      () => verifyTransitProof(r, { ...p, proof: flipped }, signer.publicKey),
      code('ERR_TRANSIT_PROOF'),
    );
    assert.throws(
      () => verifyTransitProof(r, { ...p, leafIndex: 5 }, signer.publicKey),
      code('ERR_TRANSIT_PROOF'),
    );
    assert.throws(
      () => verifyTransitProof(r, { ...p, treeSize: 6 }, signer.publicKey),
      code('ERR_TRANSIT_PROOF'),
    );
    const forged = p.checkpoint.replace('\n7\n', '\n8\n');
    assert.throws(
      () => verifyTransitProof(r, { ...p, checkpoint: forged }, signer.publicKey),
      code('ERR_TRANSIT_CHECKPOINT'),
    );
    const otherKey = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 10)).publicKey;
    assert.throws(() => verifyTransitProof(r, p, otherKey), code('ERR_TRANSIT_CHECKPOINT'));
    assert.throws(() => verifyTransitProof(r, p, undefined), code('ERR_TRANSIT_KEY'));
    // A receipt of another gateway is checked against that gateway's log, and fails.
    const elsewhere = { ...r, gateway: 'did:aftersmtp:example.com:gateway' };
    assert.throws(
      () => verifyTransitProof(elsewhere, p, signer.publicKey),
      code('ERR_TRANSIT_CHECKPOINT'),
    );
  });

  it('property: any change to a proof, its index, size or checkpoint is refused, never verified', async () => {
    const r = receipts[5] as DeliveryReceipt;
    const p = await log.prove(transitCommitment(r));
    assert.ok(p !== undefined);
    const flip = (b: Buffer, at: number, bit: number): Buffer => {
      const c = Buffer.from(b);
      c[at % c.length] = (c[at % c.length] as number) ^ (1 << bit);
      return c;
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('hash'), i: fc.nat(), at: fc.nat(31), bit: fc.nat(7) }),
          fc.record({ kind: fc.constant('index'), v: fc.integer({ min: -1, max: 64 }) }),
          fc.record({ kind: fc.constant('size'), v: fc.integer({ min: 0, max: 64 }) }),
          fc.record({ kind: fc.constant('note'), at: fc.nat(), bit: fc.nat(6) }),
          fc.record({ kind: fc.constant('drop'), i: fc.nat() }),
        ),
        (t) => {
          let q = { ...p, proof: [...p.proof] };
          if (t.kind === 'hash' && q.proof.length > 0) {
            const i = (t.i as number) % q.proof.length;
            q.proof[i] = flip(q.proof[i] as Buffer, t.at as number, t.bit as number);
          } else if (t.kind === 'index' && t.v !== p.leafIndex)
            q = { ...q, leafIndex: t.v as number };
          else if (t.kind === 'size' && t.v !== p.treeSize) q = { ...q, treeSize: t.v as number };
          else if (t.kind === 'note') {
            const text = Buffer.from(p.checkpoint);
            const changed = flip(text, t.at as number, t.bit as number).toString('utf8');
            if (changed === p.checkpoint) return;
            q = { ...q, checkpoint: changed };
          } else if (t.kind === 'drop' && q.proof.length > 0) {
            q.proof.splice((t.i as number) % q.proof.length, 1);
          } else return;
          assert.throws(
            () => verifyTransitProof(r, q, signer.publicKey),
            (err: unknown) => err instanceof TransitError,
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('counts a leaf only once its flush to disk has completed, and stops after a failed flush', async () => {
    const { dir: d, cleanup: clean } = tempDir();
    const file = join(d, 'transit.sqlite');
    const flushes: { resolve: () => void; reject: (e: Error) => void }[] = [];
    const flushWal = () =>
      new Promise<void>((resolve, reject) => void flushes.push({ resolve, reject }));
    const slow = new TransitLog(file, DOMAIN, signer, flushWal);
    try {
      const [a, b, c] = receipts.map((r) => transitCommitment(r));
      const appended = slow.append([a as Buffer]);
      // Committed, not yet on disk: no checkpoint, proof or size covers the leaf.
      assert.equal(flushes.length, 1);
      assert.equal(slow.size(), 0);
      assert.equal(parseCheckpoint(parseNote(slow.checkpoint().note).text).size, 0);
      const proof = slow.prove(a as Buffer); // waits for a flush of its own
      flushes[0]?.resolve();
      assert.deepEqual(await appended, [0]);
      assert.equal(slow.size(), 1);
      flushes[1]?.resolve();
      assert.equal((await proof)?.treeSize, 1);

      const failing = slow.append([b as Buffer]);
      flushes[2]?.reject(new Error('EIO: i/o error, fdatasync'));
      await assert.rejects(failing, (err: unknown) => {
        assert.ok(err instanceof TransitLogError);
        assert.equal(err.code, 'ERR_TRANSIT_FLUSH');
        assert.match(err.message, /EIO/);
        return true;
      });
      assert.equal(slow.size(), 1);
      assert.equal(parseCheckpoint(parseNote(slow.checkpoint().note).text).size, 1);
      // Stopped: no more appends, nothing written, until the log is opened again.
      await assert.rejects(slow.append([c as Buffer]), { code: 'ERR_TRANSIT_FLUSH' });
      assert.equal(flushes.length, 3);
    } finally {
      slow.close();
    }
    // Opened again (the restart): what the failed group committed is flushed at open and counts.
    const reopened = new TransitLog(file, DOMAIN, signer);
    try {
      assert.equal(reopened.size(), 2);
      assert.ok(
        (await reopened.prove(transitCommitment(receipts[1] as DeliveryReceipt))) !== undefined,
      );
      assert.deepEqual(
        await reopened.append([transitCommitment(receipts[2] as DeliveryReceipt)]),
        [2],
      );
      assert.equal(reopened.size(), 3);
    } finally {
      reopened.close();
      clean();
    }
  });

  it('keeps the write-ahead file open for a flush still in flight when closed', async () => {
    const { dir: d, cleanup: clean } = tempDir();
    const file = join(d, 'transit.sqlite');
    const walFiles = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${file}-wal`);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const closing = new TransitLog(file, DOMAIN, signer);
    // Every thread of libuv's pool busy for a while, so the append's flush waits in its queue.
    const busy = Array.from({ length: 16 }, () =>
      promisify(pbkdf2)('x', 'salt', 100_000, 32, 'sha256'),
    );
    try {
      const appended = closing.append([transitCommitment(receipts[4] as DeliveryReceipt)]);
      closing.close(); // the append's flush is queued on the thread pool
      assert.deepEqual(await appended, [0], 'flushed, not EBADF');
      assert.equal(walFiles(), 0, 'closed once the flush returned');
    } finally {
      await Promise.all(busy);
      clean();
    }
  });

  it('refuses to reopen the log with another key', () => {
    const other = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 11));
    assert.throws(
      () => new TransitLog(join(dir, 'transit.sqlite'), DOMAIN, other),
      (err: unknown) => err instanceof TransitLogError && err.code === 'ERR_TRANSIT_KEY_MISMATCH',
    );
    const again = new TransitLog(path, DOMAIN, signer);
    assert.equal(again.size(), 7);
    again.close();
  });
});
