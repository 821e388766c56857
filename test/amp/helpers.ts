// Shared fixtures for the AMP tests: identities per suite and small envelope helpers.
import { generateIdentity, type SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import type { Envelope, MessageBody } from '../../src/envelope/index.js';

export const NOW = 1_750_000_000_000;
export const HOUR = 3_600_000;

export interface Cast {
  alice: SecretKeySet;
  bob: SecretKeySet;
  carol: SecretKeySet;
  dave: SecretKeySet;
  gateway: SecretKeySet;
}

const casts = new Map<SuiteId, Cast>();

/** Alice (example.com) writes to Bob, Carol and Dave (example.org); the gateway is example.com's. */
export function cast(suite: SuiteId): Cast {
  let c = casts.get(suite);
  if (!c) {
    const id = (did: string) => generateIdentity(did, suite, NOW - HOUR);
    c = {
      alice: id('did:aftersmtp:example.com:alice'),
      bob: id('did:aftersmtp:example.org:bob'),
      carol: id('did:aftersmtp:example.org:carol'),
      dave: id('did:aftersmtp:example.org:dave'),
      gateway: id('did:aftersmtp:example.com:gateway'),
    };
    casts.set(suite, c);
  }
  return c;
}

export const BODY: MessageBody = {
  subject: 'Quarterly numbers ✓',
  contentType: 'message/rfc822',
  content: Buffer.from('From: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n'),
};

export function flip(b: Buffer, index: number, bit = 0): Buffer {
  const out = Buffer.from(b);
  const i = ((index % out.length) + out.length) % out.length;
  out[i] = (out[i] as number) ^ (1 << bit);
  return out;
}

export function withHeader(e: Envelope, patch: Partial<Envelope>): Envelope {
  return { ...e, ...patch };
}
