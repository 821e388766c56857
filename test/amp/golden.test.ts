// Golden file for docs/PROTOCOL.md's worked example: re-derives the classic-v1 envelope from fixed
// seeds and compares it byte for byte with test/fixtures/envelope/classic-v1-example.{json,bin}.
// On a mismatch the derived files are written next to them as .got; UPDATE_GOLDEN=1 rewrites the
// golden files (review the diff, and update docs/PROTOCOL.md §8 to match).
import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { protocolExample } from '../../src/envelope/example.js';

// dist/test/amp/ -> test/fixtures/envelope/ in the source tree
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/envelope/', import.meta.url));
const BASE = `${FIXTURES}classic-v1-example`;

async function golden(ext: string, got: Buffer): Promise<void> {
  const path = `${BASE}.${ext}`;
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

describe('PROTOCOL.md worked example (golden)', () => {
  const example = protocolExample();
  it('matches classic-v1-example.json', async () => {
    await golden('json', Buffer.from(`${JSON.stringify(example.values, null, 2)}\n`));
  });
  it('matches classic-v1-example.bin', async () => {
    await golden('bin', example.envelope);
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
    ] as const) {
      assert.ok(flat.includes(String(example.values[key])), `PROTOCOL.md lacks the current ${key}`);
    }
  });
});
