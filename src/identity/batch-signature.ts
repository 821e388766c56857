/**
 * Batch signatures (docs/PROTOCOL.md §3.3): one composite signature over the RFC 9162 Merkle tree
 * of many transcripts, each signed item carrying its place in the tree. A busy signer makes one
 * Ed25519 and one ML-DSA-65 signature for up to MAX_SIGNATURE_BATCH items, and a verifier that
 * remembers what it verified (VerifiedBatches) checks each batch once.
 *
 *     T_batch = lp(batch purpose, signer DID, signer key id, u32(size), root)
 *
 * signed with the batch purpose; an item alone in its batch gets the plain signature over its own
 * transcript with the single purpose, so the two never verify each other's bytes.
 *
 * Guarantees: BatchSigner.sign settles exactly once, with a signature that verifyBatchSignature
 * accepts for that transcript, or with the signing error (every item of that batch gets it). No
 * timer waits for company: the first request is signed on the next turn of the event loop, and
 * batches form only from requests that arrive while a signature is being made, on the thread
 * pool (SecretKeySet.signAsync, both halves). verifyBatchSignature returns only if
 * the place leads to a root whose T_batch the signature verifies (both halves for hybrid-v1).
 */
import { BoundedMap } from '../bounded-map.js';
import { CryptoError } from '../errors.js';
import type { PublicKeyRecord, SecretKeySet } from './keys.js';
import { lp, u32be } from './lp.js';
import {
  HASH_LENGTH,
  MemoryTree,
  inclusionProof,
  inclusionProofLength,
  leafHash,
  rootAt,
  rootFromInclusion,
} from './merkle.js';
import { verifySignature, type Signature } from './signature.js';

/** Most items one batch signature covers: a path of at most 8 hashes. */
export const MAX_SIGNATURE_BATCH = 256;

/** Where an item's transcript sits in the tree whose root was signed. */
export interface BatchPlace {
  readonly index: number;
  /** Leaves in the tree, 2..MAX_SIGNATURE_BATCH. */
  readonly size: number;
  /** The RFC 9162 inclusion proof of the leaf, exactly as long as (index, size) demands. */
  readonly path: readonly Buffer[];
}

/** A signature, and the item's place when it is over a batch. */
export interface BatchSignature {
  readonly signature: Signature;
  readonly batch?: BatchPlace;
}

/** The two purposes of a kind of signed item: alone, and as a batch. */
export interface BatchPurposes {
  readonly single: string;
  readonly batch: string;
}

/** The bytes a batch's signature covers. */
export function batchTranscript(
  purposes: BatchPurposes,
  signer: { readonly did: string; readonly keyId: Buffer },
  size: number,
  root: Buffer,
): Buffer {
  return lp(purposes.batch, signer.did, signer.keyId, u32be(size), root);
}

interface Pending {
  readonly transcript: Buffer;
  readonly group: string | undefined;
  readonly resolve: (signed: BatchSignature) => void;
  readonly reject: (err: unknown) => void;
}

/** Signs transcripts of one kind with one key, as batches whenever several wait. */
export class BatchSigner {
  readonly #keys: SecretKeySet;
  readonly #purposes: BatchPurposes;
  readonly #maxBatch: number;
  #pending: Pending[] = [];
  #draining = false;

