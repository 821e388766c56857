/**
 * The client API's messages as TypeScript types (the shapes @grpc/proto-loader produces with the
 * options in definition.ts: keepCase, bytes as Buffer, uint64 as number, defaults, oneofs) and
 * their conversion to and from the ledger's domain types.
 *
 * Guarantees: every conversion from the wire checks types and bounds before anything reaches
 * the ledger and throws InputError(ERR_CLIENT_API_REQUEST) naming the field; uint64 values must
 * be safe integers. Deep checks (key lengths, key ids, signatures) stay in the ledger.
 */
import { InputError } from '../../errors.js';
import { isSuiteId, type PublicKeyRecord, type Signature } from '../../identity/index.js';
import type {
  AppendResult,
  Extension,
  LookupAnswer,
  ProofBundle,
  RegisterRequest,
  RevokeRequest,
  RotateRequest,
} from '../../ledger/index.js';
import type { DeliveryReceipt } from '../../envelope/receipt.js';
import { decodeBatchPlace } from '../../identity/batch-signature.js';
import {
  MAX_TIME_CHECKPOINT_BYTES,
  TIME_NONCE_LENGTH,
  type TimeStatement,
} from '../../envelope/time.js';
import { MAILBOX_FOLDERS, type MailboxFolder } from '../../store/types.js';

export interface SignatureMsg {
  ed25519: Buffer;
  ml_dsa_65: Buffer;
}
export interface KeyRecordMsg {
  did: string;
  suite: string;
  key_id: Buffer;
  kem_public_key: Buffer;
  ed25519_public_key: Buffer;
  ml_dsa_65_public_key: Buffer;
  created_at: number;
}
export interface ExtensionMsg {
  name: string;
  value: Buffer;
}
export interface GetRegistrationChallengeRequestMsg {
  domain: string;
}
export interface RegistrationChallengeMsg {
  challenge: Buffer;
  expires_at: number;
  bits: number;
}
export interface RegisterIdentityRequestMsg {
  record: KeyRecordMsg | null;
  extensions: ExtensionMsg[];
  proof_of_possession: SignatureMsg | null;
  stamp?: Buffer;
  approval?: string;
  authorisation?: 'stamp' | 'approval';
  known_tree_size?: number;
}
export interface RotateIdentityRequestMsg {
  did: string;
  prev_leaf: number;
  prev_key_id: Buffer;
  record: KeyRecordMsg | null;
  extensions: ExtensionMsg[];
  previous_key_signature: SignatureMsg | null;
  proof_of_possession: SignatureMsg | null;
  known_tree_size?: number;
}
export interface RevokeIdentityRequestMsg {
  did: string;
  prev_leaf: number;
  key_id: Buffer;
  reason: string;
  signature: SignatureMsg | null;
  known_tree_size?: number;
}
export interface InclusionBundleMsg {
  leaf_index: number;
  entry: Buffer;
  tree_size: number;
  inclusion_proof: Buffer[];
  checkpoint: string;
}
export interface ConsistencyProofMsg {
  from_size: number;
  to_size: number;
  proof: Buffer[];
}
export interface LedgerWriteResponseMsg {
  inclusion: InclusionBundleMsg | null;
  consistency: ConsistencyProofMsg | null;
}
export interface ResolveIdentityRequestMsg {
  did: string;
  known_tree_size?: number;
}
export interface ResolveIdentityResponseMsg {
  did: string;
  inclusion: InclusionBundleMsg | null;
  consistency: ConsistencyProofMsg | null;
  attested?: AttestedCheckpointMsg[];
}
export interface SubstrateAnchorMsg {
  genesis_hash: Buffer;
  block_hash: Buffer;
  block_number: number;
  extrinsic_index: number;
  event_index: number;
  account: string;
  block_time_ms: number;
  commitment: Buffer;
}
export interface AttestedCheckpointMsg {
  checkpoint: string;
  tree_size: number;
  anchor: SubstrateAnchorMsg | null;
  consistency: ConsistencyProofMsg | null;
}
export interface GetCheckpointRequestMsg {
  known_tree_size?: number;
}
export interface GetCheckpointResponseMsg {
  checkpoint: string;
  tree_size: number;
  verifier_key: string;
  consistency: ConsistencyProofMsg | null;
  attested?: AttestedCheckpointMsg[];
}

function bad(field: string, why: string): InputError {
  return new InputError('ERR_CLIENT_API_REQUEST', `${field}: ${why}`);
}

function present<T>(v: T | null | undefined, field: string): T {
  if (v === null || v === undefined) throw bad(field, 'is required');
  return v;
}

