/**
 * Admission (DESIGN.md §1b): who may submit what. For SMTP it answers at each step of the
 * dialogue, from the client's address (connect), the reverse path (MAIL) and each recipient
 * address (RCPT): access_map, AUTH on submission, the relay check (relay_domains). For AMP it
 * checks the whole envelope: its sender is the authenticated client (client API) or the
 * sending gateway vouches for it with a signature that verifies over the connection that
 * presents that gateway's published certificate (relay). Every function returns a Verdict.
 *
 * Postfix access-map semantics (docs/MAPS.md): OK accepts this step and, for a client address,
 * marks the client trusted (it may relay, like mynetworks); DUNNO says nothing; REJECT and DEFER
 * refuse (with the entry's text, and its numeric code when it gave one); DISCARD and HOLD
 * accept and act on the whole message after DATA; PREPEND adds a header line.
 */
import { parseDid } from '../identity/did.js';
import { verifyGatewaySignature } from '../envelope/gateway.js';
import type { VerifiedBatches } from '../identity/batch-signature.js';
import type { AccessMatch, MapSnapshot } from '../routing/index.js';
import { localState, type LedgerView, type RemoteDirectory } from './recipients.js';
import { oneLine, refusal } from './refusals.js';
import { CONTINUE, type AmpSubmission, type Client, type Effects, type Verdict } from './types.js';
import { domainOf, localDid } from './addresses.js';

/** The result of the connect step: the verdict, and whether the client may relay. */
export interface ClientVerdict {
  readonly verdict: Verdict;
  readonly trusted: boolean;
}

/** What the SMTP dialogue has established so far, as admission and addressing read it. */
export interface SmtpState {
  readonly client: Client;
  /** access_map said OK for the client address: it may send to any domain. */
  readonly trusted: boolean;
  readonly mailFrom?: string;
}

/** What admission needs besides the maps. */
export interface AdmissionDeps {
  /** The domains this gateway serves (AFTERSMTP_DOMAIN): their mailboxes are here. */
  readonly domains: ReadonlySet<string>;
  readonly ledger: LedgerView;
  readonly remote?: RemoteDirectory;
  /** Peers' batch signatures already verified (docs/PROTOCOL.md §6.4). */
  readonly batches?: VerifiedBatches;
}

/** Turns an access-map entry into a verdict; `what` names the thing looked up, for the text. */
export function accessVerdict(match: AccessMatch | undefined, what: string): Verdict {
  if (match === undefined) return CONTINUE;
  const text = match.text !== undefined && match.text !== '' ? oneLine(match.text) : undefined;
  switch (match.action) {
    case 'OK':
    case 'DUNNO':
      return CONTINUE;
    case 'REJECT':
    case 'DEFER': {
      const temporary = match.code !== undefined ? match.code < 500 : match.action === 'DEFER';
      const r = refusal(
        temporary ? 'ERR_ACCESS_DEFERRED' : 'ERR_ACCESS_DENIED',
        text ?? `${what}: Access denied`,
      );
      return {
        kind: 'refuse',
        refusal: match.code !== undefined ? { ...r, temporary, smtpCode: match.code } : r,
      };
    }
    case 'DISCARD':
      return {
        kind: 'continue',
        effects: { discard: text ?? `${what} (access_map ${match.key})` },
      };
    case 'HOLD':
      return { kind: 'continue', effects: { hold: text ?? `${what} (access_map ${match.key})` } };
    case 'PREPEND':
      return text === undefined ? CONTINUE : { kind: 'continue', effects: { headers: [text] } };
  }
}

/**
 * Both sets of effects: the first discard and hold reason, redirect and route kept; header lines
 * and webhook calls in order; junk recipients united, refused recipients in order (the first
 * refusal of a recipient kept), the first spam report kept.
 */
