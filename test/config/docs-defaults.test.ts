// The docs say what the code does: every AFTERSMTP_* variable the docs name exists (a setting of
// src/config/schema.ts, a variable the CLI reads, or one of the scripts'), and every default the
// prose gives next to a variable, "(default 33 MiB)", is the default the loader applies. The
// settings table itself is generated and checked in config.test.ts; this covers the prose of
// docs/*.md and README.md (PROTOCOL.md §10.3 once said 64 KiB where the table said 33 MiB).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { CLIENT_VARIABLES, EXTRA_VARIABLES } from '../../src/config/load.js';
import { SETTINGS } from '../../src/config/schema.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCS = [
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f)),
  'README.md',
];
/** Variables of the scripts in scripts/ (where the test servers and tools go), not the gateway's. */
const SCRIPT_VARIABLES = new Set([
  'AFTERSMTP_TOOLS_DIR',
  'AFTERSMTP_SERVICES_DIR',
  'AFTERSMTP_NATS_PORT',
  'AFTERSMTP_AMQP_PORT',
  'AFTERSMTP_AMQP_DIST_PORT',
  'AFTERSMTP_POSTGRES_PORT',
]);

const DEFAULTS = new Map<string, string | undefined>(
  Object.values(SETTINGS).map((s) => [s.env, s.default]),
);

const UNITS: Record<string, number> = {
  B: 1,
  bytes: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  ms: 0.001,
  s: 1,
  seconds: 1,
  min: 60,
  minutes: 60,
  h: 3600,
  hours: 3600,
  day: 86_400,
  days: 86_400,
};

/** A default as the prose writes it, in the setting's own unit; undefined if not a quantity. */
function quantity(name: string, text: string): number | undefined {
  const m = /^([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z]+)?$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number((m[1] as string).replace(/[_,]/g, ''));
  const unit = m[2];
  if (unit === undefined) return n;
  const factor = UNITS[unit];
  if (factor === undefined) return undefined;
  if (factor === 1 && (unit === 'B' || unit === 'bytes')) return n;
  if (unit.endsWith('iB')) return n * factor;
  // A time: the setting counts milliseconds (..._MS) or seconds.
  return name.endsWith('_MS') ? Math.round(n * factor * 1000) : n * factor;
}

function docText(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

test('every AFTERSMTP_* variable the docs name exists', () => {
  for (const file of DOCS) {
    for (const m of docText(file).matchAll(/AFTERSMTP_[A-Z0-9_]*[A-Z0-9]/g)) {
      const name = m[0];
      if (name === 'AFTERSMTP_QUIC' || name === 'AFTERSMTP') continue; // "AFTERSMTP_QUIC_*"
      assert.ok(
        DEFAULTS.has(name) ||
          EXTRA_VARIABLES.has(name) ||
          CLIENT_VARIABLES.has(name) ||
          SCRIPT_VARIABLES.has(name),
        `${file} names ${name}, which no code reads`,
      );
    }
  }
});

test('every "(default ...)" next to a variable in the prose is the default the loader applies', () => {
  let checked = 0;
  for (const file of DOCS) {
    const text = docText(file).replace(/\s+/g, ' ');
    for (const m of text.matchAll(
      /`?(AFTERSMTP_[A-Z0-9_]+)`?[^.|()]{0,40}?\(default:? ([^)]+)\)/g,
    )) {
      const name = m[1] as string;
      const said = (m[2] as string).replace(/`/g, '').trim();
      if (!DEFAULTS.has(name)) continue;
      const actual = DEFAULTS.get(name);
      if (actual === undefined) continue; // unset: the prose says what "unset" does
      const q = quantity(name, said);
      if (q !== undefined) {
        assert.equal(
          q,
          Number(actual),
          `${file}: ${name} (default ${said}) but the loader's is ${actual}`,
        );
      } else {
        assert.equal(
          said,
          actual,
          `${file}: ${name} (default ${said}) but the loader's is ${actual}`,
        );
      }
      checked++;
    }
  }
  assert.ok(checked >= 2, `found ${checked} defaults in the prose; the pattern no longer matches`);
});

test('the quantity reader', () => {
  assert.equal(quantity('AFTERSMTP_GRPC_MAX_MESSAGE_BYTES', '33 MiB'), 33 * 1024 * 1024);
  assert.equal(quantity('AFTERSMTP_CLIENT_TOKEN_TTL', '900 s'), 900);
  assert.equal(quantity('AFTERSMTP_QUEUE_MAX_AGE_MS', '5 days'), 432_000_000);
  assert.equal(quantity('AFTERSMTP_X', 'relay.example.org'), undefined);
});
