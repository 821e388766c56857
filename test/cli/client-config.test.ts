// The client commands' defaults: flag, then AFTERSMTP_* variable, then the client config file
// (src/cli/client-config.ts). The gateway pin is one choice across the levels.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { clientDefaults, parseClientConfig } from '../../src/cli/client-config.js';
import { gatewayTarget } from '../../src/cli/ledger-client.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('the config file: name = value, comments, relative paths anchored at the file', () => {
  const v = parseClientConfig(
    '# mine\n\ngateway = gw.example.org:4433  # the office\ngateway-spki=sha256/abc\nkey = keys/alice.key\n',
    '/home/a/.aftersmtp/client.conf',
  );
  assert.deepEqual(v, {
    gateway: 'gw.example.org:4433',
    'gateway-spki': 'sha256/abc',
    key: '/home/a/.aftersmtp/keys/alice.key',
  });
  assert.throws(() => parseClientConfig('gateway gw:1\n', '/c'), /\/c:1: expected name = value/);
  assert.throws(() => parseClientConfig('gatway = gw:1\n', '/c'), /\/c:1: unknown name "gatway"/);
  assert.throws(() => parseClientConfig('key = a\nkey = b\n', '/c'), /\/c:2: key is set twice/);
});

test('flag over variable over file; a pin at one level hides the pins below it', () => {
  const dir = tempDir('client-config');
  const file = join(dir, 'client.conf');
  writeFileSync(file, 'gateway = file:4433\ngateway-cert = tls.crt\nkey = a.key\n');
  const env = { AFTERSMTP_CLIENT_CONFIG: file, AFTERSMTP_GATEWAY_SPKI: 'sha256/env', HOME: dir };
  const d = clientDefaults(env);
  assert.equal(d.values.gateway, 'file:4433');
  assert.equal(d.values['gateway-spki'], 'sha256/env');
  assert.equal(d.values['gateway-cert'], undefined, "the environment's pin hides the file's");
  assert.equal(d.values.key, join(dir, 'a.key'));
  assert.equal(d.source.gateway, file);
  assert.equal(d.source['gateway-spki'], 'AFTERSMTP_GATEWAY_SPKI');
  // An empty variable is unset: the file's value shows through.
  assert.equal(clientDefaults({ ...env, AFTERSMTP_GATEWAY: '' }).values.gateway, 'file:4433');
  // A named file that is missing is an error; the default file may be absent.
  assert.throws(() => clientDefaults({ AFTERSMTP_CLIENT_CONFIG: join(dir, 'nope') }), {
    code: 'ERR_CLIENT_CONFIG',
  });
  assert.deepEqual(clientDefaults({ HOME: join(dir, 'empty-home') }).values, {});
});

test('gatewayTarget: the flags win and need no default', () => {
  const saved = { ...process.env };
  try {
    process.env.AFTERSMTP_GATEWAY = 'env:4433';
    process.env.AFTERSMTP_GATEWAY_SPKI = 'sha256/env';
    process.env.AFTERSMTP_CLIENT_CONFIG = '';
    assert.deepEqual(gatewayTarget({ values: {}, positionals: [] }), {
      target: 'env:4433',
      spki: 'sha256/env',
    });
    assert.deepEqual(
      gatewayTarget({ values: { gateway: 'flag:1', 'gateway-cert': 'c.pem' }, positionals: [] }),
      { target: 'flag:1', certFile: 'c.pem' },
    );
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test('a client command without a gateway says where a default can come from (exit 2)', async () => {
  const r = await runCli(['resolve', 'did:aftersmtp:example.org:alice'], {
    env: { HOME: tempDir('home') },
  });
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /--gateway is required \(or AFTERSMTP_GATEWAY, or gateway = in the client config\)/,
  );
});
