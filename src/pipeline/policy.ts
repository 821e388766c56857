/**
 * The policy stage (DESIGN.md §1b): checks that decide on a message once it is whole (spam
 * scores exist only after DATA; MailScript sees the headers). Each check is a function of the
 * submission and the maps' snapshot that returns a verdict; they run in order and the first
 * refusal stops the message; effects (discard, hold, header lines) accumulate.
 *
 * The checks are given by the composition root from the configuration; with none configured,
 * every message continues. For AMP mail a check sees only what the gateway can see (the routing
 * header, never the content).
 */
import type { MapSnapshot } from '../routing/index.js';
import { mergeEffects } from './admission.js';
import type { AuthResults } from './authentication.js';
import type { AmpSubmission, Effects, LegacySubmission, Verdict } from './types.js';

export type PolicySubject =
  | {
      readonly kind: 'legacy';
      readonly submission: LegacySubmission;
      /** SPF, DKIM and DMARC of the message (checked before the policy stage). */
      readonly auth?: AuthResults;
    }
  | { readonly kind: 'amp'; readonly submission: AmpSubmission };

/**
 * A check of the policy stage; `prior` is what the checks before it asked for (a later check
 * may read an earlier one's findings, e.g. MailScript reads the spam scanners' report).
 */
export type PolicyCheck = (
  subject: PolicySubject,
  maps: MapSnapshot,
  prior: Effects,
) => Promise<Verdict> | Verdict;

export async function runPolicy(
  checks: readonly PolicyCheck[],
  subject: PolicySubject,
  maps: MapSnapshot,
): Promise<Verdict> {
  let effects: Effects = {};
  for (const check of checks) {
    const v = await check(subject, maps, effects);
    if (v.kind === 'refuse') return v;
    effects = mergeEffects(effects, v.effects);
  }
  return { kind: 'continue', effects };
}