export function mergeEffects(a: Effects, b: Effects | undefined): Effects {
  if (b === undefined) return a;
  const headers = [...(a.headers ?? []), ...(b.headers ?? [])];
  const junk = [...new Set([...(a.junk ?? []), ...(b.junk ?? [])])];
  const webhooks = [...(a.webhooks ?? []), ...(b.webhooks ?? [])];
  const refused = [...(a.refusedRecipients ?? []), ...(b.refusedRecipients ?? [])].filter(
    (r, i, all) => all.findIndex((x) => x.recipient === r.recipient) === i,
  );
  const spam = a.spam ?? b.spam;
  return {
    ...((a.discard ?? b.discard) ? { discard: a.discard ?? b.discard } : {}),
    ...((a.hold ?? b.hold) ? { hold: a.hold ?? b.hold } : {}),
    ...(headers.length > 0 ? { headers } : {}),
    ...(junk.length > 0 ? { junk } : {}),
    ...((a.redirect ?? b.redirect) ? { redirect: a.redirect ?? b.redirect } : {}),
    ...((a.route ?? b.route) ? { route: a.route ?? b.route } : {}),
    ...(webhooks.length > 0 ? { webhooks } : {}),
    ...(refused.length > 0 ? { refusedRecipients: refused } : {}),
    ...(spam !== undefined ? { spam } : {}),
  };
}

/** SMTP connect: access_map on the client address. */
export function admitClient(client: Client, maps: MapSnapshot): ClientVerdict {
  const match = maps.accessClient(client.address);
  return {
    verdict: accessVerdict(match, `Client host [${client.address}]`),
    trusted: match?.action === 'OK',
  };
}

/**
 * The addresses a submission login may use as its reverse path: the login itself, the address
 * canonical_maps gives its DID, and the DID's own `localpart@domain`.
 */
export function ownedAddresses(client: Client, maps: MapSnapshot): Set<string> {
  const owned = new Set<string>();
  if (client.login !== undefined) owned.add(client.login.toLowerCase());
  if (client.did !== undefined) {
    const canonical = maps.canonicalSender(client.did);
    if (canonical !== undefined) owned.add(canonical.toLowerCase());
    const { domain, localpart } = parseDid(client.did);
    owned.add(`${localpart}@${domain}`.toLowerCase());
  }
  return owned;
}

/** The result of the MAIL FROM step: the verdict, and whether access_map said OK for it. */
export interface SenderVerdict {
  readonly verdict: Verdict;
  /** access_map said OK for the reverse path: the DNS checks of its domain are skipped. */
  readonly permitted: boolean;
}

/** SMTP MAIL FROM: AUTH on submission (and a reverse path the login owns), then access_map. */
export function admitSender(state: SmtpState, mailFrom: string, maps: MapSnapshot): SenderVerdict {
  const { client } = state;
  const refused = (code: Parameters<typeof refusal>[0], text: string): SenderVerdict => ({
    verdict: { kind: 'refuse', refusal: refusal(code, text) },
    permitted: false,
  });
  if (client.entrance === 'submission') {
    if (client.did === undefined) return refused('ERR_AUTH_REQUIRED', 'Authentication required');
    if (mailFrom !== '' && !ownedAddresses(client, maps).has(mailFrom.toLowerCase())) {
      return refused(
        'ERR_SENDER_MISMATCH',
        `<${mailFrom}>: Sender address rejected: not owned by user ${client.login ?? ''}`,
      );
    }
  }
  const match = maps.accessSender(mailFrom);
  return {
    verdict: accessVerdict(match, `<${mailFrom}>: Sender address rejected`),
    permitted: match?.action === 'OK',
  };
}

/** Whether mail for `domain` is accepted from anyone (it is ours, or in relay_domains). */
export function acceptsMailFor(domain: string, deps: AdmissionDeps, maps: MapSnapshot): boolean {
  return deps.domains.has(domain) || maps.isRelayDomain(domain);
}

/**
 * SMTP RCPT TO, before addressing: access_map on the recipient, then the relay check: a domain
 * this gateway accepts mail for, or a client that may relay (trusted, or authenticated).
 */
export function admitRecipient(
  state: SmtpState,
  rcpt: string,
  deps: AdmissionDeps,
  maps: MapSnapshot,
): Verdict {
  const access = accessVerdict(maps.accessRecipient(rcpt), `<${rcpt}>: Recipient address rejected`);
  if (access.kind === 'refuse') return access;
  const mayRelay = state.trusted || state.client.entrance === 'submission';
  if (!mayRelay && !acceptsMailFor(domainOf(rcpt), deps, maps)) {
    return {
      kind: 'refuse',
      refusal: refusal('ERR_RELAY_DENIED', `<${rcpt}>: Relay access denied`),
    };
  }
  return access;
}

