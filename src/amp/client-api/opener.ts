/**
 * The client's side of expiry (docs/EXPIRY.md, docs/PROTOCOL.md §12.8–§12.9): opens fetched
 * envelopes by trusted time, and fetches the key share of ephemeral ones.
 *
 * Trusted time is max(the local clock, the time of the newest time statement the user's gateway
 * signed for a nonce of ours + the monotonic time elapsed since it arrived). The statement is
 * verified with the gateway's record (resolved with ledger proofs by the caller), so moving the
 * local clock back does not reopen an expired message: the gateway's signed time says it expired.
 * An ephemeral envelope (§6.10) opens only with the share its holder releases (ReleaseKey) before
 * the expiry; each release carries a fresh time statement too.
 *
 * Guarantees: `open` never judges expiry by the local clock alone once a statement was verified;
 * a statement that does not verify or answers another nonce is an error, never a fallback.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { decodeEnvelope } from '../../envelope/codec.js';
import { openEnvelope, type OpenedMessage } from '../../envelope/envelope.js';
import {
  TIME_NONCE_LENGTH,
  TrustedClock,
  verifyTimeStatement,
  type TimeStatement,
} from '../../envelope/time.js';
import type { PublicKeyRecord, SecretKeySet } from '../../identity/keys.js';
import type { GatewayClient } from './client.js';
import { timeFromMsg } from './messages.js';

export interface ExpiryOpenerOptions {
  readonly client: Pick<GatewayClient, 'getTime' | 'releaseKey'>;
  readonly token: string;
  /** The user's gateway's current record, verified against the ledger. */
  readonly gateway: () => Promise<PublicKeyRecord>;
  /** The local clock (default Date.now); tests move it. */
  readonly local?: () => number;
  /** A clock the user cannot set (default performance.now). */
  readonly monotonic?: () => number;
}

export class ExpiryOpener {
  readonly #o: ExpiryOpenerOptions;
  readonly #mono: () => number;
  readonly #clock: TrustedClock;
  #trusted: { time: number; mono: number } | undefined;

  constructor(options: ExpiryOpenerOptions) {
    this.#o = options;
    this.#mono = options.monotonic ?? (() => performance.now());
    const floor = (): number | undefined =>
      this.#trusted === undefined
        ? undefined
        : this.#trusted.time + Math.floor(this.#mono() - this.#trusted.mono);
    this.#clock = new TrustedClock({ local: options.local, floors: [floor], floorTtlMs: 0 });
  }

  /** Verifies a time statement for `nonce` and moves the trusted clock up to it. */
  async #accept(s: TimeStatement, nonce: Buffer): Promise<void> {
    verifyTimeStatement(s, await this.#o.gateway(), nonce);
    if (this.#trusted === undefined || s.time > this.#trusted.time) {
      this.#trusted = { time: s.time, mono: this.#mono() };
    }
    this.#clock.observe(s.time);
  }

  /** Asks the gateway for its signed time (GetTime); call once per session, or to refresh. */
  async refresh(): Promise<number> {
    const nonce = randomBytes(TIME_NONCE_LENGTH);
    const msg = await this.#o.client.getTime(this.#o.token, { nonce });
    await this.#accept(timeFromMsg(msg), nonce);
    return this.now();
  }

  /** The trusted time now: never below the gateway's signed time, whatever the local clock says. */
  now(): number {
    return this.#clock.now();
  }

  /** The key share of an ephemeral message, released by the gateway (ReleaseKey). */
  async share(messageId: string): Promise<Buffer> {
    const nonce = randomBytes(TIME_NONCE_LENGTH);
    const res = await this.#o.client.releaseKey(this.#o.token, { message_id: messageId, nonce });
    await this.#accept(timeFromMsg(res.time), nonce);
    return Buffer.from(res.share);
  }

  /**
   * Opens a fetched envelope with the first key set it is sealed to, by trusted time; for an
   * ephemeral one, after fetching its share. `messageId` is the mailbox's id (InboxItem).
   */
  async open(
    envelope: Uint8Array,
    messageId: string,
    keySets: readonly SecretKeySet[],
  ): Promise<OpenedMessage> {
    const env = decodeEnvelope(envelope);
    // An expired one is refused by openEnvelope (step 2) without asking for its share.
    const share =
      env.ephemeral === undefined || this.now() >= env.expiresAt
        ? undefined
        : await this.share(messageId);
    let first: unknown;
    try {
      for (const k of keySets) {
        try {
          return openEnvelope(env, k, { now: this.now(), ...(share ? { share } : {}) });
        } catch (err) {
          first ??= err;
        }
      }
    } finally {
      share?.fill(0);
    }
    throw first;
  }
}
