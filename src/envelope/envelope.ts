/**
 * Sealing and opening AMP envelopes (DESIGN.md §3, docs/PROTOCOL.md §6).
 *
 * Seal: one random 256-bit content key per envelope; the content (author record, signed
 * recipient list, checkpoint, body, author signature) is ChaCha20-Poly1305-encrypted under a key
 * and nonce derived from it with HKDF-SHA256; the content key is wrapped for every recipient key
 * with HPKE Base mode (RFC 9180 §5.1.1), `info` binding suite, message id, recipient DID, key id
 * and expiry. The author signature is inside the ciphertext. Bcc recipients each get their own
 * envelope (own content key, own message id) whose signed list is the visible recipients plus
 * that one Bcc recipient.
 *
 * Open: the checks of docs/PROTOCOL.md §6.6, in that order. Guarantees: openEnvelope returns only
 * if the author signature verifies against the embedded author record (both halves for
 * hybrid-v1), the opener is in the signed recipient list, the message has not expired and the
 * cleartext header equals its signed copy; every failure is a typed error with a code. Content
 * keys are zero-filled after use.
 */
import { AfterSmtpError, CryptoError, InputError } from '../errors.js';
import {
  aeadOpen,
  aeadSeal,
  hpkeSeal,
  hpkeSealAsync,
  randomBytes,
  type HpkeSealed,
} from '../native/index.js';
import { checkPublicRecord, type PublicKeyRecord, type SecretKeySet } from '../identity/keys.js';
import {
  BatchSigner,
  verifyBatchSignature,
  type BatchPlace,
  type BatchPurposes,
  type BatchSignature,
} from '../identity/batch-signature.js';
import type { Signature } from '../identity/signature.js';
import { checkDid } from '../identity/did.js';
import { SUITES, type SuiteId } from '../identity/suites.js';
import { workAlone } from '../workload.js';
import {
  decodeEnvelope,
  decodeSealedContent,
  encodeEnvelope,
  encodeSealedContent,
  type DecodeOptions,
  type Envelope,
  type MessageBody,
  type RecipientRef,
  type SealedContent,
  type Wrap,
} from './codec.js';
import {
  CONTENT_KEY_LENGTH,
  DEFAULT_TTL_MS,
  ENVELOPE_VERSION,
  MAX_CHECKPOINT_BYTES,
  MAX_CONTENT_TYPE_BYTES,
  MAX_RECIPIENTS,
  MAX_SUBJECT_BYTES,
  MESSAGE_ID_LENGTH,
} from './limits.js';
import {
  PURPOSE_AUTHOR,
  PURPOSE_AUTHOR_BATCH,
  WRAP_AAD,
  authorTranscript,
  bodyHash,
  contentAad,
  deriveContentKey,
  ephemeralContentKey,
  KEY_SHARE_LENGTH,
  wrapInfo,
} from './transcript.js';

/**
 * Fixed randomness, for test vectors and docs/PROTOCOL.md's worked example only. Production
 * callers never pass it: reusing a content key or message id across messages breaks the scheme.
 */
export interface SealRandomness {
  contentKey: Buffer;
  messageId: Buffer;
  /** HPKE ikmE (RFC 9180 §4: DeriveKeyPair input for the ephemeral key), one per wrap. */
  ikmE: Buffer[];
  /** ML-DSA-65 signing randomness (hybrid authors). */
  mlDsa?: Buffer;
}

export interface SealEnvelopeInput {
  author: SecretKeySet;
  /** The signed recipient list, in order. */
  signedRecipients: readonly PublicKeyRecord[];
  /** Which of the signed recipients get a wrap in this envelope (default: all). */
  wrapFor?: readonly PublicKeyRecord[];
  body: MessageBody;
  createdAt?: number;
  expiresAt?: number;
  /** Ledger checkpoint reference the recipient keys were read from; empty if none. */
  checkpoint?: Uint8Array;
  /**
   * The message id, when several envelopes are copies of one message (the gateway's copies of
   * one SMTP message, one per recipient DID); default: a fresh random one. Never reuse an id
   * for another message.
   */
  messageId?: Buffer;
  randomness?: SealRandomness;
  maxBytes?: number;
  /**
   * An ephemeral message (docs/PROTOCOL.md §6.10): the content is sealed under a key derived from
   * the wrapped key and `share`, which `holder` (the sender's gateway DID) keeps until expiry.
   */
  ephemeral?: { holder: string; share: Uint8Array };
}

