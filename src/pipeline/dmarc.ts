/**
 * The DMARC policy of the From domain, acted on (AFTERSMTP_SMTP_DMARC_REJECT=yes; RFC 7489 §6.7,
 * what OpenDMARC's RejectFailures does beside Postfix): mail from port 25 that fails DMARC (its
 * From domain aligned with neither SPF nor DKIM) while that domain's policy is `reject` is
 * refused at the end of DATA, 550 5.7.1. With `pct` below 100 that share of the failing mail is
 * refused and the rest accepted (§6.6.4).
 *
 * Not acted on here: `quarantine` (the spam scanners' DMARC rules or a MailScript may file such
 * mail in Junk; the Authentication-Results line shows the result either way); submission, whose
 * users are authenticated; a client trusted by access_map (a forwarder or mailing list of ours,
 * as OpenDMARC's IgnoreHosts); an ARC chain does not override the policy.
 */
import { randomInt } from 'node:crypto';
import type { PolicyCheck } from './policy.js';
import { refusal } from './refusals.js';
import { CONTINUE } from './types.js';

/** The check; `draw` picks a whole number below 100 (the pct sampling). */
export function dmarcRejectCheck(draw: () => number = () => randomInt(100)): PolicyCheck {
  return (subject) => {
    if (subject.kind !== 'legacy') return CONTINUE;
    const { submission, auth } = subject;
    if (submission.client.entrance !== 'smtp' || submission.trusted) return CONTINUE;
    const p = auth?.dmarcPolicy;
    if (auth?.dmarc !== 'fail' || p === undefined || p.policy !== 'reject') return CONTINUE;
    if (p.pct < 100 && draw() >= p.pct) return CONTINUE;
    return {
      kind: 'refuse',
      refusal: refusal(
        'ERR_DMARC_REJECT',
        `Message rejected: the DMARC policy of ${p.domain} is reject, and the message fails it`,
      ),
    };
  };
}
