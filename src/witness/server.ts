/**
 * A gateway acting as a C2SP tlog-witness for its peers' logs (DESIGN.md §2b): `POST
 * /add-checkpoint` (https://c2sp.org/tlog-witness) for the logs it is configured to witness,
 * answering with a tlog-cosignature line (cosignature.ts).
 *
 * Guarantees: a checkpoint is cosigned only if it is signed by the configured key of its log
 * (origin = key name), its `old` size is the size this witness last cosigned for that log (else
 * 409 with that size), and the consistency proof from that size and root to the new checkpoint
 * verifies (else 422; the same size with another root is a fork and is refused too). The new
 * size and root are stored with a compare-and-swap on the old size (synchronous=FULL) before the
 * cosignature is returned, so this witness never cosigns two views of one log. Unknown logs and
 * bad signatures are 403, malformed requests 400; request bodies are bounded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Database from 'better-sqlite3';
import {
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  verifyConsistency,
  type NoteVerifier,
} from '../ledger/index.js';
import type { CosignatureSigner } from './cosignature.js';

const MAX_BODY = 64 * 1024;
const MAX_PROOF = 64;

export interface WitnessServerOptions {
  /** SQLite file of the witnessed logs' latest sizes and roots. */
  readonly path: string;
  readonly signer: CosignatureSigner;
  /** The note verifier keys of the logs to witness (the key name is the origin). */
  readonly logs: readonly string[];
  readonly clock?: () => number;
}

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly contentType = 'text/plain; charset=utf-8',
  ) {
    super(message);
  }
}

export class WitnessService {
  readonly #db: Database.Database;
  readonly #signer: CosignatureSigner;
  readonly #logs = new Map<string, NoteVerifier>();
  readonly #clock: () => number;

  constructor(opts: WitnessServerOptions) {
    for (const k of opts.logs) {
      const v = parseVerifierKey(k);
      this.#logs.set(v.name, v);
    }
    this.#signer = opts.signer;
    this.#clock = opts.clock ?? Date.now;
    this.#db = new Database(opts.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS witnessed (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL) WITHOUT ROWID',
    );
  }

  get vkey(): string {
    return this.#signer.vkey;
  }

  close(): void {
    this.#db.close();
  }

  /** Processes one add-checkpoint body: the cosignature line, or an HttpRefusal. */
  addCheckpoint(body: string): string {
    const split = body.indexOf('\n\n');
    if (split < 0) throw new HttpRefusal(400, 'no blank line before the checkpoint');
    const head = body.slice(0, split).split('\n');
    const note = body.slice(split + 2);
    const m = /^old (0|[1-9][0-9]{0,15})$/.exec(head[0] ?? '');
    if (m === null) throw new HttpRefusal(400, 'the first line is not "old <size>"');
    const oldSize = Number(m[1]);
    if (head.length - 1 > MAX_PROOF) throw new HttpRefusal(400, 'consistency proof too long');
    const proof = head.slice(1).map((l) => {
      const h = Buffer.from(l, 'base64');
      if (h.length !== 32 || h.toString('base64') !== l) {
        throw new HttpRefusal(400, 'a proof line is not a base64 32-byte hash');
      }
      return h;
    });
    const origin = note.slice(0, note.indexOf('\n'));
    const key = this.#logs.get(origin);
    if (key === undefined) throw new HttpRefusal(403, 'unknown log');
    let text: string;
    try {
      text = openNote(note, [key]).text;
    } catch {
      throw new HttpRefusal(403, 'invalid signature');
    }
    let cp;
    try {
      cp = parseCheckpoint(text);
    } catch {
      throw new HttpRefusal(400, 'not a checkpoint');
    }
    if (cp.origin !== origin) throw new HttpRefusal(403, 'unknown log');
    if (oldSize > cp.size) throw new HttpRefusal(400, 'old size is beyond the checkpoint');
    return this.#db
      .transaction(() => {
        const known = this.#db
          .prepare('SELECT size, root FROM witnessed WHERE origin = ?')
          .get(origin) as { size: number; root: Buffer } | undefined;
        const knownSize = known?.size ?? 0;
        if (knownSize !== oldSize) {
          throw new HttpRefusal(409, `${knownSize}\n`, 'text/x.tlog.size');
        }
        if (known !== undefined && oldSize > 0) {
          try {
            verifyConsistency(oldSize, cp.size, proof, known.root, cp.root);
          } catch {
            throw new HttpRefusal(422, 'bad consistency proof');
          }
        }
        this.#db
          .prepare('INSERT OR REPLACE INTO witnessed (origin, size, root) VALUES (?, ?, ?)')
          .run(origin, cp.size, cp.root);
        return this.#signer.cosign(text, Math.floor(this.#clock() / 1000));
      })
      .immediate();
  }

  /** The HTTP handler: POST /add-checkpoint, nothing else. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type }).end(body);
    };
    if (req.method !== 'POST' || req.url !== '/add-checkpoint') {
      reply(404, 'not found\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reply(413, 'request too large\n');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      try {
        reply(200, this.addCheckpoint(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        if (err instanceof HttpRefusal) reply(err.status, err.message, err.contentType);
        else reply(500, 'internal error\n');
      }
    });
  };
}

/** Listens for add-checkpoint on host:port; resolves once listening. */
export async function startWitnessServer(
  service: WitnessService,
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  const server = createServer(service.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr !== null ? addr.port : port };
}
