/**
 * The sending gateway's signature OUTSIDE the ciphertext (DESIGN.md §3, docs/PROTOCOL.md §6.4):
 * over the cleartext routing header, the SHA-256 of the content ciphertext and of the wraps, and
 * the gateway's own DID + key id. Guarantees: verifyGatewaySignature returns only if the
 * signature verifies (both halves for hybrid-v1) with the given gateway record, the record is
 * the one the envelope names, and (by default) the gateway's domain is the sender's domain.
 */
import { BoundedMap } from '../bounded-map.js';
import { CryptoError } from '../errors.js';
import { parseDid } from '../identity/did.js';
import { checkPublicRecord, type PublicKeyRecord, type SecretKeySet } from '../identity/keys.js';
import {
  MemoryTree,
  inclusionProof,
  leafHash,
  rootAt,
  rootFromInclusion,
} from '../identity/merkle.js';
import { verifySignature, type Signature } from '../identity/signature.js';
import type { Envelope, GatewayBatch } from './codec.js';
import { MAX_GATEWAY_BATCH } from './limits.js';
import {
  PURPOSE_GATEWAY,
  PURPOSE_GATEWAY_BATCH,
  gatewayBatchTranscript,
  gatewayTranscript,
} from './transcript.js';

function transcriptFor(envelope: Envelope, gateway: { did: string; keyId: Buffer }): Buffer {
  return gatewayTranscript({ ...envelope, sender: envelope.sender, gateway });
}

/** Returns a copy of `envelope` carrying the gateway signature of `gatewayKeys`. */
function withGatewaySignature(
  envelope: Envelope,
  record: PublicKeyRecord,
  signature: Signature,
  batch?: GatewayBatch,
): Envelope {
  return {
    ...envelope,
    gatewaySignature: {
      gateway: record.did,
      keyId: record.keyId,
      suite: record.suite,
      signature,
      ...(batch !== undefined ? { batch } : {}),
    },
  };
}

export function addGatewaySignature(envelope: Envelope, gatewayKeys: SecretKeySet): Envelope {
  const record = gatewayKeys.record;
  const signature = gatewayKeys.sign(transcriptFor(envelope, record), PURPOSE_GATEWAY);
  return withGatewaySignature(envelope, record, signature);
}

/** `addGatewaySignature` with the ML-DSA half on the thread pool (SecretKeySet.signAsync). */
export async function addGatewaySignatureAsync(
  envelope: Envelope,
  gatewayKeys: SecretKeySet,
): Promise<Envelope> {
  const record = gatewayKeys.record;
  const signature = await gatewayKeys.signAsync(transcriptFor(envelope, record), PURPOSE_GATEWAY);
  return withGatewaySignature(envelope, record, signature);
}

interface PendingSignature {
  readonly envelope: Envelope;
  readonly transcript: Buffer;
  readonly resolve: (signed: Envelope) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The gateway signature of a busy gateway: envelopes that ask while a signature is being made
 * wait for the next one, which covers them all as one batch (docs/PROTOCOL.md §6.4), so one
 * Ed25519 and one ML-DSA-65 signature serve up to MAX_GATEWAY_BATCH envelopes and a verifier
 * checks them once (VerifiedBatches). Guarantees: every `sign` settles exactly once, with the
 * envelope carrying a signature that verifyGatewaySignature accepts, or with the signing error
 * (every envelope of that batch gets it); an envelope alone in its batch gets the plain signature
 * of `addGatewaySignatureAsync`, byte for byte. No timer waits for company: the first request
 * is signed on the next turn of the event loop, and batches form only while a signature is
 * being made. The ML-DSA-65 half is made on the thread pool (SecretKeySet.signAsync).
 */
export class GatewaySigner {
  readonly #keys: SecretKeySet;
  readonly #maxBatch: number;
  #pending: PendingSignature[] = [];
  #draining = false;