function input(message: string, code = 'ERR_ENVELOPE_INPUT'): never {
  throw new InputError(code, `seal: ${message}`);
}

function ref(r: PublicKeyRecord): RecipientRef {
  return { did: r.did, keyId: r.keyId };
}

function checkBody(body: MessageBody): void {
  if (
    typeof body.subject !== 'string' ||
    Buffer.from(body.subject, 'utf8').toString('utf8') !== body.subject
  ) {
    input('subject must be a well-formed string');
  }
  if (Buffer.byteLength(body.subject) > MAX_SUBJECT_BYTES)
    input(`subject is longer than ${MAX_SUBJECT_BYTES} bytes`);
  if (
    !/^[\x21-\x7e][\x20-\x7e]*$/.test(body.contentType) ||
    body.contentType.length > MAX_CONTENT_TYPE_BYTES
  ) {
    input('contentType must be 1..255 printable ASCII characters');
  }
  if (!(body.content instanceof Uint8Array)) input('content must be bytes');
}

function checkRecipients(list: readonly PublicKeyRecord[]): SuiteId {
  if (list.length === 0) input('at least one recipient is required');
  if (list.length > MAX_RECIPIENTS) input(`more than ${MAX_RECIPIENTS} recipients`);
  const seen = new Set<string>();
  let suite: SuiteId | undefined;
  for (const r of list) {
    checkPublicRecord(r, 'ERR_ENVELOPE_INPUT');
    const k = `${r.did}\u0000${r.keyId.toString('hex')}`;
    if (seen.has(k)) input(`recipient ${r.did} is listed twice with the same key`);
    seen.add(k);
    if (suite !== undefined && r.suite !== suite) {
      input(
        `recipients mix suites (${suite}, ${r.suite}); seal one envelope per suite`,
        'ERR_ENVELOPE_SUITE',
      );
    }
    suite = r.suite;
  }
  return suite as SuiteId;
}

/**
 * An envelope checked and laid out up to its author's signature, which `finish` seals in. The
 * content key is drawn here, so its wraps (one HPKE seal per recipient key, which need neither
 * the signature nor the content) can be made before or beside the signing: `wrapKeys` here,
 * `wrapKeysAsync` on the thread pool. `finish` wipes the content key; `discard` does when
 * `finish` will not run.
 */
interface SealDraft {
  readonly transcript: Buffer;
  readonly messageId: Buffer;
  readonly mlDsaRandomness: Buffer | undefined;
  wrapKeys(): HpkeSealed[];
  wrapKeysAsync(): Promise<HpkeSealed[]>;
  finish(signature: Signature, wrapped: readonly HpkeSealed[], batch?: BatchPlace): Envelope;
  discard(): void;
}

