/**
 * A synchronous PostgreSQL client: the query runs on a worker thread's `pg` connection while the
 * calling thread waits on a shared flag (Atomics.wait), then takes the answer from the port
 * (receiveMessageOnPort). The ledger is synchronous by design (one SQLite transaction per
 * append, DESIGN.md §2b); with this client its PostgreSQL backend keeps that shape: a write
 * holds the log's row lock, runs the ledger's checks on the local replica and commits to the
 * server before it returns, and nothing else runs on the event loop in between, so no reader
 * ever sees (or signs a checkpoint over) a leaf that the server has not committed.
 *
 * Guarantees: one connection, one query at a time, in the order they are called; a query that
 * takes longer than `timeoutMs` throws PgSyncError (ERR_LEDGER_PG_TIMEOUT) and the connection
 * is replaced, which rolls back its open transaction. Every wait blocks the event loop, so this
 * client is only for the short transactions of ledger writes, never for reads on the mail path.
 */
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { AfterSmtpError } from '../errors.js';

export class PgSyncError extends AfterSmtpError {
  /** The server's SQLSTATE, when the server answered. */
  readonly sqlState: string | undefined;
  constructor(code: string, message: string, sqlState?: string) {
    super(code, message);
    this.sqlState = sqlState;
  }
}

export interface SyncQueryResult<R> {
  readonly rows: R[];
  readonly rowCount: number;
}

interface Answer {
  readonly id: number;
  readonly rows?: Record<string, unknown>[];
  readonly rowCount?: number;
  readonly error?: { message: string; code?: string };
}

/** Values that cross the thread boundary as Uint8Array come back as Buffers. */
function toBuffers(row: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(row)) {
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) {
      row[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  }
  return row;
}

export class SyncPgClient {
  readonly #worker: Worker;
  readonly #port: MessageChannel['port1'];
  readonly #flag: Int32Array;
  readonly #timeoutMs: number;
  #next = 1;
  #closed = false;

  constructor(url: string, options: { timeoutMs?: number; connectTimeoutMs?: number } = {}) {
    const flag = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    this.#flag = new Int32Array(flag);
    this.#port = port1;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#worker = new Worker(new URL('./pg-sync-worker.js', import.meta.url), {
      workerData: { url, flag, port: port2, connectTimeoutMs: options.connectTimeoutMs ?? 5000 },
      transferList: [port2],
    });
    this.#worker.unref();
    this.#port.unref();
  }

  /** Runs one statement and returns its rows; throws PgSyncError on any failure. */
  query<R = Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
  ): SyncQueryResult<R> {
    if (this.#closed) throw new PgSyncError('ERR_LEDGER_PG', 'the PostgreSQL client is closed');
    const id = this.#next++;
    Atomics.store(this.#flag, 0, 0);
    this.#port.postMessage({ id, text, params });
    const deadline = Date.now() + this.#timeoutMs;
    for (;;) {
      // Drain first: the worker posts before it raises the flag, so nothing is missed.
      const got = receiveMessageOnPort(this.#port);
      if (got !== undefined) {
        const a = got.message as Answer;
        if (a.id !== id) continue; // the late answer of a query that timed out
        if (a.error !== undefined) {
          throw new PgSyncError('ERR_LEDGER_PG', `PostgreSQL: ${a.error.message}`, a.error.code);
        }
        return {
          rows: (a.rows ?? []).map((r) => toBuffers(r) as R),
          rowCount: a.rowCount ?? 0,
        };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new PgSyncError(
          'ERR_LEDGER_PG_TIMEOUT',
          `PostgreSQL did not answer within ${this.#timeoutMs} ms`,
        );
      }
      Atomics.wait(this.#flag, 0, 0, left);
      Atomics.store(this.#flag, 0, 0);
    }
  }

  /** Ends the connection and the worker (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.postMessage({ id: 0, text: '', params: [] });
    this.#port.close();
  }
}
