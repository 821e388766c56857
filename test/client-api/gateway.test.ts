// The client API end to end: real `aftersmtp serve` processes (127.0.0.1, port 0) driven by the
// real CLI and by @grpc/grpc-js. Registration with proof-of-work and resolution with verified
// proofs; every stamp refusal with its precise code through gRPC; bounded request size; gRPC
// reflection; the admin-only policy with `ledger approve`; a wrong gateway certificate refused;
// a client state from another log instance refused (consistency, split view).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  credentials,
  loadPackageDefinition,
  status,
  type ServiceClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import {
  ClientApiError,
  GatewayClient,
  recordToMsg,
  signatureToMsg,
} from '../../src/amp/client-api/index.js';
import { SecretKeySet } from '../../src/identity/index.js';
import {
  PURPOSE_REGISTER,
  PURPOSE_REVOKE,
  mintStamp,
  revokeTranscript,
  recordHash,
  registerTranscript,
  leafHash,
  verifyConsistency,
  verifyInclusion,
} from '../../src/ledger/index.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { DOMAIN, startGateway, type Gateway } from './helpers.js';

const PASS = { AFTERSMTP_PASSPHRASE: 'correct horse' };

function keys(local: string): SecretKeySet {
  return SecretKeySet.generate(`did:aftersmtp:${DOMAIN}:${local}`, 'classic-v1');
}

function registerMsg(k: SecretKeySet, auth: { stamp?: Buffer; approval?: string }) {
  return {
    record: recordToMsg(k.record),
    extensions: [],
    proof_of_possession: signatureToMsg(k.sign(registerTranscript(k.record, []), PURPOSE_REGISTER)),
    ...auth,
  };
}

async function refusal(p: Promise<unknown>): Promise<ClientApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ClientApiError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

async function keygen(dir: string, local: string): Promise<string> {
  const file = join(dir, `${local}.key`);
  const r = await runCli(
    ['keygen', '--did', `did:aftersmtp:${DOMAIN}:${local}`, '--suite', 'classic-v1', '--out', file],
    { env: PASS },
  );
  assert.equal(r.code, 0, r.stderr);
  return file;
}