function draftEnvelope(inp: SealEnvelopeInput): SealDraft {
  const suite = checkRecipients(inp.signedRecipients);
  const wrapFor = inp.wrapFor ?? inp.signedRecipients;
  for (const w of wrapFor) {
    if (!inp.signedRecipients.some((r) => r.did === w.did && r.keyId.equals(w.keyId))) {
      input(`wrap target ${w.did} is not in the signed recipient list`);
    }
  }
  checkBody(inp.body);
  const createdAt = inp.createdAt ?? Date.now();
  const expiresAt = inp.expiresAt ?? createdAt + DEFAULT_TTL_MS;
  if (!Number.isSafeInteger(createdAt) || createdAt < 0)
    input('createdAt must be a non-negative integer');
  if (!Number.isSafeInteger(expiresAt) || expiresAt <= createdAt)
    input('expiresAt must be later than createdAt');
  const checkpoint = Buffer.from(inp.checkpoint ?? new Uint8Array(0));
  if (checkpoint.length > MAX_CHECKPOINT_BYTES)
    input(`checkpoint is longer than ${MAX_CHECKPOINT_BYTES} bytes`);

  const rnd = inp.randomness;
  if (
    rnd &&
    (rnd.contentKey.length !== CONTENT_KEY_LENGTH ||
      rnd.messageId.length !== MESSAGE_ID_LENGTH ||
      rnd.ikmE.length !== wrapFor.length)
  ) {
    input('injected randomness has the wrong shape');
  }
  if (inp.messageId !== undefined && inp.messageId.length !== MESSAGE_ID_LENGTH) {
    input(`messageId must be ${MESSAGE_ID_LENGTH} bytes`);
  }
  const messageId = rnd
    ? Buffer.from(rnd.messageId)
    : inp.messageId !== undefined
      ? Buffer.from(inp.messageId)
      : randomBytes(MESSAGE_ID_LENGTH);
  const author = inp.author.record;
  const recipients = inp.signedRecipients.map(ref);
  const body: MessageBody = { ...inp.body, content: Buffer.from(inp.body.content) };

  const transcript = authorTranscript({
    suite,
    messageId,
    sender: ref(author),
    recipients,
    createdAt,
    expiresAt,
    bodyHash: bodyHash(body),
    checkpoint,
  });
  const eph = inp.ephemeral;
  if (eph !== undefined) {
    checkDid(eph.holder);
    if (!(eph.share instanceof Uint8Array) || eph.share.length !== KEY_SHARE_LENGTH)
      input(`the ephemeral key share must be ${KEY_SHARE_LENGTH} bytes`);
  }
  const contentKey = rnd ? Buffer.from(rnd.contentKey) : randomBytes(CONTENT_KEY_LENGTH);
  const kem = SUITES[suite].kem;
  const wrapArgs = wrapFor.map((r, i) => ({
    publicKey: r.kemPublicKey,
    info: wrapInfo(suite, messageId, ref(r), expiresAt),
    ikmE: rnd?.ikmE[i],
  }));
  return {
    transcript,
    messageId,
    mlDsaRandomness: rnd?.mlDsa,
    wrapKeys: () =>
      wrapArgs.map((w) => hpkeSeal(kem, w.publicKey, w.info, WRAP_AAD, contentKey, w.ikmE)),
    wrapKeysAsync: () =>
      Promise.all(
        wrapArgs.map((w) => hpkeSealAsync(kem, w.publicKey, w.info, WRAP_AAD, contentKey, w.ikmE)),
      ),
    discard: () => contentKey.fill(0),
    finish(signature: Signature, wrapped: readonly HpkeSealed[], batch?: BatchPlace): Envelope {
      const sealed: SealedContent = {
        author,
        recipients,
        checkpoint,
        body,
        signature,
        ...(batch !== undefined ? { signatureBatch: batch } : {}),
        suite,
        messageId,
        createdAt,
        expiresAt,
      };
      const sealingKey =
        eph === undefined
          ? contentKey
          : ephemeralContentKey(contentKey, eph.share, suite, messageId, eph.holder, expiresAt);
      const { key, nonce } = deriveContentKey(sealingKey, suite, messageId);
      if (sealingKey !== contentKey) sealingKey.fill(0);
      try {
        const ciphertext = aeadSeal(
          'chacha20-poly1305',
          key,
          nonce,
          contentAad(suite, messageId),
          encodeSealedContent(sealed),
        );
        const wraps: Wrap[] = wrapFor.map((r, i) => {
          const w = wrapped[i] as HpkeSealed;
          return { recipient: r.did, keyId: r.keyId, enc: w.enc, wrappedKey: w.ciphertext };
        });
        const envelope: Envelope = {
          version: ENVELOPE_VERSION,
          suite,
          messageId,
          sender: author.did,
          createdAt,
          expiresAt,
          wraps,
          ciphertext,
          ...(eph !== undefined ? { ephemeral: { holder: eph.holder } } : {}),
        };
        encodeEnvelope(envelope, { maxBytes: inp.maxBytes }); // size and shape check
        return envelope;
      } finally {
        contentKey.fill(0);
        key.fill(0);
      }
    },
  };
}

/**
 * Seals one envelope: one content key, wraps for `wrapFor` (default: every signed recipient).
 * Lower-level than sealMessage; exported for relays and tests.
 */
export function sealEnvelope(inp: SealEnvelopeInput): Envelope {
  const d = draftEnvelope(inp);
  try {
    const wrapped = d.wrapKeys();
    return d.finish(inp.author.sign(d.transcript, PURPOSE_AUTHOR, d.mlDsaRandomness), wrapped);
  } finally {
    d.discard();
  }
}

