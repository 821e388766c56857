/**
 * AMP gateway-to-gateway transport over QUIC (UDP 4434, ALPN `amp/1`): the native quiche
 * endpoint driven from TypeScript, its typed errors and its TLS material helpers.
 */
export {
  certificateSpki,
  generateSelfSignedCertificate,
  spkiPin,
  type CertificateAndKey,
} from '../tls/certificate.js';
export * from './errors.js';
export * from './transport.js';
export * from './config.js';
