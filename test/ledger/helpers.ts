// Shared fixtures for the ledger tests: a log key with a fixed seed, a ledger on a temporary
// SQLite file, and identities with their signed register requests (stamps minted at low bits).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import {
  PURPOSE_REGISTER,
  recordHash,
  registerTranscript,
  type Extension,
} from '../../src/ledger/entries.js';
import { mintStamp } from '../../src/ledger/hashcash.js';
import {
  IdentityLedger,
  type LedgerOptions,
  type RegisterRequest,
} from '../../src/ledger/ledger.js';
import { NoteSigner } from '../../src/ledger/note.js';
import { PgLedgerReplication } from '../../src/ledger/postgres.js';
import { SyncPgClient } from '../../src/ledger/pg-sync.js';
import type { DomainPolicy } from '../../src/ledger/policy.js';
import { AfterSmtpError } from '../../src/errors.js';

export const DOMAIN = 'example.org';
export const TEST_BITS = 6;

export function logSigner(domain = DOMAIN, seedByte = 7): NoteSigner {
  return new NoteSigner(logOrigin(domain), Buffer.alloc(32, seedByte));
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-ledger-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The log on PostgreSQL, when the contract tests run against it (ledger-postgres.test.ts sets
 * this to a fresh database): every openLedger() starts an empty shared log there.
 */
export const PG_LEDGER_ENV = 'AFTERSMTP_TEST_LEDGER_PG';

/** Empties the ledger's tables in the test database (a fresh log for the next test). */
export function resetPgLedger(url: string): void {
  const c = new SyncPgClient(url);
  try {
    c.query(`DO $$ BEGIN IF to_regclass('ledger_logs') IS NOT NULL THEN
      TRUNCATE ledger_logs, ledger_leaves, ledger_approvals, ledger_policies, ledger_rate;
    END IF; END $$`);
  } finally {
    c.close();
  }
}

/** The replication for a ledger opened by the tests (undefined: the SQLite log alone). */
export function testReplication(): PgLedgerReplication | undefined {
  const url = process.env[PG_LEDGER_ENV];
  return url === undefined ? undefined : new PgLedgerReplication({ url });
}

export function openLedger(
  overrides: Partial<LedgerOptions> = {},
  policy: DomainPolicy = { policy: 'open-pow', bits: TEST_BITS },
): { ledger: IdentityLedger; dir: string; cleanup: () => void } {
  const { dir, cleanup } = tempDir();
  const url = process.env[PG_LEDGER_ENV];
  if (url !== undefined) resetPgLedger(url);
  const replication = testReplication();
  const ledger = new IdentityLedger({
    path: join(dir, 'ledger.sqlite'),
    signer: logSigner(),
    domains: [DOMAIN],
    policies: new Map([[DOMAIN, policy]]),
    ...(replication === undefined ? {} : { replication }),
    ...overrides,
  });
  return {
    ledger,
    dir,
    cleanup: () => {
      ledger.close();
      cleanup();
    },
  };
}

export function identity(
  localpart: string,
  suite: SuiteId = 'classic-v1',
  domain = DOMAIN,
): SecretKeySet {
  return SecretKeySet.generate(`did:aftersmtp:${domain}:${localpart}`, suite, 1_700_000_000_000);
}

/** A complete register request with a stamp minted against a fresh challenge. */
export async function registerRequest(
  ledger: IdentityLedger,
  keys: SecretKeySet,
  extensions: Extension[] = [],
): Promise<RegisterRequest> {
  const domain = keys.did.split(':')[2] as string;
  const { challenge, bits } = ledger.issueChallenge(domain);
  const stamp = await mintStamp(challenge, keys.did, recordHash(keys.record), bits);
  return {
    record: keys.record,
    extensions,
    proofOfPossession: keys.sign(registerTranscript(keys.record, extensions), PURPOSE_REGISTER),
    stamp,
  };
}

export const hasCode =
  (code: string) =>
  (err: unknown): boolean => {
    if (err instanceof AfterSmtpError && err.code === code) return true;
    throw err;
  };

/** Flips bit `bit` (modulo the bit length) of a copy of `buf`. */
export function flipBit(buf: Uint8Array, bit: number): Buffer {
  const out = Buffer.from(buf);
  const i = Math.floor(bit / 8) % out.length;
  out.writeUInt8(out.readUInt8(i) ^ (1 << (bit % 8)), i);
  return out;
}
