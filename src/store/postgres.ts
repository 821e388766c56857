/**
 * The mailbox store on PostgreSQL (AFTERSMTP_STORE=postgres), for several gateway processes that
 * share one database. At-rest encryption is pgcrypto's (DESIGN.md §5): every record is
 * `pgp_sym_encrypt_bytea(record, key)` (OpenPGP, AES-256, integrity-protected, no compression),
 * with the key a purpose-bound subkey of the node key passed as a bound parameter, never written
 * into SQL text. The server process sees the key while a statement runs (docs/STORE.md).
 *
 * Tables (see MIGRATIONS; rh / ih are the HMACs of the recipient DID and message id under the
 * store's index key, as in the lmdb backend; no column holds a DID or a message id in clear):
 *
 *   store_schema      version, applied_at                 migrations applied (run on start)
 *   store_keys        key_id, wrapped                     the index key, sealed under each key
 *   store_mailboxes   rh, last_seq, count, bytes          one row per mailbox, never deleted
 *   store_envelopes   rh, seq, ih, size, expires_at, key_id, sealed
 *   store_ids         rh, ih, seq, expires_at, live       idempotency; acked ones are tombstones
 *   store_receipts    rh, ih, expires_at, key_id, sealed
 *   store_shares      rh, ih, expires_at, key_id, sealed      key shares of ephemeral messages
 *   store_quarantine  id, source, reason, raw, at
 *   store_transit_outbox  commitment                  receipts' commitments not yet in the transit log
 *
 * The sealed plaintext starts with the row's identity (rh | seq, or rh | ih), checked after
 * decryption, so a sealed value moved to another row fails like a corrupt one. A delivery locks its
 * mailbox row (SELECT ... FOR UPDATE), so sequence numbers are strictly increasing per recipient
 * across processes. A commit returns after the WAL is flushed (fsync and synchronous_commit on:
 * scripts/services/postgres.sh; an operator's server must keep them on).
 */
import pg from 'pg';
import { randomBytes } from '../native/index.js';
import {
  StoreClosedError,
  StoreCorruptError,
  StoreKeyError,
  StoreQuotaError,
  StoreUnavailableError,
} from './errors.js';
import { missingKeysError, subkey, type Keyring } from './keys.js';
import { Serial } from '../serial.js';
import {
  checkAck,
  checkCommitments,
  checkDeliver,
  checkKept,
  checkLimit,
  checkList,
  checkShare,
  checkMessageId,
  checkRecipient,
  decodeEnvelopeRecord,
  decodeReceiptRecord,
  encodeEnvelopeRecord,
  encodeReceiptRecord,
  messageIdHash,
  RecipientHashes,
} from './record.js';
import {
  DEFAULT_LIMITS,
  type DeliverWithReceipt,
  type KeptReceipt,
  type KeptShare,
  type DeliverResult,
  type KeyStatus,
  type ListOptions,
  type MailboxStore,
  type MailboxUsage,
  type Page,
  type RewrapResult,
  type StoreLimits,
  type StoredEnvelope,
} from './types.js';

export interface PostgresStoreOptions {
  readonly url: string;
  readonly keyring: Keyring;
  readonly limits?: Partial<StoreLimits>;
  /** Connections in the pool (default 16). */
  readonly poolSize?: number;
  readonly connectTimeoutMs?: number;
}

/** pgcrypto options: AES-256, no compression (lengths of ciphertext only), salted S2K of a random key. */
const PGP_OPTIONS = 'cipher-algo=aes256, compress-algo=0, s2k-mode=1, s2k-digest-algo=sha256';
/** Serialises migrations (and the index key's creation) between gateways starting at once. */
const MIGRATION_LOCK = 0x41534d54; // 'ASMT'
const PURGE_LOCK = 0x41534d55;
const BATCH = 500;
const INDEX_KEY_ID = Buffer.from('aftersmtp/store/v1/index-key');

