// The off-ramp logging in to a relay host (AFTERSMTP_OFFRAMP_CREDENTIALS_FILE,
// src/legacy/offramp/credentials.ts), against smtp-server with STARTTLS and AUTH required: the
// credentials file's lines and its mode are checked whole; a login goes only over TLS whose
// certificate verifies for the host name, so a server with another name's certificate, or none,
// never sees AUTH; a refused login sends nothing of the message and is temporary; a kept session
// carries the next message without a second login; through the off-ramp with a route and DNS
// (unbound), the message is delivered as the login's user. Implicit TLS (an `smtps:` route, port
// 465's way): TLS from the first byte with the name checked, with or without a login; a server
// that greets in clear, or shows another name's certificate, is a TLS failure with nothing sent.
import assert from 'node:assert/strict';
import { chmodSync, utimesSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import {
  CredentialsFile,
  parseCredentials,
  readCredentialsFile,
} from '../../src/legacy/offramp/credentials.js';
import { createOffRamp } from '../../src/legacy/offramp/index.js';
import { runSession, SessionCache, type SessionInput } from '../../src/legacy/offramp/session.js';
import { encodeOutbound } from '../../src/queue/outbound.js';
import { MappingEngine } from '../../src/routing/index.js';
import { ConfigError } from '../../src/errors.js';
import { until } from '../helpers/wait.js';
import {
  deliveredToBob,
  job,
  keepSubjects,
  makeCa,
  memoryLog,
  message,
  sessionInput,
  startZone,
  tempDir,
  unboundMissing,
  type TestCa,
} from './helpers.js';

const USER = 'gw@relay.test';
const PASS = 's3cret-pass';

describe('the credentials file', () => {
  test('[host]:port and host lines; the port-specific line wins', () => {
    const lookup = parseCredentials(
      [
        '# relay hosts',
        '',
        '[Smtp.Relay.Test]:587 gw@relay.test:pw587',
        'smtp.relay.test other:pwany\r',
      ].join('\n'),
      'creds',
    );
    assert.deepEqual(lookup('smtp.relay.test', 587), { user: 'gw@relay.test', pass: 'pw587' });
    assert.deepEqual(lookup('smtp.relay.test', 25), { user: 'other', pass: 'pwany' });
    assert.equal(lookup('elsewhere.test', 587), undefined);
    // The name as DNS or a route may give it: any case, a final dot.
    assert.deepEqual(lookup('SMTP.Relay.Test.', 587), { user: 'gw@relay.test', pass: 'pw587' });
  });

  test('a bad line is refused with its number, never skipped', () => {
    const cases: [string, RegExp][] = [
      ['[relay.test]:587', /line 1: expected/],
      ['relay.test user', /line 1: expected user:password/],
      ['ok.test u:p\n[127.0.0.1]:587 u:p', /line 2: .*no addresses/],
      ['[relay.test]:0 u:p', /line 1: .* is not \[host\]:port/],
      ['relay.test u:p\nRELAY.test v:q', /line 2: RELAY\.test is listed twice/],
      ['relay.test :p', /line 1: expected user:password/],
      ['relay.test u:', /line 1: the user and the password/],
    ];
    for (const [text, why] of cases) {
      assert.throws(
        () => parseCredentials(text, 'creds'),
        (e: unknown) => e instanceof ConfigError && why.test(e.message),
        text,
      );
    }
  });

  test('a file that group or others may read is refused', () => {
    const path = join(tempDir('creds'), 'relay-credentials');
    writeFileSync(path, `[relay.test]:587 ${USER}:${PASS}\n`);
    chmodSync(path, 0o644);
    assert.throws(() => readCredentialsFile(path), /chmod 600/);
    assert.throws(
      () => readCredentialsFile(`${path}.missing`),
      /cannot read .*\(AFTERSMTP_OFFRAMP_CREDENTIALS_FILE\): ENOENT/,
    );
    chmodSync(path, 0o600);
    assert.deepEqual(readCredentialsFile(path)('relay.test', 587), { user: USER, pass: PASS });
  });

  test('a change is live without a restart; a bad change is refused, the last good stays', async () => {
    const path = join(tempDir('creds'), 'relay-credentials');
    writeFileSync(path, `[relay.test]:587 ${USER}:${PASS}\n`, { mode: 0o600 });
    const reloads: (string | undefined)[] = [];
    const file = new CredentialsFile(path, (err) => reloads.push(err?.message));
    let stamp = Date.now() / 1000;
    /** Rewrites the file with a new modification time (a second apart: no change is missed). */
    const rewrite = (text: string) => {
      writeFileSync(path, text);
      stamp += 2;
      utimesSync(path, stamp, stamp);
    };
    try {
      assert.equal(file.lookup('relay.test', 587)?.pass, PASS);
      rewrite(`[relay.test]:587 ${USER}:new-pass\n`);
      await until('the reload', () => file.lookup('relay.test', 587)?.pass === 'new-pass');
      assert.ok(reloads.length > 0 && reloads.every((r) => r === undefined));

      // (A poll may see the write and the new time apart: each reading is refused alike.)
      let seen = reloads.length;
      rewrite(`[relay.test]:587 ${USER}:third-pass\nnot a line at all\n`);
      await until('the reload', () => reloads.length > seen);
      assert.match(reloads.at(-1) ?? '', /line 2: expected/);
      assert.equal(file.lookup('relay.test', 587)?.pass, 'new-pass');

      seen = reloads.length;
      chmodSync(path, 0o644);
      rewrite(`[relay.test]:587 ${USER}:fourth-pass\n`);
      await until('the reload', () => reloads.length > seen);
      assert.ok(reloads.slice(seen).every((r) => /chmod 600/.test(r ?? '')));
      assert.equal(file.lookup('relay.test', 587)?.pass, 'new-pass');

      chmodSync(path, 0o600);
      await until('the reload', () => file.lookup('relay.test', 587)?.pass === 'fourth-pass');
    } finally {
      file.close();
    }
  });
});

/** A server's key and its chain (its certificate, then the CA's) for `name`. */
async function serverCertificate(
  ca: TestCa,
  name: string,
): Promise<{ keyPem: string; chainPem: string }> {
  const c = await ca.issue([name]);
  return { keyPem: c.keyPem, chainPem: `${c.certPem.trim()}\n${ca.certPem.trim()}\n` };
}

interface AuthServer {
  readonly port: number;
  readonly logins: string[];
  readonly mailFrom: string[];
  readonly subjects: string[];
  connections: number;
  close(): Promise<void>;
}

/**
 * smtp-server with STARTTLS (the given certificate, or none) and AUTH required; with `implicit`,
 * TLS from the first byte instead (port 465's way), and AUTH optional.
 */
async function startAuthServer(
  cert: { keyPem: string; chainPem: string } | undefined,
  implicit = false,
) {
  const state = {
    logins: [] as string[],
    mailFrom: [] as string[],
    subjects: [] as string[],
    connections: 0,
  };
  const server = new SMTPServer({
    logger: false,
    authMethods: ['PLAIN', 'LOGIN'],
    ...(implicit ? { secure: true, authOptional: true } : {}),
    ...(cert !== undefined
      ? { key: cert.keyPem, cert: cert.chainPem }
      : { disabledCommands: ['STARTTLS'], allowInsecureAuth: true }),
    onConnect(_session, callback) {
      state.connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      state.logins.push(`${auth.username}:${auth.password}`);
      if (auth.username === USER && auth.password === PASS) callback(null, { user: USER });
      else callback(Object.assign(new Error('Invalid credentials'), { responseCode: 535 }));
    },
    onMailFrom(address, _session, callback) {
      state.mailFrom.push(address.address);
      callback();
    },
    onData: keepSubjects(state.subjects),
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, {
    port: (server.server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as AuthServer;
}

describe('a session that logs in', () => {
  let ca: TestCa;
  let good: AuthServer;
  let wrongName: AuthServer;
  let noTls: AuthServer;
  before(async () => {
    ca = await makeCa();
    const chain = (name: string) => serverCertificate(ca, name);
    good = await startAuthServer(await chain('relay.test'));
    wrongName = await startAuthServer(await chain('someone-else.test'));
    noTls = await startAuthServer(undefined);
  });
  after(async () => {
    await Promise.all([good.close(), wrongName.close(), noTls.close()]);
  });

  const input = (port: number, subject: string, over: Partial<SessionInput> = {}) =>
    sessionInput(port, subject, {
      hostName: 'relay.test',
      tls: { kind: 'verified' },
      ca: [ca.certPem],
      login: { user: USER, pass: PASS },
      ...over,
    });
  const delivered = deliveredToBob;

  test('over TLS that verifies for the name: logged in, delivered', async () => {
    const r = await runSession(input(good.port, 'hello'));
    assert.ok(delivered(r), JSON.stringify(r));
    assert.ok(r.kind === 'done' && r.tls);
    assert.deepEqual(good.logins.slice(-1), [`${USER}:${PASS}`]);
    assert.deepEqual(good.subjects.slice(-1), ['hello']);
  });

  test('a refused login: auth-failed, nothing of the message sent', async () => {
    const mails = good.mailFrom.length;
    const r = await runSession(input(good.port, 'x', { login: { user: USER, pass: 'wrong' } }));
    assert.equal(r.kind, 'auth-failed');
    assert.match('reason' in r ? r.reason : '', /^AUTH: 535/);
    assert.equal(good.mailFrom.length, mails);
  });

  test('a certificate for another name: the server never sees the login', async () => {
    const r = await runSession(input(wrongName.port, 'x'));
    assert.equal(r.kind, 'policy-failed');
    assert.ok(r.kind === 'policy-failed' && r.report.result === 'certificate-host-mismatch');
    assert.deepEqual(wrongName.logins, []);
    assert.deepEqual(wrongName.mailFrom, []);
  });

  test('a server without STARTTLS: the server never sees the login', async () => {
    const r = await runSession(input(noTls.port, 'x'));
    assert.equal(r.kind, 'policy-failed');
    assert.ok(r.kind === 'policy-failed' && r.report.result === 'starttls-not-supported');
    assert.deepEqual(noTls.logins, []);
    assert.deepEqual(noTls.mailFrom, []);
  });

  test('a login is refused without verified TLS, before connecting', async () => {
    await assert.rejects(
      runSession(input(noTls.port, 'x', { tls: { kind: 'opportunistic' } })),
      /must require verified TLS/,
    );
  });

  test('a kept session carries the next message without a second login', async () => {
    const cache = new SessionCache({ idleMs: 5_000 });
    const [connections, logins] = [good.connections, good.logins.length];
    assert.ok(delivered(await runSession(input(good.port, 'k1'), cache)));
    assert.ok(delivered(await runSession(input(good.port, 'k2'), cache)));
    assert.equal(good.connections - connections, 1);
    assert.equal(good.logins.length - logins, 1);
    // Another login is another session.
    const other = await runSession(
      input(good.port, 'k3', { login: { user: 'someone', pass: 'else' } }),
      cache,
    );
    assert.equal(other.kind, 'auth-failed');
    assert.equal(good.connections - connections, 2);
    await cache.close();
  });
});

describe('implicit TLS (an smtps: route)', () => {
  let ca: TestCa;
  let implicit: AuthServer;
  let implicitWrongName: AuthServer;
  let clear: AuthServer;
  before(async () => {
    ca = await makeCa();
    const chain = (name: string) => serverCertificate(ca, name);
    implicit = await startAuthServer(await chain('relay.test'), true);
    implicitWrongName = await startAuthServer(await chain('someone-else.test'), true);
    // Greets in clear and offers STARTTLS: what a submission port 587 is.
    clear = await startAuthServer(await chain('relay.test'));
  });
  after(async () => {
    await Promise.all([implicit.close(), implicitWrongName.close(), clear.close()]);
  });

  const input = (port: number, subject: string, over: Partial<SessionInput> = {}) =>
    sessionInput(port, subject, {
      hostName: 'relay.test',
      tls: { kind: 'implicit' },
      ca: [ca.certPem],
      ...over,
    });

  test('TLS from the first byte, the name checked: delivered, with or without a login', async () => {
    const r = await runSession(
      input(implicit.port, 'implicit', { login: { user: USER, pass: PASS } }),
    );
    assert.ok(deliveredToBob(r), JSON.stringify(r));
    assert.ok(r.kind === 'done' && r.tls && r.report.result === 'success');
    assert.deepEqual(implicit.logins, [`${USER}:${PASS}`]);
    const anonymous = await runSession(input(implicit.port, 'no login'));
    assert.ok(deliveredToBob(anonymous), JSON.stringify(anonymous));
    assert.deepEqual(implicit.subjects, ['implicit', 'no login']);
    assert.equal(implicit.logins.length, 1);
  });

  test('a server that greets in clear: a TLS failure, nothing sent', async () => {
    const r = await runSession(input(clear.port, 'x', { login: { user: USER, pass: PASS } }));
    assert.equal(r.kind, 'policy-failed', JSON.stringify(r));
    assert.ok(r.kind === 'policy-failed' && r.report.result === 'validation-failure');
    assert.match(r.reason, /^TLS handshake failed/);
    assert.deepEqual(clear.logins, []);
    assert.deepEqual(clear.mailFrom, []);
  });

  test('a certificate for another name: the server never sees the login', async () => {
    const r = await runSession(
      input(implicitWrongName.port, 'x', { login: { user: USER, pass: PASS } }),
    );
    assert.ok(r.kind === 'policy-failed' && r.report.result === 'certificate-host-mismatch');
    assert.deepEqual(implicitWrongName.logins, []);
    assert.deepEqual(implicitWrongName.mailFrom, []);
  });
});

describe(
  'the off-ramp through a relay host that requires a login',
  { skip: unboundMissing() },
  () => {
    test('routed by mx_record_map, resolved by DNS: delivered as the login user', async () => {
      const ca = await makeCa();
      const server = await startAuthServer(await serverCertificate(ca, 'smtp.relay.test'));
      const dns = await startZone('relay.test', ['smtp.relay.test. A 127.0.0.1']);
      const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
      const path = join(tempDir('creds'), 'relay-credentials');
      writeFileSync(path, `[smtp.relay.test]:${server.port} ${USER}:${PASS}\n`, { mode: 0o600 });
      try {
        maps.set('mx_record_map', '*', `smtp:[SMTP.Relay.Test]:${server.port}`);
        const offramp = createOffRamp({
          maps: () => maps.snapshot(),
          dnsServers: [dns.server],
          hostname: 'gateway.example.org',
          log: memoryLog(),
          ca: [ca.certPem],
          credentials: readCredentialsFile(path),
          timeouts: { connectMs: 2000, dnsMs: 1000 },
        });
        const out = await offramp(
          job(
            'smtp:far.example',
            ['bob@far.example'],
            encodeOutbound({
              mailFrom: 'alice@example.org',
              message: message('via the relay', 'bob@far.example'),
            }),
          ),
        );
        assert.deepEqual(
          out.map((o) => o.status),
          ['delivered'],
        );
        assert.deepEqual(server.logins, [`${USER}:${PASS}`]);
        assert.deepEqual(server.mailFrom, ['alice@example.org']);
        await offramp.close();

        // A refused login is temporary (as Postfix's smtp_sasl_auth_soft_bounce), nothing sent.
        const refused = createOffRamp({
          maps: () => maps.snapshot(),
          dnsServers: [dns.server],
          hostname: 'gateway.example.org',
          log: memoryLog(),
          ca: [ca.certPem],
          credentials: parseCredentials(`smtp.relay.test ${USER}:wrong`, 'creds'),
          timeouts: { connectMs: 2000, dnsMs: 1000 },
        });
        const [outcome] = await refused(
          job(
            'smtp:far.example',
            ['bob@far.example'],
            encodeOutbound({
              mailFrom: 'alice@example.org',
              message: message('refused', 'bob@far.example'),
            }),
          ),
        );
        assert.equal(outcome?.status, 'temporary');
        assert.equal(outcome?.code, 'ERR_SMTP_AUTH');
        assert.deepEqual(server.mailFrom, ['alice@example.org']);
        await refused.close();
      } finally {
        maps.close();
        await dns.close();
        await server.close();
      }
    });

    test('an smtps: route: implicit TLS to the host it names; a clear server is ERR_SMTP_TLS', async () => {
      const ca = await makeCa();
      const chain = await serverCertificate(ca, 'smtp.relay.test');
      const [server, clear] = [await startAuthServer(chain, true), await startAuthServer(chain)];
      const dns = await startZone('relay.test', ['smtp.relay.test. A 127.0.0.1']);
      const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
      const offramp = createOffRamp({
        maps: () => maps.snapshot(),
        dnsServers: [dns.server],
        hostname: 'gateway.example.org',
        log: memoryLog(),
        ca: [ca.certPem],
        credentials: parseCredentials(`smtp.relay.test ${USER}:${PASS}`, 'creds'),
        timeouts: { connectMs: 2000, dnsMs: 1000 },
      });
      const send = (to: string) =>
        offramp(
          job(
            `smtp:${to.slice(to.indexOf('@') + 1)}`,
            [to],
            encodeOutbound({ mailFrom: 'alice@example.org', message: message('smtps', to) }),
          ),
        );
      try {
        maps.set('mx_record_map', 'far.example', `smtps:[smtp.relay.test]:${server.port}`);
        maps.set('mx_record_map', 'clear.example', `smtps:[smtp.relay.test]:${clear.port}`);
        assert.deepEqual(
          (await send('bob@far.example')).map((o) => o.status),
          ['delivered'],
        );
        assert.deepEqual(server.logins, [`${USER}:${PASS}`]);
        assert.deepEqual(server.mailFrom, ['alice@example.org']);
        const [outcome] = await send('bob@clear.example');
        assert.equal(outcome?.status, 'temporary');
        assert.equal(outcome?.code, 'ERR_SMTP_TLS');
        assert.deepEqual(clear.mailFrom, []);
        assert.deepEqual(clear.logins, []);
      } finally {
        await offramp.close();
        maps.close();
        await dns.close();
        await Promise.all([server.close(), clear.close()]);
      }
    });
  },
);
