/**
 * Crypto benchmark: throughput (ops/s, one thread) of every primitive through the native core
 * (N-API), against the same Rust functions called natively (the `primitives` cargo bench, run
 * as a child process), node:crypto where it has the primitive, and pure JS (@noble/*; the HPKE
 * rows use @hpke/core, itself pure JS). All figures come from one run on one machine, and the
 * headline numbers are ratios (DESIGN.md §8):
 *   - N-API within 1.3x of native Rust (binding overhead), every row;
 *   - X25519 and Ed25519 within 1.5x of node:crypto (OpenSSL);
 *   - ML-KEM-768, ML-DSA-65 and X-Wing at least 20x faster than @noble.
 * Workloads match native/benches/primitives.rs: SHA-256 of 1 KiB, AEAD seal of 4 KiB with a
 * 3-byte aad, Ed25519 / ML-DSA-65 over 256 bytes (ML-DSA context "bench", hedged signing),
 * HPKE single-shot seal/open of a 32-byte content key with a 70-byte info and empty aad.
 *
 * Run: `node dist/bench/crypto.js` (BENCH_SECONDS sets the time per measurement, default 0.4).
 * Sections run in order; append a section to `sections` at the bottom to extend the report.
 */
import { execFile } from 'node:child_process';
import {
  createCipheriv,
  createHash,
  diffieHellman,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { sha256 } from '@noble/hashes/sha2.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { CipherSuite } from '@hpke/core';
import { DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/dhkem-x25519';
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305';
import { XWing } from '@hpke/hybridkem-x-wing';
import * as native from '../src/native/index.js';
import {
  defaultSeconds,
  formatOps,
  formatRatio,
  measure,
  measureAsync,
  ratio,
  runSections,
  verdict,
  type MeasureOptions,
  type Section,
  type SectionResult,
  type Target,
} from './lib/measure.js';
import { projectRootFrom } from './lib/paths.js';
import { envelopeSection } from './envelope-section.js';

const execFileAsync = promisify(execFile);

/** One primitive: the N-API call and its baselines (undefined = no such primitive there). */
interface Primitive {
  name: string;
  napi: () => unknown;
  nodeCrypto?: () => unknown;
  noble?: () => unknown;
  nobleAsync?: () => Promise<unknown>;
  /** Target against node:crypto, if any. */
  nodeTarget?: Target;
  /** Target against @noble, if any. */
  nobleTarget?: Target;
  /** Units of work per call (e.g. hashes per hashcash search call); figures are per unit. */
  perCall?: number;
}

const RUST_TARGET: Target = { min: 1 / 1.3, label: 'within 1.3x' };
const NODE_TARGET: Target = { min: 1 / 1.5, label: 'within 1.5x' };
const NOBLE_TARGET: Target = { min: 20, label: '>= 20x' };
const NODE_TARGET_ROWS = ['x25519-dh', 'ed25519-sign', 'ed25519-verify'];
const NOBLE_TARGET_ROWS = [
  'ml-kem-768-encaps',
  'ml-kem-768-decaps',
  'ml-dsa-65-sign',
  'ml-dsa-65-verify',
  'x-wing-encaps',
  'x-wing-decaps',
];

const u8 = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Build every primitive with its keys and inputs prepared outside the measured calls. */
async function primitives(): Promise<Primitive[]> {
  const data1k = Buffer.alloc(1024, 0x5a);
  const key = Buffer.alloc(32, 7);
  const nonce = Buffer.alloc(12, 9);
  const aad = Buffer.from('aad');
  const msg4k = Buffer.alloc(4096, 0xa5);
  const msg = Buffer.alloc(256, 0x42);
  const empty = Buffer.alloc(0);

  const nodeAead = (alg: 'chacha20-poly1305' | 'aes-256-gcm') => () => {
    const c =
      alg === 'aes-256-gcm'
        ? createCipheriv(alg, key, nonce, { authTagLength: 16 })
        : createCipheriv(alg, key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: msg4k.length });
    return Buffer.concat([c.update(msg4k), c.final(), c.getAuthTag()]);
  };

  // X25519: the native key holds its secret; node:crypto gets pre-imported KeyObjects (its
  // best case); noble gets raw bytes, as it always does.
  const xa = native.X25519Key.generate();
  const xbSecret = x25519.utils.randomSecretKey();
  const xbPublic = u8(x25519.getPublicKey(xbSecret));
  const xaSecret = xa.exportSecret();
  const nodeXa = generateKeyPairSync('x25519');
  const nodeXb = generateKeyPairSync('x25519');

  const ed = native.Ed25519Key.generate();
  const edPub = ed.publicKey();
  const edSeed = ed.exportSeed();
  const edSig = ed.sign(msg);
  const nodeEd = generateKeyPairSync('ed25519');
  const nodeEdSig = nodeSign(null, msg, nodeEd.privateKey);

  const kem = native.MlKem768Key.generate();
  const ek = kem.encapsulationKey();
  const kemCt = native.mlKem768Encapsulate(ek).ciphertext;
  const kemDk = kem.expandedDecapsulationKey();

  const ctx = Buffer.from('bench');
  const dsaSeed = native.randomBytes(32);
  const dsa = native.MlDsa65Key.fromSeed(dsaSeed);
  const dsaPub = dsa.publicKey();
  const dsaSig = dsa.sign(msg, ctx);
  const nobleDsa = ml_dsa65.keygen(dsaSeed);

  const xwSeed = native.randomBytes(32);
  const xw = native.XWingKey.fromSeed(xwSeed);
  const xwPub = xw.publicKey();
  const xwCt = native.xwingEncapsulate(xwPub).ciphertext;

  const contentKey = Buffer.alloc(32, 0x33);
  const info = Buffer.from(
    'aftersmtp bench info: suite, message id, recipient DID, key id, expiry',
  );
  const hx = native.X25519Key.generate();
  const hxPub = hx.publicKey();
  const hSealedX = native.hpkeSeal('dhkem-x25519-hkdf-sha256', hxPub, info, empty, contentKey);
  const hSealedW = native.hpkeSeal('x-wing', xwPub, info, empty, contentKey);

  const suiteX = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Chacha20Poly1305(),
  });
  const suiteW = new CipherSuite({
    kem: new XWing(),
    kdf: new HkdfSha256(),
    aead: new Chacha20Poly1305(),
  });
  const jsPkX = await suiteX.kem.deserializePublicKey(hxPub);
  const jsSkX = await suiteX.kem.deserializePrivateKey(hx.exportSecret());
  const jsPkW = await suiteW.kem.deserializePublicKey(xwPub);
  const jsSkW = await suiteW.kem.deserializePrivateKey(xwSeed);

  const nodeX25519 = (a: KeyObject, b: KeyObject) => () =>
    diffieHellman({ privateKey: a, publicKey: b });

  const list: Primitive[] = [
    {
      name: 'sha256-1k',
      napi: () => native.sha256(data1k),
      nodeCrypto: () => createHash('sha256').update(data1k).digest(),
      noble: () => sha256(data1k),
    },
    {
      name: 'chacha20-poly1305-seal-4k',
      napi: () => native.aeadSeal('chacha20-poly1305', key, nonce, aad, msg4k),
      nodeCrypto: nodeAead('chacha20-poly1305'),
      noble: () => chacha20poly1305(key, nonce, aad).encrypt(msg4k),
    },
    {
      name: 'aes-256-gcm-seal-4k',
      napi: () => native.aeadSeal('aes-256-gcm', key, nonce, aad, msg4k),
      nodeCrypto: nodeAead('aes-256-gcm'),
      noble: () => gcm(key, nonce, aad).encrypt(msg4k),
    },
    {
      name: 'x25519-dh',
      napi: () => xa.diffieHellman(xbPublic),
      nodeCrypto: nodeX25519(nodeXa.privateKey, nodeXb.publicKey),
      noble: () => x25519.getSharedSecret(xaSecret, xbPublic),
    },
    {
      name: 'ed25519-sign',
      napi: () => ed.sign(msg),
      nodeCrypto: () => nodeSign(null, msg, nodeEd.privateKey),
      noble: () => ed25519.sign(msg, edSeed),
    },
    {
      name: 'ed25519-verify',
      napi: () => native.ed25519Verify(edPub, msg, edSig),
      nodeCrypto: () => nodeVerify(null, msg, nodeEd.publicKey, nodeEdSig),
      noble: () => ed25519.verify(edSig, msg, edPub),
    },
    {
      name: 'ml-kem-768-encaps',
      napi: () => native.mlKem768Encapsulate(ek),
      noble: () => ml_kem768.encapsulate(ek),
    },
    {
      name: 'ml-kem-768-decaps',
      napi: () => kem.decapsulate(kemCt),
      noble: () => ml_kem768.decapsulate(kemCt, kemDk),
    },
    {
      name: 'ml-dsa-65-sign',
      napi: () => dsa.sign(msg, ctx),
      noble: () => ml_dsa65.sign(msg, nobleDsa.secretKey, { context: ctx }),
    },
    {
      name: 'ml-dsa-65-verify',
      napi: () => native.mlDsa65Verify(dsaPub, msg, dsaSig, ctx),
      noble: () => ml_dsa65.verify(dsaSig, msg, dsaPub, { context: ctx }),
    },
    {
      name: 'x-wing-encaps',
      napi: () => native.xwingEncapsulate(xwPub),
      noble: () => ml_kem768_x25519.encapsulate(xwPub),
    },
    {
      name: 'x-wing-decaps',
      napi: () => xw.decapsulate(xwCt),
      noble: () => ml_kem768_x25519.decapsulate(xwCt, xwSeed),
    },
    {
      name: 'hpke-seal-x25519',
      napi: () => native.hpkeSeal('dhkem-x25519-hkdf-sha256', hxPub, info, empty, contentKey),
      nobleAsync: () => suiteX.seal({ recipientPublicKey: jsPkX, info }, contentKey, empty),
    },
    {
      name: 'hpke-open-x25519',
      napi: () => hx.hpkeOpen(hSealedX.enc, info, empty, hSealedX.ciphertext),
      nobleAsync: () =>
        suiteX.open({ recipientKey: jsSkX, enc: hSealedX.enc, info }, hSealedX.ciphertext, empty),
    },
    {
      name: 'hpke-seal-xwing',
      napi: () => native.hpkeSeal('x-wing', xwPub, info, empty, contentKey),
      nobleAsync: () => suiteW.seal({ recipientPublicKey: jsPkW, info }, contentKey, empty),
    },
    {
      name: 'hpke-open-xwing',
      napi: () => xw.hpkeOpen(hSealedW.enc, info, empty, hSealedW.ciphertext),
      nobleAsync: () =>
        suiteW.open({ recipientKey: jsSkW, enc: hSealedW.enc, info }, hSealedW.ciphertext, empty),
    },
  ];

  // Hashcash: hashes/s over one search call of HASHCASH_BATCH nonces at an unreachable
  // difficulty; the JS baselines run the same loop (prefix || u64 BE nonce) naively.
  const HASHCASH_BATCH = 1024;
  const stampPrefix = Buffer.from('aftersmtp:v1:alice@example.org:bob@example.net:20250101');
  const stampMsg = Buffer.alloc(stampPrefix.length + 8);
  stampPrefix.copy(stampMsg);
  const jsSearch = (hash: (m: Buffer) => Uint8Array) => () => {
    for (let n = 0; n < HASHCASH_BATCH; n++) {
      stampMsg.writeUInt32BE(0, stampPrefix.length);
      stampMsg.writeUInt32BE(n, stampPrefix.length + 4);
      const d = hash(stampMsg);
      if (d[0] === 0 && d[1] === 0 && d[2] === 0 && d[3] === 0 && d[4] === 0) return n;
    }
    return null;
  };
  list.push({
    name: 'hashcash-sha256',
    perCall: HASHCASH_BATCH,
    napi: () => native.hashcashSearch(stampPrefix, 64, 0, HASHCASH_BATCH),
    nodeCrypto: jsSearch((m) => createHash('sha256').update(m).digest()),
    noble: jsSearch((m) => sha256(m)),
  });
  for (const p of list) {
    if (NODE_TARGET_ROWS.includes(p.name)) p.nodeTarget = NODE_TARGET;
    if (NOBLE_TARGET_ROWS.includes(p.name)) p.nobleTarget = NOBLE_TARGET;
  }
  return list;
}

