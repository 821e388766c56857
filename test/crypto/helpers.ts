/**
 * Shared helpers for the crypto known-answer tests: locating and loading the vector files in
 * place (Project Wycheproof and the X-Wing draft's vectors under ../shared/vectors, see
 * SOURCES.md there; the transcribed RFC fixtures under test/fixtures/crypto), hex handling, and
 * checks that collect a description of every failing case so a run names all of them at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root: the nearest ancestor of this file holding package.json. Works both from the
 * compiled file (dist/test/crypto/) and from the source tree.
 */
export const projectRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('project root (package.json) not found');
    dir = parent;
  }
})();

/** The shared, read-only vector directory (../shared/vectors relative to the project root). */
export const vectorsDir = join(projectRoot, '..', 'shared', 'vectors');

/** Parse a JSON file under the shared vectors directory, e.g. `wycheproof/x25519_test.json`. */
export function loadVectors<T>(relPath: string): T {
  return JSON.parse(readFileSync(join(vectorsDir, relPath), 'utf8')) as T;
}

/** Parse a transcribed fixture under test/fixtures/crypto/. */
export function loadFixture<T>(name: string): T {
  return JSON.parse(
    readFileSync(join(projectRoot, 'test', 'fixtures', 'crypto', name), 'utf8'),
  ) as T;
}

/** The common header of every Wycheproof testvectors_v1 file. */
export interface WycheproofFile<G> {
  algorithm: string;
  schema: string;
  numberOfTests: number;
  testGroups: G[];
}

/** Fields every Wycheproof test case has. */
export interface WycheproofCase {
  tcId: number;
  comment?: string;
  /** Absent in some files (e.g. mlkem_768_keygen_seed_test.json). */
  flags?: string[];
  result: 'valid' | 'invalid' | 'acceptable';
}

export function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** A short, printable form of a value for failure messages. */
function show(v: unknown): string {
  if (v instanceof Uint8Array) {
    const h = toHex(v);
    return h.length > 72 ? `${h.slice(0, 64)}...(${v.length} bytes)` : h || '(empty)';
  }
  return String(v);
}

/** The `code` of a thrown value, or undefined. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Collects the failures of one vector file. Each check returns normally; at the end the test
 * asserts the list is empty, so the failure message names every failing case id.
 */
export class CaseLog {
  readonly failures: string[] = [];
  /** Number of cases checked, per outcome, so a test cannot pass vacuously. */
  readonly counts = new Map<string, number>();

  count(outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  fail(id: string, what: string): void {
    this.failures.push(`${id}: ${what}`);
  }

  /** Record a failure unless `got` equals `want` byte for byte. */
  bytes(id: string, what: string, got: Uint8Array, want: Uint8Array): void {
    const g = Buffer.from(got.buffer, got.byteOffset, got.byteLength);
    if (!g.equals(want)) {
      let at = 0;
      while (at < g.length && at < want.length && g[at] === want[at]) at++;
      this.fail(id, `${what}: differs from byte ${at}: got ${show(g)}, want ${show(want)}`);
    }
  }

  /** Record a failure unless `got === want`. */
  equal<T>(id: string, what: string, got: T, want: T): void {
    if (got !== want) this.fail(id, `${what}: got ${show(got)}, want ${show(want)}`);
  }

  /**
   * Run `fn`, recording a failure if it throws. Returns the result, or undefined when it threw.
   */
  run<T>(id: string, what: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.fail(id, `${what} threw ${errorCode(err) ?? ''} ${(err as Error).message ?? err}`);
      return undefined;
    }
  }

  /** Record a failure unless `fn` throws an error whose `code` is `code`. */
  throws(id: string, what: string, code: string, fn: () => unknown): void {
    let result: unknown;
    try {
      result = fn();
    } catch (err) {
      const got = errorCode(err);
      if (got !== code) this.fail(id, `${what}: threw ${got ?? String(err)}, want ${code}`);
      return;
    }
    this.fail(id, `${what}: returned ${show(result)}, want a throw with ${code}`);
  }

  /** Human summary, e.g. "valid=229 unsupported=87". */
  summary(): string {
    return [...this.counts.entries()].map(([k, v]) => `${k}=${v}`).join(' ');
  }
}

/** Case id used in failure messages: file, tcId and flags. */
export function caseId(file: string, t: WycheproofCase): string {
  const flags = t.flags?.length ? ' ' + t.flags.join(',') : '';
  return `${file} tcId ${t.tcId} [${t.result}${flags}]`;
}