/** Versioned schema changes, applied in order on start, each in the migration transaction. */
export const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE EXTENSION IF NOT EXISTS pgcrypto;
      CREATE TABLE store_keys (key_id text PRIMARY KEY, wrapped bytea NOT NULL);
      CREATE TABLE store_mailboxes (
        rh bytea PRIMARY KEY, last_seq bigint NOT NULL, count bigint NOT NULL, bytes bigint NOT NULL);
      CREATE TABLE store_envelopes (
        rh bytea NOT NULL, seq bigint NOT NULL, ih bytea NOT NULL, size integer NOT NULL,
        expires_at bigint NOT NULL, key_id text NOT NULL, sealed bytea NOT NULL,
        PRIMARY KEY (rh, seq));
      CREATE INDEX store_envelopes_key ON store_envelopes (key_id);
      CREATE TABLE store_ids (
        rh bytea NOT NULL, ih bytea NOT NULL, seq bigint NOT NULL, expires_at bigint NOT NULL,
        live boolean NOT NULL, PRIMARY KEY (rh, ih));
      CREATE INDEX store_ids_expiry ON store_ids (expires_at);
      CREATE TABLE store_receipts (
        rh bytea NOT NULL, ih bytea NOT NULL, expires_at bigint NOT NULL, key_id text NOT NULL,
        sealed bytea NOT NULL, PRIMARY KEY (rh, ih));
      CREATE INDEX store_receipts_expiry ON store_receipts (expires_at);
      CREATE INDEX store_receipts_key ON store_receipts (key_id);
      CREATE TABLE store_quarantine (
        id bigserial PRIMARY KEY, source text NOT NULL, reason text NOT NULL, raw bytea NOT NULL,
        at bigint NOT NULL);
    `,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE store_shares (
        rh bytea NOT NULL, ih bytea NOT NULL, expires_at bigint NOT NULL, key_id text NOT NULL,
        sealed bytea NOT NULL, PRIMARY KEY (rh, ih));
      CREATE INDEX store_shares_expiry ON store_shares (expires_at);
      CREATE INDEX store_shares_key ON store_shares (key_id);
    `,
  },
  {
    version: 3,
    sql: `
      CREATE TABLE store_transit_outbox (commitment bytea PRIMARY KEY);
    `,
  },
];

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** pgcrypto's "Wrong key or corrupt data" and friends (external_routine_invocation_exception). */
function isCryptoFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('39');
}

interface SealedRow {
  rh: Buffer;
  seq: string;
  key_id: string;
  sealed: Buffer;
}

/** How messages name this store. */
const STORE_NAME = 'the postgres mailbox store';

export class PostgresMailboxStore implements MailboxStore {
  readonly backend = 'postgres' as const;
  readonly limits: StoreLimits;
  readonly pool: pg.Pool;
  // The keyring and the forms the queries take it in, replaced together (setKeyring).
  private keyring!: Keyring;
  private keyIds!: string[];
  private keyTexts!: string[];
  private writeKey!: string;
  private indexKey: Buffer = Buffer.alloc(0);
  private closed = false;
  /** A keyring change or a rewrap: one at a time. */
  private readonly keyWork = new Serial();

