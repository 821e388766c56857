/**
 * Client authentication on the client API (DESIGN.md §4, docs/PROTOCOL.md §12.1–12.2): login
 * challenges and the tokens the gateway signs with its own key.
 *
 * - A challenge is 32 random bytes, bound to one DID and this gateway, valid for
 *   CHALLENGE_TTL_MS and usable once (it is removed when Authenticate looks at it, whether the
 *   signature verifies or not). At most MAX_PENDING_CHALLENGES are outstanding; beyond that
 *   RequestChallenge is refused (RESOURCE_EXHAUSTED) until some expire, so memory stays bounded.
 * - Authenticate verifies the signature over the auth transcript with the DID's CURRENT record in
 *   the ledger (both halves for hybrid-v1) and answers a token signed by the gateway's
 *   SecretKeySet. There is no shared or built-in secret: a token verifies with the gateway's
 *   public record only.
 * - verifyToken checks, in this order: syntax and bounds, label and version, that the token was
 *   issued by THIS gateway key, the signature, the validity window, and the DID as it stands in
 *   the ledger now: revoked (FAILED_PRECONDITION, ERR_DID_REVOKED) or its keys rotated after
 *   the token was issued (ERR_TOKEN_STALE). Each other failure is an UNAUTHENTICATED refusal
 *   with its own code.
 *
 * Pure functions of their inputs except for the challenge table (owned by one Authenticator,
 * constructed by the composition root) and the clock, which is injectable for tests.
 */
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { lp, u32be, u64be } from '../../identity/lp.js';
import { parseDid } from '../../identity/did.js';
import type { PublicKeyRecord, SecretKeySet } from '../../identity/keys.js';
import { verifySignature, type Signature } from '../../identity/signature.js';
import { decodeEntry, type IdentityLedger } from '../../ledger/index.js';
import { LedgerError } from '../../ledger/index.js';
import { ClientApiRefusal } from './status.js';

export const PURPOSE_AUTH = 'aftersmtp/client/v1/auth';
export const PURPOSE_TOKEN = 'aftersmtp/client/v1/token';
export const TOKEN_VERSION = 1;
export const TOKEN_SCHEME = 'AfterSMTP';
export const CHALLENGE_LENGTH = 32;
export const TOKEN_ID_LENGTH = 16;
export const CHALLENGE_TTL_MS = 60_000;
export const MAX_PENDING_CHALLENGES = 100_000;
/** A token string longer than this is refused before it is decoded (hybrid-v1 is ~4.7 KB). */
export const MAX_TOKEN_CHARS = 8192;
/** Tolerated clock difference for `issued` in the future (several gateway processes). */
const CLOCK_SKEW_MS = 30_000;

function unauthenticated(code: string, message: string): ClientApiRefusal {
  return new ClientApiRefusal(status.UNAUTHENTICATED, code, message);
}

/** The bytes a client signs (purpose PURPOSE_AUTH) to answer a challenge. */
export function authTranscript(
  challenge: Uint8Array,
  did: string,
  gateway: string,
  gatewayKeyId: Uint8Array,
  expiresAt: number,
): Buffer {
  return lp(PURPOSE_AUTH, challenge, did, gateway, gatewayKeyId, u64be(expiresAt));
}

export interface TokenClaims {
  readonly did: string;
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly tokenId: Buffer;
}

/** The token payload: lp(label, u32be(version), did, gateway, key id, u64 issued, u64 expires, id). */
export function encodeTokenPayload(c: TokenClaims): Buffer {
  return lp(
    PURPOSE_TOKEN,
    u32be(TOKEN_VERSION),
    c.did,
    c.gateway,
    c.gatewayKeyId,
    u64be(c.issuedAt),
    u64be(c.expiresAt),
    c.tokenId,
  );
}

function malformed(why: string): ClientApiRefusal {
  return unauthenticated('ERR_TOKEN_MALFORMED', `the token is malformed (${why})`);
}

/** Splits an lp() encoding into exactly `n` items, or throws ERR_TOKEN_MALFORMED. */
function lpItems(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (out.length === n || off + 4 > buf.length) throw malformed('framing');
    const len = buf.readUInt32BE(off);
    off += 4;
    if (len > buf.length - off) throw malformed('framing');
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  if (out.length !== n) throw malformed('framing');
  return out;
}

function u64(b: Buffer): number {
  if (b.length !== 8) throw malformed('integer width');
  const v = b.readBigUInt64BE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('integer range');
  return Number(v);
}

