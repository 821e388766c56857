/**
 * The pipeline (DESIGN.md §1b): the one way in. Entrances (src/amp/client-api, src/amp/relay,
 * src/legacy/smtp) turn wire input into the values of types.ts and call this; the stages
 * (admission, addressing, policy, transform, commit) are functions of (submission, a snapshot of
 * the maps) that return verdicts; this module is the one place that acts on them: it stops at a
 * refusal, collects effects (discard, hold, header lines), applies each entrance's rule for
 * recipients that are refused while others are not, and returns an Outcome only once the commit
 * is durable, so an entrance that answers after `submit*` resolves answers after the commit.
 *
 * Recipients refused, per entrance: SMTP answers each RCPT on its own (refused ones never reach
 * DATA); the relay accepts the recipients that pass and answers a result for each; the client
 * API refuses the whole envelope when any recipient is refused (its client fixes and sends again).
 */
import { randomBytes } from '../random.js';
import type { SecretKeySet } from '../identity/keys.js';
import { GatewaySigner } from '../envelope/gateway.js';
import { AuthorSigner } from '../envelope/envelope.js';
import { VerifiedBatches } from '../identity/batch-signature.js';
import { MESSAGE_ID_LENGTH } from '../envelope/limits.js';
import { markLatency } from '../latency.js';
import { beginWork } from '../workload.js';
import type { Srs } from '../mail/srs.js';
import type { MessagingMetrics } from '../mailbox/metrics.js';
import type { MailboxWriter } from '../mailbox/writer.js';
import type { DeliveryQueue } from '../queue/types.js';
import type { MapSnapshot } from '../routing/index.js';
import {
  admitAmp,
  admitClient,
  admitRecipient,
  admitSender,
  mergeEffects,
  type ClientVerdict,
  type SmtpState,
} from './admission.js';
import { ampDestination, didDomain, domainOf, smtpDestination } from './addresses.js';
import { blockedClient, blockedSender, type Dnsbl } from './dnsbl.js';
import { checkEphemeral } from './ephemeral.js';
import type { SenderDomainCheck } from './sender-domain.js';
import { isForOwnGateway, legacyMessage, openForLegacy, senderAddress } from './amp-offramp.js';
import { addressAmp, addressRecipient, type AddressingResult } from './addressing.js';
import type { MessageAuthenticator } from './authentication.js';
import { commitToMailboxes, commitToQueue, storeCopies, type QueueEntry } from './commit.js';
import {
  outboundEntries,
  originatesHere,
  signOriginated,
  type OffRampTransformDeps,
} from './offramp.js';
import { encodeOutbound } from '../queue/outbound.js';
import { runPolicy, type PolicyCheck } from './policy.js';
import { redirectPlan, webhookEntry } from './script-effects.js';
import type { LedgerView, RemoteDirectory } from './recipients.js';
import { keptRecipients, spamByTarget, spamHeaders, spamPartFor, withPolicyJunk } from './spam.js';
import { refusal } from './refusals.js';
import {
  messageFacts,
  originOf,
  sealCopies,
  signDispatched,
  stampedMessage,
  type SealDeps,
  type TransformDeps,
} from './transform.js';
import type {
  AmpSubmission,
  Effects,
  LegacySubmission,
  Outcome,
  RecipientResult,
  Refusal,
  Target,
  Verdict,
} from './types.js';

export interface PipelineLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface PipelineOptions extends TransformDeps, OffRampTransformDeps {
  /** The domains this gateway serves (their DIDs are in `ledger`, their mailboxes here). */
  readonly domains: readonly string[];
  readonly ledger: LedgerView;
  /** Identities of other domains; absent: this gateway does not relay. */
  readonly remote?: RemoteDirectory;
  /** The current snapshot of the maps (taken once per step). */
  readonly maps: () => MapSnapshot;
  readonly queue: DeliveryQueue;
  readonly mailbox: MailboxWriter;
  readonly authenticator: MessageAuthenticator;
  /** Checks of the policy stage, in order (spam scanners and MailScript plug in here). */
  readonly policy?: readonly PolicyCheck[];
  /** DNS blocklists of port 25's clients (AFTERSMTP_SMTP_DNSBL); absent: none. */
  readonly dnsbl?: Dnsbl;
  /** Domain blocklists of port 25's senders (AFTERSMTP_SMTP_RHSBL); absent: none. */
  readonly rhsbl?: Dnsbl;
  /** Port 25: refuse a sender whose domain cannot receive mail; absent: not checked. */
  readonly senderDomains?: SenderDomainCheck;
  /** Postfix recipient_delimiter (default '+'). */
  readonly delimiter?: string;
  readonly log: PipelineLogger;
  readonly metrics?: Pick<MessagingMetrics, 'messageIn'>;
}

