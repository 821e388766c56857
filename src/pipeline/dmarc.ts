/**
 * The DMARC policy of the From domain, acted on (AFTERSMTP_SMTP_DMARC_ENFORCE=yes; RFC 7489
 * §6.6.4 and §6.7, what OpenDMARC adds to Postfix): mail from port 25 that fails DMARC (its From
 * domain aligned with neither SPF nor DKIM) is refused at the end of DATA, 550 5.7.1, when that
 * domain's policy is `reject`, and filed in every recipient's Junk folder when it is
 * `quarantine`. With `pct` below 100 only that share of the failing mail gets the policy; the
 * rest gets the next weaker one (reject becomes quarantine, quarantine becomes none).
 *
 * Not acted on: submission, whose users are authenticated; a client trusted by access_map (a
 * forwarder or mailing list of ours, as OpenDMARC's IgnoreHosts); an ARC chain does not override
 * the policy.
 */
import { randomInt } from 'node:crypto';
import type { PolicyCheck } from './policy.js';
import { refusal } from './refusals.js';
import { CONTINUE } from './types.js';

/** The check; `draw` picks a whole number below 100 (the pct sampling). */
export function dmarcCheck(draw: () => number = () => randomInt(100)): PolicyCheck {
  return (subject) => {
    if (subject.kind !== 'legacy') return CONTINUE;
    const { submission, auth } = subject;
    if (submission.client.entrance !== 'smtp' || submission.trusted) return CONTINUE;
    const p = auth?.dmarcPolicy;
    if (auth?.dmarc !== 'fail' || p === undefined) return CONTINUE;
    const sampled = p.pct >= 100 || draw() < p.pct;
    const policy =
      p.policy === 'reject' ? (sampled ? 'reject' : 'quarantine') : sampled ? p.policy : 'none';
    if (policy === 'reject') {
      return {
        kind: 'refuse',
        refusal: refusal(
          'ERR_DMARC_REJECT',
          `Message rejected: the DMARC policy of ${p.domain} is reject, and the message fails it`,
        ),
      };
    }
    if (policy === 'quarantine') {
      return {
        kind: 'continue',
        effects: { junk: submission.recipients.map((r) => r.address) },
      };
    }
    return CONTINUE;
  };
}