export function decodeTokenPayload(payload: Buffer): TokenClaims {
  const [label, version, did, gateway, keyId, issued, expires, id] = lpItems(payload, 8) as [
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
  ];
  if (label.toString('latin1') !== PURPOSE_TOKEN) throw malformed('label');
  if (version.length !== 4 || version.readUInt32BE(0) !== TOKEN_VERSION) {
    throw unauthenticated('ERR_TOKEN_VERSION', 'the token version is not supported');
  }
  if (id.length !== TOKEN_ID_LENGTH) throw malformed('token id');
  if (did.length > 512 || gateway.length > 512 || keyId.length > 64) throw malformed('lengths');
  return {
    did: did.toString('utf8'),
    gateway: gateway.toString('utf8'),
    gatewayKeyId: Buffer.from(keyId),
    issuedAt: u64(issued),
    expiresAt: u64(expires),
    tokenId: Buffer.from(id),
  };
}

/** token = b64url(payload) "." b64url(ed25519 signature) [ "." b64url(ML-DSA-65 signature) ] */
export function formatToken(payload: Buffer, sig: Signature): string {
  const parts = [payload, sig.ed25519, ...(sig.mldsa65 ? [sig.mldsa65] : [])];
  return parts.map((p) => p.toString('base64url')).join('.');
}

const B64URL = /^[A-Za-z0-9_-]*$/;

export function parseToken(token: string): { payload: Buffer; signature: Signature } {
  if (token.length > MAX_TOKEN_CHARS) throw malformed('too long');
  const parts = token.split('.');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => B64URL.test(p))) {
    throw malformed('syntax');
  }
  const [p, e, m] = parts.map((x) => Buffer.from(x, 'base64url'));
  return {
    payload: p as Buffer,
    signature: m === undefined ? { ed25519: e as Buffer } : { ed25519: e as Buffer, mldsa65: m },
  };
}

/** The token from `authorization: AfterSMTP <token>` metadata values. */
export function tokenFromAuthorization(values: readonly unknown[]): string {
  if (values.length === 0) {
    throw unauthenticated(
      'ERR_TOKEN_MISSING',
      `this method needs "authorization: ${TOKEN_SCHEME} <token>" metadata`,
    );
  }
  const v = values[0];
  if (values.length > 1 || typeof v !== 'string') throw malformed('authorization header');
  const m = /^AfterSMTP +([^ ]+)$/i.exec(v.trim());
  if (m === null) throw malformed(`expected "${TOKEN_SCHEME} <token>"`);
  return m[1] as string;
}

export interface AuthenticatorOptions {
  readonly gateway: SecretKeySet;
  readonly ledger: IdentityLedger;
  /** This gateway's domain: only its DIDs log in here. */
  readonly domain: string;
  readonly tokenTtlMs: number;
  readonly now?: () => number;
}

interface PendingChallenge {
  readonly did: string;
  readonly expiresAt: number;
}

export interface IssuedChallenge {
  readonly challenge: Buffer;
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  readonly expiresAt: number;
}

/** The DID's current entry in this gateway's ledger, or a refusal (unknown, revoked). */
function currentEntry(
  ledger: IdentityLedger,
  did: string,
): { record: PublicKeyRecord; loggedAt: number } {
  let entry;
  try {
    entry = decodeEntry(ledger.lookup(did).entry);
  } catch (err) {
    if (err instanceof LedgerError && err.code === 'ERR_DID_UNKNOWN') {
      throw new ClientApiRefusal(status.NOT_FOUND, 'ERR_DID_UNKNOWN', `${did} is not registered`);
    }
    throw err;
  }
  if (entry.type === 'revoke') {
    throw new ClientApiRefusal(status.FAILED_PRECONDITION, 'ERR_DID_REVOKED', `${did} is revoked`);
  }
  return entry;
}

/** The DID's current record in this gateway's ledger, or a refusal (unknown, revoked). */
export function currentRecord(ledger: IdentityLedger, did: string): PublicKeyRecord {
  return currentEntry(ledger, did).record;
}

export class Authenticator {
  readonly #gateway: SecretKeySet;
  readonly #ledger: IdentityLedger;
  readonly #domain: string;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #pending = new Map<string, PendingChallenge>();

  constructor(opts: AuthenticatorOptions) {
    this.#gateway = opts.gateway;
    this.#ledger = opts.ledger;
    this.#domain = opts.domain;
    this.#ttl = opts.tokenTtlMs;
    this.#now = opts.now ?? Date.now;
  }

