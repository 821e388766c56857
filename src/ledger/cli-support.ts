/**
 * The ledger's CLI pieces as functions with typed results, for the lead to wire as
 * `aftersmtp ledger key` and `aftersmtp ledger checkpoint [--json]` (src/cli/ stays with them),
 * plus the data-directory composition used by `serve`: the log database is
 * `<dataDir>/ledger.sqlite` and its key `<dataDir>/ledger.key` (logkey.ts says why a file).
 *
 * Guarantees: nothing here prints; each function returns data and, separately, the lines to
 * print, so text and --json output come from the same value. `ledgerKey` never needs the
 * passphrase unless it has to create the key.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { logOrigin } from './checkpoint.js';
import { verifyConsistency } from '../identity/merkle.js';
import type { MintProgress } from './hashcash.js';
import { IdentityLedger, type LedgerOptions } from './ledger.js';
import {
  DEFAULT_SCRYPT,
  LOG_KEY_FILE,
  loadOrCreateLogKey,
  readLogKeyPublic,
  type ScryptParams,
} from './logkey.js';

export const LEDGER_DB_FILE = 'ledger.sqlite';

export interface DataDirOptions {
  readonly dataDir: string;
  /** Served domains; the first names the log (origin `<domain>/aftersmtp-ledger/v1`). */
  readonly domains: readonly string[];
  readonly passphrase: string;
  readonly scrypt?: ScryptParams;
  readonly ledger?: Partial<Omit<LedgerOptions, 'path' | 'signer' | 'domains'>>;
}

/** Opens the data directory's ledger, creating its key on first use. */
export async function openDataDirLedger(
  opts: DataDirOptions,
): Promise<{ ledger: IdentityLedger; keyCreated: boolean }> {
  const origin = opts.ledger?.origin ?? logOrigin(opts.domains[0] as string);
  const { signer, created } = await loadOrCreateLogKey(
    join(opts.dataDir, LOG_KEY_FILE),
    origin,
    opts.passphrase,
    opts.scrypt ?? DEFAULT_SCRYPT,
  );
  const ledger = new IdentityLedger({
    ...opts.ledger,
    path: join(opts.dataDir, LEDGER_DB_FILE),
    signer,
    domains: opts.domains,
    origin,
  });
  return { ledger, keyCreated: created };
}

export interface LedgerKeyInfo {
  readonly origin: string;
  readonly verifierKey: string;
  readonly keyFile: string;
  /** The `k=` field for `_aftersmtp._tcp.<domain>` TXT (DESIGN.md §4). */
  readonly dnsField: string;
  readonly created: boolean;
}

/** `aftersmtp ledger key`: the log's note verifier key (created if absent and a passphrase is given). */
export async function ledgerKey(opts: {
  dataDir: string;
  domain: string;
  passphrase?: string;
  scrypt?: ScryptParams;
}): Promise<LedgerKeyInfo> {
  const keyFile = join(opts.dataDir, LOG_KEY_FILE);
  const origin = logOrigin(opts.domain);
  const exists = await stat(keyFile).then(
    () => true,
    () => false,
  );
  let verifierKey: string;
  let created = false;
  if (exists) {
    const pub = await readLogKeyPublic(keyFile);
    if (pub.name !== origin) {
      throw new InputError(
        'ERR_LOG_KEY',
        `${keyFile} is the log key of ${pub.name}, not ${origin}: this data directory serves another domain (AFTERSMTP_DOMAIN; give each domain its own AFTERSMTP_DATA_DIR)`,
      );
    }
    verifierKey = pub.verifierKey;
  } else {
    if (opts.passphrase === undefined) {
      throw new InputError(
        'ERR_LOG_KEY',
        `no log key in ${opts.dataDir}; a passphrase creates one`,
      );
    }
    const r = await loadOrCreateLogKey(keyFile, origin, opts.passphrase, opts.scrypt);
    verifierKey = r.signer.verifierKey;
    created = r.created;
  }
  return { origin, verifierKey, keyFile, dnsField: `k=${verifierKey}`, created };
}

export function formatLedgerKey(info: LedgerKeyInfo): string[] {
  return [
    info.verifierKey,
    `# origin ${info.origin}; key file ${info.keyFile}${info.created ? ' (created)' : ''}`,
    `# DNS: _aftersmtp._tcp.<domain> TXT "v=aftersmtp1; p=<host>:<port>; ${info.dnsField}"`,
  ];
}

export interface LedgerCheckpointInfo {
  readonly origin: string;
  readonly size: number;
  /** Base64 RFC 6962 root hash. */
  readonly rootHash: string;
  /** The signed checkpoint (C2SP signed note), byte-exact. */
  readonly note: string;
  readonly verifierKey: string;
}

/** `aftersmtp ledger checkpoint`: the current signed checkpoint of an open ledger. */
export function ledgerCheckpoint(ledger: IdentityLedger): LedgerCheckpointInfo {
  const cp = ledger.checkpoint();
  return {
    origin: ledger.origin,
    size: cp.size,
    rootHash: cp.root.toString('base64'),
    note: cp.note,
    verifierKey: ledger.verifierKey,
  };
}

export interface LedgerConsistencyInfo {
  readonly origin: string;
  readonly from: { readonly size: number; readonly rootHash: string };
  readonly to: { readonly size: number; readonly rootHash: string };
  /** RFC 9162 §2.1.4 consistency proof, base64 hashes. */
  readonly proof: readonly string[];
}

/**
 * A consistency proof between two sizes of the local log (`to` defaults to the current size),
 * with the root hash at each, checked before it is returned: an auditor compares the roots with
 * checkpoints it kept and verifies the proof with any RFC 9162 implementation.
 */
export function ledgerConsistency(
  ledger: IdentityLedger,
  from: number,
  to?: number,
): LedgerConsistencyInfo {
  const second = to ?? ledger.checkpoint().size;
  const proof = ledger.consistencyProof(from, second);
  const fromRoot = ledger.rootAt(from);
  const toRoot = ledger.rootAt(second);
  verifyConsistency(from, second, proof, fromRoot, toRoot);
  return {
    origin: ledger.origin,
    from: { size: from, rootHash: fromRoot.toString('base64') },
    to: { size: second, rootHash: toRoot.toString('base64') },
    proof: proof.map((h) => h.toString('base64')),
  };
}

export function formatLedgerConsistency(info: LedgerConsistencyInfo, json: boolean): string {
  if (json) return `${JSON.stringify(info, null, 2)}\n`;
  return `${[
    `log        ${info.origin}`,
    `from       size ${info.from.size}, root ${info.from.rootHash}`,
    `to         size ${info.to.size}, root ${info.to.rootHash}`,
    `proof      ${info.proof.length === 0 ? '(empty)' : info.proof.join(' ')}`,
    'verified   the larger tree extends the smaller one (RFC 9162 §2.1.4.2)',
  ].join('\n')}\n`;
}

/** Text output is the signed note itself (what a witness or a resolver consumes). */
export function formatLedgerCheckpoint(info: LedgerCheckpointInfo, json: boolean): string {
  return json ? `${JSON.stringify(info, null, 2)}\n` : info.note;
}

/** One progress line for minting, e.g. `minting 19 bits: 0.52 M hashes (99% of 2^19), 0.9 s`. */
export function mintProgressLine(bits: number, p: MintProgress): string {
  const pct = Math.round((100 * p.hashes) / p.expected);
  return `minting ${bits} bits: ${(p.hashes / 1e6).toFixed(2)} M hashes (${pct}% of 2^${bits}), ${(p.elapsedMs / 1000).toFixed(1)} s`;
}
