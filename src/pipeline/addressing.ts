/**
 * Addressing (DESIGN.md §1b): where each recipient's copy goes. For an SMTP recipient:
 * virtual_alias_maps (one address to many DIDs and addresses), then canonical_maps (address to
 * DID), then the default mapping of an address of a served domain to its DID (addresses.ts);
 * an address of another domain is delivered as it is (off-ramp), unless mx_record_map routes it
 * to an AMP gateway or AMP discovery finds its DID. An SRS address of a served domain (a bounce
 * of mail this gateway forwarded) goes back to the address it stands for. Every DID passes the one recipient check
 * (recipients.ts). For an AMP envelope: each DID it is wrapped to, checked, and wrapped to that
 * DID's current key. Targets are deduplicated, order kept.
 *
 * An SMTP recipient is accepted when all its targets are (a virtual alias whose target is unknown
 * is refused as a whole, so the sender learns of it at RCPT rather than from a bounce); the
 * refusal is temporary when any target's is.
 */
import { isSrsLocal, type Srs } from '../mail/srs.js';
import type { MapSnapshot } from '../routing/index.js';
import { defaultDid, didDomain, domainOf, isDid, smtpDestination } from './addresses.js';
import { checkRecipient, type RecipientCheckDeps, type RecipientState } from './recipients.js';
import { oneLine, refusal } from './refusals.js';
import type { AmpSubmission, RecipientPlan, Refusal, Target } from './types.js';

export interface AddressingDeps extends RecipientCheckDeps {
  /** The recipient delimiter of address extensions (Postfix recipient_delimiter). */
  readonly delimiter?: string;
  /** Reverses the SRS addresses of forwarded mail (a bounce to one goes to the original sender). */
  readonly srs?: Srs;
}

export type AddressingResult =
  | { readonly kind: 'accepted'; readonly plan: RecipientPlan }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

/** Resolves one SMTP recipient address (already admitted) to its targets. */
export async function addressRecipient(
  rcpt: string,
  deps: AddressingDeps,
  maps: MapSnapshot,
): Promise<AddressingResult> {
  const expansion = maps.expandAlias(rcpt);
  if (expansion.kind === 'limit') {
    return {
      kind: 'refused',
      refusal: refusal('ERR_ALIAS_LIMIT', `<${rcpt}>: ${expansion.reason}`),
    };
  }
  const names = expansion.kind === 'expanded' ? expansion.targets : [rcpt];
  const targets: Target[] = [];
  const seen = new Set<string>();
  let worst: Refusal | undefined;
  for (const name of names) {
    const t = await resolveTarget(name, deps, maps);
    if (t.kind === 'refused') {
      if (worst === undefined || (worst.temporary && !t.refusal.temporary)) worst = t.refusal;
      continue;
    }
    const key = t.target.kind === 'did' ? t.target.did : t.target.address.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    targets.push(t.target);
  }
  if (worst !== undefined) {
    const text =
      expansion.kind === 'expanded'
        ? `<${rcpt}>: Recipient address rejected: an alias target is not deliverable`
        : `<${rcpt}>: Recipient address rejected: ${worst.text}`;
    return { kind: 'refused', refusal: { ...worst, text: oneLine(text) } };
  }
  return { kind: 'accepted', plan: { address: rcpt, targets } };
}

type TargetResult =
  | { readonly kind: 'target'; readonly target: Target }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

function fromState(did: string, s: RecipientState): TargetResult {
  return s.state === 'current'
    ? { kind: 'target', target: { kind: 'did', did, record: s.record, local: s.local } }
    : { kind: 'refused', refusal: s.refusal };
}

async function resolveTarget(
  name: string,
  deps: AddressingDeps,
  maps: MapSnapshot,
): Promise<TargetResult> {
  if (isDid(name)) return fromState(name, await checkRecipient(name, deps));
  const canonical = maps.canonicalRecipient(name) ?? name;
  if (isDid(canonical)) return fromState(canonical, await checkRecipient(canonical, deps));
  const domain = domainOf(canonical);
  if (deps.domains.has(domain)) {
    const local = canonical.slice(0, canonical.lastIndexOf('@'));
    if (deps.srs !== undefined && isSrsLocal(local)) {
      const original = deps.srs.reverse(local);
      if (original === undefined) {
        return { kind: 'refused', refusal: refusal('ERR_RECIPIENT_UNKNOWN', 'User unknown') };
      }
      return outbound(original, deps, maps);
    }
    const did = defaultDid(canonical, deps.delimiter);
    if (did === undefined) {
      return { kind: 'refused', refusal: refusal('ERR_RECIPIENT_UNKNOWN', 'User unknown') };
    }
    const s = await checkRecipient(did, deps);
    return s.state === 'refused' && s.refusal.code === 'ERR_RECIPIENT_UNKNOWN'
      ? { kind: 'refused', refusal: refusal('ERR_RECIPIENT_UNKNOWN', 'User unknown') }
      : fromState(did, s);
  }
  return outbound(canonical, deps, maps);
}

/**
 * An address of a domain not served here: mx_record_map first (an `error:` route refuses, an
 * `amp:` route makes it an AMP recipient), then AMP discovery of its default DID, then SMTP.
 */
async function outbound(
  address: string,
  deps: AddressingDeps,
  maps: MapSnapshot,
): Promise<TargetResult> {
  const route = maps.route(address);
  if (route?.kind === 'error') {
    return { kind: 'refused', refusal: refusal('ERR_ROUTE_ERROR', route.text) };
  }
  const smtp: TargetResult = {
    kind: 'target',
    target: { kind: 'address', address, destination: smtpDestination(address) },
  };
  if (route?.kind === 'smtp' || deps.remote === undefined) return smtp;
  const did = defaultDid(address, deps.delimiter);
  if (did === undefined) return smtp;
  const r = await deps.remote.lookup(did);
  switch (r.state) {
    case 'current':
      return { kind: 'target', target: { kind: 'did', did, record: r.record, local: false } };
    case 'failed':
      // A domain without AMP is the off-ramp's; a lookup that may work later is tried again.
      return r.temporary
        ? { kind: 'refused', refusal: { code: r.code, temporary: true, text: oneLine(r.text) } }
        : smtp;
    default:
      // An explicit AMP route means the address must be an AMP identity there.
      return route?.kind === 'amp'
        ? { kind: 'refused', refusal: refusal('ERR_RECIPIENT_UNKNOWN', 'User unknown') }
        : smtp;
  }
}

/** Per DID an AMP envelope is wrapped to: the recipient check and the wrap's key. */
export async function addressAmp(
  sub: AmpSubmission,
  deps: AddressingDeps,
): Promise<Map<string, Refusal | undefined>> {
  const out = new Map<string, Refusal | undefined>();
  const env = sub.envelope;
  for (const w of env.wraps) {
    if (out.has(w.recipient)) continue;
    const did = w.recipient;
    const domain = didDomain(did);
    if (sub.client.entrance === 'relay' && (domain === undefined || !deps.domains.has(domain))) {
      out.set(did, refusal('ERR_NOT_OUR_DOMAIN', `${did} is not a DID of this gateway`));
      continue;
    }
    const s = await checkRecipient(did, deps);
    if (s.state === 'refused') {
      out.set(did, s.refusal);
      continue;
    }
    const stale = env.wraps.some((x) => x.recipient === did && !x.keyId.equals(s.record.keyId));
    out.set(
      did,
      stale
        ? refusal(
            'ERR_RECIPIENT_KEY_STALE',
            `the wrap for ${did} is for a key that is not its current one (resolve it again)`,
          )
        : undefined,
    );
  }
  return out;
}
