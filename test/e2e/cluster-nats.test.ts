// Three `aftersmtp serve` nodes of one domain on one PostgreSQL (ledger, maps, scripts, mailboxes)
// and a NATS JetStream cluster of three servers as their queue (streams with 3 replicas), under
// traffic, with crashes (docs/OPERATIONS.md "Running several nodes"):
//
// - a second domain's gateway sends continuously to the users of the first (relayed over QUIC to
//   the three nodes in turn, stored straight into the shared mailboxes), and the first domain's
//   own users send to each other through the nodes' client API in turn (queued on the NATS
//   cluster, delivered by whichever node leases the job);
// - mid-traffic one gateway node is killed with SIGKILL and started again, then one NATS server;
// - afterwards every message whose dispatch was acknowledged is in its recipient's mailbox exactly
//   once, and the domain's log on the server verifies from scratch with one history.
//
// A script set with the CLI reaches every node (MailScript shared on PostgreSQL). Needs PostgreSQL
// and the nats-server binary of scripts/services/nats.sh; under CI both are required.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect } from 'nats';
import { GatewayClient } from '../../src/amp/client-api/index.js';
import { encodeEnvelope, sealMessage } from '../../src/envelope/index.js';
import { readKeyFile } from '../../src/identity/index.js';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import { PgLedgerReplication } from '../../src/ledger/postgres.js';
import { runCli } from '../helpers/cli.js';
import { NatsCluster, natsServerBinary } from '../helpers/nats-cluster.js';
import { freshDatabase, postgresService } from '../store/services.js';
import { E2eGateway, USER_PASS, cli, makeUserWith, shareSecrets, type E2eUser } from './helpers.js';

const DOMAIN = 'nodes.test';
const SENDER_DOMAIN = 'sender.test';
/** How long each phase of the traffic runs (before, during and after each crash). */
const PHASE_MS = 4000;

