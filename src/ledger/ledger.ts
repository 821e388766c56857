/**
 * The identity ledger of a gateway: register, rotate and revoke DIDs of the domains it serves,
 * answer lookups with an inclusion proof, a signed checkpoint and a consistency proof, and keep
 * the state (DID index, spent stamps, admin approvals, policies) in the log's SQLite database.
 * Every operation is a function with a typed result, ready to be served over gRPC and the CLI.
 *
 * Guarantees:
 * - One accepted request = one SQLite transaction (leaf, subtree hashes, DID index, spent stamp
 *   or consumed approval) committed with synchronous=FULL before the call returns; a batch is
 *   one transaction (group commit) in which each request succeeds or fails on its own.
 * - The current record of a DID is its last register/rotate entry; a rotation must name the
 *   current leaf and key id and be signed by the current (previous) key and by the new key; a
 *   revocation is signed by the current key or made by an administrator with a reason; after a
 *   revocation only an administrator's re-registration (adminRegister) is accepted.
 * - Registration follows the domain's policy (policy.ts); stamps are single-use until expiry.
 * - The log never signs two different roots for one size: roots are a function of the leaves,
 *   leaves are append-only, and the database refuses to be signed by another key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { BoundedMap } from '../bounded-map.js';
import { InputError } from '../errors.js';
import {
  checkPublicRecord,
  verifySignature,
  type PublicKeyRecord,
  type Signature,
} from '../identity/index.js';
import { logOrigin, signCheckpoint } from './checkpoint.js';
import { ServedDomains } from './domains.js';
import {
  PURPOSE_REGISTER,
  PURPOSE_REVOKE,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  decodeEntry,
  encodeEntry,
  recordHash,
  registerTranscript,
  revokeTranscript,
  rotateTranscript,
  type Extension,
  type LedgerEntry,
  type RegisterAuth,
} from './entries.js';
import { LedgerError } from './errors.js';
import {
  ChallengeIssuer,
  DEFAULT_CHALLENGE_TTL_MS,
  checkStamp,
  parseStamp,
  type Challenge,
} from './hashcash.js';
import type { NoteSigner } from './note.js';
import { DEFAULT_POLICY, checkPolicy, type DomainPolicy } from './policy.js';
import type { RateLimiter } from './ratelimit.js';
import { LogStore } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dids (
  did TEXT PRIMARY KEY, leaf INTEGER NOT NULL, revoked INTEGER NOT NULL, key_id BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS did_history (
  did TEXT NOT NULL, leaf INTEGER NOT NULL, PRIMARY KEY (did, leaf)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spent_stamps (
  nonce BLOB PRIMARY KEY, expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spent_stamps_expiry ON spent_stamps (expires_at);
CREATE TABLE IF NOT EXISTS approvals (
  reference TEXT PRIMARY KEY, did TEXT NOT NULL, admin TEXT NOT NULL, expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policies (
  domain TEXT PRIMARY KEY, policy TEXT NOT NULL, bits INTEGER NOT NULL
) WITHOUT ROWID;
`;

export interface LedgerOptions {
  /** SQLite file of the log (':memory:' for tests). */
  readonly path: string;
  /** The log's checkpoint key; its name must be the origin. */
  readonly signer: NoteSigner;
  /** Domains whose DIDs this log accepts. */
  readonly domains: readonly string[];
  /** Checkpoint origin; default logOrigin(domains[0]). */
  readonly origin?: string;
  /** Policies for domains that have none stored (the environment's configuration). */
  readonly policies?: ReadonlyMap<string, DomainPolicy>;
  readonly clock?: () => number;
  readonly challengeTtlMs?: number;
  /** Per-source limiter for registration requests (in memory, or shared: postgres.ts). */
  readonly limiter?: RateLimiter;
  /**
   * Another store that holds the log for several nodes (postgres.ts): the SQLite database at
   * `path` is then this node's replica of it, and every write is serialised through it.
   */
  readonly replication?: LedgerReplication;
}

/**
 * What a shared log backend does for the ledger. The ledger keeps its checks and its reads on
 * the local SQLite database; the backend keeps that database a replica of the shared log.
 */
