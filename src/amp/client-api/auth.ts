/**
 * Client authentication on the client API (DESIGN.md §4, docs/PROTOCOL.md §12.1–12.2): login
 * challenges and the tokens the gateway signs with its own key.
 *
 * - A challenge holds no server state (docs/PROTOCOL.md §12.1): it carries its expiry and a
 *   nonce, and a MAC under a key derived from the ledger's secret binds it to one DID and this
 *   gateway's key, so any process that opens the same ledger checks it, and a caller who is
 *   not authenticated cannot fill anything with RequestChallenge. It is valid for
 *   CHALLENGE_TTL_MS and answered successfully once: only a challenge whose signature verified
 *   is remembered (until it expires), so that state grows with real logins only
 *   (MAX_SPENT_CHALLENGES at most). Per-address rate limits sit in front (server.ts).
 * - Authenticate verifies the signature over the auth transcript with the DID's CURRENT record in
 *   the ledger (both halves for hybrid-v1) and answers a token signed by the gateway's
 *   SecretKeySet. There is no shared or built-in secret: a token verifies with the gateway's
 *   public record only.
 * - verifyToken checks, in this order: syntax and bounds, label and version, that the token was
 *   issued by THIS gateway key, the signature (these four once per token text while the gateway
 *   key is current: they depend on nothing else), the validity window, and the DID as it stands in
 *   the ledger now: revoked (FAILED_PRECONDITION, ERR_DID_REVOKED) or its keys rotated after
 *   the token was issued (ERR_TOKEN_STALE). Each other failure is an UNAUTHENTICATED refusal
 *   with its own code.
 *
 * Pure functions of their inputs except for the table of spent challenges (owned by one
 * Authenticator) and the clock, which is injectable for tests.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { BoundedMap } from '../../bounded-map.js';
import { lp, u32be, u64be } from '../../identity/lp.js';
import { parseDid } from '../../identity/did.js';
import type { PublicKeyRecord, SecretKeySet } from '../../identity/keys.js';
import { verifySignature, type Signature } from '../../identity/signature.js';
import type { IdentityLedger } from '../../ledger/index.js';
import { ClientApiRefusal } from './status.js';

export const PURPOSE_AUTH = 'aftersmtp/client/v1/auth';
export const PURPOSE_TOKEN = 'aftersmtp/client/v1/token';
export const TOKEN_VERSION = 1;
export const TOKEN_SCHEME = 'AfterSMTP';
export const PURPOSE_CHALLENGE = 'aftersmtp/client/v1/challenge';
/** The label of the login challenge key derived from the ledger secret. */
export const CHALLENGE_KEY_LABEL = 'aftersmtp/client/v1/challenge-key';
export const CHALLENGE_VERSION = 0x01;
/** version(1) || u64 expires_at || nonce(16) || mac(16) */
export const CHALLENGE_LENGTH = 41;
export const TOKEN_ID_LENGTH = 16;
export const CHALLENGE_TTL_MS = 60_000;
/** Challenges answered successfully and not yet expired, remembered to refuse a replay. */
export const MAX_SPENT_CHALLENGES = 100_000;
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

export interface IssuedChallenge {
  readonly challenge: Buffer;
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  readonly expiresAt: number;
}

/**
 * The DID's current entry in this gateway's ledger, or a refusal (unknown, revoked): the cheap
 * state (ledger.current, no proof built), as every call with a token asks it.
 */
function currentEntry(
  ledger: IdentityLedger,
  did: string,
): { record: PublicKeyRecord; loggedAt: number } {
  ledger.domains.domainOf(did);
  const s = ledger.current(did);
  if (s.state === 'unknown') {
    throw new ClientApiRefusal(status.NOT_FOUND, 'ERR_DID_UNKNOWN', `${did} is not registered`);
  }
  if (s.state === 'revoked') {
    throw new ClientApiRefusal(status.FAILED_PRECONDITION, 'ERR_DID_REVOKED', `${did} is revoked`);
  }
  return s;
}

/** The DID's current record in this gateway's ledger, or a refusal (unknown, revoked). */
export function currentRecord(ledger: IdentityLedger, did: string): PublicKeyRecord {
  return currentEntry(ledger, did).record;
}

/**
 * The MAC of a login challenge: the first 16 bytes of HMAC-SHA256(key, lp(PURPOSE_CHALLENGE,
 * did, gateway, gateway_key_id, u64(expires_at), nonce)).
 */
export function challengeMac(
  key: Buffer,
  did: string,
  gateway: string,
  gatewayKeyId: Uint8Array,
  expiresAt: number,
  nonce: Uint8Array,
): Buffer {
  return createHmac('sha256', key)
    .update(lp(PURPOSE_CHALLENGE, did, gateway, gatewayKeyId, u64be(expiresAt), nonce))
    .digest()
    .subarray(0, 16);
}

