/**
 * The AMP envelope's public surface: codec, seal/open, gateway signatures.
 */
export {
  decodeEnvelope,
  encodeEnvelope,
  encodeWithGatewaySignature,
  type Envelope,
  type GatewaySignature,
  type MessageBody,
  type RecipientRef,
  type Wrap,
} from './codec.js';
export {
  openEnvelope,
  sealEnvelope,
  sealMessage,
  type OpenOptions,
  type OpenedMessage,
  type SealEnvelopeInput,
  type SealMessageInput,
  type SealRandomness,
  type SealedEnvelope,
} from './envelope.js';
export {
  addGatewaySignature,
  verifyGatewaySignature,
  type VerifyGatewayOptions,
} from './gateway.js';
export { DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_TTL_MS, MAX_RECIPIENTS } from './limits.js';