/** Result of the cargo bench child process: ops/s by name, or why there are none. */
interface RustBench {
  command: string;
  ops: Record<string, number>;
  error?: string;
}

/** Run the Rust `primitives` bench from the project root and parse its JSON object. */
async function rustBench(root: string, seconds: number): Promise<RustBench> {
  const args = ['bench', '--manifest-path', 'native/Cargo.toml', '--bench', 'primitives'];
  const command = `cargo ${args.join(' ')}`;
  try {
    const { stdout } = await execFileAsync('cargo', args, {
      cwd: root,
      env: { ...process.env, BENCH_SECONDS: String(seconds) },
      maxBuffer: 16 * 1024 * 1024,
    });
    const start = stdout.indexOf('{');
    const end = stdout.lastIndexOf('}');
    if (start < 0 || end < start) throw new Error('no JSON object on stdout');
    const parsed = JSON.parse(stdout.slice(start, end + 1)) as Record<string, unknown>;
    const ops: Record<string, number> = {};
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'number') ops[k] = v;
    return { command, ops };
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    const lines = (e.stderr ?? '').split('\n').filter((l) => /^error/.test(l));
    return { command, ops: {}, error: lines.slice(0, 3).join(' | ') || e.message || String(err) };
  }
}

/** Figures of one row, ops/s (undefined: no such primitive in that implementation). */
interface RowFigures {
  napi: number;
  rust: number | undefined;
  nodeCrypto: number | undefined;
  noble: number | undefined;
}

