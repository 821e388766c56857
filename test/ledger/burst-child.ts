// Child process of restart.test.ts: registers identities as fast as it can (single requests and
// batches, alternating) and prints `ack <leaf> <did>` only after each call has returned, i.e.
// after the commit. The parent kills it with SIGKILL mid-burst. It does nothing unless started
// by the parent (the test runner also loads every file under dist/test). With
// AFTERSMTP_TEST_LEDGER_PG set it is one node of a log on PostgreSQL (ledger-postgres.test.ts).
import {
  DOMAIN,
  TEST_BITS,
  identity,
  logSigner,
  registerRequest,
  testReplication,
} from './helpers.js';
import { IdentityLedger } from '../../src/ledger/ledger.js';

async function main(path: string, run: string): Promise<void> {
  const replication = testReplication();
  const ledger = new IdentityLedger({
    ...(replication === undefined ? {} : { replication }),
    path,
    signer: logSigner(),
    domains: [DOMAIN],
    policies: new Map([[DOMAIN, { policy: 'open-pow', bits: TEST_BITS }]]),
  });
  for (let i = 0; ; i++) {
    if (i % 2 === 0) {
      const keys = identity(`${run}-u${i}`);
      const r = ledger.register(await registerRequest(ledger, keys));
      process.stdout.write(`ack ${r.leafIndex} ${keys.did}\n`);
    } else {
      const batch = Array.from({ length: 5 }, (_, j) => identity(`${run}-u${i}.${j}`));
      const reqs = await Promise.all(batch.map((k) => registerRequest(ledger, k)));
      const results = ledger.registerBatch(reqs);
      results.forEach((r, j) => {
        if (!r.ok) throw r.error;
        process.stdout.write(`ack ${r.result.leafIndex} ${(batch[j] as { did: string }).did}\n`);
      });
    }
  }
}

const path = process.argv[2];
if (process.env.AFTERSMTP_LEDGER_BURST_CHILD === '1' && path !== undefined) {
  main(path, process.argv[3] ?? 'r').catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
