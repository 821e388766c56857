// `maps import`: Postfix table source text (postmap hash, cidr, regexp) into a map. Golden cases
// in test/fixtures/maps/<case>.txt, each naming its map and format in its first line
// (`# map=... format=... [class=...]`), with the expected entries, warnings or error in
// <case>.json. On a mismatch the result is written next to it as <case>.json.got;
// UPDATE_GOLDEN=1 rewrites the .json files (review the diff).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  MapInputError,
  MappingEngine,
  isMapName,
  parsePostfixTable,
  type EntryClass,
  type ImportFormat,
} from '../../src/routing/index.js';

// dist/test/routing/ -> test/fixtures/maps/ in the source tree
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/maps/', import.meta.url));

function runCase(text: string): unknown {
  const header = /^# map=(\S+) format=(\S+)(?: class=(\S+))?/.exec(text);
  if (!header || !isMapName(header[1] as string))
    throw new Error('fixture lacks its "# map=... format=..." line');
  const map = header[1] as Parameters<MappingEngine['list']>[0];
  const engine = MappingEngine.open({ path: ':memory:', pollMs: 0 });
  try {
    const result = engine.import(map, text, {
      format: header[2] as ImportFormat,
      ...(header[3] ? { class: header[3] as EntryClass } : {}),
    });
    return {
      imported: result.imported,
      warnings: result.warnings,
      entries: engine
        .list(map)
        .map(({ key, value, class: cls, kind }) => ({ key, value, class: cls, kind })),
    };
  } catch (err) {
    if (!(err instanceof MapInputError)) throw err;
    return { error: err.message, code: err.code };
  } finally {
    engine.close();
  }
}

describe('Postfix table import (golden)', () => {
  const cases = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  it('has cases', () => assert.ok(cases.length >= 10));
  for (const file of cases) {
    it(file, () => {
      const got = `${JSON.stringify(runCase(readFileSync(`${FIXTURES}${file}`, 'utf8')), null, 2)}\n`;
      const path = `${FIXTURES}${file.replace(/\.txt$/, '.json')}`;
      if (process.env.UPDATE_GOLDEN === '1') {
        writeFileSync(path, got);
        return;
      }
      let want = '';
      try {
        want = readFileSync(path, 'utf8');
      } catch {
        // no golden file yet: the comparison below fails and writes .got
      }
      if (want !== got) {
        writeFileSync(`${path}.got`, got);
        assert.fail(
          `${path} differs from the import result; see ${path}.got (UPDATE_GOLDEN=1 to accept)`,
        );
      }
    });
  }
  it('every bad-*.txt case is an error that names its line', () => {
    for (const file of cases.filter((f) => f.startsWith('bad-'))) {
      const r = runCase(readFileSync(`${FIXTURES}${file}`, 'utf8')) as { error?: string };
      assert.match(r.error ?? '', /^line [0-9]+: /, file);
    }
  });
});

describe('parsePostfixTable', () => {
  it('joins continuation lines and reports the first line of a logical line', () => {
    assert.deepEqual(parsePostfixTable('a  b\n\n# x\nc d\n  e\n\tf\ng h', 'hash'), [
      { line: 1, key: 'a', value: 'b' },
      { line: 4, key: 'c', value: 'd e f' },
      { line: 7, key: 'g', value: 'h' },
    ]);
  });

  it('splits regexp keys at the closing delimiter, escaped slashes and spaces included', () => {
    assert.deepEqual(parsePostfixTable('/a\\/b c/i  value here\n!/x/ v', 'regexp'), [
      { line: 1, key: '/a\\/b c/i', value: 'value here' },
      { line: 2, key: '!/x/', value: 'v' },
    ]);
  });

  it('refuses NUL bytes, oversized input and overlong lines, naming the line', () => {
    assert.throws(() => parsePostfixTable('a b\nc\0 d', 'hash'), /^MapInputError: line 2: NUL/);
    assert.throws(
      () => parsePostfixTable(`a ${'b'.repeat(70_000)}`, 'hash'),
      /line 1: longer than/,
    );
    assert.throws(
      () => parsePostfixTable(`a b\n ${'c'.repeat(70_000)}`, 'hash'),
      /line 1: longer than/,
    );
  });

  it('takes a bare key only where the map allows it (relay_domains)', () => {
    assert.deepEqual(parsePostfixTable('example.org', 'hash', { bareKeys: true }), [
      { line: 1, key: 'example.org', value: '' },
    ]);
    assert.throws(() => parsePostfixTable('example.org', 'hash'), /line 1: expected "key value"/);
  });
});
