// Several `aftersmtp serve` nodes for one domain on one PostgreSQL (ledger, maps and mailboxes
// shared; docs/OPERATIONS.md "Running several nodes"): three nodes with the same secret files
// start at once and publish one gateway record; users register through different nodes into
// one log; a node killed with SIGKILL and restarted rejoins from its replica; the log on the
// server verifies from scratch with one history. Under CI the server is required.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import { PgLedgerReplication } from '../../src/ledger/postgres.js';
import { freshDatabase, postgresService } from '../store/services.js';
import { E2eGateway, makeUserWith, shareSecrets } from './helpers.js';

const DOMAIN = 'cluster.test';

const svc = await postgresService();

if (svc.skip !== undefined) {
  test('several nodes for one domain', { skip: svc.skip }, () => undefined);
} else {
  const db = await freshDatabase(svc.url);
  const work = mkdtempSync(join(tmpdir(), 'aftersmtp-cluster-'));
  after(async () => {
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  test('three nodes of one domain share one log, one gateway record and survive a SIGKILL', async () => {
    const shared = {
      AFTERSMTP_LEDGER: 'postgres',
      AFTERSMTP_MAPS: 'postgres',
      AFTERSMTP_STORE: 'postgres',
      AFTERSMTP_POSTGRES_URL: db.url,
      AFTERSMTP_LEDGER_FOLLOW_MS: '100',
    };
    const nodes: E2eGateway[] = [];
    for (const n of [1, 2, 3])
      nodes.push(await E2eGateway.prepare(join(work, `n${n}`), DOMAIN, shared));
    const [n1, n2, n3] = nodes as [E2eGateway, E2eGateway, E2eGateway];
    try {
      // The first node makes the secrets; the others get copies before their first start.
      await n1.start();
      await n1.stop();
      for (const n of [n2, n3]) {
        shareSecrets(n1.dataDir, n.dataDir);
      }
      await Promise.all(nodes.map((n) => n.start()));
      const ready = nodes.map((n) => n.ready ?? {});
      for (const r of ready) {
        assert.equal(r.logKey, n1.logKey);
        assert.equal(r.tlsSpki, ready[0]?.tlsSpki);
        assert.deepEqual(r.gatewayRecord, { action: 'unchanged', leaf: 0 });
      }
      // Users register through different nodes into the one log.
      const users = [];
      for (const [i, n] of nodes.entries()) {
        users.push(await makeUserWith(work, n, `u${i}`, {}, n1.logKey));
      }
      // A node dies mid-flight and comes back; it registers again from where the log is.
      await n2.stop('SIGKILL');
      users.push(await makeUserWith(work, n3, 'while-down', {}, n1.logKey));
      await n2.start();
      assert.equal(n2.ready?.treeSize, 1 + users.length);
      users.push(await makeUserWith(work, n2, 'after-restart', {}, n1.logKey));
      const { size } = await PgLedgerReplication.verifyFromScratch(db.url, logOrigin(DOMAIN));
      assert.equal(size, 1 + users.length);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
}
