// Golden files for docs/PROTOCOL.md's worked examples: re-derives the classic-v1 and hybrid-v1
// envelopes from fixed seeds and compares them byte for byte with
// test/fixtures/envelope/<suite>-example.{json,bin}.
// On a mismatch the derived files are written next to them as .got; UPDATE_GOLDEN=1 rewrites the
// golden files (review the diff, and update docs/PROTOCOL.md §8 to match).
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { protocolExample } from '../../src/envelope/example.js';
import type { SuiteId } from '../../src/identity/index.js';

// dist/test/amp/ -> test/fixtures/envelope/ in the source tree
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/envelope/', import.meta.url));
async function golden(suite: SuiteId, ext: string, got: Buffer): Promise<void> {
  const path = `${FIXTURES}${suite}-example.${ext}`;
  if (process.env.UPDATE_GOLDEN === '1') {
    await writeFile(path, got);
    return;
  }
  const want = await readFile(path).catch(() => Buffer.alloc(0));
  if (!want.equals(got)) {
    await writeFile(`${path}.got`, got);
    assert.fail(
      `${path} differs from the derived value; see ${path}.got (UPDATE_GOLDEN=1 to accept)`,
    );
  }
}

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`PROTOCOL.md worked example, ${suite} (golden)`, () => {
    const example = protocolExample(suite);
    it(`matches ${suite}-example.json`, async () => {
      await golden(suite, 'json', Buffer.from(`${JSON.stringify(example.values, null, 2)}\n`));
    });
    it(`matches ${suite}-example.bin`, async () => {
      await golden(suite, 'bin', example.envelope);
    });
    it('is what docs/PROTOCOL.md shows', async () => {
      const doc = await readFile(
        fileURLToPath(new URL('../../../docs/PROTOCOL.md', import.meta.url)),
        'utf8',
      );
      const flat = doc.replace(/\s+/g, '');
      for (const key of [
        'envelope',
        'authorTranscript',
        'hpkeInfo',
        'hpkeEnc',
        'contentAeadKey',
        ...(suite === 'hybrid-v1' ? (['authorMlDsa65Signature'] as const) : []),
      ] as const) {
        // In full, or (the hybrid-v1 section, for values over 256 bytes) by its SHA-256.
        const value = String(example.values[key]);
        const digest = createHash('sha256').update(Buffer.from(value, 'hex')).digest('hex');
        assert.ok(
          flat.includes(value) || (value.length / 2 > 256 && flat.includes(digest)),
          `PROTOCOL.md lacks the current ${suite} ${key}`,
        );
      }
    });
  });
}
