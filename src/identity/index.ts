/**
 * The identity domain's public surface: DIDs, suites, key records and files, secret key sets.
 * Other domains (amp, ledger, cli) import from here only.
 */
export {
  DID_PREFIX,
  addressToDid,
  checkDid,
  didToAddress,
  formatDid,
  parseDid,
  type Did,
} from './did.js';
export { SUITES, SUITE_IDS, isSuiteId, suiteSpec, type SuiteId, type SuiteSpec } from './suites.js';
export { verifySignature, type Signature, type SigningPublicKeys } from './signature.js';
export {
  KEY_ID_LENGTH,
  SecretKeySet,
  checkPublicRecord,
  computeKeyId,
  generateIdentity,
  type PublicKeyRecord,
} from './keys.js';
export {
  formatPublicRecord,
  parsePublicRecord,
  publicRecordFromJson,
  publicRecordToJson,
  readPublicRecordFile,
  writePublicRecordFile,
} from './record-file.js';
export {
  DEFAULT_SCRYPT,
  SCRYPT_BOUNDS,
  decodeKeyFile,
  encodeKeyFile,
  readKeyFile,
  writeKeyFile,
  type ScryptParams,
} from './keyfile.js';
