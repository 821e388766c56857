/**
 * Proof of transit over the client API (docs/PROTOCOL.md §12.7): the messages of GetTransitProof
 * and GetTransitReceipt, this gateway's answer for a commitment in its own transit log (with the
 * same leaf proven in its latest anchored checkpoint, when one covers it), and the strict
 * decoding of a proof a client or a peer receives.
 *
 * Guarantees: an answer is built only from the log (never from the request beyond the 32-byte
 * commitment); transitProofFromMsg accepts only integers below 2^53, at most 64 hashes of 32
 * bytes per proof and notes of at most 16 KiB; nothing here decides whether a proof is valid
 * (the client does, src/transit/verify.ts).
 */
import { status } from '@grpc/grpc-js';
import { InputError } from '../../errors.js';
import type { TransitLog } from '../../transit/index.js';
import type { SubstrateAnchorMsg, DeliveryReceiptMsg } from './messages.js';
import { ClientApiRefusal } from './status.js';

export interface AnchoredInclusionMsg {
  checkpoint: string;
  tree_size: number;
  proof: Buffer[];
  anchor: SubstrateAnchorMsg | null;
}
export interface TransitProofMsg {
  leaf_index: number;
  tree_size: number;
  proof: Buffer[];
  checkpoint: string;
  anchored: AnchoredInclusionMsg | null;
}
export interface GetTransitProofRequestMsg {
  commitment: Buffer;
}
export interface GetTransitReceiptResponseMsg {
  receipt: DeliveryReceiptMsg | null;
  transit: TransitProofMsg | null;
  transit_error: string;
}

/** The latest anchored checkpoint of the transit log, as the anchor store keeps it. */
export interface TransitAnchor {
  readonly note: string;
  readonly size: number;
  readonly anchor: SubstrateAnchorMsg;
}

/** This gateway's transit log and, when it anchors, its latest anchored checkpoint. */
export interface TransitSource {
  readonly log: Pick<TransitLog, 'prove' | 'inclusionProof'>;
  anchored?(): TransitAnchor | undefined;
}

/** The proof of `commitment` in this gateway's own log; ERR_TRANSIT_UNKNOWN (NOT_FOUND) if absent. */
export async function ownTransitProof(
  src: TransitSource,
  commitment: Buffer,
): Promise<TransitProofMsg> {
  const p = await src.log.prove(commitment);
  if (p === undefined) {
    throw new ClientApiRefusal(
      status.NOT_FOUND,
      'ERR_TRANSIT_UNKNOWN',
      'this gateway signed no receipt with that commitment',
    );
  }
  const a = src.anchored?.();
  return {
    leaf_index: p.leafIndex,
    tree_size: p.treeSize,
    proof: p.proof,
    checkpoint: p.checkpoint,
    anchored:
      a === undefined || a.size <= p.leafIndex || a.size > p.treeSize
        ? null
        : {
            checkpoint: a.note,
            tree_size: a.size,
            proof: src.log.inclusionProof(p.leafIndex, a.size),
            anchor: a.anchor,
          },
  };
}

export function commitmentFromMsg(m: GetTransitProofRequestMsg): Buffer {
  const c = m.commitment;
  if (!Buffer.isBuffer(c) || c.length !== 32) {
    throw new InputError('ERR_CLIENT_API_REQUEST', 'commitment: must be 32 bytes');
  }
  return c;
}

export interface TransitProofValue {
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly proof: Buffer[];
  readonly checkpoint: string;
  readonly anchored?: {
    readonly leafIndex: number;
    readonly treeSize: number;
    readonly proof: Buffer[];
    readonly checkpoint: string;
    readonly anchor: SubstrateAnchorMsg;
  };
}

function bad(field: string, why: string): InputError {
  return new InputError('ERR_CLIENT_API_REQUEST', `${field}: ${why}`);
}

function uint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(field, 'must be an integer below 2^53');
  }
  return v;
}

function hashes(v: unknown, field: string): Buffer[] {
  if (!Array.isArray(v) || v.length > 64) throw bad(field, 'at most 64 hashes');
  return v.map((h, i) => {
    if (!Buffer.isBuffer(h) || h.length !== 32) throw bad(`${field}[${i}]`, 'must be 32 bytes');
    return h;
  });
}

function note(v: unknown, field: string): string {
  if (typeof v !== 'string' || Buffer.byteLength(v) > 16 * 1024) {
    throw bad(field, 'must be a signed note of at most 16 KiB');
  }
  return v;
}

export function transitProofFromMsg(m: TransitProofMsg): TransitProofValue {
  const leafIndex = uint(m.leaf_index, 'transit.leaf_index');
  const a = m.anchored;
  return {
    leafIndex,
    treeSize: uint(m.tree_size, 'transit.tree_size'),
    proof: hashes(m.proof ?? [], 'transit.proof'),
    checkpoint: note(m.checkpoint, 'transit.checkpoint'),
    ...(a === null || a === undefined || a.anchor === null || a.anchor === undefined
      ? {}
      : {
          anchored: {
            leafIndex,
            treeSize: uint(a.tree_size, 'transit.anchored.tree_size'),
            proof: hashes(a.proof ?? [], 'transit.anchored.proof'),
            checkpoint: note(a.checkpoint, 'transit.anchored.checkpoint'),
            anchor: a.anchor,
          },
        }),
  };
}
