/**
 * Sending the log's checkpoints to its witnesses (DESIGN.md §2b), off the hot path: like the
 * anchorer, a timer commits a job per witness to the durable queue (destination
 * `witness:<witness name>`, the signed checkpoint as body) when `everyEntries` entries were added
 * or `intervalMs` passed; the delivery worker hands it to `deliver`, which sends add-checkpoint
 * with a consistency proof from the size the witness last cosigned, verifies the cosignature it
 * answers with the witness's key, and keeps it.
 *
 * Guarantees: a cosignature is kept only if it verifies over exactly the checkpoint sent; a 409
 * (the witness knows another size) is answered once with a proof from that size; a witness that
 * refuses (403, 422, 400: a fork, a wrong key) fails the job permanently and is logged as an
 * error, because a log that a witness refuses is a log that others may see forked; a witness
 * that is down fails it temporarily (retried by the queue).
 */
import { AfterSmtpError } from '../errors.js';
import { parseCheckpoint, parseNote } from '../ledger/index.js';
import type { DeliveryQueue, LeasedJob, RecipientOutcome } from '../queue/types.js';
import { addCheckpoint, WitnessError } from './client.js';
import { parseWitnessKey, verifyCosignatures, type WitnessKey } from './cosignature.js';
import type { WitnessStore } from './store.js';

export const WITNESS_SCHEME = 'witness:';

export interface WitnessEndpoint {
  readonly key: WitnessKey;
  /** The witness's base URL (add-checkpoint is under it). */
  readonly url: string;
}

/** `<witness vkey>@<URL>` entries, separated by commas or white space (AFTERSMTP_WITNESSES). */
export function parseWitnessList(raw: string): WitnessEndpoint[] {
  const out: WitnessEndpoint[] = [];
  for (const item of raw.split(/[\s,]+/).filter((s) => s.length > 0)) {
    const at = item.indexOf('@');
    if (at < 0) throw new Error(`expected <witness key>@<URL>, got ${JSON.stringify(item)}`);
    const key = parseWitnessKeyOrThrow(item.slice(0, at));
    const url = item.slice(at + 1);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Error(`expected a witness URL, got ${JSON.stringify(url)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new Error(`expected an http:// or https:// witness URL, got ${JSON.stringify(url)}`);
    }
    if (out.some((w) => w.key.name === key.name)) {
      throw new Error(`witness ${key.name} is listed twice`);
    }
    out.push({ key, url });
  }
  return out;
}

function parseWitnessKeyOrThrow(vkey: string): WitnessKey {
  try {
    return parseWitnessKey(vkey);
  } catch (err) {
    throw new Error((err as Error).message);
  }
}

export interface WitnessedLog {
  readonly origin: string;
  checkpoint(): { size: number; root: Buffer; note: string };
  consistencyProof(first: number, second: number): Buffer[];
}

export interface WitnessLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WitnesserOptions {
  readonly source: WitnessedLog;
  readonly witnesses: readonly WitnessEndpoint[];
  readonly store: WitnessStore;
  readonly queue: Pick<DeliveryQueue, 'begin'>;
  readonly intervalMs: number;
  readonly everyEntries: number;
  readonly tickMs?: number;
  readonly log: WitnessLogger;
  readonly clock?: () => number;
  readonly timeoutMs?: number;
}

export type WitnessOutcome = RecipientOutcome & { readonly code?: string };

