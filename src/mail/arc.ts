/**
 * ARC sealing (RFC 8617) of a message the gateway forwards, with mailauth: one ARC set
 * (ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal) with instance i = n + 1 over the
 * message as it leaves. The chain's validation (cv) and the results recorded come from the
 * on-ramp's verification of the message as received (src/pipeline/authentication.ts): `none` for
 * a message without a chain, `pass` for a chain that validated, `fail` for one that did not and
 * whose last seal claimed none or pass. A chain that already ended in cv=fail is not sealed
 * again (RFC 8617 §5.1.2: nothing after it can be trusted), and a broken chain is never sealed as
 * pass. rsa-sha256 only: RFC 8617 names no other algorithm that verifiers accept.
 */
import { sealMessage, type ARCSealOptions } from 'mailauth';
import type { DkimKey } from './dkim.js';

/** What the on-ramp found of a message's ARC chain, as the next seal must state it. */
export interface ArcChainState {
  readonly cv: 'none' | 'pass' | 'fail';
  /** The Authentication-Results value (after `authserv-id;`) the new set records. */
  readonly authResults: string;
}

/** The ARC set to put in front of `message` (CRLF-terminated lines), sealed with `key`. */
export async function arcSeal(
  message: Buffer,
  key: DkimKey,
  chain: ArcChainState,
  now = Date.now(),
): Promise<string> {
  if (key.algorithm !== 'rsa-sha256') {
    throw new RangeError(`ARC seals with rsa-sha256 only, not ${key.algorithm}`);
  }
  const options: ARCSealOptions & { authResults: string; cv: string } = {
    signingDomain: key.domain,
    selector: key.selector,
    privateKey: key.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    algorithm: 'rsa-sha256',
    signTime: new Date(now),
    authResults: chain.authResults,
    cv: chain.cv,
  };
  return (await sealMessage(message, options)).toString('latin1');
}