function uint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(field, 'must be an integer below 2^53');
  }
  return v;
}

function bytes(v: unknown, field: string, max: number): Buffer {
  if (!Buffer.isBuffer(v)) throw bad(field, 'must be bytes');
  if (v.length > max) throw bad(field, `longer than ${max} bytes`);
  return v;
}

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (Buffer.byteLength(v) > max) throw bad(field, `longer than ${max} bytes`);
  return v;
}

export function signatureFromMsg(m: SignatureMsg | null, field: string): Signature {
  const s = present(m, field);
  const ed25519 = bytes(s.ed25519, `${field}.ed25519`, 64);
  const ml = bytes(s.ml_dsa_65, `${field}.ml_dsa_65`, 4096);
  return ml.length === 0 ? { ed25519 } : { ed25519, mldsa65: ml };
}

export function signatureToMsg(s: Signature): SignatureMsg {
  return { ed25519: s.ed25519, ml_dsa_65: s.mldsa65 ?? Buffer.alloc(0) };
}

export function recordFromMsg(m: KeyRecordMsg | null, field = 'record'): PublicKeyRecord {
  const r = present(m, field);
  const suite = text(r.suite, `${field}.suite`, 32);
  if (!isSuiteId(suite)) throw bad(`${field}.suite`, 'unknown suite');
  const ml = bytes(r.ml_dsa_65_public_key, `${field}.ml_dsa_65_public_key`, 4096);
  return {
    did: text(r.did, `${field}.did`, 512),
    suite,
    keyId: bytes(r.key_id, `${field}.key_id`, 64),
    kemPublicKey: bytes(r.kem_public_key, `${field}.kem_public_key`, 4096),
    signingPublicKeys:
      ml.length === 0
        ? { ed25519: bytes(r.ed25519_public_key, `${field}.ed25519_public_key`, 64) }
        : { ed25519: bytes(r.ed25519_public_key, `${field}.ed25519_public_key`, 64), mldsa65: ml },
    createdAt: uint(r.created_at, `${field}.created_at`),
  };
}

export function recordToMsg(r: PublicKeyRecord): KeyRecordMsg {
  return {
    did: r.did,
    suite: r.suite,
    key_id: r.keyId,
    kem_public_key: r.kemPublicKey,
    ed25519_public_key: r.signingPublicKeys.ed25519,
    ml_dsa_65_public_key: r.signingPublicKeys.mldsa65 ?? Buffer.alloc(0),
    created_at: r.createdAt,
  };
}

function extensionsFromMsg(list: ExtensionMsg[] | undefined, field: string): Extension[] {
  const l = list ?? [];
  if (l.length > 8) throw bad(field, 'more than 8 extensions');
  return l.map((e, i) => ({
    name: text(e.name, `${field}[${i}].name`, 64),
    value: bytes(e.value, `${field}[${i}].value`, 4096),
  }));
}

export function extensionsToMsg(exts: readonly Extension[]): ExtensionMsg[] {
  return exts.map((e) => ({ name: e.name, value: e.value }));
}

export function registerFromMsg(m: RegisterIdentityRequestMsg): RegisterRequest {
  const base = {
    record: recordFromMsg(m.record),
    extensions: extensionsFromMsg(m.extensions, 'extensions'),
    proofOfPossession: signatureFromMsg(m.proof_of_possession, 'proof_of_possession'),
  };
  if (m.authorisation === 'stamp') return { ...base, stamp: bytes(m.stamp, 'stamp', 1024) };
  if (m.authorisation === 'approval') {
    return { ...base, approval: text(m.approval, 'approval', 128) };
  }
  return base;
}

export function rotateFromMsg(m: RotateIdentityRequestMsg): RotateRequest {
  return {
    did: text(m.did, 'did', 512),
    prevLeaf: uint(m.prev_leaf, 'prev_leaf'),
    prevKeyId: bytes(m.prev_key_id, 'prev_key_id', 64),
    record: recordFromMsg(m.record),
    extensions: extensionsFromMsg(m.extensions, 'extensions'),
    previousKeySignature: signatureFromMsg(m.previous_key_signature, 'previous_key_signature'),
    proofOfPossession: signatureFromMsg(m.proof_of_possession, 'proof_of_possession'),
  };
}

export function revokeFromMsg(m: RevokeIdentityRequestMsg): RevokeRequest {
  return {
    did: text(m.did, 'did', 512),
    prevLeaf: uint(m.prev_leaf, 'prev_leaf'),
    keyId: bytes(m.key_id, 'key_id', 64),
    reason: text(m.reason, 'reason', 512),
    signature: signatureFromMsg(m.signature, 'signature'),
  };
}