/** Per-name maximum of several Rust bench runs. */
function bestOf(runs: RustBench[]): Record<string, number> {
  const best: Record<string, number> = {};
  for (const r of runs) {
    for (const [k, v] of Object.entries(r.ops)) best[k] = Math.max(best[k] ?? 0, v);
  }
  return best;
}

/** The "primitives" section: one row per primitive, measured side by side. */
const primitivesSection: Section = {
  id: 'primitives',
  title: 'primitives, ops/s (one thread)',
  async run(): Promise<SectionResult> {
    const root = projectRootFrom(import.meta.url);
    // Two passes, each running the Rust bench and then every JS measurement for half the time;
    // every figure keeps its best observation. Sampling both sides at two separate moments
    // keeps a burst of load on a shared machine from skewing one side of a ratio.
    const passes = 2;
    const opts: MeasureOptions = { seconds: defaultSeconds() / passes, rounds: 2 };
    const best = (a: number | undefined, b: number | undefined): number | undefined =>
      a === undefined ? b : b === undefined ? a : Math.max(a, b);
    const list = await primitives();
    const figures: RowFigures[] = list.map(() => ({
      napi: 0,
      rust: undefined,
      nodeCrypto: undefined,
      noble: undefined,
    }));
    const rustRuns: RustBench[] = [];
    for (let pass = 0; pass < passes; pass++) {
      rustRuns.push(await rustBench(root, opts.seconds ?? defaultSeconds()));
      for (const [i, p] of list.entries()) {
        const f = figures[i];
        if (!f) continue;
        const k = p.perCall ?? 1;
        f.napi = Math.max(f.napi, k * measure(p.napi, opts));
        if (p.nodeCrypto) f.nodeCrypto = best(f.nodeCrypto, k * measure(p.nodeCrypto, opts));
        if (p.noble) f.noble = best(f.noble, k * measure(p.noble, opts));
        if (p.nobleAsync) f.noble = best(f.noble, k * (await measureAsync(p.nobleAsync, opts)));
      }
    }
    const rust = bestOf(rustRuns);
    const rustErrors = rustRuns.flatMap((r) => (r.error ? [r.error] : []));

    const rows: string[][] = [];
    const json: Record<string, unknown> = {};
    list.forEach((p, i) => {
      const f = figures[i];
      if (!f) return;
      f.rust = rust[p.name];
      const vsRust = ratio(f.napi, f.rust);
      const vsNode = ratio(f.napi, f.nodeCrypto);
      const vsNoble = ratio(f.napi, f.noble);
      const verdicts = {
        rust: verdict(vsRust, RUST_TARGET) ?? null,
        nodeCrypto: verdict(vsNode, p.nodeTarget) ?? null,
        noble: verdict(vsNoble, p.nobleTarget) ?? null,
      };
      const all = Object.values(verdicts).filter((v) => v !== null);
      const status = all.length === 0 ? '—' : all.includes('MISS') ? 'MISS' : 'PASS';
      rows.push([
        p.name,
        formatOps(f.napi),
        formatOps(f.rust),
        formatOps(f.nodeCrypto),
        formatOps(f.noble),
        formatRatio(vsRust, RUST_TARGET),
        formatRatio(vsNode, p.nodeTarget),
        formatRatio(vsNoble, p.nobleTarget),
        status,
      ]);
      json[p.name] = {
        napi: f.napi,
        rust: f.rust ?? null,
        nodeCrypto: f.nodeCrypto ?? null,
        noble: f.noble ?? null,
        napiVsRust: vsRust ?? null,
        napiVsNodeCrypto: vsNode ?? null,
        napiVsNoble: vsNoble ?? null,
        verdicts,
        status,
      };
    });
    const command = rustRuns[0]?.command ?? '';
    const notes = [
      '',
      'Ratios are N-API ops/s divided by the baseline (higher is better for N-API).',
      `Targets: N-API vs Rust ${RUST_TARGET.label} (>= ${RUST_TARGET.min.toFixed(2)}x) on every ` +
        `row; vs node:crypto ${NODE_TARGET.label} (>= ${NODE_TARGET.min.toFixed(2)}x) for ` +
        `X25519/Ed25519; vs @noble ${NOBLE_TARGET.label} for ML-KEM-768, ML-DSA-65, X-Wing.`,
      'node:crypto uses pre-imported KeyObjects (its best case); HPKE pure-JS rows use @hpke/core.',
      'hashcash-sha256 is in hashes/s (1024-nonce searches; JS baselines hash the same messages).',
      `Each figure is the best of ${passes} passes x 2 rounds (JS) or ${rustRuns.length} runs ` +
        `(Rust, \`${command}\`, BENCH_SECONDS=${opts.seconds ?? ''})` +
        (rustErrors.length ? `; failures: ${rustErrors.join(' / ')}` : '.'),
    ];
    return {
      headers: [
        'primitive',
        'N-API',
        'Rust',
        'node:crypto',
        '@noble',
        'N-API/Rust',
        'N-API/node',
        'N-API/noble',
        'status',
      ],
      rows,
      notes,
      json: {
        unit: 'ops/s',
        targets: {
          napiVsRust: RUST_TARGET,
          napiVsNodeCrypto: { ...NODE_TARGET, rows: NODE_TARGET_ROWS },
          napiVsNoble: { ...NOBLE_TARGET, rows: NOBLE_TARGET_ROWS },
        },
        rustBench: { command, runs: rustRuns.length, errors: rustErrors },
        rows: json,
      },
    };
  },
};

/** Sections of the report, run in order. `--only <id>` runs one of them. */
const all: Section[] = [primitivesSection, envelopeSection];
const only = process.argv.indexOf('--only');
const sections = only >= 0 ? all.filter((s) => s.id === process.argv[only + 1]) : all;

await runSections(sections);
