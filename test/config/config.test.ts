// The AFTERSMTP_* loader: defaults, every problem reported with its variable, unknown variables
// refused, and docs/OPERATIONS.md's settings table generated from the same schema.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { OPERATIONS_MD, renderSettingsTable, replaceSettingsTable } from '../../src/config/docs.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

test('an empty environment gives the embedded defaults', () => {
  const config = loadConfig({});
  assert.equal(config.dataDir, './data');
  assert.equal(config.domain, 'aftersmtp.localhost');
  assert.equal(config.suite, 'hybrid-v1');
  assert.deepEqual(config.adminListen, { host: '127.0.0.1', port: 9464 });
  assert.equal(config.maxEnvelopeBytes, 32 * 1024 * 1024);
  assert.equal(config.passphraseFile, undefined);
});

test('values from the environment are parsed', () => {
  const config = loadConfig({
    AFTERSMTP_DOMAIN: 'example.org',
    AFTERSMTP_SUITE: 'classic-v1',
    AFTERSMTP_ADMIN_LISTEN: '[::1]:0',
    AFTERSMTP_MAX_ENVELOPE_BYTES: '65536',
  });
  assert.equal(config.domain, 'example.org');
  assert.equal(config.suite, 'classic-v1');
  assert.deepEqual(config.adminListen, { host: '::1', port: 0 });
  assert.equal(config.maxEnvelopeBytes, 65536);
});

test('every bad variable is named in one error', () => {
  assert.throws(
    () =>
      loadConfig({
        AFTERSMTP_SUITE: 'rot13',
        AFTERSMTP_ADMIN_LISTEN: 'localhost',
        AFTERSMTP_MAX_ENVELOPE_BYTES: '12abc',
        AFTERSMTP_DOMAIN: 'not a domain',
      }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'ERR_CONFIG');
      for (const name of [
        'AFTERSMTP_SUITE',
        'AFTERSMTP_ADMIN_LISTEN',
        'AFTERSMTP_MAX_ENVELOPE_BYTES',
        'AFTERSMTP_DOMAIN',
      ]) {
        assert.match(err.message, new RegExp(`${name}: `));
      }
      return true;
    },
  );
});

test('a misspelt variable is refused instead of falling back to a default', () => {
  assert.throws(() => loadConfig({ AFTERSMTP_DATADIR: '/srv/mail' }), /AFTERSMTP_DATADIR: unknown/);
});

test('out-of-range numbers and ports are refused', () => {
  assert.throws(() => loadConfig({ AFTERSMTP_MAX_ENVELOPE_BYTES: '1' }), /from 4096/);
  assert.throws(() => loadConfig({ AFTERSMTP_ADMIN_LISTEN: '127.0.0.1:70000' }), /out of range/);
  assert.throws(() => loadConfig({ AFTERSMTP_PASSPHRASE_FILE: 'relative/path' }), /absolute/);
});

test('a NATS cluster: several server URLs and the replicas of the streams', () => {
  const config = loadConfig({
    AFTERSMTP_NATS_URL: 'nats://10.0.0.11:4222, nats://10.0.0.12:4222,tls://10.0.0.13:4222',
    AFTERSMTP_NATS_REPLICAS: '3',
  });
  assert.equal(config.natsUrl, 'nats://10.0.0.11:4222,nats://10.0.0.12:4222,tls://10.0.0.13:4222');
  assert.equal(config.natsReplicas, 3);
  assert.equal(loadConfig({}).natsReplicas, 1);
  assert.throws(
    () => loadConfig({ AFTERSMTP_NATS_URL: 'nats://a:4222,http://b:4222' }),
    /AFTERSMTP_NATS_URL: .*nats: or tls:/,
  );
  assert.throws(
    () => loadConfig({ AFTERSMTP_NATS_URL: 'nats://a:4222,' }),
    /AFTERSMTP_NATS_URL: expected URLs separated by commas/,
  );
  assert.throws(() => loadConfig({ AFTERSMTP_NATS_REPLICAS: '6' }), /AFTERSMTP_NATS_REPLICAS/);
});

test('docs/OPERATIONS.md lists every setting as the schema renders it', () => {
  const markdown = readFileSync(OPERATIONS_MD, 'utf8');
  assert.equal(
    markdown,
    replaceSettingsTable(markdown),
    'docs/OPERATIONS.md is stale: run `npm run build:ts && npm run docs:settings`',
  );
  assert.ok(markdown.includes(renderSettingsTable()));
});