export type { SmtpState } from './admission.js';

/** What RCPT TO answers: the recipient's plan or its refusal, with its access entry's effects. */
export type RcptResult = AddressingResult & { readonly effects?: Effects };

/** The checks an SMTP listener delayed to RCPT TO: the client's, and the sender's (MAIL FROM). */
export interface DelayedChecks {
  readonly client: boolean;
  readonly sender?: string;
}

/** Nothing delayed: the client and the sender were judged when they spoke. */
const NOTHING_PENDING: DelayedChecks = { client: false };

/** The verdicts `rcptTo` reached, up to the first refusal. */
export interface RcptAnswer {
  readonly client?: ClientVerdict;
  readonly sender?: Verdict;
  readonly rcpt?: RcptResult;
}

export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #domains: ReadonlySet<string>;
  readonly #deps: {
    domains: ReadonlySet<string>;
    ledger: LedgerView;
    remote?: RemoteDirectory;
    delimiter?: string;
    srs?: Srs;
    batches: VerifiedBatches;
  };
  readonly #seal: SealDeps;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#domains = new Set(options.domains.map((d) => d.toLowerCase()));
    this.#deps = {
      domains: this.#domains,
      ledger: options.ledger,
      ...(options.remote !== undefined ? { remote: options.remote } : {}),
      ...(options.delimiter !== undefined ? { delimiter: options.delimiter } : {}),
      ...(options.srs !== undefined ? { srs: options.srs } : {}),
      batches: new VerifiedBatches(),
    };
    this.#seal = {
      ...options,
      authorSigner: new AuthorSigner(options.gatewayKeys),
      gatewaySigner: new GatewaySigner(options.gatewayKeys),
    };
  }

  get gatewayKeys(): SecretKeySet {
    return this.#o.gatewayKeys;
  }

  // ---- the SMTP dialogue: admission and addressing, one step at a time ----

  /** At connect: may this client talk to us, and may it relay? */
  connect(client: SmtpState['client']): Promise<ClientVerdict> {
    return this.#admitClient(client, this.#o.maps());
  }

  /** access_map on the client's address, then (port 25, no access_map OK) the blocklists. */
  async #admitClient(client: SmtpState['client'], maps: MapSnapshot): Promise<ClientVerdict> {
    const judged = admitClient(client, maps);
    const dnsbl = this.#o.dnsbl;
    if (dnsbl === undefined || client.entrance !== 'smtp') return judged;
    if (judged.trusted || judged.verdict.kind === 'refuse') return judged;
    const listed = await dnsbl.listing(client.address);
    return listed === undefined
      ? judged
      : { verdict: blockedClient(client, listed), trusted: false };
  }

  /** At MAIL FROM. */
  mailFrom(state: SmtpState, address: string): Promise<Verdict> {
    return this.#admitSender(state, address, this.#o.maps());
  }

  /**
   * AUTH and access_map on the reverse path, then (port 25, a client not trusted, no access_map
   * OK for the sender, not the null sender) whether its domain can receive mail, and the domain
   * blocklists.
   */
  async #admitSender(state: SmtpState, address: string, maps: MapSnapshot): Promise<Verdict> {
    const { verdict: judged, permitted } = admitSender(state, address, maps);
    const { rhsbl, senderDomains } = this.#o;
    if (judged.kind === 'refuse' || address === '' || permitted) return judged;
    if (rhsbl === undefined && senderDomains === undefined) return judged;
    if (state.client.entrance !== 'smtp' || state.trusted) return judged;
    if (senderDomains !== undefined) {
      const exists = await senderDomains.verdict(address);
      if (exists.kind === 'refuse') return exists;
    }
    if (rhsbl === undefined) return judged;
    const domain = domainOf(address);
    const listed = await rhsbl.domainListing(domain);
    return listed === undefined ? judged : blockedSender(domain, listed);
  }

  /**
   * At RCPT TO: admission, then addressing, with the effects of the recipient's access entry.
   * Checks an SMTP listener delayed to it (Postfix's smtpd_delay_reject, docs/MAPS.md), the
   * client's and the sender's, come first, in the order of the dialogue, all on one snapshot of
   * the maps. Stops at the first refusal; the answer holds each verdict it reached, for the
   * listener to keep for the connection (client) or the transaction (sender).
   */
  async rcptTo(
    state: SmtpState,
    address: string,
    pending: DelayedChecks = NOTHING_PENDING,
  ): Promise<RcptAnswer> {
    const maps = this.#o.maps();
    let trusted = state.trusted;
    let client: ClientVerdict | undefined;
    if (pending.client) {
      client = await this.#admitClient(state.client, maps);
      if (client.verdict.kind === 'refuse') return { client };
      trusted = client.trusted;
    }
    const admitted = { ...state, trusted };
    let sender: Verdict | undefined;
    if (pending.sender !== undefined) {
      sender = await this.#admitSender(admitted, pending.sender, maps);
      if (sender.kind === 'refuse') return { ...(client ? { client } : {}), sender };
    }
    const rcpt = await this.#rcptTo(admitted, address, maps);
    return { ...(client ? { client } : {}), ...(sender ? { sender } : {}), rcpt };
  }

  async #rcptTo(state: SmtpState, address: string, maps: MapSnapshot): Promise<RcptResult> {
    const admitted = admitRecipient(state, address, this.#deps, maps);
    if (admitted.kind === 'refuse') return { kind: 'refused', refusal: admitted.refusal };
    const addressed = await addressRecipient(address, this.#deps, maps);
    return admitted.effects === undefined ? addressed : { ...addressed, effects: admitted.effects };
  }

  // ---- whole submissions ----

  /** A legacy message after DATA: policy, transform (verify, seal), commit. */
  async submitLegacy(sub: LegacySubmission): Promise<Outcome> {
    const done = beginWork();
    const outcome = await this.#legacy(sub)
      .catch((err: unknown) => this.#failed(sub, err))
      .finally(done);
    this.#count(sub.client.entrance, outcome);
    return outcome;
  }

  /** An AMP envelope: admission, addressing, policy, transform, commit. */
  async submitAmp(sub: AmpSubmission): Promise<Outcome> {
    const done = beginWork();
    const outcome = await this.#amp(sub)
      .catch((err: unknown) => this.#failed(sub, err))
      .finally(done);
    this.#count(sub.client.entrance, outcome);
    return outcome;
  }

  async #legacy(received: LegacySubmission): Promise<Outcome> {
    markLatency('pipeline.start', received.transaction);
    const maps = this.#o.maps();
    const messageId = randomBytes(MESSAGE_ID_LENGTH);
    const id = messageId.toString('hex');
    // Authentication first: the policy stage (spam, MailScript) reads SPF, DKIM and DMARC.
    const auth =
      received.auth ??
      (await this.#o.authenticator.check(received.message, received.client, received.mailFrom));
    const policy = await runPolicy(
      this.#o.policy ?? [],
      { kind: 'legacy', submission: received, auth },
      maps,
    );
    if (policy.kind === 'refuse') return this.#refused(received, policy.refusal);
    const effects = mergeEffects(received.effects, policy.effects);
    // Recipients the policy refused get no copy; the message is refused when none is left.
    const kept = keptRecipients(received.recipients, effects.refusedRecipients);
    if (!Array.isArray(kept)) return this.#refused(received, kept as Refusal);
    const recipients: RecipientResult[] = [
      ...kept.map((r) => ({ recipient: r.address })),
      ...(kept === received.recipients ? [] : (effects.refusedRecipients ?? [])),
    ];
    let sub: LegacySubmission =
      kept === received.recipients ? received : { ...received, recipients: kept };
    if (effects.redirect !== undefined) {
      const redirected = await redirectPlan(effects.redirect, this.#deps, maps);
      if (isRefusal(redirected)) return this.#refused(sub, redirected);
      this.#o.log.info(
        { transaction: sub.transaction, messageId: id, redirect: effects.redirect },
        'message redirected',
      );
      sub = { ...sub, recipients: [redirected] };
    }
    // What the scanners found, and the recipients a policy check filed as junk (set_junk).
    const report = withPolicyJunk(effects.spam, effects.junk, sub.receivedAt);
    const spam = spamByTarget(sub.recipients, report);
    if (effects.discard !== undefined) {
      await this.#webhooks(sub, id, effects);
      this.#o.log.info(
        { transaction: sub.transaction, messageId: id, reason: effects.discard },
        'message discarded',
      );
      return {
        kind: 'accepted',
        messageId: id,
        recipients,
        entries: [],
        discarded: effects.discard,
      };
    }
    const targets = sub.recipients.flatMap((r) => r.targets);
    const dids = uniqueBy(
      targets.filter((t): t is Extract<Target, { kind: 'did' }> => t.kind === 'did'),
      (t) => t.did,
    );
    const addresses = uniqueBy(
      targets.filter((t): t is Extract<Target, { kind: 'address' }> => t.kind === 'address'),
      (t) => t.address.toLowerCase(),
    );
    const stamped = stampedMessage({ ...sub, effects }, auth.headers, this.#o.hostname);
    const facts = messageFacts(sub.message);
    const origin = originOf(sub, auth, facts);
    // Copies for our own mailboxes are stored at once (one durable write each, no queue hop);
    // what the store cannot take now is queued for the worker. A held message is all queued.
    const storeNow = effects.hold === undefined;
    const copies = await sealCopies(
      dids,
      stamped,
      facts,
      origin,
      messageId,
      this.#seal,
      (did) => {
        const r = spam.byDid.get(did);
        if (r === undefined || report === undefined) return undefined;
        const headers = spamHeaders(report, [r]);
        return {
          spam: spamPartFor(report, r),
          content: stampedMessage(
            { ...sub, effects: { ...effects, headers: [...(effects.headers ?? []), ...headers] } },
            auth.headers,
            this.#o.hostname,
          ),
        };
      },
      storeNow ? (fields) => this.#o.mailbox.signReceipt(fields) : undefined,
    );
    markLatency('pipeline.sealed', sub.transaction);
    const direct = storeNow ? copies.filter((c) => c.local) : [];
    const retry = await this.#commit(sub, () =>
      storeCopies(this.#o.mailbox, direct, sub.receivedAt),
    );
    if (!Array.isArray(retry)) return retry;
    const queued = [...copies.filter((c) => !direct.includes(c)), ...retry];
    const entries: QueueEntry[] = queued.map((c) => ({
      recipients: [
        { address: c.recipient, destination: ampDestination(didDomain(c.recipient) ?? '') },
      ],
      body: c.bytes,
    }));
    // The off-ramp's copy carries X-Spam-* fields for the recipients whose mail goes out.
    const outHeaders =
      report !== undefined && spam.offramp.length > 0 ? spamHeaders(report, spam.offramp) : [];
    const outEffects: Effects =
      outHeaders.length === 0
        ? effects
        : { ...effects, headers: [...(effects.headers ?? []), ...outHeaders] };
    const outStamped =
      outEffects === effects
        ? stamped
        : stampedMessage({ ...sub, effects: outEffects }, auth.headers, this.#o.hostname);
    const outbound =
      addresses.length === 0
        ? { entries: [], notes: [] }
        : await outboundEntries(
            {
              sub: { ...sub, effects: outEffects },
              stamped: outStamped,
              originated: originatesHere(sub)
                ? stampedMessage({ ...sub, effects: outEffects }, '', this.#o.hostname)
                : outStamped,
              fromDomain: domainOf(facts.headerFrom),
              ...(auth.arcChain !== undefined ? { arc: auth.arcChain } : {}),
              ...(effects.route !== undefined ? { route: effects.route } : {}),
            },
            this.#o,
            sub.receivedAt,
          );
    entries.push(...outbound.entries);
    const info = {
      messageId: id,
      sender: sub.mailFrom,
      senderKind: 'legacy' as const,
      ...(effects.hold !== undefined ? { hold: true } : {}),
    };
    const committed =
      entries.length === 0
        ? []
        : await this.#commit(sub, () => commitToQueue(this.#o.queue, info, entries));
    if (!Array.isArray(committed)) return committed;
    markLatency('pipeline.committed', sub.transaction);
    await this.#webhooks(sub, id, effects);
    this.#o.log.info(
      {
        transaction: sub.transaction,
        messageId: id,
        entrance: sub.client.entrance,
        client: sub.client.address,
        mailFrom: sub.mailFrom,
        recipients: sub.recipients.map((r) => r.address),
        envelopes: copies.length,
        stored: direct.length - retry.length,
        offramp: outbound.notes,
        entries: committed,
        spf: auth.spf,
        dkim: auth.dkim,
        dmarc: auth.dmarc,
        ...(effects.hold !== undefined ? { held: effects.hold } : {}),
        ...(effects.junk !== undefined ? { junk: effects.junk } : {}),
        ...(effects.refusedRecipients !== undefined
          ? {
              refusedRecipients: effects.refusedRecipients.map((r) => ({
                recipient: r.recipient,
                code: r.refusal.code,
              })),
            }
          : {}),
        ...(effects.spam !== undefined
          ? {
              spam: effects.spam.recipients.map((r) => ({
                recipient: r.recipient,
                verdict: r.verdict,
                score: r.score,
              })),
            }
          : {}),
      },
      'message accepted',
    );
    return { kind: 'accepted', messageId: id, recipients, entries: committed };
  }

  async #amp(sub: AmpSubmission): Promise<Outcome> {
    const maps = this.#o.maps();
    const env = sub.envelope;
    const id = env.messageId.toString('hex');
    const admitted = await admitAmp(sub, this.#deps);
    if (admitted.kind === 'refuse') return this.#refused(sub, admitted.refusal);
    const relay = sub.client.entrance === 'relay';
    if (!relay) {
      const eph = checkEphemeral(sub, this.#o.gatewayKeys.record.did, this.#domains);
      if (eph !== undefined) return this.#refused(sub, eph);
    }
    if (!relay && isForOwnGateway(env)) return this.#ampToLegacy(sub, maps);
    const verdicts = await addressAmp(sub, this.#deps);
    if (!relay) {
      const first = [...verdicts.values()].find((r) => r !== undefined);
      if (first !== undefined) return this.#refused(sub, first);
    }
    const accepted = [...verdicts].filter(([, r]) => r === undefined).map(([did]) => did);
    const refused = [...verdicts]
      .filter((e): e is [string, Refusal] => e[1] !== undefined)
      .map(([recipient, r]) => ({ recipient, refusal: r }));
    if (accepted.length === 0) return this.#refused(sub, refused[0]?.refusal ?? noRecipient());
    const policy = await runPolicy(this.#o.policy ?? [], { kind: 'amp', submission: sub }, maps);
    if (policy.kind === 'refuse') return this.#refused(sub, policy.refusal);
    const effects = policy.effects ?? {};
    const byPolicy = effects.refusedRecipients ?? [];
    if (byPolicy.length > 0) {
      // The client API refuses the whole envelope; the relay answers each recipient.
      if (!relay) return this.#refused(sub, (byPolicy[0] as { refusal: Refusal }).refusal);
      const kept = keptRecipients(
        accepted.map((address) => ({ address })),
        byPolicy,
      );
      if (!Array.isArray(kept)) return this.#refused(sub, kept as Refusal);
      const names = new Set(kept.map((k) => k.address));
      refused.push(...byPolicy.filter((r) => accepted.includes(r.recipient)));
      accepted.splice(0, accepted.length, ...accepted.filter((a) => names.has(a)));
    }
    if (effects.discard !== undefined) {
      await this.#webhooks(sub, id, effects);
      this.#o.log.info(
        { transaction: sub.transaction, messageId: id, reason: effects.discard },
        'message discarded',
      );
      return {
        kind: 'accepted',
        messageId: id,
        recipients: [...accepted.map((recipient) => ({ recipient })), ...refused],
        entries: [],
        discarded: effects.discard,
      };
    }
    if (relay) {
      const junk = new Set(effects.junk ?? []);
      const results = await this.#commit(sub, () =>
        commitToMailboxes(this.#o.mailbox, env, sub.bytes, accepted, sub.receivedAt, junk),
      );
      if (!Array.isArray(results)) return results;
      await this.#webhooks(sub, id, effects);
      const all = [...results, ...refused];
      this.#o.log.info(
        {
          transaction: sub.transaction,
          messageId: id,
          entrance: 'relay',
          sender: env.sender,
          gateway: env.gatewaySignature?.gateway,
          peer: sub.client.address,
          accepted: all.filter((r) => r.refusal === undefined).length,
          refused: all.filter((r) => r.refusal !== undefined).map((r) => r.refusal?.code),
        },
        'relay message received',
      );
      if (all.every((r) => r.refusal !== undefined)) {
        return this.#refused(sub, all[0]?.refusal ?? noRecipient());
      }
      return { kind: 'accepted', messageId: id, recipients: all, entries: [] };
    }
    const body = await signDispatched(env, sub.bytes, this.#seal);
    const entry: QueueEntry = {
      recipients: accepted.map((address) => ({
        address,
        destination: ampDestination(didDomain(address) ?? ''),
      })),
      body,
    };
    const info = { messageId: id, sender: env.sender, senderKind: 'amp' as const };
    const share = sub.keyShare;
    const committed = await this.#commit(sub, async () => {
      // The shares first: once the queue commits, the answer may go (PROTOCOL.md §6.10).
      if (share !== undefined) {
        for (const r of accepted) await this.#o.mailbox.keepShare(r, id, share, env.expiresAt);
      }
      return commitToQueue(this.#o.queue, info, [entry]);
    });
    if (!Array.isArray(committed)) return committed;
    await this.#webhooks(sub, id, effects);
    this.#o.log.info(
      {
        transaction: sub.transaction,
        messageId: id,
        entrance: sub.client.entrance,
        sender: env.sender,
        recipients: accepted,
        bytes: body.length,
        entries: committed,
      },
      'message queued',
    );
    return {
      kind: 'accepted',
      messageId: id,
      recipients: accepted.map((recipient) => ({ recipient })),
      entries: committed,
    };
  }

  /** AMP for ordinary addresses, sealed to this gateway (amp-offramp.ts): opened, signed, queued. */
  async #ampToLegacy(sub: AmpSubmission, maps: MapSnapshot): Promise<Outcome> {
    const env = sub.envelope;
    const id = env.messageId.toString('hex');
    const sender = this.#o.ledger.current(env.sender);
    if (sender.state !== 'current') {
      return this.#refused(sub, refusal('ERR_SENDER_UNKNOWN', `${env.sender} is not active here`));
    }
    const opened = openForLegacy(env, this.#o.gatewayKeys, sender.record.keyId, sub.receivedAt);
    if (isRefusal(opened)) return this.#refused(sub, opened);
    const from = senderAddress(env.sender, maps);
    const legacy = legacyMessage({
      opened,
      from,
      hostname: this.#o.hostname,
      domains: this.#domains,
      maps,
    });
    if (isRefusal(legacy)) return this.#refused(sub, legacy);
    const policy = await runPolicy(this.#o.policy ?? [], { kind: 'amp', submission: sub }, maps);
    if (policy.kind === 'refuse') return this.#refused(sub, policy.refusal);
    const signed = await signOriginated(legacy.message, domainOf(from), this.#o, sub.receivedAt);
    const entry: QueueEntry = {
      recipients: legacy.recipients.map((address) => ({
        address,
        destination: smtpDestination(address),
      })),
      body: encodeOutbound({ mailFrom: from, message: signed.message }),
    };
    const info = { messageId: id, sender: env.sender, senderKind: 'amp' as const };
    const committed = await this.#commit(sub, () => commitToQueue(this.#o.queue, info, [entry]));
    if (!Array.isArray(committed)) return committed;
    this.#o.log.info(
      {
        transaction: sub.transaction,
        messageId: id,
        entrance: sub.client.entrance,
        sender: env.sender,
        mailFrom: from,
        recipients: legacy.recipients,
        signedBy: signed.signedBy,
        bytes: signed.message.length,
        entries: committed,
      },
      'message queued for ordinary addresses',
    );
    return {
      kind: 'accepted',
      messageId: id,
      recipients: legacy.recipients.map((recipient) => ({ recipient })),
      entries: committed,
    };
  }

  /**
   * Queues the MailScript webhook calls of a message that is committed (or discarded): each an
   * entry of its own, so the message never waits for an endpoint. A call that cannot be queued is
   * logged; the message stands.
   */
  async #webhooks(
    sub: { transaction: string },
    messageId: string,
    effects: Effects,
  ): Promise<void> {
    for (const call of effects.webhooks ?? []) {
      try {
        const [entry] = await commitToQueue(
          this.#o.queue,
          { messageId, sender: '', senderKind: 'legacy', bounce: true },
          [webhookEntry(call, messageId)],
        );
        this.#o.log.info(
          { transaction: sub.transaction, messageId, webhook: call.name, entry },
          'webhook call queued',
        );
      } catch (err) {
        this.#o.log.error(
          { transaction: sub.transaction, messageId, webhook: call.name, err },
          'webhook call could not be queued; the message stands',
        );
      }
    }
  }

  /** Runs a commit; a failure to commit is a temporary refusal (and a log line with the cause). */
  async #commit<T>(
    sub: { transaction: string },
    fn: () => Promise<T>,
  ): Promise<T | Extract<Outcome, { kind: 'refused' }>> {
    try {
      return await fn();
    } catch (err) {
      const full = (err as { code?: unknown }).code === 'ERR_STORAGE_FULL';
      this.#o.log.error(
        { transaction: sub.transaction, err, code: (err as { code?: unknown }).code },
        'commit failed: the message is refused for now',
      );
      return {
        kind: 'refused',
        refusal: full
          ? refusal('ERR_STORAGE_FULL', 'no room to store the message now; try again later')
          : refusal('ERR_STORAGE_UNAVAILABLE', 'the message cannot be stored now; try again later'),
      };
    }
  }

  #refused(
    sub: { transaction: string; client: { entrance: string; address: string } },
    r: Refusal,
  ): Extract<Outcome, { kind: 'refused' }> {
    this.#o.log.info(
      {
        transaction: sub.transaction,
        entrance: sub.client.entrance,
        client: sub.client.address,
        code: r.code,
        temporary: r.temporary,
        reason: r.text,
      },
      'message refused',
    );
    return { kind: 'refused', refusal: r };
  }

  /** A bug in a stage: a safe temporary refusal, and the error with the transaction id logged. */
  #failed(sub: { transaction: string }, err: unknown): Outcome {
    this.#o.log.error({ transaction: sub.transaction, err }, 'pipeline internal error');
    return {
      kind: 'refused',
      refusal: {
        code: 'ERR_INTERNAL',
        temporary: true,
        text: `internal error (transaction ${sub.transaction})`,
      },
    };
  }

  #count(entrance: string, o: Outcome): void {
    this.#o.metrics?.messageIn(entrance, o.kind === 'accepted' ? 'accepted' : o.refusal.code);
  }
}

function isRefusal(v: object): v is Refusal {
  return 'code' in v && 'temporary' in v;
}

function noRecipient(): Refusal {
  return refusal('ERR_RECIPIENT_INVALID', 'the envelope names no recipient');
}

function uniqueBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => {
    const k = key(t);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