  #checkOwnDid(did: string): void {
    let domain: string;
    try {
      domain = parseDid(did).domain;
    } catch (err) {
      throw new ClientApiRefusal(
        status.INVALID_ARGUMENT,
        'ERR_CLIENT_API_REQUEST',
        `did: ${(err as Error).message}`,
      );
    }
    if (domain !== this.#domain) {
      throw new ClientApiRefusal(
        status.PERMISSION_DENIED,
        'ERR_DOMAIN_NOT_SERVED',
        `${did} logs in at its own domain's gateway, not ${this.#domain}`,
      );
    }
  }

  #sweep(now: number): void {
    for (const [k, p] of this.#pending) if (p.expiresAt <= now) this.#pending.delete(k);
  }

  requestChallenge(did: string): IssuedChallenge {
    this.#checkOwnDid(did);
    const now = this.#now();
    if (this.#pending.size >= MAX_PENDING_CHALLENGES) this.#sweep(now);
    if (this.#pending.size >= MAX_PENDING_CHALLENGES) {
      throw new ClientApiRefusal(
        status.RESOURCE_EXHAUSTED,
        'ERR_CHALLENGE_BUSY',
        'too many login challenges outstanding; retry shortly',
      );
    }
    const challenge = randomBytes(CHALLENGE_LENGTH);
    const expiresAt = now + CHALLENGE_TTL_MS;
    this.#pending.set(challenge.toString('hex'), { did, expiresAt });
    const record = this.#gateway.record;
    return { challenge, gateway: record.did, gatewayKeyId: record.keyId, expiresAt };
  }

  /** Verifies a signed challenge; answers a token. The challenge is consumed either way. */
  authenticate(
    did: string,
    challenge: Buffer,
    signature: Signature,
  ): { token: string; expiresAt: number; claims: TokenClaims } {
    this.#checkOwnDid(did);
    const key = challenge.length === CHALLENGE_LENGTH ? challenge.toString('hex') : '';
    const pending = this.#pending.get(key);
    this.#pending.delete(key);
    const now = this.#now();
    if (pending === undefined || pending.did !== did) {
      throw unauthenticated(
        'ERR_CHALLENGE_UNKNOWN',
        'unknown or already used challenge (request a new one)',
      );
    }
    if (now >= pending.expiresAt) {
      throw unauthenticated('ERR_CHALLENGE_EXPIRED', 'the challenge expired (request a new one)');
    }
    const record = currentRecord(this.#ledger, did);
    const gw = this.#gateway.record;
    try {
      verifySignature(
        record.suite,
        record.signingPublicKeys,
        authTranscript(challenge, did, gw.did, gw.keyId, pending.expiresAt),
        PURPOSE_AUTH,
        signature,
        'ERR_AUTH_SIGNATURE',
      );
    } catch {
      throw unauthenticated(
        'ERR_AUTH_SIGNATURE',
        `the challenge signature does not verify with ${did}'s current key`,
      );
    }
    const claims: TokenClaims = {
      did,
      gateway: gw.did,
      gatewayKeyId: gw.keyId,
      issuedAt: now,
      expiresAt: now + this.#ttl,
      tokenId: randomBytes(TOKEN_ID_LENGTH),
    };
    const payload = encodeTokenPayload(claims);
    const token = formatToken(payload, this.#gateway.sign(payload, PURPOSE_TOKEN));
    return { token, expiresAt: claims.expiresAt, claims };
  }

  /** The claims of a valid token issued by this gateway's current key, or a refusal. */
  verifyToken(token: string): TokenClaims {
    const { payload, signature } = parseToken(token);
    const claims = decodeTokenPayload(payload);
    const gw = this.#gateway.record;
    if (claims.gateway !== gw.did || !claims.gatewayKeyId.equals(gw.keyId)) {
      throw unauthenticated(
        'ERR_TOKEN_WRONG_GATEWAY',
        `the token was issued by ${claims.gateway}, not by this gateway's current key`,
      );
    }
    try {
      verifySignature(
        gw.suite,
        gw.signingPublicKeys,
        payload,
        PURPOSE_TOKEN,
        signature,
        'ERR_TOKEN_SIGNATURE',
      );
    } catch {
      throw unauthenticated('ERR_TOKEN_SIGNATURE', "the token's signature does not verify");
    }
    const now = this.#now();
    if (now >= claims.expiresAt) {
      throw unauthenticated(
        'ERR_TOKEN_EXPIRED',
        `the token expired at ${new Date(claims.expiresAt).toISOString()} (authenticate again)`,
      );
    }
    if (claims.issuedAt > now + CLOCK_SKEW_MS || claims.expiresAt <= claims.issuedAt) {
      throw unauthenticated('ERR_TOKEN_MALFORMED', 'the token is malformed (validity window)');
    }
    // The DID as it stands now: a revoked DID, or one whose keys were rotated after the token
    // was issued (a lost key replaced), no longer acts on its token.
    if (currentEntry(this.#ledger, claims.did).loggedAt > claims.issuedAt) {
      throw unauthenticated(
        'ERR_TOKEN_STALE',
        `the keys of ${claims.did} changed after this token was issued (authenticate again)`,
      );
    }
    return claims;
  }
}
