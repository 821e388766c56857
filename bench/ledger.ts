/**
 * Ledger benchmark (issue 4): registrations/s excluding minting (one durable transaction per
 * registration, group commit of 100, and the same single path with fsync off as the non-durable
 * baseline), resolves/s with full client verification (checkpoint signature, inclusion,
 * consistency, proof of possession), proof and answer sizes at 10^3, 10^5 and 10^6 entries (the
 * big log is built with batched appends of synthetic leaves of the size of a real classic-v1
 * register entry), and hashcash minting: the hash rate of the TypeScript kernel, real mints at
 * low difficulty, and expected mint time = 2^bits / rate for 16..26 bits.
 *
 * Run: `node dist/bench/ledger.js` (BENCH_SECONDS sets the time per rate figure, default 0.4;
 * LEDGER_BENCH_MAX=100000 stops the big log earlier). It prints tables and then one JSON object.
 * SQLite files go to a temporary directory on the same disk as /tmp, removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretKeySet, type SuiteId } from '../src/identity/index.js';
import { logOrigin, signCheckpoint } from '../src/ledger/checkpoint.js';
import { PURPOSE_REGISTER, recordHash, registerTranscript } from '../src/ledger/entries.js';
import {
  DEFAULT_BITS,
  mint,
  mintSearch,
  mintStamp,
  nativeMintKernel,
  stampBinding,
} from '../src/ledger/hashcash.js';
import { IdentityLedger, type RegisterRequest } from '../src/ledger/ledger.js';
import { NoteSigner } from '../src/ledger/note.js';
import { LogStore } from '../src/ledger/store.js';
import { ClientState, verifyAnswer } from '../src/ledger/verify.js';
import { inclusionProof, consistencyProof, verifyInclusion } from '../src/identity/merkle.js';
import { formatOps, measure, runSections, type Section } from './lib/measure.js';

const DOMAIN = 'bench.example';
const STAMP_BITS = 8;
const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-ledger-bench-'));
const signer = new NoteSigner(logOrigin(DOMAIN), randomBytes(32));
let seq = 0;

function openLedger(name: string): IdentityLedger {
  return new IdentityLedger({
    path: join(dir, `${name}.sqlite`),
    signer,
    domains: [DOMAIN],
    policies: new Map([[DOMAIN, { policy: 'open-pow', bits: STAMP_BITS }]]),
  });
}

/** Requests with keys, proofs of possession and stamps made before the clock starts. */
async function requests(
  ledger: IdentityLedger,
  n: number,
  suite: SuiteId,
): Promise<RegisterRequest[]> {
  const out: RegisterRequest[] = [];
  for (let i = 0; i < n; i++) {
    const keys = SecretKeySet.generate(`did:aftersmtp:${DOMAIN}:u${seq++}`, suite);
    const { challenge, bits } = ledger.issueChallenge(DOMAIN);
    out.push({
      record: keys.record,
      proofOfPossession: keys.sign(registerTranscript(keys.record, []), PURPOSE_REGISTER),
      stamp: await mintStamp(challenge, keys.did, recordHash(keys.record), bits),
    });
  }
  return out;
}

function rate(n: number, fn: () => void): number {
  const t0 = performance.now();
  fn();
  return n / ((performance.now() - t0) / 1000);
}

const json: Record<string, unknown> = {};
let resolveLedger: IdentityLedger | undefined;

const registrations: Section = {
  id: 'registrations',
  title: 'Registrations/s, minting excluded (stamps at 8 bits verified; SQLite WAL)',
  async run() {
    const rows: string[][] = [];
    const out: Record<string, number> = {};
    const cases: [string, SuiteId, number, number, boolean][] = [
      ['classic-v1, 1 per transaction, synchronous=FULL', 'classic-v1', 300, 1, true],
      ['classic-v1, 1 per transaction, synchronous=OFF', 'classic-v1', 300, 1, false],
      ['classic-v1, batch of 100 (group commit), FULL', 'classic-v1', 3000, 100, true],
      ['hybrid-v1, 1 per transaction, synchronous=FULL', 'hybrid-v1', 100, 1, true],
      ['hybrid-v1, batch of 100 (group commit), FULL', 'hybrid-v1', 500, 100, true],
    ];
    for (const [label, suite, n, batch, durable] of cases) {
      const ledger = openLedger(`reg-${suite}-${batch}-${durable ? 'full' : 'off'}`);
      if (!durable) ledger.store.db.pragma('synchronous = OFF');
      const reqs = await requests(ledger, n, suite);
      const r = rate(n, () => {
        if (batch === 1) for (const q of reqs) ledger.register(q);
        else {
          for (let i = 0; i < n; i += batch) {
            for (const res of ledger.registerBatch(reqs.slice(i, i + batch))) {
              if (!res.ok) throw res.error;
            }
          }
        }
      });
      rows.push([label, String(n), formatOps(r)]);
      out[label] = Math.round(r);
      if (suite === 'classic-v1' && batch === 100) resolveLedger = ledger;
      else ledger.close();
    }
    const full = out['classic-v1, 1 per transaction, synchronous=FULL'] ?? 0;
    const off = out['classic-v1, 1 per transaction, synchronous=OFF'] ?? 0;
    const batched = out['classic-v1, batch of 100 (group commit), FULL'] ?? 0;
    json.registrations = out;
    return {
      headers: ['case', 'n', 'registrations/s'],
      rows,
      notes: [
        `durable single vs non-durable: ${(full / off).toFixed(2)}x; group commit of 100 vs single durable: ${(batched / full).toFixed(1)}x`,
        'each registration: record check, proof-of-possession verify, stamp verify + spent-set insert, leaf + subtree hashes + DID index, checkpoint signature, inclusion proof',
      ],
      json: out,
    };
  },
};