export interface LedgerReplication {
  /** Called once the local database is open, before the ledger checks its metadata. */
  attach(target: ReplicaTarget): void;
  /**
   * Runs `run` (the ledger's local write transaction) serialised with every writer of the log:
   * the replica is brought up to date first, and what `run` appended is committed to the shared
   * log before this returns; if that fails, the local transaction is rolled back too.
   */
  write<T>(run: () => T): T;
  close(): void;
}

/** The ledger's side of replication. */
export interface ReplicaTarget {
  readonly store: LogStore;
  readonly origin: string;
  readonly verifierKey: string;
  /** Applies one leaf appended by another node (the leaf and its derived rows, one transaction). */
  apply(entry: Buffer): void;
}

export interface RegisterRequest {
  readonly record: PublicKeyRecord;
  readonly extensions?: readonly Extension[];
  /** By the registered key over registerTranscript (PURPOSE_REGISTER). */
  readonly proofOfPossession: Signature;
  /** A hashcash stamp (open-pow). */
  readonly stamp?: Buffer;
  /** An administrator's approval reference (admin-only, or instead of a stamp). */
  readonly approval?: string;
}

export interface RotateRequest {
  readonly did: string;
  readonly prevLeaf: number;
  readonly prevKeyId: Buffer;
  readonly record: PublicKeyRecord;
  readonly extensions?: readonly Extension[];
  readonly previousKeySignature: Signature;
  readonly proofOfPossession: Signature;
}

export interface RevokeRequest {
  readonly did: string;
  readonly prevLeaf: number;
  readonly keyId: Buffer;
  readonly reason: string;
  readonly signature: Signature;
}

/** What an accepted request returns: where the entry is, and the proof that it is there. */
export interface AppendResult {
  readonly leafIndex: number;
  readonly entry: Buffer;
  readonly treeSize: number;
  readonly inclusionProof: Buffer[];
  /** Signed checkpoint (C2SP signed note) of size treeSize. */
  readonly checkpoint: string;
}

export type BatchResult =
  | { readonly ok: true; readonly result: AppendResult }
  | { readonly ok: false; readonly error: Error };

/** A lookup answer: everything a client needs to verify the record (verify.ts). */
export interface LookupAnswer {
  readonly did: string;
  readonly leafIndex: number;
  readonly entry: Buffer;
  readonly treeSize: number;
  readonly inclusionProof: Buffer[];
  readonly checkpoint: string;
  /** Present when the client said which size it last saw. */
  readonly consistency?: { readonly fromSize: number; readonly proof: Buffer[] };
}

interface DidRow {
  leaf: number;
  revoked: number;
  key_id: Buffer;
}

interface Prepared {
  leafIndex: number;
  entry: Buffer;
}

/** What the ledger says of a DID now (`current`): no proof is built for it. */
export type DidState =
  | {
      readonly state: 'current';
      readonly record: PublicKeyRecord;
      readonly leaf: number;
      /** When the current entry was logged (a client token issued before it is stale). */
      readonly loggedAt: number;
    }
  | { readonly state: 'revoked' }
  | { readonly state: 'unknown' };

/** Decoded records kept by leaf (entries never change, so a cached one never goes stale). */
const RECORD_CACHE_SIZE = 4096;
/** Answers of `current` kept by DID while the DID index does not change. */
const STATE_CACHE_SIZE = 4096;
/**
 * How long `current` trusts that no other process changed the log file (a CLI command, another
 * node on the same file) before asking SQLite (PRAGMA data_version). Asking on every call cost as
 * much as the indexed read it saves (bench/relay profiles); this process's own writes are seen at
 * once.
 */
export const OTHER_WRITERS_RECHECK_MS = 50;

