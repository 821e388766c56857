/**
 * Size limits of the AMP envelope (docs/PROTOCOL.md §6.5). Every decoder checks these before or
 * right after decoding, so a hostile envelope cannot make a receiver allocate or loop beyond them.
 */
export const ENVELOPE_VERSION = 1;
/** Default cap on an encoded envelope; callers (relay, CLI) may lower or raise it. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 32 * 1024 * 1024;
/** Cap on wraps per envelope and on the signed recipient list. */
export const MAX_RECIPIENTS = 1000;
export const MESSAGE_ID_LENGTH = 16;
export const CONTENT_KEY_LENGTH = 32;
/** HPKE ciphertext of a 32-byte content key: 32 + 16-byte tag. */
export const WRAPPED_KEY_LENGTH = CONTENT_KEY_LENGTH + 16;
export const AEAD_TAG_LENGTH = 16;
/** Subject: UTF-8 octets. */
export const MAX_SUBJECT_BYTES = 4096;
export const MAX_CONTENT_TYPE_BYTES = 255;
export const MAX_CHECKPOINT_BYTES = 4096;
/** Default lifetime of a message when the sealer gives no expiry: 30 days. */
export const DEFAULT_TTL_MS = 30 * 24 * 60 * 60 * 1000;