/** The author signature's purposes: alone, and as a batch (docs/PROTOCOL.md §3.3, §6.1). */
const AUTHOR_PURPOSES: BatchPurposes = { single: PURPOSE_AUTHOR, batch: PURPOSE_AUTHOR_BATCH };

/**
 * The author signature of an author that seals many envelopes at once (the gateway, authoring
 * legacy mail for its recipients): envelopes whose signatures are asked for while one is being
 * made share the next one, as a batch (BatchSigner, docs/PROTOCOL.md §3.3 and §6.1). An
 * envelope alone in its batch gets the plain author signature, and so do the copies of one
 * message (one message id) but the first in a batch: their author transcripts differ only in
 * the recipient, so one's recipient could test from its path whether someone else got a copy.
 */
export class AuthorSigner {
  readonly #signer: BatchSigner;

  constructor(keys: SecretKeySet, maxBatch?: number) {
    this.#signer = new BatchSigner(keys, AUTHOR_PURPOSES, maxBatch);
  }

  get record(): PublicKeyRecord {
    return this.#signer.record;
  }

  /** Signs the author transcript of the message `messageId`. */
  sign(transcript: Buffer, messageId: Buffer): Promise<BatchSignature> {
    return this.#signer.sign(transcript, messageId.toString('hex'));
  }
}

/**
 * `sealEnvelope` with its heavy cryptography on the thread pool, beside the event loop: the
 * key wraps (HPKE) and the author's signature (SecretKeySet.signAsync), made side by side. For a
 * message alone in the process (src/workload.ts) the wraps are made here, beside the signature.
 * With `authorSigner` (whose key must be the author's) the signature may be a batch's.
 */
export async function sealEnvelopeAsync(
  inp: SealEnvelopeInput,
  authorSigner?: AuthorSigner,
): Promise<Envelope> {
  if (authorSigner !== undefined) {
    const a = inp.author.record;
    if (authorSigner.record.did !== a.did || !authorSigner.record.keyId.equals(a.keyId))
      input('the author signer holds another key than the author');
    if (inp.randomness?.mlDsa !== undefined)
      input('fixed ML-DSA-65 randomness needs the author to sign alone');
  }
  const d = draftEnvelope(inp);
  try {
    const signature: Promise<BatchSignature> =
      authorSigner !== undefined
        ? authorSigner.sign(d.transcript, d.messageId)
        : inp.author
            .signAsync(d.transcript, PURPOSE_AUTHOR, d.mlDsaRandomness)
            .then((sig) => ({ signature: sig }));
    const wrapped = workAlone() ? Promise.resolve().then(() => d.wrapKeys()) : d.wrapKeysAsync();
    const [signed, keys] = await Promise.all([signature, wrapped]);
    return d.finish(signed.signature, keys, signed.batch);
  } finally {
    d.discard();
  }
}

export interface SealMessageInput {
  author: SecretKeySet;
  to: readonly PublicKeyRecord[];
  cc?: readonly PublicKeyRecord[];
  bcc?: readonly PublicKeyRecord[];
  body: MessageBody;
  createdAt?: number;
  expiresAt?: number;
  checkpoint?: Uint8Array;
  maxBytes?: number;
  /** Ephemeral (§6.10): each envelope gets its own random share, held by `holder`. */
  ephemeral?: { holder: string };
}

export interface SealedEnvelope {
  envelope: Envelope;
  /** Set on a Bcc copy: the one Bcc recipient it is for. */
  bcc?: PublicKeyRecord;
  /** Ephemeral: this envelope's key share, for the holder (DispatchMessage `key_share`). */
  share?: Buffer;
}

/**
 * Seals a message: one envelope for the visible (to + cc) recipients, plus one envelope per
 * Bcc recipient whose signed list is the visible recipients followed by that Bcc recipient and
 * which carries a wrap for that Bcc recipient only. All recipients must share one suite.
 */
