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
import { verifySignature, type Signature } from '../identity/signature.js';
import type { Envelope } from './codec.js';
import { PURPOSE_GATEWAY, gatewayTranscript } from './transcript.js';

function transcriptFor(envelope: Envelope, gateway: { did: string; keyId: Buffer }): Buffer {
  return gatewayTranscript({ ...envelope, sender: envelope.sender, gateway });
}

/** Returns a copy of `envelope` carrying the gateway signature of `gatewayKeys`. */
function withGatewaySignature(
  envelope: Envelope,
  record: PublicKeyRecord,
  signature: Signature,
): Envelope {
  return {
    ...envelope,
    gatewaySignature: { gateway: record.did, keyId: record.keyId, suite: record.suite, signature },
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

export interface VerifyGatewayOptions {
  /** Require the gateway DID's domain to be the sender DID's domain (default true). */
  requireSenderDomain?: boolean;
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
  verifySignature(
    gatewayRecord.suite,
    gatewayRecord.signingPublicKeys,
    transcriptFor(envelope, gatewayRecord),
    PURPOSE_GATEWAY,
    g.signature,
    'ERR_GATEWAY_SIGNATURE',
  );
}