export class Witnesser {
  readonly #o: WitnesserOptions;
  readonly #clock: () => number;
  #enqueuedSize: number;
  #enqueuedAt: number;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(opts: WitnesserOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? Date.now;
    this.#enqueuedSize = opts.store.latest(opts.source.origin)?.size ?? 0;
    this.#enqueuedAt = this.#clock();
  }

  start(): void {
    if (this.#timer !== undefined || this.#o.witnesses.length === 0) return;
    this.#timer = setInterval(
      () => {
        this.#ticking ??= this.tick()
          .catch((err: unknown) => this.#o.log.warn({ err }, 'witness: tick failed'))
          .finally(() => {
            this.#ticking = undefined;
          });
      },
      this.#o.tickMs ?? Math.min(1000, this.#o.intervalMs),
    );
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  async tick(): Promise<void> {
    const cp = this.#o.source.checkpoint();
    if (cp.size === 0 || cp.size <= this.#enqueuedSize) return;
    const added = cp.size - this.#enqueuedSize;
    if (added >= this.#o.everyEntries || this.#clock() - this.#enqueuedAt >= this.#o.intervalMs) {
      await this.enqueue(cp);
    }
  }

  /** Commits one job per witness for checkpoint `cp`. */
  async enqueue(cp: { size: number; note: string }): Promise<void> {
    const origin = this.#o.source.origin;
    const tx = this.#o.queue.begin({
      messageId: `witness/${origin}/${cp.size}`,
      sender: '',
      senderKind: 'amp',
      bounce: true,
    });
    for (const w of this.#o.witnesses) {
      tx.addRecipient({ address: w.key.name, destination: `${WITNESS_SCHEME}${w.key.name}` });
    }
    tx.body(Buffer.from(cp.note, 'utf8'));
    await tx.commit();
    this.#enqueuedSize = cp.size;
    this.#enqueuedAt = this.#clock();
  }

  /** Sends `note` to `w` (with a 409 answered once) and returns the verified cosignature. */
  async cosign(w: WitnessEndpoint, note: string): Promise<{ line: string; time: number }> {
    const origin = this.#o.source.origin;
    const cp = parseCheckpoint(parseNote(note).text);
    let old = Math.min(this.#o.store.knownSize(origin, w.key.name), cp.size);
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof =
        old === 0 || old === cp.size ? [] : this.#o.source.consistencyProof(old, cp.size);
      const r = await addCheckpoint(w.url, old, proof, note, this.#o.timeoutMs);
      if (r.kind === 'conflict') {
        if (r.knownSize > cp.size) {
          throw new WitnessError(
            'ERR_WITNESS_REFUSED',
            `witness ${w.key.name} has seen size ${r.knownSize} of ${origin}, beyond ${cp.size}`,
            409,
          );
        }
        old = r.knownSize;
        continue;
      }
      const cosigned = note + r.lines.map((l) => `${l}\n`).join('');
      const found = verifyCosignatures(cosigned, [w.key]);
      const c = found[0];
      if (c === undefined) {
        throw new WitnessError(
          'ERR_WITNESS_COSIGNATURE',
          `witness ${w.key.name} answered no cosignature by its key`,
        );
      }
      return { line: c.line, time: c.time };
    }
    throw new WitnessError('ERR_WITNESS_UNAVAILABLE', `witness ${w.key.name} keeps changing size`);
  }

  /** The queue worker's handler of `witness:` jobs. */
  deliver = async (job: LeasedJob): Promise<WitnessOutcome[]> => {
    const name = job.destination.slice(WITNESS_SCHEME.length);
    const w = this.#o.witnesses.find((x) => x.key.name === name);
    type Result =
      | { status: 'delivered' }
      | { status: 'temporary' | 'permanent'; reason: string; code?: string };
    const all = (o: Result): WitnessOutcome[] =>
      job.recipients.map((recipient) => ({ recipient, ...o }));
    if (w === undefined) {
      return all({ status: 'permanent', reason: `witness ${name} is no longer configured` });
    }
    const note = Buffer.from(job.body).toString('utf8');
    const origin = this.#o.source.origin;
    try {
      const cp = parseCheckpoint(parseNote(note).text);
      if (cp.origin !== origin) {
        return all({ status: 'permanent', reason: `not a checkpoint of ${origin}` });
      }
      if (this.#o.store.knownSize(origin, name) >= cp.size) return all({ status: 'delivered' });
      const { line, time } = await this.cosign(w, note);
      this.#o.store.put(origin, cp.size, name, note, line, time);
      this.#o.log.info({ origin, size: cp.size, witness: name }, 'witness: checkpoint cosigned');
      return all({ status: 'delivered' });
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_WITNESS_UNAVAILABLE';
      const reason = err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : String(err);
      if (code === 'ERR_WITNESS_UNAVAILABLE') return all({ status: 'temporary', reason, code });
      this.#o.log.error(
        { origin, witness: name, err },
        'witness: the witness refused our checkpoint',
      );
      return all({ status: 'permanent', reason, code });
    }
  };
}
