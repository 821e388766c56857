/**
 * The sending gateway's signature OUTSIDE the ciphertext (DESIGN.md §3, docs/PROTOCOL.md §6.4):
 * over the cleartext routing header, the SHA-256 of the content ciphertext and of the wraps, and
 * the gateway's own DID + key id. Guarantees: verifyGatewaySignature returns only if the
 * signature verifies (both halves for hybrid-v1) with the given gateway record, the record is
 * the one the envelope names, and (by default) the gateway's domain is the sender's domain.
 */
import { CryptoError } from '../errors.js';
import { parseDid } from '../identity/did.js';
import { checkPublicRecord, type PublicKeyRecord, type SecretKeySet } from '../identity/keys.js';
import {
  BatchSigner,
  verifyBatchSignature,
  type BatchPlace,
  type BatchPurposes,
  type VerifiedBatches,
} from '../identity/batch-signature.js';
import type { Signature } from '../identity/signature.js';
import type { Envelope, GatewaySignature } from './codec.js';
import { PURPOSE_GATEWAY, PURPOSE_GATEWAY_BATCH, gatewayTranscript } from './transcript.js';

const GATEWAY_PURPOSES: BatchPurposes = { single: PURPOSE_GATEWAY, batch: PURPOSE_GATEWAY_BATCH };

function transcriptFor(envelope: Envelope, gateway: { did: string; keyId: Buffer }): Buffer {
  return gatewayTranscript({ ...envelope, sender: envelope.sender, gateway });
}

/** The gateway signature part naming `record`. */
function gatewaySignatureOf(
  record: PublicKeyRecord,
  signature: Signature,
  batch?: BatchPlace,
): GatewaySignature {
  return {
    gateway: record.did,
    keyId: record.keyId,
    suite: record.suite,
    signature,
    ...(batch !== undefined ? { batch } : {}),
  };
}

/** Returns a copy of `envelope` carrying the gateway signature of `gatewayKeys`. */
export function addGatewaySignature(envelope: Envelope, gatewayKeys: SecretKeySet): Envelope {
  const record = gatewayKeys.record;
  const signature = gatewayKeys.sign(transcriptFor(envelope, record), PURPOSE_GATEWAY);
  return { ...envelope, gatewaySignature: gatewaySignatureOf(record, signature) };
}

/**
 * The gateway signature of a busy gateway: envelopes that ask while a signature is being made
 * share the next one, as a batch (BatchSigner, docs/PROTOCOL.md §3.3 and §6.4). An envelope
 * alone in its batch gets the plain signature of `addGatewaySignature`, its ML-DSA-65 half made
 * on the thread pool.
 */
export class GatewaySigner {
  readonly #signer: BatchSigner;

  constructor(keys: SecretKeySet, maxBatch?: number) {
    this.#signer = new BatchSigner(keys, GATEWAY_PURPOSES, maxBatch);
  }

  /** `envelope` with this gateway's signature, alone or as part of a batch. */
  async sign(envelope: Envelope): Promise<Envelope> {
    return { ...envelope, gatewaySignature: await this.signature(envelope) };
  }

  /** This gateway's signature of `envelope`, alone or as part of a batch. */
  async signature(envelope: Envelope): Promise<GatewaySignature> {
    const record = this.#signer.record;
    const signed = await this.#signer.sign(transcriptFor(envelope, record));
    return gatewaySignatureOf(record, signed.signature, signed.batch);
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
  verifyBatchSignature(
    gatewayRecord,
    transcriptFor(envelope, gatewayRecord),
    GATEWAY_PURPOSES,
    g,
    'ERR_GATEWAY_SIGNATURE',
    options.batches,
  );
}
