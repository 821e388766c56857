// RFC 9162 / RFC 6962 Merkle hashing and proofs: the published reference tree (transparency-dev
// merkle testonly vectors, RFC 6962 test data), cross-checked against a naive recursive
// implementation written here from the RFC text, plus properties at random sizes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  EMPTY_ROOT,
  MemoryTree,
  consistencyProof,
  inclusionProof,
  leafHash,
  rootAt,
  verifyConsistency,
  verifyInclusion,
} from '../../src/identity/merkle.js';
import { AfterSmtpError } from '../../src/errors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// ---- naive reference, straight from RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 ----
const H = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
function k(n: number): number {
  let x = 1;
  while (x * 2 < n) x *= 2;
  return x;
}
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return H();
  if (d.length === 1) return H(Buffer.from([0]), d[0] as Buffer);
  const s = k(d.length);
  return H(Buffer.from([1]), mth(d.slice(0, s)), mth(d.slice(s)));
}
function naivePath(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s
    ? [...naivePath(m, d.slice(0, s)), mth(d.slice(s))]
    : [...naivePath(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function naiveSubproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s
    ? [...naiveSubproof(m, d.slice(0, s), b), mth(d.slice(s))]
    : [...naiveSubproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}

// ---- the reference tree ----
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(unhex);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const INCLUSION: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    index: 2,
    size: 3,
    proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'],
  },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];
const CONSISTENCY: { first: number; second: number; proof: string[] }[] = [
  { first: 1, second: 1, proof: [] },
  {
    first: 1,
    second: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    first: 6,
    second: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    first: 2,
    second: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];

const reference = new MemoryTree(LEAVES.map(leafHash));

test('the empty tree and every prefix of the reference tree have the published roots', () => {
  assert.equal(hex(EMPTY_ROOT), ROOTS[0]);
  for (let n = 0; n <= LEAVES.length; n++) {
    assert.equal(hex(reference.root(n)), ROOTS[n], `size ${n}`);
    assert.equal(hex(mth(LEAVES.slice(0, n))), ROOTS[n], `naive size ${n}`);
  }
});

test('inclusion proofs match the published vectors and verify', () => {
  for (const v of INCLUSION) {
    const proof = inclusionProof(reference, v.index, v.size);
    assert.deepEqual(proof.map(hex), v.proof, `${v.index}/${v.size}`);
    assert.deepEqual(naivePath(v.index, LEAVES.slice(0, v.size)).map(hex), v.proof);
    const leaf = leafHash(LEAVES[v.index] as Buffer);
    verifyInclusion(leaf, v.index, v.size, proof, reference.root(v.size));
  }
});

test('consistency proofs match the published vectors and verify', () => {
  for (const v of CONSISTENCY) {
    const proof = consistencyProof(reference, v.first, v.second);
    assert.deepEqual(proof.map(hex), v.proof, `${v.first}->${v.second}`);
    const naive =
      v.first === v.second ? [] : naiveSubproof(v.first, LEAVES.slice(0, v.second), true);
    assert.deepEqual(naive.map(hex), v.proof);
    verifyConsistency(v.first, v.second, proof, reference.root(v.first), reference.root(v.second));
  }
});

test('every proof in every tree up to 40 leaves agrees with the naive implementation', () => {
  const data = Array.from({ length: 40 }, (_, i) => Buffer.from([i, i * 3]));
  const tree = new MemoryTree(data.map(leafHash));
  for (let n = 1; n <= data.length; n++) {
    const d = data.slice(0, n);
    const root = tree.root(n);
    assert.deepEqual(root, mth(d));
    for (let i = 0; i < n; i++) {
      const p = inclusionProof(tree, i, n);
      assert.deepEqual(p, naivePath(i, d));
      verifyInclusion(leafHash(d[i] as Buffer), i, n, p, root);
    }
    for (let m = 1; m <= n; m++) {
      const p = consistencyProof(tree, m, n);
      assert.deepEqual(p, m === n ? [] : naiveSubproof(m, d, true));
      verifyConsistency(m, n, p, tree.root(m), root);
    }
  }
});

/** Flips bit `bit` (modulo the buffer's bit length) in place and returns the buffer. */
function flipBit(buf: Buffer, bit: number): Buffer {
  const i = Math.floor(bit / 8) % buf.length;
  buf.writeUInt8(buf.readUInt8(i) ^ (1 << (bit % 8)), i);
  return buf;
}

const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

test('wrong index, size, leaf, root or length are refused', () => {
  const root = reference.root(8);
  const proof = inclusionProof(reference, 5, 8);
  const leaf = leafHash(LEAVES[5] as Buffer);
  const bad = 'ERR_LEDGER_INCLUSION';
  assert.throws(() => verifyInclusion(leaf, 4, 8, proof, root), code(bad));
  assert.throws(() => verifyInclusion(leaf, 5, 7, proof, reference.root(7)), code(bad));
  assert.throws(() => verifyInclusion(leaf, 8, 8, proof, root), code(bad));
  assert.throws(() => verifyInclusion(leafHash(Buffer.from('x')), 5, 8, proof, root), code(bad));
  assert.throws(() => verifyInclusion(leaf, 5, 8, proof, reference.root(7)), code(bad));
  assert.throws(() => verifyInclusion(leaf, 5, 8, proof.slice(1), root), code(bad));
  assert.throws(() => verifyInclusion(leaf, 5, 8, [...proof, root], root), code(bad));
  assert.throws(() => verifyInclusion(leaf, 5, 8, Array(100).fill(root), root), code(bad));
  assert.throws(
    () =>
      verifyInclusion(leaf, 5, 8, [proof[0] as Buffer, Buffer.alloc(31), proof[2] as Buffer], root),
    code(bad),
  );
});

test('a consistency check refuses a shrinking tree, a split view and a fork', () => {
  assert.throws(
    () => verifyConsistency(8, 7, [], reference.root(8), reference.root(7)),
    code('ERR_LEDGER_SHRANK'),
  );
  const other = new MemoryTree([...LEAVES.slice(0, 7), Buffer.from('fork')].map(leafHash));
  assert.throws(
    () => verifyConsistency(8, 8, [], reference.root(8), other.root(8)),
    code('ERR_LEDGER_SPLIT_VIEW'),
  );
  // A fork at leaf 6: the forked tree of size 8 is not an extension of the real tree of size 7.
  const forked = new MemoryTree(
    [...LEAVES.slice(0, 6), Buffer.from('x'), Buffer.from('y')].map(leafHash),
  );
  const p = consistencyProof(forked, 7, 8);
  assert.throws(
    () => verifyConsistency(7, 8, p, reference.root(7), forked.root(8)),
    code('ERR_LEDGER_CONSISTENCY'),
  );
});

test('property: proofs at random sizes verify, and any single-bit change is rejected', () => {
  const tree = new MemoryTree(
    Array.from({ length: 300 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`))),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      (n, i0, m0, bit) => {
        const i = i0 % n;
        const root = tree.root(n);
        const leaf = tree.node(0, i);
        const p = inclusionProof(tree, i, n);
        verifyInclusion(leaf, i, n, p, root);
        if (p.length > 0) {
          const flipped = p.map((h) => Buffer.from(h));
          const which = bit % (p.length * 256);
          flipBit(flipped[Math.floor(which / 256)] as Buffer, which % 256);
          assert.throws(
            () => verifyInclusion(leaf, i, n, flipped, root),
            code('ERR_LEDGER_INCLUSION'),
          );
        }
        const flippedLeaf = flipBit(Buffer.from(leaf), bit);
        assert.throws(() => verifyInclusion(flippedLeaf, i, n, p, root));
        const m = 1 + (m0 % n);
        const c = consistencyProof(tree, m, n);
        verifyConsistency(m, n, c, tree.root(m), root);
        if (c.length > 0) {
          const bad = c.map((h) => Buffer.from(h));
          flipBit(bad[bit % c.length] as Buffer, bit);
          assert.throws(() => verifyConsistency(m, n, bad, tree.root(m), root));
        }
        const badRoot = flipBit(Buffer.from(root), bit);
        assert.throws(() => verifyConsistency(m, n, c, tree.root(m), badRoot));
      },
    ),
    { numRuns: 300 },
  );
});

test('roots and proofs read O(log n) perfect-subtree hashes, never the leaves', () => {
  const n = 100_003;
  const tree = new MemoryTree(
    Array.from({ length: n }, (_, i) => leafHash(Buffer.from([i & 255, i >> 8, i >> 16]))),
  );
  let reads = 0;
  const src = { node: (l: number, i: number) => (reads++, tree.node(l, i)) };
  const bound = 2 * Math.ceil(Math.log2(n)) + 2;
  for (const [what, run] of [
    ['root', () => rootAt(src, n)],
    ['inclusion of the first leaf', () => inclusionProof(src, 0, n)],
    ['inclusion of the last leaf', () => inclusionProof(src, n - 1, n)],
    ['inclusion in the middle', () => inclusionProof(src, 54_321, n)],
    ['consistency 1 -> n', () => consistencyProof(src, 1, n)],
    ['consistency n/2+1 -> n', () => consistencyProof(src, 50_002, n)],
    ['consistency n-1 -> n', () => consistencyProof(src, n - 1, n)],
  ] as const) {
    reads = 0;
    run();
    assert.ok(reads <= bound, `${what}: ${reads} reads, bound ${bound}`);
  }
});