/** Tokens whose signature verified, kept (text to claims and gateway key id) so a call checks it once. */
const VERIFIED_TOKENS = 1024;

interface VerifiedToken {
  /** Hex of the gateway key id the signature verified with. */
  readonly keyId: string;
  readonly claims: TokenClaims;
}

export class Authenticator {
  readonly #gateway: SecretKeySet;
  readonly #ledger: IdentityLedger;
  /**
   * A token's signature and claims are a function of its text and the gateway key alone, so a
   * token seen before is neither parsed nor verified again while that key is current (the checks
   * of time and of the DID's state run each call); the oldest is dropped past VERIFIED_TOKENS.
   */
  readonly #verified = new BoundedMap<string, VerifiedToken>(VERIFIED_TOKENS);
  readonly #domain: string;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #key: Buffer;
  /**
   * Spent challenges (their MAC, hex) -> expiry, in the order they were answered: each expires
   * within CHALLENGE_TTL_MS of that, so a sweep may stop at the first one still live.
   */
  readonly #spent = new Map<string, number>();

  constructor(opts: AuthenticatorOptions) {
    this.#gateway = opts.gateway;
    this.#ledger = opts.ledger;
    this.#domain = opts.domain;
    this.#ttl = opts.tokenTtlMs;
    this.#now = opts.now ?? Date.now;
    this.#key = opts.ledger.derivedKey(CHALLENGE_KEY_LABEL);
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

  /** Forgets spent challenges that expired (the map is in expiry order). */
  #sweep(now: number): void {
    for (const [k, expiresAt] of this.#spent) {
      if (expiresAt > now) break;
      this.#spent.delete(k);
    }
  }

  requestChallenge(did: string): IssuedChallenge {
    this.#checkOwnDid(did);
    const expiresAt = this.#now() + CHALLENGE_TTL_MS;
    const nonce = randomBytes(16);
    const record = this.#gateway.record;
    const head = Buffer.alloc(9);
    head[0] = CHALLENGE_VERSION;
    head.writeBigUInt64BE(BigInt(expiresAt), 1);
    const mac = challengeMac(this.#key, did, record.did, record.keyId, expiresAt, nonce);
    const challenge = Buffer.concat([head, nonce, mac]);
    return { challenge, gateway: record.did, gatewayKeyId: record.keyId, expiresAt };
  }

  /**
   * Verifies a signed challenge; answers a token. A challenge is answered successfully once;
   * failed answers leave no trace.
   */
  authenticate(
    did: string,
    challenge: Buffer,
    signature: Signature,
  ): { token: string; expiresAt: number; claims: TokenClaims } {
    this.#checkOwnDid(did);
    const now = this.#now();
    const unknown = () =>
      unauthenticated(
        'ERR_CHALLENGE_UNKNOWN',
        'unknown or already used challenge (request a new one)',
      );
    if (challenge.length !== CHALLENGE_LENGTH || challenge[0] !== CHALLENGE_VERSION) {
      throw unknown();
    }
    const expiresAt = Number(challenge.readBigUInt64BE(1));
    const nonce = challenge.subarray(9, 25);
    const mac = challenge.subarray(25);
    const gwRecord = this.#gateway.record;
    const want = challengeMac(this.#key, did, gwRecord.did, gwRecord.keyId, expiresAt, nonce);
    // The MAC covers the DID and this gateway key: another DID's challenge is unknown here.
    if (!timingSafeEqual(want, mac)) throw unknown();
    if (now >= expiresAt) {
      throw unauthenticated('ERR_CHALLENGE_EXPIRED', 'the challenge expired (request a new one)');
    }
    this.#sweep(now);
    const spentKey = mac.toString('hex');
    if (this.#spent.has(spentKey)) throw unknown();
    const record = currentRecord(this.#ledger, did);
    const gw = this.#gateway.record;
    try {
      verifySignature(
        record.suite,
        record.signingPublicKeys,
        authTranscript(challenge, did, gw.did, gw.keyId, expiresAt),
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
    if (this.#spent.size >= MAX_SPENT_CHALLENGES) {
      // Only real logins get here; so many within one challenge lifetime is an overload.
      throw new ClientApiRefusal(
        status.RESOURCE_EXHAUSTED,
        'ERR_CHALLENGE_BUSY',
        'too many logins at once; retry shortly',
      );
    }
    this.#spent.set(spentKey, expiresAt);
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
    const gw = this.#gateway.record;
    const keyId = gw.keyId.toString('hex');
    const seen = this.#verified.get(token);
    const claims = seen?.keyId === keyId ? seen.claims : this.#verifySignedClaims(token, keyId);
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

  /** The claims of a token signed by this gateway's current key (`keyId`), remembered. */
  #verifySignedClaims(token: string, keyId: string): TokenClaims {
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
    this.#verified.set(token, { keyId, claims });
    return claims;
  }
}
