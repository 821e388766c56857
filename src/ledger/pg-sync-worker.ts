/**
 * The worker thread behind SyncPgClient (pg-sync.ts): one `pg` connection that runs the queries
 * the main thread posts, one at a time, and wakes it through the shared flag. It reconnects on
 * the next query after its connection is lost; it never runs two queries at once.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';

interface Data {
  readonly url: string;
  readonly flag: SharedArrayBuffer;
  readonly port: MessagePort;
  readonly connectTimeoutMs: number;
}

interface Request {
  readonly id: number;
  readonly text: string;
  readonly params: readonly unknown[];
}

const data = workerData as Data;
const flag = new Int32Array(data.flag);
let client: pg.Client | undefined;

async function connection(): Promise<pg.Client> {
  if (client !== undefined) return client;
  const c = new pg.Client({
    connectionString: data.url,
    connectionTimeoutMillis: data.connectTimeoutMs,
  });
  c.on('error', () => {
    if (client === c) client = undefined;
  });
  await c.connect();
  client = c;
  return c;
}

function param(v: unknown): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v)
    ? Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    : v;
}

async function run(req: Request): Promise<void> {
  let answer: unknown;
  try {
    const c = await connection();
    const r = await c.query({ text: req.text, values: req.params.map(param) });
    answer = { id: req.id, rows: r.rows, rowCount: r.rowCount ?? 0 };
  } catch (err) {
    const e = err as { message?: string; code?: string };
    answer = { id: req.id, error: { message: String(e.message ?? err), code: e.code } };
    // A broken connection is replaced on the next query (it rolls back any open transaction).
    if (e.code === undefined && client !== undefined) {
      const c = client;
      client = undefined;
      c.end().catch(() => undefined);
    }
  }
  data.port.postMessage(answer);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

let chain = Promise.resolve();
data.port.on('message', (req: Request) => {
  if (req.text === '') {
    chain = chain.then(async () => {
      await client?.end().catch(() => undefined);
      client = undefined;
      data.port.close();
      parentPort?.close();
    });
    return;
  }
  chain = chain.then(() => run(req));
});
