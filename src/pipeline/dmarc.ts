/**
 * The DMARC policy of the From domain, acted on (AFTERSMTP_SMTP_DMARC_ENFORCE=yes; RFC 7489
 * §6.6.4 and §6.7, what OpenDMARC adds to Postfix): mail from port 25 that fails DMARC (its From
 * domain aligned with neither SPF nor DKIM) is refused at the end of DATA, 550 5.7.1, when that
 * domain's policy is `reject`, and filed in every recipient's Junk folder when it is
 * `quarantine`. With `pct` below 100 only that share of the failing mail gets the policy; the
 * rest gets the next weaker one (reject becomes quarantine, quarantine becomes none).
 *
 * Not acted on: submission, whose users are authenticated; a client trusted by access_map (a
 * forwarder or mailing list of ours, as OpenDMARC's IgnoreHosts); mail whose ARC chain passed
 * and was last sealed by a domain the operator trusts (AFTERSMTP_SMTP_ARC_TRUSTED_SEALERS, a
 * local policy as RFC 8617 §7.2.1 allows) when that seal recorded DMARC as pass: a mailing list
 * or forwarder that changed the message (a footer, a subject tag) and so broke its DKIM saw it
 * pass before. The override trusts that sealer's word, nothing more: a trusted sealer that lies
 * or is compromised can carry any From domain past the policy.
 */
import { randomInt } from 'node:crypto';
import { domainKeys, lookupDomain } from '../routing/addresses.js';
import type { PolicyCheck } from './policy.js';
import { refusal } from './refusals.js';
import { CONTINUE, type AuthResults } from './types.js';

export interface DmarcCheckOptions {
  /** ARC sealers whose recorded DMARC pass overrides the policy: these domains and their subdomains. */
  readonly trustedArcSealers?: readonly string[];
  /** Told of every override, for the log. */
  readonly onOverride?: (facts: { transaction: string; domain: string; sealer: string }) => void;
  /** Picks a whole number below 100 (the pct sampling). */
  readonly draw?: () => number;
}

/** Parses AFTERSMTP_SMTP_ARC_TRUSTED_SEALERS: domains separated by commas or spaces. */
export function parseTrustedSealers(spec: string): string[] {
  const domains: string[] = [];
  for (const item of spec.split(/[\s,]+/).filter((s) => s !== '')) {
    const domain = lookupDomain(item);
    if (domain === undefined) throw new Error(`"${item}": expected a domain, e.g. google.com`);
    if (!domains.includes(domain)) domains.push(domain);
  }
  return domains;
}

/** The trusted sealer that vouches for the message's DMARC pass, if one does. */
function vouchingSealer(auth: AuthResults, trusted: readonly string[]): string | undefined {
  const seal = auth.arcSeal;
  if (auth.arc !== 'pass' || seal === undefined || seal.dmarc !== 'pass') return undefined;
  return domainKeys(seal.sealer, true).some((d) => trusted.includes(d)) ? seal.sealer : undefined;
}

export function dmarcCheck(options: DmarcCheckOptions = {}): PolicyCheck {
  const draw = options.draw ?? (() => randomInt(100));
  const trusted = options.trustedArcSealers ?? [];
  return (subject) => {
    if (subject.kind !== 'legacy') return CONTINUE;
    const { submission, auth } = subject;
    if (submission.client.entrance !== 'smtp' || submission.trusted) return CONTINUE;
    const p = auth?.dmarcPolicy;
    if (auth?.dmarc !== 'fail' || p === undefined) return CONTINUE;
    const sampled = p.pct >= 100 || draw() < p.pct;
    const policy =
      p.policy === 'reject' ? (sampled ? 'reject' : 'quarantine') : sampled ? p.policy : 'none';
    if (policy !== 'reject' && policy !== 'quarantine') return CONTINUE;
    const sealer = vouchingSealer(auth, trusted);
    if (sealer !== undefined) {
      options.onOverride?.({ transaction: submission.transaction, domain: p.domain, sealer });
      return CONTINUE;
    }
    if (policy === 'reject') {
      return {
        kind: 'refuse',
        refusal: refusal(
          'ERR_DMARC_REJECT',
          `Message rejected: the DMARC policy of ${p.domain} is reject, and the message fails it`,
        ),
      };
    }
    return { kind: 'continue', effects: { junk: submission.recipients.map((r) => r.address) } };
  };
}