  constructor(keys: SecretKeySet, maxBatch = MAX_GATEWAY_BATCH) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_GATEWAY_BATCH) {
      throw new RangeError(`a gateway signature batch holds 1..${MAX_GATEWAY_BATCH} envelopes`);
    }
    this.#keys = keys;
    this.#maxBatch = maxBatch;
  }

  /** `envelope` with this gateway's signature, alone or as part of a batch. */
  sign(envelope: Envelope): Promise<Envelope> {
    let transcript: Buffer;
    try {
      transcript = transcriptFor(envelope, this.#keys.record);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ envelope, transcript, resolve, reject });
      if (this.#draining) return;
      this.#draining = true;
      setImmediate(() => void this.#drain());
    });
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      await this.#signBatch(this.#pending.splice(0, this.#maxBatch));
    }
    this.#draining = false;
  }

  async #signBatch(batch: readonly PendingSignature[]): Promise<void> {
    const record = this.#keys.record;
    try {
      if (batch.length === 1) {
        const only = batch[0] as PendingSignature;
        const signature = await this.#keys.signAsync(only.transcript, PURPOSE_GATEWAY);
        only.resolve(withGatewaySignature(only.envelope, record, signature));
        return;
      }
      const tree = new MemoryTree(batch.map((p) => leafHash(p.transcript)));
      const size = tree.size;
      const signature = await this.#keys.signAsync(
        gatewayBatchTranscript(record, size, rootAt(tree, size)),
        PURPOSE_GATEWAY_BATCH,
      );
      batch.forEach((p, index) => {
        const path = inclusionProof(tree, index, size);
        p.resolve(withGatewaySignature(p.envelope, record, signature, { index, size, path }));
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}

/**
 * Batch signatures a verifier has already checked, so that each batch costs one verification
 * however many of its envelopes arrive. Keyed by the signed batch transcript (the gateway's DID
 * and key id, the batch's size and root); an entry serves only an envelope whose signature is
 * byte for byte the one that verified. Bounded (BoundedMap): the oldest batch is forgotten first.
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

export interface VerifyGatewayOptions {
  /** Require the gateway DID's domain to be the sender DID's domain (default true). */
  requireSenderDomain?: boolean;
  /** Batch signatures already verified: each batch is verified once. */
  batches?: VerifiedBatches;
}

/** Verifies the envelope's gateway signature with the sending gateway's public record. */
export function verifyGatewaySignature(
  envelope: Envelope,
  gatewayRecord: PublicKeyRecord,
  options: VerifyGatewayOptions = {},
): void {
  const g = envelope.gatewaySignature;
  if (!g)
    throw new CryptoError('ERR_GATEWAY_SIGNATURE_MISSING', 'envelope has no gateway signature');
  checkPublicRecord(gatewayRecord);
  if (
    g.gateway !== gatewayRecord.did ||
    !g.keyId.equals(gatewayRecord.keyId) ||
    g.suite !== gatewayRecord.suite
  ) {
    throw new CryptoError(
      'ERR_GATEWAY_SIGNATURE',
      `gateway signature names ${g.gateway}, not the given gateway key`,
    );
  }
  if (
    (options.requireSenderDomain ?? true) &&
    parseDid(g.gateway).domain !== parseDid(envelope.sender).domain
  ) {
    throw new CryptoError(
      'ERR_GATEWAY_DOMAIN',
      `gateway ${g.gateway} may not vouch for sender ${envelope.sender}`,
    );
  }
  const transcript = transcriptFor(envelope, gatewayRecord);
  if (g.batch === undefined) {
    verifySignature(
      gatewayRecord.suite,
      gatewayRecord.signingPublicKeys,
      transcript,
      PURPOSE_GATEWAY,
      g.signature,
      'ERR_GATEWAY_SIGNATURE',
    );
    return;
  }
  const signed = gatewayBatchTranscript(
    gatewayRecord,
    g.batch.size,
    batchRoot(transcript, g.batch),
  );
  if (options.batches?.has(signed, g.signature)) return;
  verifySignature(
    gatewayRecord.suite,
    gatewayRecord.signingPublicKeys,
    signed,
    PURPOSE_GATEWAY_BATCH,
    g.signature,
    'ERR_GATEWAY_SIGNATURE',
  );
  options.batches?.add(signed, g.signature);
}

/** The root the batch's path leads to from this envelope's transcript. */
function batchRoot(transcript: Buffer, batch: GatewayBatch): Buffer {
  if (batch.size < 2 || batch.size > MAX_GATEWAY_BATCH) {
    throw new CryptoError(
      'ERR_GATEWAY_SIGNATURE',
      `a gateway signature batch holds 2..${MAX_GATEWAY_BATCH} envelopes, not ${batch.size}`,
    );
  }
  try {
    return rootFromInclusion(leafHash(transcript), batch.index, batch.size, batch.path);
  } catch (err) {
    throw new CryptoError(
      'ERR_GATEWAY_SIGNATURE',
      `gateway signature batch: ${(err as Error).message}`,
    );
  }
}
