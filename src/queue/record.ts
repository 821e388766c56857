/**
 * The queue's internal records and their msgpackr encoding (DESIGN.md §5: records that never
 * leave the node use msgpackr). Decoding validates every field's type and the record version and
 * throws QueueDecodeError with the reason; it never returns a half-valid record, so a corrupt or
 * foreign entry is quarantined rather than crashing a worker.
 */
import { Packr } from 'msgpackr';
import { QueueDecodeError } from './errors.js';
import type { SenderKind } from './types.js';

export const RECORD_VERSION = 1;

/** One recipient still to be delivered, with its own retry state. */
export interface RecipientState {
  readonly address: string;
  /** Failed attempts so far. */
  readonly attempts: number;
  /** Not before this time (ms since the epoch). */
  readonly nextAt: number;
  readonly lastError: string;
}

/** One destination of one entry: the unit that is scheduled, leased and settled. */
export interface JobRecord {
  readonly v: number;
  readonly jobId: string;
  readonly entryId: string;
  readonly messageId: string;
  readonly sender: string;
  readonly senderKind: SenderKind;
  readonly bounce: boolean;
  readonly destination: string;
  readonly enqueuedAt: number;
  /** Pending recipients only: delivered and dead ones are removed. */
  readonly recipients: readonly RecipientState[];
  readonly deliveries: number;
  readonly held: boolean;
  /** Revision, bumped on every change; NATS/RabbitMQ use it for publish de-duplication. */
  readonly rev: number;
  /** The body travels inside the job on the broker backends; the lmdb backend stores it once. */
  readonly body?: Uint8Array;
}

export interface EntryRecord {
  readonly v: number;
  readonly entryId: string;
  readonly body: Uint8Array;
  /** Job ids of this entry that are not finished. */
  readonly jobs: readonly string[];
}

export interface DeadRecord {
  readonly v: number;
  readonly entryId: string;
  readonly jobId: string;
  readonly messageId: string;
  readonly sender: string;
  readonly senderKind: SenderKind;
  readonly recipient: string;
  readonly destination: string;
  readonly reason: string;
  /** 'permanent' (a permanent failure) or 'expired' (the maximum age passed). */
  readonly kind: 'permanent' | 'expired';
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly deadAt: number;
}

export interface QuarantineRecord {
  readonly v: number;
  /** Where the bytes were found, e.g. `lmdb:jobs/<key>` or `nats:<stream seq>`. */
  readonly source: string;
  readonly reason: string;
  readonly raw: Uint8Array;
  readonly at: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function encodeRecord(record: object): Buffer {
  return packr.pack(record);
}

type Check = (value: unknown) => boolean;
const str: Check = (v) => typeof v === 'string';
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const bool: Check = (v) => typeof v === 'boolean';
const bytes: Check = (v) => v instanceof Uint8Array;
const kind: Check = (v) => v === 'legacy' || v === 'amp';

function decodeObject(raw: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(raw);
  } catch (err) {
    throw new QueueDecodeError(`${what}: not msgpack (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new QueueDecodeError(`${what}: not a map`);
  }
  const obj = value as Record<string, unknown>;
  if (obj.v !== RECORD_VERSION) {
    throw new QueueDecodeError(`${what}: unknown record version ${JSON.stringify(obj.v)}`);
  }
  return obj;
}

function expectFields(
  obj: Record<string, unknown>,
  what: string,
  fields: Record<string, Check>,
): void {
  for (const [name, check] of Object.entries(fields)) {
    if (!check(obj[name]))
      throw new QueueDecodeError(`${what}: field ${name} is missing or invalid`);
  }
}

function isRecipientState(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return str(r.address) && num(r.attempts) && num(r.nextAt) && str(r.lastError);
}

export function decodeJob(raw: Uint8Array): JobRecord {
  const obj = decodeObject(raw, 'job');
  expectFields(obj, 'job', {
    jobId: str,
    entryId: str,
    messageId: str,
    sender: str,
    senderKind: kind,
    bounce: bool,
    destination: str,
    enqueuedAt: num,
    deliveries: num,
    held: bool,
    rev: num,
    recipients: (v) => Array.isArray(v) && v.every(isRecipientState),
  });
  if (obj.body !== undefined && !bytes(obj.body)) throw new QueueDecodeError('job: bad body');
  return obj as unknown as JobRecord;
}

export function decodeEntry(raw: Uint8Array): EntryRecord {
  const obj = decodeObject(raw, 'entry');
  expectFields(obj, 'entry', {
    entryId: str,
    body: bytes,
    jobs: (v) => Array.isArray(v) && v.every(str),
  });
  return obj as unknown as EntryRecord;
}

export function decodeDead(raw: Uint8Array): DeadRecord {
  const obj = decodeObject(raw, 'dead letter');
  expectFields(obj, 'dead letter', {
    entryId: str,
    jobId: str,
    messageId: str,
    sender: str,
    senderKind: kind,
    recipient: str,
    destination: str,
    reason: str,
    kind: (v) => v === 'permanent' || v === 'expired',
    attempts: num,
    enqueuedAt: num,
    deadAt: num,
  });
  return obj as unknown as DeadRecord;
}

export function decodeQuarantine(raw: Uint8Array): QuarantineRecord {
  const obj = decodeObject(raw, 'quarantine');
  expectFields(obj, 'quarantine', { source: str, reason: str, raw: bytes, at: num });
  return obj as unknown as QuarantineRecord;
}