export function knownSizeFromMsg(v: number | undefined): number | undefined {
  return v === undefined || v === null ? undefined : uint(v, 'known_tree_size');
}

export function bundleToMsg(r: AppendResult | LookupAnswer): InclusionBundleMsg {
  return {
    leaf_index: r.leafIndex,
    entry: r.entry,
    tree_size: r.treeSize,
    inclusion_proof: r.inclusionProof,
    checkpoint: r.checkpoint,
  };
}

/** Client side: an answer's proof bundle, checked for shape (verifyAnswer checks the rest). */
export function bundleFromMsg(
  inc: InclusionBundleMsg | null,
  consistency: ConsistencyProofMsg | null,
): ProofBundle {
  const b = present(inc, 'inclusion');
  const proof = (b.inclusion_proof ?? []).map((h, i) => bytes(h, `inclusion_proof[${i}]`, 32));
  const bundle = {
    leafIndex: uint(b.leaf_index, 'leaf_index'),
    entry: bytes(b.entry, 'entry', 32 * 1024),
    treeSize: uint(b.tree_size, 'tree_size'),
    inclusionProof: proof,
    checkpoint: text(b.checkpoint, 'checkpoint', 16 * 1024),
  };
  if (consistency === null || consistency === undefined) return bundle;
  return {
    ...bundle,
    consistency: {
      fromSize: uint(consistency.from_size, 'consistency.from_size'),
      proof: (consistency.proof ?? []).map((h, i) => bytes(h, `consistency.proof[${i}]`, 32)),
    },
  };
}

// ---- Messaging (PROTOCOL.md §12) ----

export interface RequestChallengeRequestMsg {
  did: string;
}
export interface LoginChallengeMsg {
  challenge: Buffer;
  gateway: string;
  gateway_key_id: Buffer;
  expires_at: number;
}
export interface AuthenticateRequestMsg {
  did: string;
  challenge: Buffer;
  signature: SignatureMsg | null;
}
export interface AuthenticateResponseMsg {
  token: string;
  expires_at: number;
}
export interface DispatchMessageRequestMsg {
  envelope: Buffer;
  /** 32 bytes for an ephemeral envelope (PROTOCOL.md §6.10); absent or empty otherwise. */
  key_share?: Buffer;
}
export interface DispatchMessageResponseMsg {
  message_id: string;
  queue_entry_id: string;
  recipients: string[];
}
/** One answer of DispatchStream: exactly one of the two is set (the other is null). */
export interface DispatchStreamResponseMsg {
  accepted: DispatchMessageResponseMsg | null;
  refused: DispatchRefusalMsg | null;
}
export interface DispatchRefusalMsg {
  status: number;
  code: string;
  message: string;
  retry_after_ms: number;
}
export interface FetchInboxRequestMsg {
  after: number;
  limit: number;
  follow: boolean;
  /** '' (every folder), 'inbox' or 'junk'. */
  folder: string;
}
export interface DeliveryReceiptMsg {
  gateway: string;
  gateway_key_id: Buffer;
  message_id: Buffer;
  ciphertext_hash: Buffer;
  recipient: string;
  sender: string;
  delivered_at: number;
  signature: SignatureMsg | null;
  batch?: SignatureBatchMsg | null;
}
export interface SignatureBatchMsg {
  index: number;
  size: number;
  path: Buffer[];
}
export interface InboxItemMsg {
  seq: number;
  message_id: string;
  sender: string;
  received_at: number;
  expires_at: number;
  ciphertext_hash: Buffer;
  envelope: Buffer;
  receipt: DeliveryReceiptMsg | null;
  /** 'inbox' or 'junk'. */
  folder: string;
}
export interface AckRequestMsg {
  message_ids: string[];
}
export interface AckResponseMsg {
  deleted: number;
}
export interface GetReceiptRequestMsg {
  message_id: string;
  recipient: string;
}
export interface GetReceiptResponseMsg {
  receipt: DeliveryReceiptMsg | null;
}
export interface GetTimeRequestMsg {
  nonce: Buffer;
}
export interface TimeStatementMsg {
  gateway: string;
  gateway_key_id: Buffer;
  time: number;
  nonce: Buffer;
  checkpoint: string;
  signature: SignatureMsg | null;
}
export interface ReleaseKeyRequestMsg {
  message_id: string;
  nonce: Buffer;
}
export interface ReleaseKeyResponseMsg {
  share: Buffer;
  time: TimeStatementMsg | null;
}