export class IdentityLedger {
  readonly store: LogStore;
  readonly origin: string;
  readonly domains: ServedDomains;
  readonly #signer: NoteSigner;
  readonly #clock: () => number;
  readonly #ttl: number;
  readonly #limiter: RateLimiter | undefined;
  readonly #replication: LedgerReplication | undefined;
  readonly #issuer: ChallengeIssuer;
  readonly #secret: Buffer;
  readonly #defaults: ReadonlyMap<string, DomainPolicy>;
  #cached: { size: number; note: string } | undefined;
  readonly #records = new BoundedMap<number, { record: PublicKeyRecord; loggedAt: number } | null>(
    RECORD_CACHE_SIZE,
  );
  readonly #statements = new Map<string, Database.Statement>();
  /** `current`'s answers; emptied by every write of the DID index through this ledger. */
  readonly #states = new BoundedMap<string, DidState>(STATE_CACHE_SIZE);
  /** When `current` last asked SQLite whether another connection wrote, and what it said. */
  #otherWriters = { dataVersion: -1, checkedAt: -Infinity };

  constructor(options: LedgerOptions) {
    this.domains = new ServedDomains(options.domains);
    this.origin = options.origin ?? logOrigin(options.domains[0] as string);
    if (options.signer.name !== this.origin) {
      throw new InputError(
        'ERR_LOG_KEY',
        `the log key is named ${options.signer.name}; this log's origin is ${this.origin}`,
      );
    }
    this.#signer = options.signer;
    this.#clock = options.clock ?? Date.now;
    this.#ttl = options.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
    this.#limiter = options.limiter;
    this.#replication = options.replication;
    this.#defaults = options.policies ?? new Map();
    for (const p of this.#defaults.values()) checkPolicy(p);
    this.store = new LogStore(options.path);
    try {
      this.store.db.exec(SCHEMA);
      this.#replication?.attach({
        store: this.store,
        origin: this.origin,
        verifierKey: this.#signer.verifierKey,
        apply: (entry) => this.#applyReplicated(entry),
      });
      this.#bindMeta();
    } catch (err) {
      this.store.close();
      throw err;
    }
    const secret = this.store.meta('challenge_secret') as Buffer;
    this.#issuer = new ChallengeIssuer(secret);
    this.#secret = Buffer.from(secret);
  }

  /**
   * A 32-byte key for another stateless mechanism of this gateway (e.g. the client API's login
   * challenges): HMAC-SHA256(the log's challenge secret, label). The same for every process
   * that opens this log and across restarts; never the secret itself.
   */
  derivedKey(label: string): Buffer {
    if (!label.startsWith('aftersmtp/'))
      throw new RangeError('a derived key label starts with aftersmtp/');
    return createHmac('sha256', this.#secret).update(label).digest();
  }

  /** Records origin, verifier key and challenge secret on first open; checks them after. */
  #bindMeta(): void {
    const s = this.store;
    s.db.transaction(() => {
      const origin = s.meta('origin');
      const vkey = s.meta('verifier_key');
      if (origin === undefined) s.setMeta('origin', Buffer.from(this.origin));
      else if (origin.toString() !== this.origin) {
        throw new LedgerError(
          'ERR_LOG_KEY_MISMATCH',
          `this database is the log ${origin.toString()}, not ${this.origin}`,
        );
      }
      if (vkey === undefined) s.setMeta('verifier_key', Buffer.from(this.#signer.verifierKey));
      else if (vkey.toString() !== this.#signer.verifierKey) {
        throw new LedgerError(
          'ERR_LOG_KEY_MISMATCH',
          `this log was created with the key ${vkey.toString()}, not ${this.#signer.verifierKey}`,
        );
      }
      if (s.meta('challenge_secret') === undefined) s.setMeta('challenge_secret', randomBytes(32));
    })();
  }

  close(): void {
    this.#replication?.close();
    this.store.close();
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE; a savepoint when nested). */
  #write<T>(fn: () => T): T {
    const local = (): T => this.store.db.transaction(fn).immediate();
    return this.#replication === undefined ? local() : this.#replication.write(local);
  }

  /**
   * A leaf another node appended to the shared log: the same rows #append and #authorise write
   * (the DID index and, for a hashcash registration, its spent stamp), so this replica answers
   * as the node that wrote it does.
   */
  #applyReplicated(bytes: Buffer): void {
    const e = decodeEntry(bytes);
    this.store.db.transaction(() => {
      this.#append(e, e.type === 'revoke' ? e.keyId : e.record.keyId, e.type === 'revoke', bytes);
      if (e.type === 'register' && e.auth.kind === 'hashcash') {
        const challenge = parseStamp(e.auth.stamp).challenge;
        this.#sql('INSERT OR IGNORE INTO spent_stamps (nonce, expires_at) VALUES (?, ?)').run(
          Buffer.from(challenge.subarray(9, 25)),
          Number(challenge.readBigUInt64BE(1)),
        );
      }
    })();
  }

  /** A prepared statement, prepared once per ledger. */
  #sql(text: string): Database.Statement {
    let st = this.#statements.get(text);
    if (st === undefined) {
      st = this.store.db.prepare(text);
      this.#statements.set(text, st);
    }
    return st;
  }

  /** The note verifier key of this log (what goes into DNS as `k=`). */
  get verifierKey(): string {
    return this.#signer.verifierKey;
  }

  // ---- policy ----

  policy(domain: string): DomainPolicy {
    const row = this.#sql('SELECT policy, bits FROM policies WHERE domain = ?').get(domain) as
      DomainPolicy | undefined;
    return row ?? this.#defaults.get(domain) ?? DEFAULT_POLICY;
  }

  /** Stores a domain's policy (the admin CLI); it overrides the configured default. */
  setPolicy(domain: string, policy: DomainPolicy): void {
    if (!this.domains.has(domain)) {
      throw new LedgerError('ERR_DOMAIN_NOT_SERVED', `this log does not serve ${domain}`);
    }
    checkPolicy(policy);
    this.#write(() =>
      this.#sql('INSERT OR REPLACE INTO policies (domain, policy, bits) VALUES (?, ?, ?)').run(
        domain,
        policy.policy,
        policy.bits,
      ),
    );
  }

  // ---- challenges and approvals ----

  /** A fresh, single-use hashcash challenge for a registration in `domain` (open-pow). */
  issueChallenge(domain: string): Challenge {
    if (!this.domains.has(domain)) {
      throw new LedgerError('ERR_DOMAIN_NOT_SERVED', `this log does not serve ${domain}`);
    }
    const p = this.policy(domain);
    if (p.policy !== 'open-pow') {
      throw new LedgerError(
        p.policy === 'closed' ? 'ERR_POLICY_CLOSED' : 'ERR_POLICY_ADMIN_ONLY',
        `registration in ${domain} is ${p.policy}`,
      );
    }
    const expiresAt = this.#clock() + this.#ttl;
    return { challenge: this.#issuer.issue(domain, expiresAt), expiresAt, bits: p.bits };
  }

  /** An administrator approves one registration of `did`; returns the single-use reference. */
  approveRegistration(did: string, admin: string, ttlMs = 7 * 24 * 3600 * 1000): string {
    this.domains.domainOf(did);
    checkAdmin(admin);
    // Hex: a reference is given on command lines, where a leading '-' (base64url) reads as an option.
    const reference = randomBytes(16).toString('hex');
    this.#write(() =>
      this.#sql(
        'INSERT INTO approvals (reference, did, admin, expires_at) VALUES (?, ?, ?, ?)',
      ).run(reference, did, admin, this.#clock() + ttlMs),
    );
    return reference;
  }

  // ---- writes ----

  #rateLimit(source: string | undefined): void {
    if (this.#limiter === undefined || source === undefined) return;
    const d = this.#limiter.take(source);
    if (!d.allowed) {
      throw new LedgerError(
        'ERR_RATE_LIMITED',
        `too many registrations from ${source}; retry in ${d.retryAfterMs} ms`,
        d.retryAfterMs,
      );
    }
  }

  #didRow(did: string): DidRow | undefined {
    return this.#sql('SELECT leaf, revoked, key_id FROM dids WHERE did = ?').get(did) as
      DidRow | undefined;
  }

  /** The entry at `leaf`, decoded (the log only holds entries it could decode). */
  entryAt(leaf: number): LedgerEntry {
    return decodeEntry(this.store.leaf(leaf));
  }

  /**
   * The DID's state in this log: its current record (the last register or rotate entry), revoked,
   * or unknown (never registered here, or a DID of another domain). Answered from memory while
   * the DID index is unchanged (`#otherWriterChanged`, `#append`), else one indexed read and, for a leaf not seen
   * lately, one entry decode; unlike `lookup` it builds no proof.
   */
  current(did: string): DidState {
    // Inside a write transaction the answer may be rolled back: read it, do not keep it.
    if (this.store.db.inTransaction) return this.#readState(did);
    if (this.#otherWriterChanged()) this.#states.clear();
    const known = this.#states.get(did);
    if (known !== undefined) return known;
    const state = this.#readState(did);
    this.#states.set(did, state);
    return state;
  }

  /**
   * Whether another connection (a CLI command, another node on the same file) committed since
   * `current` last asked, which SQLite's PRAGMA data_version tells; asked at most every
   * OTHER_WRITERS_RECHECK_MS (or at once after the clock was set back), so another process's
   * revocation is seen within 50 ms. This ledger's own writes empty the answers in `#append`.
   */
  #otherWriterChanged(): boolean {
    const last = this.#otherWriters;
    const now = this.#clock();
    if (now >= last.checkedAt && now - last.checkedAt < OTHER_WRITERS_RECHECK_MS) return false;
    const dataVersion = this.#sql('PRAGMA data_version').pluck(true).get() as number;
    this.#otherWriters = { dataVersion, checkedAt: now };
    return dataVersion !== last.dataVersion;
  }

  #readState(did: string): DidState {
    const row = this.#didRow(did);
    if (row === undefined) return { state: 'unknown' };
    if (row.revoked) return { state: 'revoked' };
    let cached = this.#records.get(row.leaf);
    if (cached === undefined) {
      const e = this.entryAt(row.leaf);
      cached = e.type === 'revoke' ? null : { record: e.record, loggedAt: e.loggedAt };
      this.#records.set(row.leaf, cached);
    }
    return cached === null
      ? { state: 'revoked' }
      : { state: 'current', record: cached.record, leaf: row.leaf, loggedAt: cached.loggedAt };
  }

  /** The current record of an active DID, with its leaf. */
  #current(did: string): { row: DidRow; record: PublicKeyRecord } {
    const row = this.#didRow(did);
    if (row === undefined) throw new LedgerError('ERR_DID_UNKNOWN', `${did} is not registered`);
    if (row.revoked) throw new LedgerError('ERR_DID_REVOKED', `${did} is revoked`);
    const e = this.entryAt(row.leaf);
    if (e.type === 'revoke') throw new LedgerError('ERR_DID_REVOKED', `${did} is revoked`);
    return { row, record: e.record };
  }

  #append(
    entry: LedgerEntry,
    keyId: Buffer,
    revoked: boolean,
    bytes = encodeEntry(entry),
  ): Prepared {
    const leafIndex = this.store.append([bytes]);
    this.#states.clear();
    this.#sql('INSERT OR REPLACE INTO dids (did, leaf, revoked, key_id) VALUES (?, ?, ?, ?)').run(
      entry.did,
      leafIndex,
      revoked ? 1 : 0,
      keyId,
    );
    this.#sql('INSERT INTO did_history (did, leaf) VALUES (?, ?)').run(entry.did, leafIndex);
    return { leafIndex, entry: bytes };
  }

  #checkNewRecord(record: PublicKeyRecord, exts: readonly Extension[], pop: Signature): string {
    checkPublicRecord(record, 'ERR_LEDGER_ENTRY');
    const domain = this.domains.domainOf(record.did);
    verifySignature(
      record.suite,
      record.signingPublicKeys,
      registerTranscript(record, exts),
      PURPOSE_REGISTER,
      pop,
      'ERR_LEDGER_SIGNATURE',
    );
    return domain;
  }

  /** Authorises a registration request by the domain's policy; consumes the stamp/approval. */
  #authorise(req: RegisterRequest, domain: string, now: number): RegisterAuth {
    const p = this.policy(domain);
    if (p.policy === 'closed') {
      throw new LedgerError('ERR_POLICY_CLOSED', `registration in ${domain} is closed`);
    }
    if (req.approval !== undefined) {
      const row = this.#sql('SELECT did, admin, expires_at FROM approvals WHERE reference = ?').get(
        req.approval,
      ) as { did: string; admin: string; expires_at: number } | undefined;
      if (row === undefined || row.did !== req.record.did || row.expires_at <= now) {
        throw new LedgerError(
          'ERR_APPROVAL_INVALID',
          'the approval reference is unknown, used, expired or for another DID',
        );
      }
      this.#sql('DELETE FROM approvals WHERE reference = ?').run(req.approval);
      return { kind: 'admin', admin: row.admin, reference: req.approval };
    }
    if (p.policy === 'admin-only') {
      throw new LedgerError('ERR_POLICY_ADMIN_ONLY', `registration in ${domain} needs an approval`);
    }
    if (req.stamp === undefined) {
      throw new LedgerError(
        'ERR_STAMP_MISSING',
        `registration in ${domain} needs a hashcash stamp`,
      );
    }
    const { nonce, expiresAt } = checkStamp(
      req.stamp,
      {
        domain,
        did: req.record.did,
        recordHash: recordHash(req.record),
        requiredBits: p.bits,
        now,
      },
      this.#issuer,
    );
    this.#sql(
      'DELETE FROM spent_stamps WHERE nonce IN (SELECT nonce FROM spent_stamps WHERE expires_at <= ? LIMIT 16)',
    ).run(now);
    const spent = this.#sql(
      'INSERT OR IGNORE INTO spent_stamps (nonce, expires_at) VALUES (?, ?)',
    ).run(nonce, expiresAt);
    if (spent.changes === 0) {
      throw new LedgerError('ERR_STAMP_REUSED', 'this stamp (its challenge) was already used');
    }
    return { kind: 'hashcash', stamp: req.stamp };
  }

  #register(req: RegisterRequest): Prepared {
    const exts = req.extensions ?? [];
    const now = this.#clock();
    return this.#write((): Prepared => {
      const domain = this.#checkNewRecord(req.record, exts, req.proofOfPossession);
      const row = this.#didRow(req.record.did);
      if (row !== undefined) {
        throw row.revoked
          ? new LedgerError('ERR_DID_REVOKED', `${req.record.did} is revoked`)
          : new LedgerError('ERR_DID_EXISTS', `${req.record.did} is already registered`);
      }
      const auth = this.#authorise(req, domain, now);
      return this.#append(
        {
          version: 1,
          type: 'register',
          loggedAt: now,
          did: req.record.did,
          record: req.record,
          extensions: exts,
          auth,
          proofOfPossession: req.proofOfPossession,
        },
        req.record.keyId,
        false,
      );
    });
  }

  /** RegisterIdentity: one durable registration. `source` is the rate-limit key (client IP). */
  register(req: RegisterRequest, source?: string): AppendResult {
    this.#rateLimit(source);
    return this.#results([this.#register(req)])[0] as AppendResult;
  }

  /** Many registrations in one transaction (group commit); each succeeds or fails alone. */
  registerBatch(reqs: readonly RegisterRequest[], source?: string): BatchResult[] {
    const outcomes: (Prepared | Error)[] = [];
    this.#write(() => {
      for (const req of reqs) {
        try {
          this.#rateLimit(source);
          outcomes.push(this.#register(req));
        } catch (err) {
          if (!(err instanceof Error)) throw err;
          outcomes.push(err);
        }
      }
    });
    const ok = outcomes.filter((o): o is Prepared => !(o instanceof Error));
    const results = this.#results(ok);
    let i = 0;
    return outcomes.map((o) =>
      o instanceof Error
        ? { ok: false, error: o }
        : { ok: true, result: results[i++] as AppendResult },
    );
  }

  /** An administrator registers (or re-registers a revoked) DID, bypassing the policy. */
  adminRegister(
    req: Omit<RegisterRequest, 'stamp' | 'approval'>,
    admin: string,
    reference: string,
  ): AppendResult {
    checkAdmin(admin);
    if (reference.length === 0 || Buffer.byteLength(reference) > 128) {
      throw new InputError(
        'ERR_LEDGER_ENTRY',
        'an admin registration needs a reference (1-128 bytes)',
      );
    }
    const exts = req.extensions ?? [];
    const now = this.#clock();
    const prepared = this.#write((): Prepared => {
      this.#checkNewRecord(req.record, exts, req.proofOfPossession);
      const row = this.#didRow(req.record.did);
      if (row !== undefined && !row.revoked) {
        throw new LedgerError('ERR_DID_EXISTS', `${req.record.did} is registered and not revoked`);
      }
      return this.#append(
        {
          version: 1,
          type: 'register',
          loggedAt: now,
          did: req.record.did,
          record: req.record,
          extensions: exts,
          auth: { kind: 'admin', admin, reference },
          proofOfPossession: req.proofOfPossession,
        },
        req.record.keyId,
        false,
      );
    });
    return this.#results([prepared])[0] as AppendResult;
  }

  /** Rotates a DID to a new record, signed by the current key and the new key. */
  rotate(req: RotateRequest): AppendResult {
    const exts = req.extensions ?? [];
    const now = this.#clock();
    const prepared = this.#write((): Prepared => {
      this.domains.domainOf(req.did);
      checkPublicRecord(req.record, 'ERR_LEDGER_ENTRY');
      if (req.record.did !== req.did) {
        throw new InputError('ERR_LEDGER_ENTRY', 'the new record is for another DID');
      }
      const { row, record: current } = this.#current(req.did);
      if (row.leaf !== req.prevLeaf || !row.key_id.equals(req.prevKeyId)) {
        throw new LedgerError(
          'ERR_LEDGER_STALE',
          `the rotation names leaf ${req.prevLeaf}; the current record of ${req.did} is at leaf ${row.leaf}`,
        );
      }
      const t = rotateTranscript(req.did, req.prevLeaf, req.prevKeyId, req.record, exts);
      verifySignature(
        current.suite,
        current.signingPublicKeys,
        t,
        PURPOSE_ROTATE,
        req.previousKeySignature,
        'ERR_LEDGER_ROTATE_SIGNATURE',
      );
      verifySignature(
        req.record.suite,
        req.record.signingPublicKeys,
        t,
        PURPOSE_ROTATE_POP,
        req.proofOfPossession,
        'ERR_LEDGER_SIGNATURE',
      );
      return this.#append(
        {
          version: 1,
          type: 'rotate',
          loggedAt: now,
          did: req.did,
          prevLeaf: req.prevLeaf,
          prevKeyId: req.prevKeyId,
          record: req.record,
          extensions: exts,
          previousKeySignature: req.previousKeySignature,
          proofOfPossession: req.proofOfPossession,
        },
        req.record.keyId,
        false,
      );
    });
    return this.#results([prepared])[0] as AppendResult;
  }

  /** The DID holder revokes its current key. */
  revoke(req: RevokeRequest): AppendResult {
    checkReason(req.reason, false);
    const now = this.#clock();
    const prepared = this.#write((): Prepared => {
      this.domains.domainOf(req.did);
      const { row, record } = this.#current(req.did);
      if (row.leaf !== req.prevLeaf || !row.key_id.equals(req.keyId)) {
        throw new LedgerError(
          'ERR_LEDGER_STALE',
          `the revocation does not name the current record`,
        );
      }
      verifySignature(
        record.suite,
        record.signingPublicKeys,
        revokeTranscript(req.did, req.prevLeaf, req.keyId, req.reason),
        PURPOSE_REVOKE,
        req.signature,
        'ERR_LEDGER_REVOKE_SIGNATURE',
      );
      return this.#append(
        {
          version: 1,
          type: 'revoke',
          loggedAt: now,
          did: req.did,
          prevLeaf: req.prevLeaf,
          keyId: req.keyId,
          reason: req.reason,
          auth: { kind: 'self', signature: req.signature },
        },
        req.keyId,
        true,
      );
    });
    return this.#results([prepared])[0] as AppendResult;
  }

  /** An administrator revokes a DID's current key, with a recorded reason. */
  adminRevoke(did: string, admin: string, reason: string): AppendResult {
    checkAdmin(admin);
    checkReason(reason, true);
    const now = this.#clock();
    const prepared = this.#write((): Prepared => {
      this.domains.domainOf(did);
      const { row } = this.#current(did);
      return this.#append(
        {
          version: 1,
          type: 'revoke',
          loggedAt: now,
          did,
          prevLeaf: row.leaf,
          keyId: row.key_id,
          reason,
          auth: { kind: 'admin', admin },
        },
        row.key_id,
        true,
      );
    });
    return this.#results([prepared])[0] as AppendResult;
  }

  /** Builds the results of committed appends against one checkpoint. */
  #results(prepared: readonly Prepared[]): AppendResult[] {
    const { size, note } = this.checkpoint();
    return prepared.map((p) => ({
      leafIndex: p.leafIndex,
      entry: p.entry,
      treeSize: size,
      inclusionProof: this.store.inclusionProof(p.leafIndex, size),
      checkpoint: note,
    }));
  }

  // ---- reads ----

  /** The signed checkpoint of the current tree (signed once per size; Ed25519 is deterministic). */
  checkpoint(): { size: number; root: Buffer; note: string } {
    const size = this.store.size();
    const root = this.store.root(size);
    if (this.#cached?.size !== size) {
      this.#cached = {
        size,
        note: signCheckpoint({ origin: this.origin, size, root, extensions: [] }, this.#signer),
      };
    }
    return { size, root, note: this.#cached.note };
  }

  /**
   * ResolveIdentity: the DID's latest entry (register, rotate or revoke) with its inclusion proof
   * in the current checkpoint and, if `knownSize` is given, a consistency proof from it.
   */
  lookup(did: string, knownSize?: number): LookupAnswer {
    this.domains.domainOf(did);
    return this.store.db.transaction((): LookupAnswer => {
      const row = this.#didRow(did);
      if (row === undefined) throw new LedgerError('ERR_DID_UNKNOWN', `${did} is not registered`);
      const { size, note } = this.checkpoint();
      const answer: LookupAnswer = {
        did,
        leafIndex: row.leaf,
        entry: this.store.leaf(row.leaf),
        treeSize: size,
        inclusionProof: this.store.inclusionProof(row.leaf, size),
        checkpoint: note,
      };
      if (knownSize === undefined) return answer;
      if (!Number.isSafeInteger(knownSize) || knownSize < 0 || knownSize > size) {
        throw new InputError('ERR_LEDGER_RANGE', `known size ${knownSize} is not in 0..${size}`);
      }
      return {
        ...answer,
        consistency: { fromSize: knownSize, proof: this.store.consistencyProof(knownSize, size) },
      };
    })();
  }

  /** Leaf indices of every entry about `did`, oldest first (for the DID's owner to monitor). */
  history(did: string): number[] {
    return (
      this.#sql('SELECT leaf FROM did_history WHERE did = ? ORDER BY leaf').all(did) as {
        leaf: number;
      }[]
    ).map((r) => r.leaf);
  }

  consistencyProof(first: number, second: number): Buffer[] {
    return this.store.consistencyProof(first, second);
  }

  /** The root hash of the tree of the first `size` entries (0..the current size). */
  rootAt(size: number): Buffer {
    const current = this.store.size();
    if (!Number.isSafeInteger(size) || size < 0 || size > current) {
      throw new InputError('ERR_LEDGER_RANGE', `tree size ${size} is not in 0..${current}`);
    }
    return this.store.root(size);
  }
}

function checkAdmin(admin: string): void {
  if (typeof admin !== 'string' || admin.length === 0 || Buffer.byteLength(admin) > 128) {
    throw new InputError('ERR_LEDGER_ADMIN', 'an administrator name is 1-128 bytes');
  }
}

function checkReason(reason: string, required: boolean): void {
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 512) {
    throw new InputError('ERR_LEDGER_ENTRY', 'a reason is at most 512 bytes');
  }
  if (required && reason.trim().length === 0) {
    throw new InputError('ERR_LEDGER_ENTRY', 'an administrator revocation needs a reason');
  }
}