/** AMP: the client API's sender is the token's DID, active; the relay's is vouched for. */
export async function admitAmp(sub: AmpSubmission, deps: AdmissionDeps): Promise<Verdict> {
  const env = sub.envelope;
  if (sub.receivedAt >= env.expiresAt) {
    return {
      kind: 'refuse',
      refusal: refusal(
        'ERR_ENVELOPE_EXPIRED',
        `the message expired at ${new Date(env.expiresAt).toISOString()}`,
      ),
    };
  }
  return sub.client.entrance === 'relay' ? admitRelayed(sub, deps) : admitDispatched(sub, deps);
}

function admitDispatched(sub: AmpSubmission, deps: AdmissionDeps): Verdict {
  const sender = sub.envelope.sender;
  if (sender !== sub.client.did) {
    return {
      kind: 'refuse',
      refusal: refusal(
        'ERR_SENDER_MISMATCH',
        `the envelope's sender ${sender} is not the authenticated ${sub.client.did ?? '(none)'}`,
      ),
    };
  }
  const s = localState(sender, deps.ledger);
  if (s.state === 'refused') {
    const code =
      s.refusal.code === 'ERR_RECIPIENT_REVOKED' ? 'ERR_SENDER_REVOKED' : 'ERR_SENDER_UNKNOWN';
    return { kind: 'refuse', refusal: refusal(code, `${sender} is not an active identity here`) };
  }
  return CONTINUE;
}

/**
 * The relay (docs/PROTOCOL.md §13.3): the gateway signature must name the gateway of the
 * sender's domain (a domain vouches for its own senders), a domain not served here, whose record
 * is resolved from that domain's own ledger; the QUIC certificate must be the one the record
 * publishes and the signature must verify with it. A cached record that fails is resolved once
 * more before the refusal (it may have been rotated).
 */
async function admitRelayed(sub: AmpSubmission, deps: AdmissionDeps): Promise<Verdict> {
  const env = sub.envelope;
  const refuse = (code: Parameters<typeof refusal>[0], text: string): Verdict => ({
    kind: 'refuse',
    refusal: refusal(code, text),
  });
  const g = env.gatewaySignature;
  if (g === undefined || g === null) {
    return refuse('ERR_GATEWAY_SIGNATURE', 'the envelope has no gateway signature');
  }
  const domain = parseDid(env.sender).domain;
  const expected = localDid(domain, 'gateway');
  if (g.gateway !== expected) {
    return refuse('ERR_GATEWAY_SIGNATURE', `only ${expected} may vouch for ${env.sender}`);
  }
  if (deps.domains.has(domain)) {
    return refuse('ERR_SENDER_UNVERIFIABLE', `${domain} is served here, not by a peer`);
  }
  if (deps.remote === undefined) {
    return refuse('ERR_SENDER_UNVERIFIABLE', 'this gateway does not relay');
  }
  const resolve = async (fresh: boolean): Promise<Verdict> => {
    const gw = await (deps.remote as RemoteDirectory).gateway(domain, fresh);
    if (gw.state === 'failed') {
      return {
        kind: 'refuse',
        refusal: gw.temporary
          ? refusal('ERR_SENDER_UNAVAILABLE', `cannot resolve the gateway of ${domain} now`)
          : refusal(
              'ERR_SENDER_UNVERIFIABLE',
              `the gateway of ${domain} cannot be verified (${gw.code})`,
            ),
      };
    }
    const problem = checkGateway(sub, gw.record, gw.tlsSpki, deps.batches);
    return problem === undefined ? CONTINUE : { kind: 'refuse', refusal: problem };
  };
  const first = await resolve(false);
  return first.kind === 'continue' ? first : resolve(true);
}

function checkGateway(
  sub: AmpSubmission,
  record: Parameters<typeof verifyGatewaySignature>[1],
  tlsSpki: Buffer,
  batches: VerifiedBatches | undefined,
): ReturnType<typeof refusal> | undefined {
  if (sub.client.spki === undefined || !sub.client.spki.equals(tlsSpki)) {
    return refusal(
      'ERR_PEER_MISMATCH',
      `the connection's certificate is not the one ${record.did} publishes`,
    );
  }
  try {
    verifyGatewaySignature(sub.envelope, record, batches === undefined ? {} : { batches });
  } catch (err) {
    return refusal(
      'ERR_GATEWAY_SIGNATURE',
      `the gateway signature does not verify (${(err as { code?: string }).code ?? 'invalid'})`,
    );
  }
  return undefined;
}