export function sealMessage(inp: SealMessageInput): SealedEnvelope[] {
  const visible = [...inp.to, ...(inp.cc ?? [])];
  const bcc = inp.bcc ?? [];
  checkRecipients([...visible, ...bcc]);
  const common = {
    author: inp.author,
    body: inp.body,
    createdAt: inp.createdAt ?? Date.now(),
    expiresAt: inp.expiresAt,
    checkpoint: inp.checkpoint,
    maxBytes: inp.maxBytes,
  };
  const out: SealedEnvelope[] = [];
  const seal = (
    extra: Pick<SealEnvelopeInput, 'signedRecipients' | 'wrapFor'>,
  ): Pick<SealedEnvelope, 'envelope' | 'share'> => {
    if (inp.ephemeral === undefined) return { envelope: sealEnvelope({ ...common, ...extra }) };
    const share = randomBytes(KEY_SHARE_LENGTH);
    const ephemeral = { holder: inp.ephemeral.holder, share };
    return { envelope: sealEnvelope({ ...common, ...extra, ephemeral }), share };
  };
  if (visible.length > 0) out.push(seal({ signedRecipients: visible }));
  for (const b of bcc) {
    out.push({ ...seal({ signedRecipients: [...visible, b], wrapFor: [b] }), bcc: b });
  }
  return out;
}

export interface OpenOptions extends DecodeOptions {
  /**
   * Current time in ms since the epoch (default Date.now()). Callers judging expiry pass a
   * trusted time (src/envelope/time.ts), not the local clock alone.
   */
  now?: number;
  /** The key share of an ephemeral envelope (§6.10), released by its holder before expiry. */
  share?: Uint8Array;
}

export interface OpenedMessage {
  suite: SuiteId;
  messageId: Buffer;
  sender: { did: string; keyId: Buffer; record: PublicKeyRecord };
  /** The signed recipient list, in the author's order. */
  recipients: RecipientRef[];
  createdAt: number;
  expiresAt: number;
  checkpoint: Buffer;
  subject: string;
  contentType: string;
  content: Buffer;
  /** Whether a gateway signature was attached (not verified here: see verifyGatewaySignature). */
  gatewaySignature: { did: string; keyId: Buffer } | null;
}

function crypto(code: string, message: string, cause?: unknown): never {
  throw new CryptoError(code, `open: ${message}`, cause === undefined ? undefined : { cause });
}