export function authenticateFromMsg(m: AuthenticateRequestMsg): {
  did: string;
  challenge: Buffer;
  signature: Signature;
} {
  return {
    did: text(m.did, 'did', 512),
    challenge: bytes(m.challenge, 'challenge', 64),
    signature: signatureFromMsg(m.signature, 'signature'),
  };
}

export function fetchInboxFromMsg(m: FetchInboxRequestMsg): {
  after: number;
  limit: number;
  follow: boolean;
  folder?: MailboxFolder;
} {
  const folder = m.folder ?? '';
  if (folder !== '' && !(MAILBOX_FOLDERS as readonly string[]).includes(folder)) {
    throw bad('folder', `must be "", ${MAILBOX_FOLDERS.map((f) => `"${f}"`).join(' or ')}`);
  }
  return {
    after: uint(m.after ?? 0, 'after'),
    limit: uint(m.limit ?? 0, 'limit'),
    follow: m.follow === true,
    ...(folder !== '' ? { folder: folder as MailboxFolder } : {}),
  };
}

const MESSAGE_ID = /^[\x21-\x7e]{1,128}$/;

export function messageIdFromMsg(v: unknown, field: string): string {
  const s = text(v, field, 128);
  if (!MESSAGE_ID.test(s)) throw bad(field, 'must be 1..128 printable ASCII characters');
  return s;
}

export function ackFromMsg(m: AckRequestMsg, max: number): string[] {
  const ids = m.message_ids ?? [];
  if (!Array.isArray(ids) || ids.length === 0) throw bad('message_ids', 'at least one is required');
  if (ids.length > max) throw bad('message_ids', `more than ${max}`);
  return ids.map((id, i) => messageIdFromMsg(id, `message_ids[${i}]`));
}

export function receiptToMsg(r: DeliveryReceipt): DeliveryReceiptMsg {
  return {
    gateway: r.gateway,
    gateway_key_id: r.gatewayKeyId,
    message_id: r.messageId,
    ciphertext_hash: r.ciphertextHash,
    recipient: r.recipient,
    sender: r.sender,
    delivered_at: r.deliveredAt,
    signature: signatureToMsg(r.signature),
    ...(r.batch !== undefined
      ? { batch: { index: r.batch.index, size: r.batch.size, path: [...r.batch.path] } }
      : {}),
  };
}

export function receiptFromMsg(m: DeliveryReceiptMsg | null): DeliveryReceipt {
  const r = present(m, 'receipt');
  return {
    gateway: text(r.gateway, 'receipt.gateway', 512),
    gatewayKeyId: bytes(r.gateway_key_id, 'receipt.gateway_key_id', 64),
    messageId: bytes(r.message_id, 'receipt.message_id', 64),
    ciphertextHash: bytes(r.ciphertext_hash, 'receipt.ciphertext_hash', 64),
    recipient: text(r.recipient, 'receipt.recipient', 512),
    sender: text(r.sender, 'receipt.sender', 512),
    deliveredAt: uint(r.delivered_at, 'receipt.delivered_at'),
    signature: signatureFromMsg(r.signature, 'receipt.signature'),
    ...(r.batch === null || r.batch === undefined
      ? {}
      : { batch: decodeBatchPlace(r.batch, (why) => bad('receipt', why)) }),
  };
}

export function timeToMsg(t: TimeStatement): TimeStatementMsg {
  return {
    gateway: t.gateway,
    gateway_key_id: t.gatewayKeyId,
    time: t.time,
    nonce: t.nonce,
    checkpoint: t.checkpoint,
    signature: signatureToMsg(t.signature),
  };
}

export function timeFromMsg(m: TimeStatementMsg | null): TimeStatement {
  const t = present(m, 'time');
  return {
    gateway: text(t.gateway, 'time.gateway', 512),
    gatewayKeyId: bytes(t.gateway_key_id, 'time.gateway_key_id', 64),
    time: uint(t.time, 'time.time'),
    nonce: bytes(t.nonce, 'time.nonce', 64),
    checkpoint: text(t.checkpoint ?? '', 'time.checkpoint', MAX_TIME_CHECKPOINT_BYTES),
    signature: signatureFromMsg(t.signature, 'time.signature'),
  };
}

/** A request's nonce for a time statement: exactly 16 bytes. */
export function nonceFromMsg(v: unknown, field: string): Buffer {
  const b = bytes(v, field, TIME_NONCE_LENGTH);
  if (b.length !== TIME_NONCE_LENGTH) throw bad(field, `must be ${TIME_NONCE_LENGTH} bytes`);
  return b;
}