describe('client API over a real gateway', () => {
  let a: Gateway;
  let b: Gateway;
  let client: GatewayClient;
  const work = tempDir('client-cli');
  const state = join(work, 'state.json');

  before(async () => {
    [a, b] = await Promise.all([
      startGateway({
        AFTERSMTP_GRPC_MAX_MESSAGE_BYTES: String(64 * 1024),
        AFTERSMTP_MAX_ENVELOPE_BYTES: String(32 * 1024),
      }),
      startGateway({ AFTERSMTP_LEDGER_CHALLENGE_TTL: '1' }),
    ]);
    client = await GatewayClient.connect({ target: a.grpc, pin: { spki: a.spki } });
  });

  after(async () => {
    client?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test('serve announces the gRPC listener, the TLS pin and the log key, and publishes its record', async () => {
    assert.match(a.grpc, /^127\.0\.0\.1:[1-9][0-9]*$/);
    assert.deepEqual(a.ready.grpcServices, ['aftersmtp.client.v1.Gateway']);
    assert.match(a.spki, /^sha256\/[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(a.ready.gatewayRecord, { action: 'registered', leaf: 0 });
    const key = await runCli(['ledger', 'key', '--json'], { env: a.env });
    assert.equal(key.code, 0, key.stderr);
    assert.equal(JSON.parse(key.stdout).verifierKey, a.logKey);
  });

  test('register mints with the native kernel and verifies; resolve verifies the proofs', async () => {
    const keyFile = await keygen(work, 'alice');
    const reg = await runCli(
      [
        'register',
        '--key',
        keyFile,
        '--gateway',
        a.grpc,
        '--gateway-spki',
        a.spki,
        '--log-key',
        a.logKey,
        '--state',
        state,
        '--json',
      ],
      { env: PASS },
    );
    assert.equal(reg.code, 0, reg.stderr);
    assert.match(reg.stderr, /minted a 12-bit stamp/);
    const out = JSON.parse(reg.stdout);
    assert.equal(out.verified, true);
    assert.equal(out.did, `did:aftersmtp:${DOMAIN}:alice`);
    assert.equal(out.authorisation.hashcash.bits, 12);

    const res = await runCli(
      [
        'resolve',
        `did:aftersmtp:${DOMAIN}:alice`,
        '--gateway',
        a.grpc,
        '--gateway-cert',
        a.certFile,
        '--state',
        state,
        '--json',
      ],
      { env: { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' } },
    );
    assert.equal(res.code, 0, res.stderr);
    const r = JSON.parse(res.stdout);
    assert.equal(r.verified, true);
    assert.equal(r.leafIndex, out.leafIndex);
    assert.equal(r.record.keyId, out.record.keyId);
    assert.equal(r.consistency.fromSize, out.treeSize);
    assert.equal(r.logKeySource, 'pin');
    // The output alone proves the entry: its bytes, the inclusion proof and the root.
    const b64 = (x: string) => Buffer.from(x, 'base64');
    for (const o of [out, r]) {
      verifyInclusion(
        leafHash(b64(o.entry)),
        o.leafIndex,
        o.treeSize,
        (o.inclusionProof as string[]).map(b64),
        b64(o.rootHash),
      );
    }

    // ...and the log's operator proves that the tree it answered with extends the first one.
    const cons = await runCli(['ledger', 'consistency', String(out.treeSize), '--json'], {
      env: a.env,
    });
    assert.equal(cons.code, 0, cons.stderr);
    const c = JSON.parse(cons.stdout) as {
      from: { size: number; rootHash: string };
      to: { size: number; rootHash: string };
      proof: string[];
    };
    assert.equal(c.from.rootHash, out.rootHash);
    assert.ok(c.to.size >= r.treeSize);
    verifyConsistency(
      c.from.size,
      c.to.size,
      c.proof.map(b64),
      b64(out.rootHash),
      b64(c.to.rootHash),
    );
    const range = await runCli(['ledger', 'consistency', '5', '2'], { env: a.env });
    assert.equal(range.code, 1);
    assert.match(range.stderr, /ERR_LEDGER_RANGE/);

    const gw = await runCli(
      [
        'resolve',
        `did:aftersmtp:${DOMAIN}:gateway`,
        '--gateway',
        a.grpc,
        '--gateway-spki',
        a.spki,
        '--state',
        state,
      ],
      { env: { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' } },
    );
    assert.equal(gw.code, 0, gw.stderr);
    assert.match(gw.stdout, /extension {2}quic-tls-spki /);
    assert.match(gw.stdout, /verified {3}yes/);
  });

  test('stamps: reused, under-difficulty, wrong DID, malformed and missing are refused with codes', async () => {
    const bob = keys('bob');
    const c = await client.getRegistrationChallenge({ domain: DOMAIN });
    assert.equal(c.bits, 12);
    const stamp = await mintStamp(c.challenge, bob.did, recordHash(bob.record), c.bits);
    const ok = await client.registerIdentity(registerMsg(bob, { stamp }));
    assert.ok(ok.inclusion !== null && ok.inclusion.leaf_index >= 1);

    const dave = keys('dave');
    const reused = await mintStamp(c.challenge, dave.did, recordHash(dave.record), c.bits);
    let e = await refusal(client.registerIdentity(registerMsg(dave, { stamp: reused })));
    assert.equal(e.code, 'ERR_STAMP_REUSED');
    assert.equal(e.grpcCode, status.ALREADY_EXISTS);

    const c2 = await client.getRegistrationChallenge({ domain: DOMAIN });
    const weak = await mintStamp(c2.challenge, dave.did, recordHash(dave.record), 4);
    e = await refusal(client.registerIdentity(registerMsg(dave, { stamp: weak })));
    assert.equal(e.code, 'ERR_STAMP_DIFFICULTY');
    assert.equal(e.grpcCode, status.INVALID_ARGUMENT);

    const carol = keys('carol');
    const forCarol = await mintStamp(c2.challenge, carol.did, recordHash(carol.record), 12);
    e = await refusal(client.registerIdentity(registerMsg(dave, { stamp: forCarol })));
    assert.equal(e.code, 'ERR_STAMP_WRONG_DID');

    e = await refusal(client.registerIdentity(registerMsg(dave, { stamp: randomBytes(90) })));
    assert.equal(e.code, 'ERR_STAMP_MALFORMED');
    e = await refusal(client.registerIdentity(registerMsg(dave, {})));
    assert.equal(e.code, 'ERR_STAMP_MISSING');
    assert.equal(e.grpcCode, status.PERMISSION_DENIED);
    e = await refusal(client.registerIdentity({ extensions: [] }));
    assert.equal(e.code, 'ERR_CLIENT_API_REQUEST');
    e = await refusal(client.resolveIdentity({ did: `did:aftersmtp:${DOMAIN}:nobody` }));
    assert.equal(e.code, 'ERR_DID_UNKNOWN');
    assert.equal(e.grpcCode, status.NOT_FOUND);
    e = await refusal(client.getRegistrationChallenge({ domain: 'other.example' }));
    assert.equal(e.code, 'ERR_DOMAIN_NOT_SERVED');
  });

  test('revoke over gRPC: a forged signature is refused, the holder signature is logged', async () => {
    const ivan = keys('ivan');
    const c = await client.getRegistrationChallenge({ domain: DOMAIN });
    const stamp = await mintStamp(c.challenge, ivan.did, recordHash(ivan.record), c.bits);
    const reg = await client.registerIdentity(registerMsg(ivan, { stamp }));
    const leaf = reg.inclusion?.leaf_index as number;
    const t = revokeTranscript(ivan.did, leaf, ivan.keyId, 'lost laptop');
    const req = { did: ivan.did, prev_leaf: leaf, key_id: ivan.keyId, reason: 'lost laptop' };
    const forged = signatureToMsg(keys('mallory').sign(t, PURPOSE_REVOKE));
    const e = await refusal(client.revokeIdentity({ ...req, signature: forged }));
    assert.equal(e.code, 'ERR_LEDGER_REVOKE_SIGNATURE');
    const size = reg.inclusion?.tree_size as number;
    const ok = await client.revokeIdentity({
      ...req,
      signature: signatureToMsg(ivan.sign(t, PURPOSE_REVOKE)),
      known_tree_size: size,
    });
    assert.equal(ok.consistency?.from_size, size);
    const res = await client.resolveIdentity({ did: ivan.did });
    assert.equal(res.inclusion?.leaf_index, ok.inclusion?.leaf_index);
  });

  test('an expired challenge is refused (ERR_STAMP_EXPIRED)', async () => {
    const cb = await GatewayClient.connect({ target: b.grpc, pin: { spki: b.spki } });
    try {
      const erin = keys('erin');
      const c = await cb.getRegistrationChallenge({ domain: DOMAIN });
      const stamp = await mintStamp(c.challenge, erin.did, recordHash(erin.record), c.bits);
      await sleep(Math.max(0, c.expires_at - Date.now()) + 50);
      const e = await refusal(cb.registerIdentity(registerMsg(erin, { stamp })));
      assert.equal(e.code, 'ERR_STAMP_EXPIRED');
    } finally {
      cb.close();
    }
  });

  test('a request over AFTERSMTP_GRPC_MAX_MESSAGE_BYTES is refused before decoding', async () => {
    const e = await refusal(
      client.registerIdentity(registerMsg(keys('big'), { stamp: Buffer.alloc(100 * 1024) })),
    );
    assert.equal(e.grpcCode, status.RESOURCE_EXHAUSTED);
  });

  test('gRPC reflection lists the Gateway service', async () => {
    const proto = fileURLToPath(
      new URL(
        '../../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
        import.meta.url,
      ),
    );
    const pkg = loadPackageDefinition(loadSync(proto, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: ServiceClientConstructor } } };
    };
    const pem = readFileSync(a.certFile);
    const c = new pkg.grpc.reflection.v1.ServerReflection(
      a.grpc,
      credentials.createSsl(pem, null, null, { checkServerIdentity: () => undefined }),
      { 'grpc.ssl_target_name_override': 'aftersmtp-gateway' },
    );
    const services = await new Promise<string[]>((resolve, reject) => {
      const call = (
        c as unknown as {
          ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: unknown): void };
        }
      ).ServerReflectionInfo();
      call.on('data', (m: { list_services_response?: { service: { name: string }[] } }) => {
        resolve((m.list_services_response?.service ?? []).map((s) => s.name));
        call.end();
      });
      call.on('error', reject);
      call.write({ list_services: '' });
    });
    c.close();
    assert.ok(services.includes('aftersmtp.client.v1.Gateway'), services.join(','));
  });

  test('a wrong gateway certificate or key pin is refused (ERR_TLS_PIN_MISMATCH)', async () => {
    const keyFile = join(work, 'alice.key');
    for (const pin of [
      ['--gateway-cert', b.certFile],
      ['--gateway-spki', b.spki],
    ]) {
      const r = await runCli([
        'resolve',
        `did:aftersmtp:${DOMAIN}:alice`,
        '--gateway',
        a.grpc,
        ...pin,
        '--log-key',
        a.logKey,
        '--state',
        join(work, 'other.json'),
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /ERR_TLS_PIN_MISMATCH/);
    }
    const r = await runCli(
      [
        'register',
        '--key',
        keyFile,
        '--gateway',
        a.grpc,
        '--gateway-spki',
        `sha256/${randomBytes(32).toString('base64')}`,
        '--log-key',
        a.logKey,
      ],
      { env: PASS },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_TLS_PIN_MISMATCH/);
    await assert.rejects(
      GatewayClient.connect({ target: a.grpc, pin: { certPem: readFileSync(b.certFile, 'utf8') } }),
      /ERR_TLS_PIN_MISMATCH|presents the key/,
    );
  });

  test('a client state from another log instance is a loud failure (consistency, split view)', async () => {
    const bcp = await runCli(['ledger', 'checkpoint', '--json'], { env: b.env });
    assert.equal(bcp.code, 0, bcp.stderr);
    const other = JSON.parse(bcp.stdout) as { size: number; rootHash: string };
    const acp = await client.getCheckpoint();
    assert.ok(acp.tree_size > other.size);
    const forked = join(work, 'forked.json');
    const write = (size: number, root: string) =>
      writeFileSync(
        forked,
        JSON.stringify({
          format: 'aftersmtp-ledger-client/v1',
          logs: { [DOMAIN]: { verifierKey: a.logKey, size, root } },
        }),
      );
    const resolve = () =>
      runCli(
        [
          'resolve',
          `did:aftersmtp:${DOMAIN}:alice`,
          '--gateway',
          a.grpc,
          '--gateway-spki',
          a.spki,
          '--state',
          forked,
          '--json',
        ],
        { env: { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' } },
      );
    write(other.size, other.rootHash);
    let r = await resolve();
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).verified, false);
    assert.match(r.stderr, /ERR_LEDGER_CONSISTENCY/);
    write(acp.tree_size, randomBytes(32).toString('base64'));
    r = await resolve();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_LEDGER_SPLIT_VIEW/);
    const kept = JSON.parse(readFileSync(forked, 'utf8'));
    assert.equal(
      kept.logs[DOMAIN].size,
      acp.tree_size,
      'a refused answer does not advance the state',
    );
  });

  test('admin-only: register is refused until `ledger approve`; the approval is single-use', async () => {
    const set = await runCli(['ledger', 'policy', DOMAIN, 'admin-only'], { env: a.env });
    assert.equal(set.code, 0, set.stderr);
    const keyFile = await keygen(work, 'frank');
    const args = [
      'register',
      '--key',
      keyFile,
      '--gateway',
      a.grpc,
      '--gateway-spki',
      a.spki,
      '--log-key',
      a.logKey,
      '--state',
      state,
    ];
    let r = await runCli(args, { env: PASS });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_POLICY_ADMIN_ONLY/);
    const approve = await runCli(
      ['ledger', 'approve', `did:aftersmtp:${DOMAIN}:frank`, '--admin', 'ops', '--json'],
      { env: a.env },
    );
    assert.equal(approve.code, 0, approve.stderr);
    const { reference } = JSON.parse(approve.stdout);
    r = await runCli([...args, '--approval', reference, '--json'], { env: PASS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).verified, true);
    const george = keys('george');
    const e = await refusal(client.registerIdentity(registerMsg(george, { approval: reference })));
    assert.equal(e.code, 'ERR_APPROVAL_INVALID');
    const show = await runCli(['ledger', 'policy', DOMAIN, '--json'], { env: a.env });
    assert.equal(JSON.parse(show.stdout).policy, 'admin-only');
  });
});

test('registrations over the per-source rate limit are refused with RESOURCE_EXHAUSTED', async () => {
  const g = await startGateway({ AFTERSMTP_LEDGER_RATE_LIMIT: '2/60' });
  const client = await GatewayClient.connect({ target: g.grpc, pin: { spki: g.spki } });
  try {
    const register = async (local: string) => {
      const k = keys(local);
      const c = await client.getRegistrationChallenge({ domain: DOMAIN });
      const stamp = await mintStamp(c.challenge, k.did, recordHash(k.record), c.bits);
      return client.registerIdentity(registerMsg(k, { stamp }));
    };
    await register('rate1');
    await register('rate2');
    const e = await refusal(register('rate3'));
    assert.equal(e.code, 'ERR_RATE_LIMITED');
    assert.equal(e.grpcCode, status.RESOURCE_EXHAUSTED);
    assert.ok(e.retryAfterMs !== undefined && e.retryAfterMs > 0, 'a retry-after hint is given');
  } finally {
    client.close();
    await g.stop();
  }
});