  constructor(keys: SecretKeySet, purposes: BatchPurposes, maxBatch = MAX_SIGNATURE_BATCH) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_SIGNATURE_BATCH) {
      throw new RangeError(`a signature batch holds 1..${MAX_SIGNATURE_BATCH} items`);
    }
    this.#keys = keys;
    this.#purposes = purposes;
    this.#maxBatch = maxBatch;
  }

  get record(): PublicKeyRecord {
    return this.#keys.record;
  }

  /**
   * Signs `transcript`, in a batch if others wait. Items of one `group` never share a batch: the
   * second and later of a group are signed alone, beside the batch (a batch path holds the hashes
   * of the other items, which an item's reader could otherwise test guesses against).
   */
  sign(transcript: Buffer, group?: string): Promise<BatchSignature> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ transcript, group, resolve, reject });
      if (this.#draining) return;
      this.#draining = true;
      setImmediate(() => void this.#drain());
    });
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch: Pending[] = [];
      const alone: Pending[] = [];
      const groups = new Set<string>();
      for (const p of this.#pending.splice(0, this.#maxBatch)) {
        if (p.group === undefined || !groups.has(p.group)) batch.push(p);
        else alone.push(p);
        if (p.group !== undefined) groups.add(p.group);
      }
      await Promise.all([this.#signBatch(batch), ...alone.map((p) => this.#signBatch([p]))]);
    }
    this.#draining = false;
  }

  async #signBatch(batch: readonly Pending[]): Promise<void> {
    try {
      if (batch.length === 1) {
        const only = batch[0] as Pending;
        only.resolve({
          signature: await this.#keys.signAsync(only.transcript, this.#purposes.single),
        });
        return;
      }
      const tree = new MemoryTree(batch.map((p) => leafHash(p.transcript)));
      const size = tree.size;
      const signature = await this.#keys.signAsync(
        batchTranscript(this.#purposes, this.#keys.record, size, rootAt(tree, size)),
        this.#purposes.batch,
      );
      batch.forEach((p, index) => {
        p.resolve({ signature, batch: { index, size, path: inclusionProof(tree, index, size) } });
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}

/**
 * Batch signatures a verifier has already checked, so that each batch costs one verification
 * however many of its items arrive. Keyed by T_batch (purpose, signer, size, root); an entry
 * serves only a signature byte for byte the one that verified. Bounded (BoundedMap): the oldest
 * batch is forgotten first.
 */
export class VerifiedBatches {
  readonly #signatures: BoundedMap<string, Signature>;

  constructor(max = 256) {
    this.#signatures = new BoundedMap(max);
  }

  has(signed: Buffer, signature: Signature): boolean {
    const known = this.#signatures.get(signed.toString('base64'));
    return (
      known !== undefined &&
      known.ed25519.equals(signature.ed25519) &&
      (known.mldsa65 === undefined
        ? signature.mldsa65 === undefined
        : signature.mldsa65 !== undefined && known.mldsa65.equals(signature.mldsa65))
    );
  }

  add(signed: Buffer, signature: Signature): void {
    this.#signatures.set(signed.toString('base64'), signature);
  }
}

/**
 * Verifies `signed` over `transcript` with `record`'s keys: the plain signature (single purpose),
 * or the batch signature over the root its place leads to. Throws CryptoError(`code`).
 */
export function verifyBatchSignature(
  record: PublicKeyRecord,
  transcript: Buffer,
  purposes: BatchPurposes,
  signed: BatchSignature,
  code: string,
  batches?: VerifiedBatches,
): void {
  if (signed.batch === undefined) {
    verifySignature(
      record.suite,
      record.signingPublicKeys,
      transcript,
      purposes.single,
      signed.signature,
      code,
    );
    return;
  }
  const t = batchTranscript(
    purposes,
    record,
    signed.batch.size,
    batchRoot(transcript, signed.batch, code),
  );
  if (batches?.has(t, signed.signature)) return;
  verifySignature(
    record.suite,
    record.signingPublicKeys,
    t,
    purposes.batch,
    signed.signature,
    code,
  );
  batches?.add(t, signed.signature);
}

/** The root `place` leads to from `transcript`'s leaf. */
function batchRoot(transcript: Buffer, place: BatchPlace, code: string): Buffer {
  const problem = batchPlaceProblem(place);
  if (problem !== undefined) throw new CryptoError(code, `signature batch: ${problem}`);
  return rootFromInclusion(leafHash(transcript), place.index, place.size, place.path);
}

/** Most hashes a batch's path can hold (a tree of MAX_SIGNATURE_BATCH leaves is 8 deep). */
export const MAX_BATCH_PATH = inclusionProofLength(0, MAX_SIGNATURE_BATCH);

/**
 * A place as a decoder read it (any format), checked before anything is kept of it: the size,
 * the index inside it, and a path of exactly the length (index, size) demands, of 32-byte hashes.
 * Throws `fail(reason)` otherwise; the place returned owns copies of its hashes.
 */
export function decodeBatchPlace(
  raw: { readonly index: unknown; readonly size: unknown; readonly path: unknown },
  fail: (why: string) => Error,
): BatchPlace {
  const problem = batchPlaceProblem(raw);
  if (problem !== undefined) throw fail(`batch ${problem}`);
  return {
    index: raw.index as number,
    size: raw.size as number,
    path: (raw.path as Uint8Array[]).map((h) => Buffer.from(h)),
  };
}

function batchPlaceProblem(place: {
  readonly index: unknown;
  readonly size: unknown;
  readonly path: unknown;
}): string | undefined {
  const { index, size, path } = place;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 2 || size > MAX_SIGNATURE_BATCH)
    return `size must be 2..${MAX_SIGNATURE_BATCH}`;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= size)
    return 'index must be below its size';
  const n = inclusionProofLength(index, size);
  if (!Array.isArray(path) || path.length !== n)
    return `path must hold ${n} hashes for leaf ${index} of ${size}`;
  if (!path.every((h) => h instanceof Uint8Array && h.length === HASH_LENGTH))
    return `every path hash must be ${HASH_LENGTH} bytes`;
  return undefined;
}
