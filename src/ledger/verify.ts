/**
 * Client-side verification of ledger answers (DESIGN.md §2b): a resolver pins each domain's log
 * verifier key on first use (from DNS `k=`), keeps the newest checkpoint it has seen per log, and
 * accepts a lookup answer only if the checkpoint is signed by the pinned key, the entry is
 * included in that checkpoint's tree, and the tree is consistent with the newest one seen.
 *
 * Guarantees: verifyLookup returns only after every check passed, and only then advances the
 * client state; any failure throws (nothing is updated): a changed log key
 * (ERR_LEDGER_KEY_CHANGED), a bad signature (ERR_NOTE_SIGNATURE), another log's checkpoint
 * (ERR_CHECKPOINT_ORIGIN), an entry for another DID (ERR_LEDGER_WRONG_DID), a bad inclusion proof
 * (ERR_LEDGER_INCLUSION), a missing or bad consistency proof (ERR_LEDGER_CONSISTENCY), a tree
 * that shrank (ERR_LEDGER_SHRANK) and two roots for one size (ERR_LEDGER_SPLIT_VIEW). The state
 * file is written atomically and read with a size cap and a strict shape check.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { CryptoError, InputError } from '../errors.js';
import { parseDid, verifySignature, type PublicKeyRecord } from '../identity/index.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import {
  PURPOSE_REGISTER,
  PURPOSE_ROTATE_POP,
  decodeEntry,
  registerTranscript,
  rotateTranscript,
  type LedgerEntry,
} from './entries.js';
import { HASH_LENGTH, leafHash, verifyConsistency, verifyInclusion } from '../identity/merkle.js';
import { parseVerifierKey } from './note.js';

export const MAX_STATE_FILE_BYTES = 1024 * 1024;
const STATE_FORMAT = 'aftersmtp-ledger-client/v1';

/** What the client remembers about one domain's log. */
export interface PinnedLog {
  readonly verifierKey: string;
  /** Newest verified checkpoint (absent until the first verified answer). */
  readonly size?: number;
  readonly root?: Buffer;
}

/** The client's pins and newest checkpoints, optionally persisted to a JSON file. */
export class ClientState {
  readonly #logs = new Map<string, PinnedLog>();
  readonly path: string | undefined;

  constructor(path?: string) {
    this.path = path;
  }

  /** Loads the state file at `path` (an absent file is an empty state). */
  static async load(path: string): Promise<ClientState> {
    const state = new ClientState(path);
    let text: string;
    try {
      const st = await stat(path);
      if (st.size > MAX_STATE_FILE_BYTES) {
        throw new InputError('ERR_LEDGER_STATE', `${path} is larger than ${MAX_STATE_FILE_BYTES}`);
      }
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return state;
      throw err;
    }
    state.#parse(text);
    return state;
  }