/** Opens an envelope (bytes or decoded) with a recipient's secret keys. */
export function openEnvelope(
  envelope: Envelope | Uint8Array,
  keys: SecretKeySet,
  options: OpenOptions = {},
): OpenedMessage {
  const env = envelope instanceof Uint8Array ? decodeEnvelope(envelope, options) : envelope;
  const now = options.now ?? Date.now();
  const me = keys.record;
  // (docs/PROTOCOL.md §6.6; step 1, decoding, is above)
  // 2. expiry (cheap; step 9 ties the header value to its signed copy)
  if (now >= env.expiresAt) {
    throw new InputError(
      'ERR_ENVELOPE_EXPIRED',
      `open: the message expired at ${new Date(env.expiresAt).toISOString()}`,
    );
  }
  // 3. suite of this envelope must be the suite of the opener's key
  if (env.suite !== me.suite) {
    throw new InputError(
      'ERR_ENVELOPE_SUITE',
      `open: envelope suite ${env.suite} does not match key suite ${me.suite}`,
    );
  }
  // 4. the wrap for this DID + key id
  const wrap = env.wraps.find((w) => w.recipient === me.did && w.keyId.equals(me.keyId));
  if (!wrap)
    throw new InputError(
      'ERR_ENVELOPE_NO_WRAP',
      `open: no wrap for ${me.did} key ${me.keyId.toString('hex')}`,
    );
  // 5. HPKE open of the content key
  let contentKey: Buffer;
  try {
    contentKey = keys.hpkeOpen(
      wrap.enc,
      wrapInfo(env.suite, env.messageId, me, env.expiresAt),
      WRAP_AAD,
      wrap.wrappedKey,
    );
  } catch (err) {
    if (err instanceof AfterSmtpError) throw err;
    crypto('ERR_ENVELOPE_WRAP', 'the content key wrap does not open with this key', err);
  }
  // 5b. an ephemeral envelope's content key also needs the holder's share (§6.10)
  if (env.ephemeral !== undefined) {
    const share = options.share;
    if (share === undefined) {
      contentKey.fill(0);
      throw new InputError(
        'ERR_ENVELOPE_SHARE_MISSING',
        `open: the message is ephemeral; its key share is held by ${env.ephemeral.holder}`,
      );
    }
    if (share.length !== KEY_SHARE_LENGTH || contentKey.length !== CONTENT_KEY_LENGTH) {
      contentKey.fill(0);
      crypto('ERR_ENVELOPE_WRAP', 'the key share or the unwrapped key has the wrong length');
    }
    const wrapped = contentKey;
    contentKey = ephemeralContentKey(
      wrapped,
      share,
      env.suite,
      env.messageId,
      env.ephemeral.holder,
      env.expiresAt,
    );
    wrapped.fill(0);
  }
  // 6. content AEAD
  let plaintext: Buffer;
  const { key, nonce } = deriveContentKey(contentKey, env.suite, env.messageId);
  try {
    if (contentKey.length !== CONTENT_KEY_LENGTH)
      crypto('ERR_ENVELOPE_WRAP', 'the unwrapped content key has the wrong length');
    plaintext = aeadOpen(
      'chacha20-poly1305',
      key,
      nonce,
      contentAad(env.suite, env.messageId),
      env.ciphertext,
    );
  } catch (err) {
    if (err instanceof AfterSmtpError) throw err;
    crypto('ERR_ENVELOPE_CONTENT', 'the content ciphertext does not authenticate', err);
  } finally {
    contentKey.fill(0);
    key.fill(0);
  }
  // 7. decode the sealed content (validates the embedded author record and its key id)
  const sealed = decodeSealedContent(plaintext);
  // 8. author signature over the transcript rebuilt from the signed fields
  const transcript = authorTranscript({
    suite: sealed.suite,
    messageId: sealed.messageId,
    sender: sealed.author,
    recipients: sealed.recipients,
    createdAt: sealed.createdAt,
    expiresAt: sealed.expiresAt,
    bodyHash: bodyHash(sealed.body),
    checkpoint: sealed.checkpoint,
  });
  verifyBatchSignature(
    sealed.author,
    transcript,
    AUTHOR_PURPOSES,
    {
      signature: sealed.signature,
      ...(sealed.signatureBatch !== undefined ? { batch: sealed.signatureBatch } : {}),
    },
    'ERR_ENVELOPE_SIGNATURE',
  );
  // 9. the cleartext header must equal its signed copy
  const mismatch =
    env.suite !== sealed.suite
      ? 'suite'
      : !env.messageId.equals(sealed.messageId)
        ? 'message id'
        : env.sender !== sealed.author.did
          ? 'sender'
          : env.createdAt !== sealed.createdAt
            ? 'created-at'
            : env.expiresAt !== sealed.expiresAt
              ? 'expires-at'
              : null;
  if (mismatch)
    crypto('ERR_ENVELOPE_HEADER', `the cleartext ${mismatch} differs from the signed one`);
  // 10. the opener must be in the signed recipient list (defeats surreptitious forwarding)
  if (!sealed.recipients.some((r) => r.did === me.did && r.keyId.equals(me.keyId))) {
    crypto(
      'ERR_ENVELOPE_NOT_A_RECIPIENT',
      `${me.did} is not in the author's signed recipient list (forwarded?)`,
    );
  }
  // 11. every wrap must name a signed recipient: wrap labels are routing fields, and no routing
  //     field may go unauthenticated (another recipient's enc/wrapped key is theirs to check)
  for (const w of env.wraps) {
    if (!sealed.recipients.some((r) => r.did === w.recipient && r.keyId.equals(w.keyId))) {
      crypto(
        'ERR_ENVELOPE_HEADER',
        `the envelope has a wrap for ${w.recipient}, who is not a signed recipient`,
      );
    }
  }
  const g = env.gatewaySignature;
  return {
    suite: sealed.suite,
    messageId: sealed.messageId,
    sender: { did: sealed.author.did, keyId: sealed.author.keyId, record: sealed.author },
    recipients: [...sealed.recipients],
    createdAt: sealed.createdAt,
    expiresAt: sealed.expiresAt,
    checkpoint: sealed.checkpoint,
    subject: sealed.body.subject,
    contentType: sealed.body.contentType,
    content: sealed.body.content,
    gatewaySignature: g ? { did: g.gateway, keyId: g.keyId } : null,
  };
}
