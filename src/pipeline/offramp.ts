/**
 * Transform for the off-ramp (DESIGN.md §1b, §4): what a legacy message becomes for the ordinary
 * addresses among its targets. Three cases, by who the gateway is for the message:
 *
 * - Originated here: a submission (587, 465) or a client that access_map trusts on port 25 (an
 *   internal system). The message gets a Received line and a DKIM signature of its From domain
 *   (or the nearest parent domain with keys); the reverse path stays the sender's. The results
 *   of our own checks are not added: they are for the recipients of this gateway, not others.
 * - Forwarded: a recipient of a domain served here whose alias (virtual_alias_maps,
 *   canonical_maps) names an address elsewhere. The message keeps everything it came with, gets
 *   our Received and Authentication-Results lines and an ARC set (src/mail/arc.ts) sealed by the
 *   forwarding domain, and the reverse path is rewritten with SRS (src/mail/srs.ts) so SPF at
 *   the receiver passes and a bounce comes back here (addressing reverses it).
 * - Relayed: a recipient of a relay domain (relay_domains) goes to that domain's own server as it
 *   came, with our Received and Authentication-Results lines.
 */
import { arcSeal, type ArcChainState } from '../mail/arc.js';
import { dkimSignAsync, type DkimKey } from '../mail/dkim.js';
import type { Srs } from '../mail/srs.js';
import { domainOf } from './addresses.js';
import type { QueueEntry } from './commit.js';
import { encodeOutbound } from '../queue/outbound.js';
import type { LegacySubmission, RecipientPlan, Target } from './types.js';

/** The DKIM keys that sign for a domain now (src/mail/dkim-keys.ts). */
export interface DkimKeySource {
  signingKeys(domain: string): DkimKey[];
}

export interface OffRampTransformDeps {
  /** Absent: nothing is signed or sealed. */
  readonly dkimKeys?: DkimKeySource;
  /** Absent: forwarded mail keeps its reverse path. */
  readonly srs?: Srs;
}

/** What was done to one outbound copy, for the log. */
export interface OutboundNote {
  readonly kind: 'originated' | 'forwarded' | 'relayed';
  readonly recipients: number;
  /** d= of the DKIM signatures or of the ARC seal; absent when the domain has no key. */
  readonly signedBy?: string;
}

type AddressTarget = Extract<Target, { kind: 'address' }>;

/** The keys of `domain`, or of its nearest parent domain that has some (relaxed alignment). */
export function keysFor(domain: string, source: DkimKeySource | undefined): DkimKey[] {
  if (source === undefined) return [];
  const labels = domain.toLowerCase().split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const keys = source.signingKeys(labels.slice(i).join('.'));
    if (keys.length > 0) return keys;
  }
  return [];
}

/** The message with DKIM signatures of `fromDomain` in front (none when it has no keys). */
export async function signOriginated(
  message: Buffer,
  fromDomain: string,
  deps: OffRampTransformDeps,
  now: number,
): Promise<{ message: Buffer; signedBy?: string }> {
  const keys = keysFor(fromDomain, deps.dkimKeys);
  if (keys.length === 0) return { message };
  const fields = await dkimSignAsync(message, keys, now);
  return {
    message: Buffer.concat([Buffer.from(fields, 'latin1'), message]),
    signedBy: keys[0]?.domain,
  };
}

/** Whether the SMTP client sends as this gateway's own user or system (see the module comment). */
export function originatesHere(sub: LegacySubmission): boolean {
  return sub.client.entrance === 'submission' || sub.trusted;
}

export interface OutboundInput {
  readonly sub: LegacySubmission;
  /** The message as stamped for forwarding and relaying (Received, our results, PREPENDs). */
  readonly stamped: Buffer;
  /** The message as stamped for origination (Received and PREPENDs only). */
  readonly originated: Buffer;
  /** The domain of the header From, for origination's DKIM signature. */
  readonly fromDomain: string;
  /** What the on-ramp found of the ARC chain; absent: the chain must not be sealed. */
  readonly arc?: ArcChainState;
  /** MailScript route_via: the route of every copy (instead of mx_record_map's). */
  readonly route?: string;
}

/**
 * The queue entries for the address targets of a legacy submission: one per case (forwarded
 * ones one per forwarding domain), each recipient once, the body an off-ramp record.
 */
export async function outboundEntries(
  input: OutboundInput,
  deps: OffRampTransformDeps,
  now: number,
): Promise<{ entries: QueueEntry[]; notes: OutboundNote[] }> {
  const { sub } = input;
  const groups = groupTargets(sub.recipients, originatesHere(sub));
  const entries: QueueEntry[] = [];
  const notes: OutboundNote[] = [];
  for (const g of groups) {
    let mailFrom = sub.mailFrom;
    let message: Buffer;
    let signedBy: string | undefined;
    if (g.kind === 'originated') {
      ({ message, signedBy } = await signOriginated(input.originated, input.fromDomain, deps, now));
    } else if (g.kind === 'forwarded') {
      mailFrom = deps.srs?.forward(sub.mailFrom, g.domain, now) ?? sub.mailFrom;
      const key = keysFor(g.domain, deps.dkimKeys).find((k) => k.algorithm === 'rsa-sha256');
      if (key !== undefined && input.arc !== undefined) {
        const set = await arcSeal(input.stamped, key, input.arc, now);
        message = Buffer.concat([Buffer.from(set, 'latin1'), input.stamped]);
        signedBy = key.domain;
      } else {
        message = input.stamped;
      }
    } else {
      message = input.stamped;
    }
    entries.push({
      recipients: g.targets.map((t) => ({ address: t.address, destination: t.destination })),
      body: encodeOutbound({
        mailFrom,
        message,
        ...(input.route !== undefined ? { route: input.route } : {}),
      }),
    });
    notes.push({
      kind: g.kind,
      recipients: g.targets.length,
      ...(signedBy !== undefined ? { signedBy } : {}),
    });
  }
  return { entries, notes };
}

interface TargetGroup {
  readonly kind: OutboundNote['kind'];
  /** The forwarding domain (forwarded only). */
  readonly domain: string;
  readonly targets: AddressTarget[];
}

/** The address targets by case; an address reached twice is sent once, in its first group. */
function groupTargets(plans: readonly RecipientPlan[], originated: boolean): TargetGroup[] {
  const groups = new Map<string, TargetGroup>();
  const seen = new Set<string>();
  for (const plan of plans) {
    for (const t of plan.targets) {
      if (t.kind !== 'address') continue;
      const key = t.address.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      const forwarded = key !== plan.address.toLowerCase();
      const kind = originated ? 'originated' : forwarded ? 'forwarded' : 'relayed';
      const domain = kind === 'forwarded' ? domainOf(plan.address) : '';
      const id = `${kind}:${domain}`;
      const g = groups.get(id) ?? { kind, domain, targets: [] };
      g.targets.push(t);
      groups.set(id, g);
    }
  }
  return [...groups.values()];
}