  #parse(text: string): void {
    const bad = (why: string): never => {
      throw new InputError('ERR_LEDGER_STATE', `ledger client state: ${why}`);
    };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      bad('not JSON');
    }
    const o = json as { format?: unknown; logs?: unknown };
    if (typeof o !== 'object' || o === null || o.format !== STATE_FORMAT) bad('unknown format');
    if (typeof o.logs !== 'object' || o.logs === null || Array.isArray(o.logs)) bad('no logs');
    for (const [domain, v] of Object.entries(o.logs as Record<string, unknown>)) {
      const l = v as { verifierKey?: unknown; size?: unknown; root?: unknown };
      if (typeof l !== 'object' || l === null || typeof l.verifierKey !== 'string') {
        bad(`bad entry for ${domain.slice(0, 80)}`);
      }
      parseVerifierKey(l.verifierKey as string);
      if (l.size === undefined && l.root === undefined) {
        this.#logs.set(domain, { verifierKey: l.verifierKey as string });
        continue;
      }
      const root = typeof l.root === 'string' ? Buffer.from(l.root, 'base64') : Buffer.alloc(0);
      if (!Number.isSafeInteger(l.size) || (l.size as number) < 0 || root.length !== HASH_LENGTH) {
        bad(`bad checkpoint for ${domain.slice(0, 80)}`);
      }
      this.#logs.set(domain, {
        verifierKey: l.verifierKey as string,
        size: l.size as number,
        root,
      });
    }
  }

  get(domain: string): PinnedLog | undefined {
    return this.#logs.get(domain);
  }

  set(domain: string, log: PinnedLog): void {
    this.#logs.set(domain, log);
  }

  /** Forgets a log (an operator's deliberate re-pin: `aftersmtp ledger pin --replace`). */
  delete(domain: string): boolean {
    return this.#logs.delete(domain);
  }

  domains(): string[] {
    return [...this.#logs.keys()].sort();
  }

  toJSON(): unknown {
    const logs: Record<string, unknown> = {};
    for (const [d, l] of [...this.#logs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      logs[d] =
        l.size === undefined
          ? { verifierKey: l.verifierKey }
          : { verifierKey: l.verifierKey, size: l.size, root: l.root?.toString('base64') };
    }
    return { format: STATE_FORMAT, logs };
  }

  /** Writes the state atomically (temporary file, fsync, rename, directory fsync). */
  async save(): Promise<void> {
    if (this.path === undefined) return;
    const tmp = join(
      dirname(this.path),
      `.${basename(this.path)}.${randomBytes(6).toString('hex')}`,
    );
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(this.toJSON(), null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** The proof bundle every ledger answer carries (LookupAnswer and AppendResult both have it). */
export interface ProofBundle {
  readonly leafIndex: number;
  readonly entry: Buffer;
  readonly treeSize: number;
  readonly inclusionProof: readonly Buffer[];
  readonly checkpoint: string;
  readonly consistency?: { readonly fromSize: number; readonly proof: readonly Buffer[] };
}

export interface VerifiedEntry {
  readonly did: string;
  readonly entry: LedgerEntry;
  readonly leafIndex: number;
  readonly checkpoint: Checkpoint;
  /** The DID's keys, unless the entry is a revocation. */
  readonly record: PublicKeyRecord | undefined;
  readonly revoked: boolean;
  /** Size of the newest checkpoint the client had before (undefined on first use). */
  readonly previousSize: number | undefined;
}

/**
 * Pins `dnsVerifierKey` for the domain on first use; afterwards it must match the pin (a key
 * change is refused; re-pinning is an explicit operator action).
 */
function pinnedKey(state: ClientState, domain: string, dnsVerifierKey?: string): PinnedLog {
  const pinned = state.get(domain);
  if (pinned === undefined) {
    if (dnsVerifierKey === undefined) {
      throw new InputError(
        'ERR_LEDGER_NO_PIN',
        `no pinned log key for ${domain} and none from DNS: pin the key that ${domain}'s operator prints with "aftersmtp ledger key" (aftersmtp ledger pin ${domain} <key>), or publish k= in its _aftersmtp._tcp TXT record`,
      );
    }
    parseVerifierKey(dnsVerifierKey);
    return { verifierKey: dnsVerifierKey };
  }
  if (dnsVerifierKey !== undefined && dnsVerifierKey !== pinned.verifierKey) {
    throw new CryptoError(
      'ERR_LEDGER_KEY_CHANGED',
      `the log key for ${domain} in DNS differs from the pinned one`,
    );
  }
  return pinned;
}

/**
 * Checks `cp` against the newest checkpoint the client has for the log: same size needs the same
 * root, a bigger tree needs a valid consistency proof from the old size, a smaller one is refused.
 */
export function checkAgainstPinned(
  pinned: PinnedLog,
  cp: Checkpoint,
  consistency: ProofBundle['consistency'],
): void {
  if (pinned.size === undefined || pinned.root === undefined) return;
  if (cp.size < pinned.size) {
    throw new CryptoError(
      'ERR_LEDGER_SHRANK',
      `the log shrank from ${pinned.size} to ${cp.size} entries (rollback or fork)`,
    );
  }
  if (cp.size === pinned.size) {
    if (!cp.root.equals(pinned.root)) {
      throw new CryptoError(
        'ERR_LEDGER_SPLIT_VIEW',
        `two different roots for tree size ${cp.size}: the log equivocates`,
      );
    }
    return;
  }
  if (consistency === undefined || consistency.fromSize !== pinned.size) {
    throw new CryptoError(
      'ERR_LEDGER_CONSISTENCY',
      `no consistency proof from the last seen size ${pinned.size} to ${cp.size}`,
    );
  }
  verifyConsistency(pinned.size, cp.size, consistency.proof, pinned.root, cp.root);
}

/** Checks the signatures an entry carries that need nothing outside the entry. */
function checkEntrySignatures(e: LedgerEntry): void {
  if (e.type === 'register') {
    verifySignature(
      e.record.suite,
      e.record.signingPublicKeys,
      registerTranscript(e.record, e.extensions),
      PURPOSE_REGISTER,
      e.proofOfPossession,
      'ERR_LEDGER_SIGNATURE',
    );
  } else if (e.type === 'rotate') {
    verifySignature(
      e.record.suite,
      e.record.signingPublicKeys,
      rotateTranscript(e.did, e.prevLeaf, e.prevKeyId, e.record, e.extensions),
      PURPOSE_ROTATE_POP,
      e.proofOfPossession,
      'ERR_LEDGER_SIGNATURE',
    );
  }
}

/**
 * Verifies a ledger answer about `did` (see the module comment) and, only if everything holds,
 * advances `state` to the answer's checkpoint. The caller persists it with state.save().
 */
export function verifyAnswer(
  did: string,
  answer: ProofBundle,
  state: ClientState,
  options: { dnsVerifierKey?: string } = {},
): VerifiedEntry {
  const { domain } = parseDid(did);
  const pinned = pinnedKey(state, domain, options.dnsVerifierKey);
  const verifier = parseVerifierKey(pinned.verifierKey);
  const cp = verifyCheckpoint(answer.checkpoint, verifier);
  if (cp.size !== answer.treeSize) {
    throw new CryptoError(
      'ERR_LEDGER_INCLUSION',
      `the answer's tree size ${answer.treeSize} is not the checkpoint's ${cp.size}`,
    );
  }
  verifyInclusion(
    leafHash(answer.entry),
    answer.leafIndex,
    cp.size,
    answer.inclusionProof,
    cp.root,
  );
  const entry = decodeEntry(answer.entry);
  if (entry.did !== did) {
    throw new CryptoError('ERR_LEDGER_WRONG_DID', `the entry is about ${entry.did}, not ${did}`);
  }
  checkEntrySignatures(entry);
  checkAgainstPinned(pinned, cp, answer.consistency);
  state.set(domain, { verifierKey: pinned.verifierKey, size: cp.size, root: cp.root });
  return {
    did,
    entry,
    leafIndex: answer.leafIndex,
    checkpoint: cp,
    record: entry.type === 'revoke' ? undefined : entry.record,
    revoked: entry.type === 'revoke',
    previousSize: pinned.size,
  };
}

/**
 * Verifies a checkpoint seen anywhere (gossip, a witness, another resolver) against the state and
 * advances it; the split-view check without a lookup.
 */
export function observeCheckpoint(
  domain: string,
  note: string,
  consistency: ProofBundle['consistency'],
  state: ClientState,
): Checkpoint {
  const pinned = pinnedKey(state, domain);
  const cp = verifyCheckpoint(note, parseVerifierKey(pinned.verifierKey));
  checkAgainstPinned(pinned, cp, consistency);
  if (pinned.size === undefined || cp.size >= pinned.size) {
    state.set(domain, { verifierKey: pinned.verifierKey, size: cp.size, root: cp.root });
  }
  return cp;
}