const resolves: Section = {
  id: 'resolves',
  title: 'Resolves/s with proof verification (classic-v1 log of 3000 entries)',
  async run() {
    const ledger = resolveLedger as IdentityLedger;
    const size = ledger.store.size();
    const dids = Array.from({ length: 256 }, (_, i) => `did:aftersmtp:${DOMAIN}:u${600 + i * 7}`);
    const state = new ClientState();
    const known = size - 10;
    state.set(DOMAIN, {
      verifierKey: signer.verifierKey,
      size: known,
      root: ledger.store.root(known),
    });
    let i = 0;
    const answers = dids.map((d) => ledger.lookup(d, known));
    const server = measure(() => ledger.lookup(dids[i++ % dids.length] as string, known));
    const client = measure(() => {
      const s = new ClientState();
      s.set(DOMAIN, state.get(DOMAIN)!);
      const k = i++ % dids.length;
      return verifyAnswer(dids[k] as string, answers[k]!, s);
    });
    const both = measure(() => {
      const s = new ClientState();
      s.set(DOMAIN, state.get(DOMAIN)!);
      const d = dids[i++ % dids.length] as string;
      return verifyAnswer(d, ledger.lookup(d, known), s);
    });
    ledger.close();
    const out = {
      treeSize: size,
      serverLookup: Math.round(server),
      clientVerify: Math.round(client),
      endToEnd: Math.round(both),
    };
    json.resolves = out;
    return {
      headers: ['step', 'per second'],
      rows: [
        [
          'server: lookup (index, leaf, inclusion + consistency proof, cached checkpoint)',
          formatOps(server),
        ],
        ['client: verify (note signature, inclusion, consistency, entry PoP)', formatOps(client)],
        ['lookup + verify, end to end, one thread', formatOps(both)],
      ],
      json: out,
    };
  },
};

const proofs: Section = {
  id: 'proofs',
  title: 'Proof and answer sizes at 10^3, 10^5, 10^6 entries (log built with batched appends)',
  async run() {
    // A real classic-v1 register entry, for the synthetic leaf size.
    const sizer = openLedger('sizer');
    const [req] = await requests(sizer, 1, 'classic-v1');
    const entryBytes = sizer.register(req as RegisterRequest).entry.length;
    sizer.close();
    const store = new LogStore(join(dir, 'big.sqlite'));
    const max = Number(process.env.LEDGER_BENCH_MAX ?? 1_000_000);
    const targets = [1_000, 100_000, 1_000_000].filter((t) => t <= max);
    const rows: string[][] = [];
    const out: unknown[] = [];
    let appended = 0;
    let appendMs = 0;
    const BATCH = 10_000;
    const template = randomBytes(entryBytes);
    for (const target of targets) {
      while (appended < target) {
        const n = Math.min(BATCH, target - appended);
        const leaves = Array.from({ length: n }, (_, j) => {
          const b = Buffer.from(template);
          b.writeUInt32BE(appended + j, 0);
          return b;
        });
        const t0 = performance.now();
        store.append(leaves);
        appendMs += performance.now() - t0;
        appended += n;
      }
      const size = store.size();
      let maxIncl = 0;
      for (const idx of [0, Math.floor(size / 3), size - 2, size - 1]) {
        maxIncl = Math.max(maxIncl, inclusionProof(store, idx, size).length);
      }
      const cons = consistencyProof(store, Math.floor(size / 2) + 1, size).length;
      const root = store.root(size);
      let k = 0;
      const proofRate = measure(() => inclusionProof(store, (k = (k * 7919 + 13) % size), size), {
        seconds: 0.3,
      });
      const verifyRate = measure(
        () => {
          const idx = (k = (k * 7919 + 13) % size);
          verifyInclusion(store.node(0, idx), idx, size, inclusionProof(store, idx, size), root);
        },
        { seconds: 0.3 },
      );
      const checkpointNote = signCheckpoint(
        { origin: signer.name, size, root, extensions: [] },
        signer,
      );
      const answerBytes =
        entryBytes + 32 * (maxIncl + cons) + Buffer.byteLength(checkpointNote) + 24;
      const dbBytes =
        statSync(join(dir, 'big.sqlite')).size + statSync(join(dir, 'big.sqlite-wal')).size;
      rows.push([
        String(size),
        `${maxIncl} (${maxIncl * 32} B)`,
        `${cons} (${cons * 32} B)`,
        String(answerBytes),
        formatOps(proofRate),
        formatOps(verifyRate),
        (dbBytes / 2 ** 20).toFixed(0),
      ]);
      out.push({
        size,
        inclusionHashes: maxIncl,
        inclusionBytes: maxIncl * 32,
        consistencyHashes: cons,
        consistencyBytes: cons * 32,
        answerBytes,
        inclusionProofsPerSecond: Math.round(proofRate),
        proveAndVerifyPerSecond: Math.round(verifyRate),
        databaseMiB: Math.round(dbBytes / 2 ** 20),
      });
    }
    const appendRate = appended / (appendMs / 1000);
    store.close();
    json.proofs = {
      entryBytes,
      appendBatch: BATCH,
      appendLeavesPerSecond: Math.round(appendRate),
      sizes: out,
    };
    return {
      headers: [
        'entries',
        'inclusion (max)',
        'consistency n/2+1->n',
        'answer B',
        'proofs/s',
        'prove+verify/s',
        'DB MiB',
      ],
      rows,
      notes: [
        `leaf = ${entryBytes} B (a classic-v1 register entry); bulk append ${formatOps(appendRate)} leaves/s in transactions of ${BATCH}`,
        'answer B = entry + inclusion + consistency proof + signed checkpoint note, before protobuf framing',
      ],
      json: json.proofs,
    };
  },
};

