/**
 * Publishes the gateway's own identity (did:aftersmtp:<domain>:gateway, PROTOCOL.md §9.3) in its
 * own log, so that peers resolving it learn the gateway's signing key and, in the quic-tls-spki
 * extension, the key of its TLS certificate (src/tls), and can authenticate it; further
 * extensions (the transit log's key, transit-log-key, PROTOCOL.md §12.7) are published with it.
 *
 * Guarantees: idempotent. On first start the record is an administrator registration by the
 * gateway itself (auth kind 0x02, admin "aftersmtp-serve"); when only an extension changed, the
 * record is rotated, signed by the gateway key (previous = new key); when the ledger holds
 * another signing key for the gateway (the key file was replaced), nothing is written and the
 * returned note says so: re-keying a published identity is an operator's decision.
 */
import type { SecretKeySet } from '../identity/index.js';
import {
  EXT_QUIC_TLS_SPKI,
  PURPOSE_REGISTER,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  registerTranscript,
  rotateTranscript,
  type Extension,
} from './entries.js';
import { LedgerError } from './errors.js';
import type { IdentityLedger } from './ledger.js';

export const GATEWAY_ADMIN = 'aftersmtp-serve';

export interface PublishedGatewayRecord {
  readonly did: string;
  readonly leafIndex: number;
  readonly action: 'registered' | 'rotated' | 'unchanged' | 'conflict';
  readonly note?: string;
}

/**
 * Publishes the gateway's record (register on first start, rotate when its TLS key changed).
 * Several nodes of one domain starting at once may race on a shared log (ledger/postgres.ts):
 * the loser's write finds the record the winner wrote, and looks again.
 */
export function publishGatewayRecord(
  ledger: IdentityLedger,
  keys: SecretKeySet,
  tlsSpki: Buffer,
  extra: readonly Extension[] = [],
): PublishedGatewayRecord {
  for (let attempt = 1; ; attempt++) {
    try {
      return publishOnce(ledger, keys, tlsSpki, extra);
    } catch (err) {
      const raced =
        err instanceof LedgerError &&
        (err.code === 'ERR_DID_EXISTS' || err.code === 'ERR_LEDGER_STALE');
      if (!raced || attempt >= 3) throw err;
    }
  }
}

function publishOnce(
  ledger: IdentityLedger,
  keys: SecretKeySet,
  tlsSpki: Buffer,
  extra: readonly Extension[],
): PublishedGatewayRecord {
  const did = keys.did;
  const exts: Extension[] = [{ name: EXT_QUIC_TLS_SPKI, value: tlsSpki }, ...extra].sort((a, b) =>
    a.name < b.name ? -1 : 1,
  );
  let leaf: number;
  try {
    leaf = ledger.lookup(did).leafIndex;
  } catch (err) {
    if (!(err instanceof LedgerError) || err.code !== 'ERR_DID_UNKNOWN') throw err;
    const r = ledger.adminRegister(
      {
        record: keys.record,
        extensions: exts,
        proofOfPossession: keys.sign(registerTranscript(keys.record, exts), PURPOSE_REGISTER),
      },
      GATEWAY_ADMIN,
      'gateway-first-start',
    );
    return { did, leafIndex: r.leafIndex, action: 'registered' };
  }
  const current = ledger.entryAt(leaf);
  if (current.type === 'revoke') {
    return {
      did,
      leafIndex: leaf,
      action: 'conflict',
      note: `${did} is revoked in the ledger; re-register it with an administrator`,
    };
  }
  if (!current.record.keyId.equals(keys.keyId)) {
    return {
      did,
      leafIndex: leaf,
      action: 'conflict',
      note: `the ledger holds another key for ${did}; rotate it (signed by the old key) to publish this one`,
    };
  }
  const same = exts.every((x) =>
    current.extensions.some((e) => e.name === x.name && e.value.equals(x.value)),
  );
  if (same) return { did, leafIndex: leaf, action: 'unchanged' };
  const t = rotateTranscript(did, leaf, keys.keyId, keys.record, exts);
  const r = ledger.rotate({
    did,
    prevLeaf: leaf,
    prevKeyId: keys.keyId,
    record: keys.record,
    extensions: exts,
    previousKeySignature: keys.sign(t, PURPOSE_ROTATE),
    proofOfPossession: keys.sign(t, PURPOSE_ROTATE_POP),
  });
  return { did, leafIndex: r.leafIndex, action: 'rotated' };
}
