// Every stable error code the source names is documented: the codes of the protocol layers
// (identity, envelope, ledger, the AMP client API and relay) in docs/PROTOCOL.md, or, for a
// failure of the environment (a port, a file, a directory), in OPERATIONS.md's failures section;
// every other one in some document of docs/ (docs/ERRORS.md lists those no other document
// does). A family written `ERR_KEYFILE_*` covers its members. A code is
// a quoted 'ERR_...' literal in src/; codes assembled at run time are not seen here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROTOCOL_LAYERS = ['identity', 'envelope', 'ledger', 'amp'];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function codesIn(dir: string): Set<string> {
  const out = new Set<string>();
  for (const f of files(dir)) {
    for (const m of readFileSync(f, 'utf8').matchAll(/'(ERR_[A-Z0-9_]+)'/g)) {
      out.add(m[1] as string);
    }
  }
  return out;
}

const docs = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => readFileSync(join(ROOT, 'docs', f), 'utf8'))
  .join('\n');
const protocol = readFileSync(join(ROOT, 'docs', 'PROTOCOL.md'), 'utf8');
const operations = readFileSync(join(ROOT, 'docs', 'OPERATIONS.md'), 'utf8');
const environment = operations.slice(operations.indexOf('## Failures: one line and a stable code'));

/** Named in `text`, or covered there by a family such as `ERR_KEYFILE_*`. */
function documented(code: string, text: string): boolean {
  if (text.includes(code)) return true;
  return [...text.matchAll(/`(ERR_[A-Z0-9_]+_)\*`/g)].some((m) => code.startsWith(m[1] as string));
}

test('every error code of the protocol layers is in docs/PROTOCOL.md (or is an environment failure)', () => {
  const missing = PROTOCOL_LAYERS.flatMap((layer) =>
    [...codesIn(join(ROOT, 'src', layer))].filter(
      (c) => !documented(c, protocol) && !documented(c, environment),
    ),
  );
  assert.deepEqual(missing, [], `add to docs/PROTOCOL.md: ${missing.join(', ')}`);
});

test('every error code in src/ is in docs/', () => {
  const missing = [...codesIn(join(ROOT, 'src'))].filter((c) => !documented(c, docs)).sort();
  assert.deepEqual(missing, [], `add to docs/ERRORS.md: ${missing.join(', ')}`);
});