  private constructor(options: PostgresStoreOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.setKeyring(options.keyring);
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 16,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    });
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  /** Connects, runs the migrations, loads the index key. Errors name AFTERSMTP_POSTGRES_URL. */
  static async open(options: PostgresStoreOptions): Promise<PostgresMailboxStore> {
    const store = new PostgresMailboxStore(options);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      if (err instanceof StoreKeyError || err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(
        `the postgres mailbox store at ${redact(options.url)} (AFTERSMTP_POSTGRES_URL) is not usable: ${(err as Error).message}`,
        err,
      );
    }
    return store;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS store_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await c.query<{ v: number | null }>(
        'SELECT max(version) AS v FROM store_schema',
      );
      const current = rows[0]?.v ?? 0;
      const newest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
      if (current > newest) {
        throw new StoreUnavailableError(
          `the mailbox store schema is version ${current}, newer than this gateway knows (${newest})`,
        );
      }
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO store_schema (version) VALUES ($1)', [m.version]);
      }
      await this.loadIndexKey(c);
    });
  }

  private setKeyring(ring: Keyring): void {
    this.keyring = ring;
    this.keyIds = ring.ids();
    this.keyTexts = ring.keys.map((k) => subkey(k, 'pgcrypto').toString('base64'));
    this.writeKey = this.keyTexts[0] as string;
  }

  /** The ids of the keys the index key is wrapped under: those records may be sealed with. */
  private async wrappedUnder(c: pg.Pool | pg.PoolClient): Promise<string[]> {
    const { rows } = await c.query<{ key_id: string }>(
      'SELECT key_id FROM store_keys ORDER BY key_id',
    );
    return rows.map((r) => r.key_id);
  }

  /** Wraps the index key under `key` (pgcrypto subkey text `text`), once. */
  private async wrapIndexKey(c: pg.Pool | pg.PoolClient, id: string, text: string): Promise<void> {
    await c.query(
      `INSERT INTO store_keys (key_id, wrapped) VALUES ($1, pgp_sym_encrypt_bytea($2, $3, $4))
       ON CONFLICT (key_id) DO NOTHING`,
      [id, Buffer.concat([INDEX_KEY_ID, this.indexKey]), text, PGP_OPTIONS],
    );
  }

  private async loadIndexKey(c: pg.PoolClient): Promise<void> {
    const present = await this.wrappedUnder(c);
    if (present.length === 0) {
      this.indexKey = randomBytes(32);
    } else {
      const missing = present.filter((id) => this.keyring.get(id) === undefined);
      if (missing.length > 0) throw missingKeysError(STORE_NAME, missing, this.keyring);
      let plain: Buffer | null | undefined;
      try {
        const r = await c.query<{ plain: Buffer | null }>(
          `SELECT pgp_sym_decrypt_bytea(s.wrapped, k.key) AS plain
             FROM store_keys s JOIN unnest($1::text[], $2::text[]) AS k(id, key) ON k.id = s.key_id
            LIMIT 1`,
          [this.keyIds, this.keyTexts],
        );
        plain = r.rows[0]?.plain;
      } catch (err) {
        throw new StoreKeyError("the store's index key does not open with the keyring", err);
      }
      if (
        !plain ||
        plain.length !== INDEX_KEY_ID.length + 32 ||
        !plain.subarray(0, INDEX_KEY_ID.length).equals(INDEX_KEY_ID)
      ) {
        throw new StoreKeyError('the store index key is malformed');
      }
      this.indexKey = plain.subarray(INDEX_KEY_ID.length);
      if (present.includes(this.keyIds[0] as string)) return;
    }
    await this.wrapIndexKey(c, this.keyIds[0] as string, this.writeKey);
  }

  private live(): void {
    if (this.closed) throw new StoreClosedError();
  }

  private readonly recipientHashes = new RecipientHashes();

  private rh(recipient: string): Buffer {
    return this.recipientHashes.of(this.indexKey, checkRecipient(recipient));
  }

  async keepReceipt(input: KeptReceipt): Promise<void> {
    this.live();
    checkKept(input, this.limits, Date.now());
    const rh = this.rh(input.recipient);
    const ih = messageIdHash(this.indexKey, rh, input.messageId);
    const sealed = Buffer.concat([
      rh,
      ih,
      encodeReceiptRecord(input.recipient, input.messageId, input.receipt, input.expiresAt),
    ]);
    await this.tx((c) =>
      c.query(
        `INSERT INTO store_receipts (rh, ih, expires_at, key_id, sealed)
         VALUES ($1, $2, $3, $4, pgp_sym_encrypt_bytea($5, $6, $7)) ON CONFLICT (rh, ih) DO NOTHING`,
        [rh, ih, input.expiresAt, this.keyIds[0], sealed, this.writeKey, PGP_OPTIONS],
      ),
    );
  }

  async deliver(input: DeliverWithReceipt): Promise<DeliverResult> {
    this.live();
    checkDeliver(input, this.limits, Date.now());
    const rh = this.rh(input.recipient);
    const ih = messageIdHash(this.indexKey, rh, input.messageId);
    const record = encodeEnvelopeRecord(input);
    const size = input.envelope.length;
    const receipt = Buffer.concat([
      rh,
      ih,
      encodeReceiptRecord(input.recipient, input.messageId, input.receipt, input.expiresAt),
    ]);
    // Inserted with the envelope, in its transaction; a redelivery keeps the first receipt (or
    // stores this one when the first delivery was stored without one).
    const putReceipt = (c: pg.PoolClient): Promise<unknown> =>
      c.query(
        `INSERT INTO store_receipts (rh, ih, expires_at, key_id, sealed)
         VALUES ($1, $2, $3, $4, pgp_sym_encrypt_bytea($5, $6, $7)) ON CONFLICT (rh, ih) DO NOTHING`,
        [rh, ih, input.expiresAt, this.keyIds[0], receipt, this.writeKey, PGP_OPTIONS],
      );
    const result = await this.tx(async (c) => {
      await c.query(
        'INSERT INTO store_mailboxes (rh, last_seq, count, bytes) VALUES ($1, 0, 0, 0) ON CONFLICT (rh) DO NOTHING',
        [rh],
      );
      const mb = (
        await c.query<{ last_seq: string; count: string; bytes: string }>(
          'SELECT last_seq, count, bytes FROM store_mailboxes WHERE rh = $1 FOR UPDATE',
          [rh],
        )
      ).rows[0];
      const prior = await c.query<{ seq: string }>(
        'SELECT seq FROM store_ids WHERE rh = $1 AND ih = $2',
        [rh, ih],
      );
      if (prior.rows[0]) {
        await putReceipt(c);
        return { seq: Number(prior.rows[0].seq), duplicate: true };
      }
      const count = Number(mb?.count ?? 0);
      const bytes = Number(mb?.bytes ?? 0);
      if (count + 1 > this.limits.maxMailboxCount || bytes + size > this.limits.maxMailboxBytes) {
        throw new StoreQuotaError(`the mailbox of ${input.recipient} is full`);
      }
      const seq = Number(mb?.last_seq ?? 0) + 1;
      const plain = Buffer.concat([rh, u64(seq), record]);
      await c.query(
        `INSERT INTO store_envelopes (rh, seq, ih, size, expires_at, key_id, sealed)
         VALUES ($1, $2, $3, $4, $5, $6, pgp_sym_encrypt_bytea($7, $8, $9))`,
        [rh, seq, ih, size, input.expiresAt, this.keyIds[0], plain, this.writeKey, PGP_OPTIONS],
      );
      await c.query(
        'INSERT INTO store_ids (rh, ih, seq, expires_at, live) VALUES ($1, $2, $3, $4, true)',
        [rh, ih, seq, input.expiresAt],
      );
      await c.query(
        'UPDATE store_mailboxes SET last_seq = $2, count = count + 1, bytes = bytes + $3 WHERE rh = $1',
        [rh, seq, size],
      );
      await putReceipt(c);
      if (input.transitCommitment !== undefined) {
        await c.query(
          'INSERT INTO store_transit_outbox (commitment) VALUES ($1) ON CONFLICT DO NOTHING',
          [Buffer.from(input.transitCommitment)],
        );
      }
      return { seq, duplicate: false };
    });
    if (!result.duplicate) return { ...result, receipt: input.receipt };
    const first = await this.getReceipt(input.recipient, input.messageId);
    return { ...result, receipt: first ?? input.receipt };
  }

  async transitOutbox(limit: number): Promise<Buffer[]> {
    this.live();
    const { rows } = await this.pool.query<{ commitment: Buffer }>(
      'SELECT commitment FROM store_transit_outbox LIMIT $1',
      [checkLimit(limit)],
    );
    return rows.map((r) => r.commitment);
  }

  async transitLogged(commitments: readonly Uint8Array[]): Promise<void> {
    this.live();
    const keys = checkCommitments(commitments);
    if (keys.length === 0) return;
    await this.pool.query('DELETE FROM store_transit_outbox WHERE commitment = ANY($1::bytea[])', [
      keys,
    ]);
  }

  /** Checks a decrypted envelope against its row; StoreCorruptError when anything is off. */
  private checkEnvelope(
    recipient: string,
    rh: Buffer,
    seq: number,
    ih: Buffer,
    plain: Buffer | null,
  ): StoredEnvelope {
    if (plain === null) throw new StoreCorruptError('envelope record: empty');
    const identity = Buffer.concat([rh, u64(seq)]);
    if (plain.length < 40 || !plain.subarray(0, 40).equals(identity)) {
      throw new StoreCorruptError('envelope record: identity does not match its row');
    }
    const rec = decodeEnvelopeRecord(plain.subarray(40));
    if (
      rec.recipient !== recipient ||
      !messageIdHash(this.indexKey, rh, rec.messageId).equals(ih)
    ) {
      throw new StoreCorruptError('envelope record: identity does not match its row');
    }
    return { ...rec, seq, size: rec.envelope.length };
  }

  /** Refuses rows sealed with a key id the keyring does not hold. */
  private checkKeyIds(rows: readonly { key_id: string }[]): void {
    const missing = rows.find((r) => this.keyring.get(r.key_id) === undefined);
    if (missing) {
      throw new StoreKeyError(
        `record sealed with store key ${missing.key_id}, which is not in the keyring`,
      );
    }
  }

  /**
   * Decrypts the envelopes of `rh` with after < seq <= upTo: in one statement, or, when pgcrypto
   * refuses one of them (corrupt), row by row so that only the bad ones are quarantined.
   */
  private async openRange(
    recipient: string,
    rh: Buffer,
    after: number,
    upTo: number,
    now: number,
  ): Promise<{ envelopes: StoredEnvelope[]; quarantined: number }> {
    const envelopes: StoredEnvelope[] = [];
    let quarantined = 0;
    const meta = await this.pool.query<{ seq: string; ih: Buffer; key_id: string }>(
      'SELECT seq, ih, key_id FROM store_envelopes WHERE rh = $1 AND seq > $2 AND seq <= $3 AND expires_at > $4 ORDER BY seq',
      [rh, after, upTo, now],
    );
    this.checkKeyIds(meta.rows);
    let plains: Map<string, Buffer | null>;
    try {
      const r = await this.pool.query<{ seq: string; plain: Buffer | null }>(
        `SELECT e.seq, pgp_sym_decrypt_bytea(e.sealed, k.key) AS plain
           FROM store_envelopes e JOIN unnest($5::text[], $6::text[]) AS k(id, key) ON k.id = e.key_id
          WHERE e.rh = $1 AND e.seq > $2 AND e.seq <= $3 AND e.expires_at > $4`,
        [rh, after, upTo, now, this.keyIds, this.keyTexts],
      );
      plains = new Map(r.rows.map((x) => [x.seq, x.plain]));
    } catch (err) {
      if (!isCryptoFailure(err)) throw err;
      plains = new Map();
      for (const m of meta.rows) {
        try {
          const r = await this.pool.query<{ plain: Buffer | null }>(
            `SELECT pgp_sym_decrypt_bytea(e.sealed, k.key) AS plain
               FROM store_envelopes e JOIN unnest($3::text[], $4::text[]) AS k(id, key) ON k.id = e.key_id
              WHERE e.rh = $1 AND e.seq = $2`,
            [rh, m.seq, this.keyIds, this.keyTexts],
          );
          if (r.rows[0]) plains.set(m.seq, r.rows[0].plain);
        } catch (e) {
          if (!isCryptoFailure(e)) throw e;
          plains.set(m.seq, null);
        }
      }
    }
    for (const m of meta.rows) {
      if (!plains.has(m.seq)) continue; // acked meanwhile
      const seq = Number(m.seq);
      try {
        const e = this.checkEnvelope(recipient, rh, seq, m.ih, plains.get(m.seq) ?? null);
        if (e.expiresAt > now) envelopes.push(e);
      } catch (err) {
        if (!(err instanceof StoreCorruptError)) throw err;
        await this.quarantineEnvelope(rh, seq, err.message);
        quarantined++;
      }
    }
    return { envelopes, quarantined };
  }

  async list(recipient: string, options: ListOptions = {}): Promise<Page> {
    this.live();
    const { after, limit, folder } = checkList(options, this.limits);
    const rh = this.rh(recipient);
    const now = Date.now();
    // Choose the page by the cleartext sizes first, so nothing past the page is decrypted.
    const sizes = await this.pool.query<{ seq: string; size: number }>(
      'SELECT seq, size FROM store_envelopes WHERE rh = $1 AND seq > $2 AND expires_at > $3 ORDER BY seq LIMIT $4',
      [rh, after, now, limit + 1],
    );
    let upTo = after;
    let bytes = 0;
    let taken = 0;
    let more = false;
    for (const row of sizes.rows) {
      if (taken >= limit || bytes >= this.limits.maxPageBytes) {
        more = true;
        break;
      }
      upTo = Number(row.seq);
      bytes += row.size;
      taken++;
    }
    if (taken === 0) return { envelopes: [], cursor: after, more: false, quarantined: 0 };
    const { envelopes, quarantined } = await this.openRange(recipient, rh, after, upTo, now);
    const shown =
      folder === undefined ? envelopes : envelopes.filter((e) => (e.folder ?? 'inbox') === folder);
    return { envelopes: shown, cursor: upTo, more, quarantined };
  }

  async fetch(recipient: string, messageId: string): Promise<StoredEnvelope | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const ih = messageIdHash(this.indexKey, rh, messageId);
    const now = Date.now();
    const { rows } = await this.pool.query<{ seq: string }>(
      'SELECT seq FROM store_ids WHERE rh = $1 AND ih = $2 AND live AND expires_at > $3',
      [rh, ih, now],
    );
    if (!rows[0]) return undefined;
    const seq = Number(rows[0].seq);
    const { envelopes, quarantined } = await this.openRange(recipient, rh, seq - 1, seq, now);
    if (quarantined > 0)
      throw new StoreCorruptError(`the stored envelope ${messageId} is corrupt; quarantined`);
    return envelopes[0];
  }

  async ack(recipient: string, messageIds: readonly string[]): Promise<number> {
    this.live();
    const ids = checkAck(messageIds, this.limits);
    const rh = this.rh(recipient);
    if (ids.length === 0) return 0;
    const ihs = ids.map((id) => messageIdHash(this.indexKey, rh, id));
    const { rows } = await this.pool.query<{ n: string }>(
      `WITH a AS (UPDATE store_ids SET live = false WHERE rh = $1 AND ih = ANY($2::bytea[]) AND live RETURNING seq),
            d AS (DELETE FROM store_envelopes e USING a WHERE e.rh = $1 AND e.seq = a.seq RETURNING e.size),
            m AS (UPDATE store_mailboxes SET count = count - (SELECT count(*) FROM d),
                         bytes = bytes - (SELECT coalesce(sum(size), 0) FROM d) WHERE rh = $1)
       SELECT count(*) AS n FROM a`,
      [rh, ihs],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async usage(recipient: string): Promise<MailboxUsage> {
    this.live();
    const { rows } = await this.pool.query<{ last_seq: string; count: string; bytes: string }>(
      'SELECT last_seq, count, bytes FROM store_mailboxes WHERE rh = $1',
      [this.rh(recipient)],
    );
    const r = rows[0];
    return {
      count: Number(r?.count ?? 0),
      bytes: Number(r?.bytes ?? 0),
      lastSeq: Number(r?.last_seq ?? 0),
    };
  }

  async purgeExpired(now = Date.now()): Promise<number> {
    this.live();
    let total = 0;
    for (;;) {
      const n = await this.tx(async (c) => {
        // One purge at a time across gateways: purges lock several mailbox rows.
        await c.query('SELECT pg_advisory_xact_lock($1)', [PURGE_LOCK]);
        const ids = await c.query<{ n: string }>(
          `WITH x AS (DELETE FROM store_ids WHERE (rh, ih) IN
                        (SELECT rh, ih FROM store_ids WHERE expires_at <= $1 LIMIT $2)
                      RETURNING rh, seq, live),
                d AS (DELETE FROM store_envelopes e USING x
                       WHERE x.live AND e.rh = x.rh AND e.seq = x.seq RETURNING e.rh, e.size),
                s AS (SELECT rh, count(*) AS n, sum(size) AS b FROM d GROUP BY rh),
                m AS (UPDATE store_mailboxes mb SET count = mb.count - s.n, bytes = mb.bytes - s.b
                        FROM s WHERE mb.rh = s.rh)
           SELECT count(*) AS n FROM x`,
          [now, BATCH],
        );
        const receipts = await c.query(
          `DELETE FROM store_receipts WHERE (rh, ih) IN
             (SELECT rh, ih FROM store_receipts WHERE expires_at <= $1 LIMIT $2)`,
          [now, BATCH],
        );
        const shares = await c.query(
          `DELETE FROM store_shares WHERE (rh, ih) IN
             (SELECT rh, ih FROM store_shares WHERE expires_at <= $1 LIMIT $2)`,
          [now, BATCH],
        );
        return Number(ids.rows[0]?.n ?? 0) + (receipts.rowCount ?? 0) + (shares.rowCount ?? 0);
      });
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  async getReceipt(
    recipient: string,
    messageId: string,
    now = Date.now(),
  ): Promise<Uint8Array | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const ih = messageIdHash(this.indexKey, rh, messageId);
    const meta = await this.pool.query<{ key_id: string }>(
      'SELECT key_id FROM store_receipts WHERE rh = $1 AND ih = $2 AND expires_at > $3',
      [rh, ih, Math.max(now, Date.now())],
    );
    if (!meta.rows[0]) return undefined;
    this.checkKeyIds(meta.rows);
    try {
      let plain: Buffer | null | undefined;
      try {
        const r = await this.pool.query<{ plain: Buffer | null }>(
          `SELECT pgp_sym_decrypt_bytea(r.sealed, k.key) AS plain
             FROM store_receipts r JOIN unnest($3::text[], $4::text[]) AS k(id, key) ON k.id = r.key_id
            WHERE r.rh = $1 AND r.ih = $2`,
          [rh, ih, this.keyIds, this.keyTexts],
        );
        if (!r.rows[0]) return undefined;
        plain = r.rows[0].plain;
      } catch (err) {
        if (!isCryptoFailure(err)) throw err;
        throw new StoreCorruptError('receipt record failed authentication', err);
      }
      const identity = Buffer.concat([rh, ih]);
      if (!plain || plain.length < 64 || !plain.subarray(0, 64).equals(identity)) {
        throw new StoreCorruptError('receipt record: identity does not match its row');
      }
      const rec = decodeReceiptRecord(plain.subarray(64));
      if (rec.recipient !== recipient || rec.messageId !== messageId) {
        throw new StoreCorruptError('receipt record: identity does not match its row');
      }
      return rec.receipt;
    } catch (err) {
      if (err instanceof StoreCorruptError) {
        await this.pool.query(
          `WITH d AS (DELETE FROM store_receipts WHERE rh = $1 AND ih = $2 RETURNING sealed)
           INSERT INTO store_quarantine (source, reason, raw, at) SELECT $3, $4, sealed, $5 FROM d`,
          [
            rh,
            ih,
            `store_receipts/${rh.toString('hex')}/${ih.toString('hex')}`,
            err.message,
            Date.now(),
          ],
        );
      }
      throw err;
    }
  }

  async keepShare(input: KeptShare): Promise<void> {
    this.live();
    checkShare(input, Date.now());
    const rh = this.rh(input.recipient);
    const ih = messageIdHash(this.indexKey, rh, input.messageId);
    const sealed = Buffer.concat([
      rh,
      ih,
      encodeReceiptRecord(input.recipient, input.messageId, input.share, input.expiresAt),
    ]);
    await this.tx((c) =>
      c.query(
        `INSERT INTO store_shares (rh, ih, expires_at, key_id, sealed)
         VALUES ($1, $2, $3, $4, pgp_sym_encrypt_bytea($5, $6, $7)) ON CONFLICT (rh, ih) DO NOTHING`,
        [rh, ih, input.expiresAt, this.keyIds[0], sealed, this.writeKey, PGP_OPTIONS],
      ),
    );
  }

  async releaseShare(
    recipient: string,
    messageId: string,
    now: number,
  ): Promise<Uint8Array | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const ih = messageIdHash(this.indexKey, rh, messageId);
    const at = Math.max(now, Date.now());
    const meta = await this.pool.query<{ key_id: string }>(
      'SELECT key_id FROM store_shares WHERE rh = $1 AND ih = $2 AND expires_at > $3',
      [rh, ih, at],
    );
    if (!meta.rows[0]) return undefined;
    this.checkKeyIds(meta.rows);
    let plain: Buffer | null | undefined;
    try {
      const r = await this.pool.query<{ plain: Buffer | null }>(
        `SELECT pgp_sym_decrypt_bytea(r.sealed, k.key) AS plain
           FROM store_shares r JOIN unnest($4::text[], $5::text[]) AS k(id, key) ON k.id = r.key_id
          WHERE r.rh = $1 AND r.ih = $2 AND r.expires_at > $3`,
        [rh, ih, at, this.keyIds, this.keyTexts],
      );
      if (!r.rows[0]) return undefined;
      plain = r.rows[0].plain;
    } catch (err) {
      if (!isCryptoFailure(err)) throw err;
      throw new StoreCorruptError('share record failed authentication', err);
    }
    const identity = Buffer.concat([rh, ih]);
    if (!plain || plain.length < 64 || !plain.subarray(0, 64).equals(identity)) {
      throw new StoreCorruptError('share record: identity does not match its row');
    }
    const rec = decodeReceiptRecord(plain.subarray(64));
    if (rec.recipient !== recipient || rec.messageId !== messageId) {
      throw new StoreCorruptError('share record: identity does not match its row');
    }
    return rec.receipt;
  }

  /** Moves a corrupt envelope to store_quarantine; its id stays as a tombstone. */
  private async quarantineEnvelope(rh: Buffer, seq: number, reason: string): Promise<void> {
    await this.pool.query(
      `WITH d AS (DELETE FROM store_envelopes WHERE rh = $1 AND seq = $2 RETURNING sealed, size, ih),
            i AS (UPDATE store_ids SET live = false FROM d WHERE store_ids.rh = $1 AND store_ids.ih = d.ih),
            m AS (UPDATE store_mailboxes SET count = count - 1, bytes = bytes - (SELECT size FROM d)
                   WHERE rh = $1 AND EXISTS (SELECT 1 FROM d))
       INSERT INTO store_quarantine (source, reason, raw, at) SELECT $3, $4, sealed, $5 FROM d`,
      [rh, seq, `store_envelopes/${rh.toString('hex')}/${seq}`, reason, Date.now()],
    );
  }

  async quarantined(): Promise<number> {
    this.live();
    const { rows } = await this.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM store_quarantine',
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * `inUse`: the keys the index key is wrapped under and those rows are sealed with (a gateway
   * sharing the database may still seal with a key another has re-sealed away from). The rows'
   * keys take a scan of the three tables: for the operator's `store-key list` and `retire`, and
   * once per keyring change, not for the path of a message.
   */
  async keyStatus(): Promise<KeyStatus> {
    this.live();
    const { rows } = await this.pool.query<{ key_id: string }>(
      `SELECT key_id FROM store_keys
       UNION SELECT key_id FROM store_envelopes
       UNION SELECT key_id FROM store_receipts
       UNION SELECT key_id FROM store_shares
       ORDER BY key_id`,
    );
    return {
      writeKeyId: this.keyIds[0] as string,
      keyring: [...this.keyIds],
      inUse: rows.map((r) => r.key_id),
    };
  }

  async useKeyring(next: Keyring): Promise<void> {
    this.live();
    return this.keyWork.run(async () => {
      const missing = (await this.wrappedUnder(this.pool)).filter(
        (id) => next.get(id) === undefined,
      );
      if (missing.length > 0) throw missingKeysError(STORE_NAME, missing, next);
      const write = next.write;
      await this.wrapIndexKey(this.pool, write.id, subkey(write, 'pgcrypto').toString('base64'));
      this.setKeyring(next);
    });
  }

  /**
   * Re-seals (decrypt with the old key, encrypt with the write key, in the server) every envelope
   * and receipt not under the write key, in batches; a row that fails is quarantined. Then the
   * index key's other wraps are deleted. Rotate the keyring of every gateway sharing the database
   * before running this, so that none still writes with an old key.
   */
  async rewrap(): Promise<RewrapResult> {
    this.live();
    return this.keyWork.run(() => this.rewrapNow());
  }

  private async rewrapNow(): Promise<RewrapResult> {
    const write = this.keyIds[0] as string;
    let rewrapped = 0;
    for (const table of ['store_envelopes', 'store_receipts', 'store_shares'] as const) {
      const keyCol = table === 'store_envelopes' ? 'seq' : 'ih';
      for (;;) {
        const { rows } = await this.pool.query<SealedRow>(
          `SELECT rh, ${keyCol} AS seq, key_id, sealed FROM ${table} WHERE key_id <> $1 LIMIT $2`,
          [write, BATCH],
        );
        if (rows.length === 0) break;
        this.checkKeyIds(rows);
        for (const row of rows) {
          try {
            const r = await this.pool.query(
              `UPDATE ${table} t SET sealed = pgp_sym_encrypt_bytea(pgp_sym_decrypt_bytea(t.sealed, k.key), $4, $5),
                      key_id = $6
                 FROM unnest($7::text[], $8::text[]) AS k(id, key)
                WHERE t.rh = $1 AND t.${keyCol} = $2 AND t.key_id = $3 AND k.id = t.key_id`,
              [
                row.rh,
                row.seq,
                row.key_id,
                this.writeKey,
                PGP_OPTIONS,
                write,
                this.keyIds,
                this.keyTexts,
              ],
            );
            rewrapped += r.rowCount ?? 0;
          } catch (err) {
            if (!isCryptoFailure(err)) throw err;
            if (table === 'store_envelopes') {
              await this.quarantineEnvelope(
                row.rh,
                Number(row.seq),
                'failed to decrypt during rewrap',
              );
            } else {
              await this.pool.query(
                `WITH d AS (DELETE FROM ${table} WHERE rh = $1 AND ih = $2 RETURNING sealed)
                 INSERT INTO store_quarantine (source, reason, raw, at) SELECT $3, $4, sealed, $5 FROM d`,
                [
                  row.rh,
                  row.seq,
                  `${table} (rewrap)`,
                  'failed to decrypt during rewrap',
                  Date.now(),
                ],
              );
            }
          }
        }
      }
    }
    const { rows } = await this.pool.query<{ key_id: string }>(
      'DELETE FROM store_keys WHERE key_id <> $1 RETURNING key_id',
      [write],
    );
    return { rewrapped, retirable: rows.map((r) => r.key_id) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