const svc = await postgresService();
const nats = natsServerBinary();
if (nats.skip !== undefined && process.env.CI === 'true') {
  throw new Error(`under CI the NATS cluster test requires nats-server: ${nats.skip}`);
}
const skip = svc.skip ?? nats.skip;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (skip !== undefined || nats.skip !== undefined) {
  test('several nodes on a NATS cluster under traffic and crashes', { skip }, () => undefined);
} else {
  const work = mkdtempSync(join(tmpdir(), 'aftersmtp-cluster-nats-'));
  const db = await freshDatabase(svc.url);
  let cluster: NatsCluster | undefined;
  after(async () => {
    await cluster?.stop();
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  });

  test('three nodes on PostgreSQL and a NATS cluster lose nothing and duplicate nothing through a gateway and a NATS crash', async (t) => {
    cluster = await NatsCluster.start(nats.bin, join(work, 'nats'));
    const noDns = { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' };
    const fastRetry = {
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '200',
      AFTERSMTP_QUEUE_RETRY_CAP_MS: '1000',
    };
    const shared = {
      ...noDns,
      ...fastRetry,
      AFTERSMTP_LEDGER: 'postgres',
      AFTERSMTP_MAPS: 'postgres',
      AFTERSMTP_STORE: 'postgres',
      AFTERSMTP_POSTGRES_URL: db.url,
      AFTERSMTP_LEDGER_FOLLOW_MS: '100',
      AFTERSMTP_QUEUE: 'nats',
      AFTERSMTP_NATS_URL: cluster.url,
      AFTERSMTP_NATS_REPLICAS: '3',
      // A job leased by the node that dies comes back to the others after this.
      AFTERSMTP_QUEUE_LEASE_MS: '3000',
      AFTERSMTP_SUITE: 'classic-v1',
    };
    const nodes: E2eGateway[] = [];
    for (const n of [1, 2, 3])
      nodes.push(await E2eGateway.prepare(join(work, `n${n}`), DOMAIN, shared));
    const [n1, n2, n3] = nodes as [E2eGateway, E2eGateway, E2eGateway];
    const sender = await E2eGateway.prepare(join(work, 's'), SENDER_DOMAIN, {
      ...noDns,
      ...fastRetry,
      AFTERSMTP_SUITE: 'classic-v1',
    });
    const routes = [
      `${DOMAIN}=${nodes.map((n) => `127.0.0.1:${n.quicPort}`).join('+')}/127.0.0.1:${n1.grpcPort}`,
      `${SENDER_DOMAIN}=127.0.0.1:${sender.quicPort}/127.0.0.1:${sender.grpcPort}`,
    ].join(',');
    for (const g of [...nodes, sender]) g.env.AFTERSMTP_RELAY_ROUTES = routes;
    const clients: GatewayClient[] = [];
    let stopTraffic = false;
    const traffic: Promise<void>[] = [];
    try {
      // The first node makes the secrets; the others get copies before their first start.
      await n1.start();
      await n1.stop();
      for (const n of [n2, n3]) {
        shareSecrets(n1.dataDir, n.dataDir);
      }
      // Each side pins the other's log key (no DNS here).
      const host = (g: E2eGateway) => ({
        AFTERSMTP_DATA_DIR: g.dataDir,
        AFTERSMTP_DOMAIN: g.domain,
      });
      for (const n of nodes) {
        const p = await cli(['ledger', 'pin', SENDER_DOMAIN, sender.logKey], host(n));
        assert.equal(p.code, 0, p.stderr);
      }
      const p = await cli(['ledger', 'pin', DOMAIN, n1.logKey], host(sender));
      assert.equal(p.code, 0, p.stderr);
      await Promise.all([...nodes, sender].map((g) => g.start()));

      // The queue's streams are replicated on the three NATS servers.
      const nc = await connect({ servers: cluster.url.split(',') });
      try {
        const info = await (await nc.jetstreamManager()).streams.info('AFTERSMTP_QUEUE');
        assert.equal(info.config.num_replicas, 3);
      } finally {
        await nc.close();
      }

      // A script set with the CLI reaches every node.
      const set = await runCli(['script', 'set', 'global', '-'], {
        env: { ...host(n3), ...shared },
        input: 'accept()',
      });
      assert.equal(set.code, 0, set.stderr);
      const version = Number(/version (\d+) stored/.exec(set.stdout)?.[1]);
      for (const n of nodes) {
        await n.waitLog((l) => l.msg === 'scripts reloaded' && l.version === version, 10_000);
      }

      const alice = await makeUserWith(work, n1, 'alice', noDns, n1.logKey);
      const bob = await makeUserWith(work, n3, 'bob', noDns, n1.logKey);
      const carol = await makeUserWith(work, sender, 'carol', noDns, sender.logKey);
      const keys = async (u: E2eUser) => readKeyFile(u.keyFile, USER_PASS);
      const [aliceKeys, bobKeys, carolKeys] = await Promise.all([
        keys(alice),
        keys(bob),
        keys(carol),
      ]);
      const connectTo = async (g: E2eGateway) => {
        const c = await GatewayClient.connect({
          target: g.grpc,
          pin: { spki: g.spki },
          timeoutMs: 15_000,
        });
        clients.push(c);
        return c;
      };

      // Acknowledged dispatches: message id -> recipient DID.
      const acked = new Map<string, string>();
      // Refused dispatches by phase of the run (told, not asserted: a client sends them again).
      const refused = { before: 0, gateway: 0, nats: 0, after: 0 };
      let phase: keyof typeof refused = 'before';
      const dispatch = async (
        c: GatewayClient,
        token: string,
        from: typeof aliceKeys,
        to: typeof bobKeys,
      ): Promise<void> => {
        const [sealed] = sealMessage({
          author: from,
          to: [to.record],
          body: { subject: 'cluster', contentType: 'text/plain', content: Buffer.from('hi') },
        });
        const envelope = sealed!.envelope;
        try {
          await c.dispatchMessage(token, { envelope: encodeEnvelope(envelope) });
          acked.set(envelope.messageId.toString('hex'), to.record.did);
        } catch {
          refused[phase]++; // not acknowledged: a client would send it again
          await sleep(200);
        }
      };

      // The second domain's user writes to alice and bob in turn, through its own gateway.
      const viaSender = await connectTo(sender);
      const carolToken = (await viaSender.login(carolKeys)).token;
      for (let s = 0; s < 2; s++) {
        traffic.push(
          (async () => {
            for (let i = s; !stopTraffic; i++) {
              await dispatch(viaSender, carolToken, carolKeys, i % 2 === 0 ? aliceKeys : bobKeys);
            }
          })(),
        );
      }
      // alice writes to bob through the three nodes in turn (queued on the NATS cluster).
      const direct = await Promise.all(nodes.map((n) => connectTo(n)));
      const aliceToken = (await direct[0]!.login(aliceKeys)).token;
      traffic.push(
        (async () => {
          for (let i = 0; !stopTraffic; i++) {
            await dispatch(direct[i % 3]!, aliceToken, aliceKeys, bobKeys);
          }
        })(),
      );

      await sleep(PHASE_MS);
      phase = 'gateway';
      await n2.stop('SIGKILL');
      await sleep(PHASE_MS);
      await n2.start();
      await sleep(PHASE_MS);
      phase = 'nats';
      await cluster.kill(1);
      await sleep(PHASE_MS);
      cluster.startServer(1);
      await sleep(PHASE_MS);
      phase = 'after';
      await sleep(PHASE_MS);
      stopTraffic = true;
      await Promise.all(traffic);
      assert.ok(acked.size > 0, 'no dispatch was acknowledged');

      // Every acknowledged message reaches its mailbox; none is there twice.
      const inbox = async (u: typeof aliceKeys): Promise<string[]> => {
        const c = direct[0]!;
        const { token } = await c.login(u);
        const ids: string[] = [];
        for await (const item of c.fetchInbox(token, {})) ids.push(item.message_id);
        return ids;
      };
      const deadline = Date.now() + 90_000;
      let boxes: Map<string, string[]>;
      for (;;) {
        boxes = new Map([
          [aliceKeys.record.did, await inbox(aliceKeys)],
          [bobKeys.record.did, await inbox(bobKeys)],
        ]);
        const missing = [...acked].filter(([id, did]) => !boxes.get(did)?.includes(id));
        if (missing.length === 0) break;
        if (Date.now() > deadline) {
          assert.fail(`${missing.length} of ${acked.size} acknowledged messages never arrived`);
        }
        await sleep(1000);
      }
      for (const [did, ids] of boxes) {
        const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
        assert.deepEqual(twice, [], `${did} has messages twice`);
      }
      t.diagnostic(
        `${acked.size} messages acknowledged; dispatches refused: ${JSON.stringify(refused)}`,
      );

      // alice's mail went through the queue: the nodes' delivery workers settled its jobs.
      const settled = nodes.flatMap((n) =>
        n.lines.filter((l) => l.msg === 'delivery settled' && Number(l.delivered) > 0),
      );
      assert.ok(settled.length > 0, 'no queued job was delivered by a node');

      const { size } = await PgLedgerReplication.verifyFromScratch(db.url, logOrigin(DOMAIN));
      assert.equal(size, 3); // the gateway record, alice and bob
    } finally {
      stopTraffic = true;
      await Promise.allSettled(traffic);
      for (const c of clients) c.close();
      await Promise.all([...nodes, sender].map((n) => n.stop()));
    }
  });
}
