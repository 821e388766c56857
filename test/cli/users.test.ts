// `aftersmtp users`: submission logins bound to DIDs, through the real CLI; the file it writes is
// the one the SMTP listeners read on AUTH (checked with SubmissionUsers.verify).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SubmissionUsers } from '../../src/legacy/users.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('users add, list, passwd and del; passwords from standard input or a file', async () => {
  const dataDir = tempDir('users');
  const env = { AFTERSMTP_DATA_DIR: dataDir };
  const did = 'did:aftersmtp:example.org:alice';
  let r = await runCli(['users', 'add', 'Alice@example.org', did], {
    env,
    input: 'first secret\n',
  });
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['users', 'list', '--json'], { env });
  const list = JSON.parse(r.stdout) as { login: string; did: string }[];
  assert.deepEqual(
    list.map((u) => [u.login, u.did]),
    [['alice@example.org', did]],
  );
  assert.doesNotMatch(r.stdout, /secret/);
  const users = SubmissionUsers.open(dataDir);
  try {
    assert.equal((await users.verify('alice@example.org', 'first secret'))?.did, did);
    assert.equal(await users.verify('alice@example.org', 'wrong one!'), undefined);
    r = await runCli(['users', 'passwd', 'alice@example.org'], { env, input: 'second secret\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await users.verify('alice@example.org', 'first secret'), undefined);
    assert.equal((await users.verify('ALICE@example.org', 'second secret'))?.did, did);
  } finally {
    users.close();
  }
  r = await runCli(['users', 'add', 'bob@example.org', 'did:aftersmtp:example.org:bob'], {
    env,
    input: 'short\n',
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_USER_PASSWORD/);
  r = await runCli(['users', 'add', 'carol@example.org', 'not a did'], {
    env,
    input: 'long enough\n',
  });
  assert.equal(r.code, 1);
  r = await runCli(['users', 'add', 'alice@example.org', did], { env, input: 'long enough\n' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_USER_EXISTS/);
  r = await runCli(['users', 'del', 'alice@example.org'], { env });
  assert.equal(r.code, 0);
  r = await runCli(['users', 'del', 'alice@example.org'], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_USER_UNKNOWN/);
  r = await runCli(['users', 'add', 'alice@example.org'], { env });
  assert.equal(r.code, 2, 'a missing argument is a usage error');
});
