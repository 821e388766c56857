/**
 * Ephemeral messages at the client API's entrance (docs/PROTOCOL.md §6.10, §12.3). A dispatched
 * envelope marked ephemeral comes with its 32-byte key share, names this gateway as the holder,
 * and is for recipients of the domains this gateway serves: the share is released only to a
 * recipient who logs in here (§12.9), so a recipient elsewhere could never open it. An envelope
 * that is not ephemeral comes without a share. The shares are kept, through the one mailbox
 * writer, before the queue commit: the answer that follows the commit means they are durable.
 */
import { KEY_SHARE_LENGTH } from '../envelope/transcript.js';
import { didDomain } from './addresses.js';
import { refusal } from './refusals.js';
import type { AmpSubmission, Refusal } from './types.js';

/** Why this dispatched envelope and share cannot be taken, or undefined when they can. */
export function checkEphemeral(
  sub: AmpSubmission,
  gatewayDid: string,
  domains: ReadonlySet<string>,
): Refusal | undefined {
  const env = sub.envelope;
  const share = sub.keyShare;
  if (env.ephemeral === undefined) {
    return share === undefined
      ? undefined
      : refusal(
          'ERR_EPHEMERAL_SHARE',
          'a key share was sent with an envelope that is not ephemeral',
        );
  }
  if (share === undefined || share.length !== KEY_SHARE_LENGTH) {
    return refusal(
      'ERR_EPHEMERAL_SHARE',
      `an ephemeral envelope needs its ${KEY_SHARE_LENGTH}-byte key share (key_share)`,
    );
  }
  if (env.ephemeral.holder !== gatewayDid) {
    return refusal(
      'ERR_EPHEMERAL_HOLDER',
      `the key share holder must be this gateway (${gatewayDid}), not ${env.ephemeral.holder}`,
    );
  }
  for (const w of env.wraps) {
    const domain = didDomain(w.recipient);
    if (w.recipient === gatewayDid || domain === undefined || !domains.has(domain)) {
      return refusal(
        'ERR_EPHEMERAL_HOLDER',
        `${w.recipient} cannot fetch the key share from this gateway: ephemeral mail goes to ` +
          'recipients of its own domains only',
      );
    }
  }
  return undefined;
}