const minting: Section = {
  id: 'mint',
  title: 'Hashcash minting (native kernel; the TypeScript kernel on node:crypto as baseline)',
  async run() {
    const binding = randomBytes(32);
    const rate = (kernel: typeof mintSearch, n: number) => {
      const t0 = performance.now();
      kernel(binding, 64, 0, n); // 64 bits: never found, a pure rate measurement
      return n / ((performance.now() - t0) / 1000);
    };
    const hashRate = rate(nativeMintKernel, 1 << 24);
    const baselineRate = rate(mintSearch, 1 << 19);
    const real: Record<number, number> = {};
    for (const bits of [16, 18, 20, 22]) {
      const runs = bits <= 18 ? 8 : 4;
      let total = 0;
      for (let r = 0; r < runs; r++) {
        const b = stampBinding(
          randomBytes(41),
          `did:aftersmtp:${DOMAIN}:m${r}`,
          randomBytes(32),
          bits,
        );
        total += (await mint(b, bits)).elapsedMs;
      }
      real[bits] = total / runs;
    }
    const rows: string[][] = [];
    const table: unknown[] = [];
    let best = 16;
    for (let bits = 16; bits <= 26; bits++) {
      const expected = 2 ** bits / hashRate;
      if (Math.abs(Math.log(expected)) < Math.abs(Math.log(2 ** best / hashRate))) best = bits;
      const measured = real[bits];
      rows.push([
        String(bits),
        expected < 10 ? `${expected.toFixed(2)} s` : `${expected.toFixed(0)} s`,
        measured === undefined ? '—' : `${(measured / 1000).toFixed(2)} s`,
      ]);
      table.push({
        bits,
        expectedSeconds: Number(expected.toFixed(3)),
        measuredMeanSeconds: measured === undefined ? null : Number((measured / 1000).toFixed(3)),
      });
    }
    const out = {
      hashesPerSecond: Math.round(hashRate),
      typescriptKernelHashesPerSecond: Math.round(baselineRate),
      nativeVsTypescript: Number((hashRate / baselineRate).toFixed(1)),
      bits: table,
      defaultBitsForAboutOneSecond: best,
    };
    json.mint = out;
    return {
      headers: ['bits', 'expected = 2^bits / rate', 'measured mean (4-8 mints)'],
      rows,
      notes: [
        `native kernel ${formatOps(hashRate)} SHA-256/s vs TypeScript kernel ${formatOps(baselineRate)}/s ` +
          `(${(hashRate / baselineRate).toFixed(1)}x); closest to 1 s in this run: ${best} bits (DEFAULT_BITS = ${DEFAULT_BITS})`,
        'a single mint is geometric: its time varies around the mean by about as much as the mean',
      ],
      json: out,
    };
  },
};

const all = [registrations, resolves, proofs, minting];
const only = process.argv.indexOf('--only');
try {
  await runSections(only >= 0 ? all.filter((x) => x.id === process.argv[only + 1]) : all);
} finally {
  resolveLedger?.close();
  rmSync(dir, { recursive: true, force: true });
}
