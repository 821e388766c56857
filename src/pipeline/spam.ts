/**
 * spam_cat_acl, the spam half of the policy stage (DESIGN.md §1b; docs/OPERATIONS.md, "Spam
 * policy"): after DATA, the message is scanned by the scanners the recipients' spam_policy
 * entries name (each scanner once per message, concurrently), and each recipient's own
 * thresholds decide its verdict: ham, junk (its copy is filed in the Junk folder), reject (its copy
 * is not delivered), or, when one of its scanners gave no score, its `unavailable=` rule: accept
 * (delivered, tagged "scanner unavailable") or tempfail. The verdict is a value (Effects.junk,
 * Effects.refusedRecipients, Effects.spam); the pipeline acts on it.
 *
 * Why after DATA and not at RCPT TO: a score is a function of the content, which does not exist
 * until the end of DATA. A refusal at RCPT TO could only use the envelope (client, sender,
 * recipient: that is access_map's job, and it already answers there).
 *
 * The combined score of a recipient is the highest score among its scanners (each scanner's scale
 * is its own; the operator sets thresholds that fit the scanners named). A scanner that is down,
 * slow, or answers nonsense is never a pass: the recipient's rule applies and it is counted
 * (aftersmtp_spam_scans_total, aftersmtp_spam_verdicts_total).
 *
 * AMP mail: the gateway cannot read the ciphertext, so no content scanner runs on it. What it can
 * see is the sender's identity and its key record's age in the ledger, and how much the sender
 * sent; ampSenderCheck files a relayed envelope in Junk when its sender is younger than a minimum
 * age or over a rate (docs/OPERATIONS.md says what is and is not checked).
 */
import { BoundedMap } from '../bounded-map.js';
import { spamDecimal, type SpamPart, type SpamScan as SpamPartScan } from '../envelope/codec.js';
import type { MapSnapshot, SpamPolicy, SpamScannerName } from '../routing/index.js';
import {
  NO_SPAM_METRICS,
  ScannerError,
  type ScanResult,
  type SpamMetrics,
  type SpamScanner,
} from '../spam/index.js';
import type { PolicyCheck, PolicySubject } from './policy.js';
import { refusal } from './refusals.js';
import type { LedgerView, RemoteDirectory } from './recipients.js';
import {
  CONTINUE,
  type Effects,
  type LegacySubmission,
  type RecipientPlan,
  type RecipientSpam,
  type Refusal,
  type SpamReport,
  type SpamScanReport,
  type Verdict,
} from './types.js';

export interface SpamLogger {
  warn(obj: object, msg: string): void;
}

export interface SpamCheckOptions {
  /** The scanners configured (AFTERSMTP_RSPAMD_URL, AFTERSMTP_SPAMD_URL). */
  readonly scanners: Partial<Readonly<Record<SpamScannerName, SpamScanner>>>;
  readonly metrics?: SpamMetrics;
  readonly log?: SpamLogger;
  readonly now?: () => number;
}

/** The policy check for legacy mail; AMP mail passes through it untouched (see ampSenderCheck). */
export function spamCheck(options: SpamCheckOptions): PolicyCheck {
  const metrics = options.metrics ?? NO_SPAM_METRICS;
  const now = options.now ?? Date.now;
  return async (subject: PolicySubject, maps: MapSnapshot): Promise<Verdict> => {
    if (subject.kind !== 'legacy') return CONTINUE;
    const sub = subject.submission;
    const policies = sub.recipients
      .map((r) => ({ recipient: r.address, policy: maps.spamPolicy(r.address) }))
      .filter((p): p is { recipient: string; policy: SpamPolicy } => p.policy !== undefined)
      .filter((p) => p.policy.scanners.length > 0);
    if (policies.length === 0) return CONTINUE;
    const wanted = [...new Set(policies.flatMap((p) => p.policy.scanners))].sort();
    const results = new Map<SpamScannerName, ScanResult | ScannerError>();
    await Promise.all(
      wanted.map(async (name) => {
        results.set(name, await scanWith(name, options, sub, metrics, options.log));
      }),
    );
    const recipients = policies.map((p) => judge(p.recipient, p.policy, results));
    for (const r of recipients) {
      metrics.verdict(
        r.verdict === 'unavailable'
          ? 'unavailable-accept'
          : r.verdict === 'tempfail'
            ? 'unavailable-tempfail'
            : r.verdict,
      );
    }
    const scans: SpamScanReport[] = wanted.map((name) => {
      const r = results.get(name);
      return r === undefined || r instanceof ScannerError
        ? { scanner: name, result: r instanceof ScannerError ? r.reason : 'connect', symbols: [] }
        : { scanner: name, result: 'ok', score: r.score, symbols: r.symbols };
    });
    const refusedRecipients: { recipient: string; refusal: Refusal }[] = [];
    for (const r of recipients) {
      if (r.verdict === 'reject') {
        refusedRecipients.push({
          recipient: r.recipient,
          refusal: refusal('ERR_SPAM', 'message refused as spam'),
        });
      } else if (r.verdict === 'tempfail') {
        refusedRecipients.push({
          recipient: r.recipient,
          refusal: refusal(
            'ERR_SPAM_SCANNER_UNAVAILABLE',
            'the spam scanner is unavailable; try again later',
          ),
        });
      }
    }
    const junk = recipients.filter((r) => r.verdict === 'junk').map((r) => r.recipient);
    return {
      kind: 'continue',
      effects: {
        spam: { scans, recipients, scannedAt: now() },
        ...(junk.length > 0 ? { junk } : {}),
        ...(refusedRecipients.length > 0 ? { refusedRecipients } : {}),
      },
    };
  };
}

async function scanWith(
  name: SpamScannerName,
  options: SpamCheckOptions,
  sub: LegacySubmission,
  metrics: SpamMetrics,
  log?: SpamLogger,
): Promise<ScanResult | ScannerError> {
  const scanner = options.scanners[name];
  const started = performance.now();
  if (scanner === undefined) {
    // spam_policy names a scanner this gateway has no URL for: as if it were down.
    const err = new ScannerError(name, 'connect', 'no URL is configured for this scanner');
    metrics.scan(name, 'connect', 0);
    log?.warn({ transaction: sub.transaction, scanner: name }, err.message);
    return err;
  }
  try {
    const result = await scanner.scan({
      message: sub.message,
      mailFrom: sub.mailFrom,
      recipients: sub.recipients.map((r) => r.address),
      clientAddress: sub.client.address,
      queueId: sub.transaction,
      ...(sub.client.helo !== undefined ? { helo: sub.client.helo } : {}),
      ...(sub.client.login !== undefined ? { user: sub.client.login } : {}),
    });
    metrics.scan(name, 'ok', (performance.now() - started) / 1000);
    return result;
  } catch (err) {
    const e =
      err instanceof ScannerError
        ? err
        : new ScannerError(name, 'protocol', (err as Error)?.message ?? 'scan failed', err);
    metrics.scan(name, e.reason, (performance.now() - started) / 1000);
    log?.warn(
      { transaction: sub.transaction, scanner: name, reason: e.reason, err: e.message },
      'spam scanner gave no score',
    );
    return e;
  }
}

function judge(
  recipient: string,
  policy: SpamPolicy,
  results: ReadonlyMap<SpamScannerName, ScanResult | ScannerError>,
): RecipientSpam {
  const answers = policy.scanners.map((s) => results.get(s));
  const scores = answers.filter(
    (a): a is ScanResult => a !== undefined && !(a instanceof ScannerError),
  );
  const base = {
    recipient,
    scanners: policy.scanners,
    ...(policy.junk !== undefined ? { junk: policy.junk } : {}),
    ...(policy.reject !== undefined ? { reject: policy.reject } : {}),
    ...(scores.length > 0 ? { score: Math.max(...scores.map((s) => s.score)) } : {}),
  };
  if (scores.length < answers.length) {
    return { ...base, verdict: policy.unavailable === 'accept' ? 'unavailable' : 'tempfail' };
  }
  const score = base.score ?? 0;
  if (policy.reject !== undefined && score >= policy.reject) return { ...base, verdict: 'reject' };
  if (policy.junk !== undefined && score >= policy.junk) return { ...base, verdict: 'junk' };
  return { ...base, verdict: 'ham' };
}

// ---- what the verdict becomes on the way out ----

/** The spam part of the envelope sealed for one recipient (docs/PROTOCOL.md §6.9). */
export function spamPartFor(report: SpamReport, r: RecipientSpam): SpamPart {
  const scans: SpamPartScan[] = report.scans
    .filter((s) => r.scanners.includes(s.scanner))
    .slice(0, 4)
    .map((s) => ({
      scanner: s.scanner,
      result: s.result,
      score: s.score !== undefined ? spamDecimal(s.score) : '',
      symbols: boundedList(s.symbols, 1024),
    }));
  return {
    verdict: r.verdict === 'junk' ? 'junk' : r.verdict === 'unavailable' ? 'unavailable' : 'ham',
    score: r.score !== undefined ? spamDecimal(r.score) : '',
    junkScore: r.junk !== undefined ? spamDecimal(r.junk) : '',
    rejectScore: r.reject !== undefined ? spamDecimal(r.reject) : '',
    scans,
    scannedAt: report.scannedAt,
  };
}

function boundedList(names: readonly string[], max: number): string {
  let out = '';
  for (const n of names) {
    const next = out === '' ? n : `${out},${n}`;
    if (Buffer.byteLength(next) > max) break;
    out = next;
  }
  return out;
}

/**
 * X-Spam-* header lines (SpamAssassin's names, which mail clients and sieve scripts know) for
 * legacy output: X-Spam-Flag (YES for junk), X-Spam-Score, and X-Spam-Status with the verdict,
 * the score, the junk threshold, the rules that hit and the scanners; "scanner unavailable" when
 * a scanner gave no score and the message was accepted anyway; "filed as junk by policy, not
 * scanned" for a copy that a policy (DMARC's quarantine, MailScript's set_junk) filed as junk
 * with no scanner's score.
 */
export function spamHeaders(report: SpamReport, rs: readonly RecipientSpam[]): string[] {
  if (rs.length === 0) return [];
  const junk = rs.some((r) => r.verdict === 'junk');
  const unavailable = rs.some((r) => r.verdict === 'unavailable');
  const scores = rs.map((r) => r.score).filter((s): s is number => s !== undefined);
  const score = scores.length > 0 ? Math.max(...scores) : undefined;
  const thresholds = rs.map((r) => r.junk).filter((s): s is number => s !== undefined);
  const required = thresholds.length > 0 ? Math.min(...thresholds) : undefined;
  const scanners = [...new Set(rs.flatMap((r) => r.scanners))];
  const tests = boundedList(
    [
      ...new Set(
        report.scans.filter((s) => scanners.includes(s.scanner)).flatMap((s) => s.symbols),
      ),
    ],
    600,
  );
  const status =
    scanners.length === 0
      ? `${junk ? 'Yes, filed as junk by policy' : 'No'}, not scanned`
      : unavailable
        ? `${junk ? 'Yes' : 'No'}, scanner unavailable${score !== undefined ? ` score=${spamDecimal(score)}` : ''}`
        : `${junk ? 'Yes' : 'No'}, score=${spamDecimal(score ?? 0)}` +
          `${required !== undefined ? ` required=${spamDecimal(required)}` : ''}` +
          ` tests=${tests === '' ? 'none' : tests}`;
  return [
    `X-Spam-Flag: ${junk ? 'YES' : 'NO'}`,
    ...(score !== undefined ? [`X-Spam-Score: ${spamDecimal(score)}`] : []),
    foldHeader(
      `X-Spam-Status: ${status}${scanners.length > 0 ? ` scanners=${scanners.join(',')}` : ''}`,
    ),
  ];
}

/** Folds a long header line at commas or spaces (RFC 5322 §2.2.3), lines under 78 characters. */
function foldHeader(line: string): string {
  if (line.length <= 78) return line;
  const out: string[] = [];
  let cur = '';
  for (const word of line.split(/(?<=[ ,])/)) {
    if (cur.length + word.length > 76 && cur.trim() !== '') {
      out.push(cur.trimEnd());
      cur = '\t';
    }
    cur += word;
  }
  out.push(cur.trimEnd());
  return out.join('\r\n');
}

// ---- AMP: what the gateway can see ----

export interface AmpSenderOptions {
  /** A sender whose key record is younger than this (ms) is filed in Junk; 0: off. */
  readonly minSenderAgeMs: number;
  /** A sender over this many envelopes per hour (per gateway process) is filed in Junk; 0: off. */
  readonly maxPerHour: number;
  readonly ledger: LedgerView;
  readonly remote?: RemoteDirectory;
  readonly metrics?: SpamMetrics;
  readonly now?: () => number;
}

/**
 * For AMP envelopes relayed by other gateways: the sender's key record age (as its domain's
 * ledger published it, verified by the resolver) and the sender's rate. Junk, never a refusal:
 * a young identity is not proof of spam. Envelopes from this gateway's own clients are not
 * judged here (their senders authenticated to us).
 */
export function ampSenderCheck(options: AmpSenderOptions): PolicyCheck {
  const now = options.now ?? Date.now;
  const metrics = options.metrics ?? NO_SPAM_METRICS;
  const seen = new BoundedMap<string, number[]>(100_000);
  return async (subject: PolicySubject): Promise<Verdict> => {
    if (subject.kind !== 'amp' || subject.submission.client.entrance !== 'relay') return CONTINUE;
    const env = subject.submission.envelope;
    const t = now();
    const reasons: string[] = [];
    if (options.minSenderAgeMs > 0) {
      const state =
        options.remote !== undefined
          ? await options.remote.lookup(env.sender)
          : options.ledger.current(env.sender);
      if (state.state === 'current' && t - state.record.createdAt < options.minSenderAgeMs) {
        reasons.push('SENDER_YOUNG');
      }
    }
    if (options.maxPerHour > 0) {
      const times = (seen.get(env.sender) ?? []).filter((x) => x > t - 3_600_000);
      times.push(t);
      seen.set(env.sender, times);
      if (times.length > options.maxPerHour) reasons.push('SENDER_RATE');
    }
    const junk = reasons.length > 0;
    const recipients = [...new Set(env.wraps.map((w) => w.recipient))];
    recipients.forEach(() => metrics.verdict(junk ? 'junk' : 'ham'));
    if (!junk) return CONTINUE;
    return {
      kind: 'continue',
      effects: {
        junk: recipients,
        spam: {
          scans: [{ scanner: 'amp-sender', result: 'ok', symbols: reasons }],
          recipients: recipients.map((recipient) => ({
            recipient,
            verdict: 'junk' as const,
            scanners: ['amp-sender'],
          })),
          scannedAt: t,
        },
      },
    };
  };
}

// ---- acting on the verdicts (pipeline.ts) ----

/**
 * The recipients left after policy refusals, or the refusal of the whole message: when none is
 * left (the first refusal), or when any refusal is temporary (that one: nothing is delivered and
 * the client sends again, so no copy is lost; see Effects.refusedRecipients).
 */
export function keptRecipients<R extends { readonly address: string }>(
  recipients: readonly R[],
  refused: Effects['refusedRecipients'],
): readonly R[] | Refusal {
  if (refused === undefined || refused.length === 0) return recipients;
  const names = new Set(refused.map((r) => r.recipient.toLowerCase()));
  const kept = recipients.filter((r) => !names.has(r.address.toLowerCase()));
  if (kept.length === recipients.length) return recipients;
  const temporary = refused.find((r) => r.refusal.temporary);
  if (temporary !== undefined) return temporary.refusal;
  if (kept.length === 0) return (refused[0] as { refusal: Refusal }).refusal;
  return kept;
}

/**
 * The spam report with the recipients a policy check filed as junk (Effects.junk: MailScript's
 * set_junk, DMARC's quarantine) marked so, added when no scanner judged them: their copies carry
 * a junk verdict in the envelope and are filed in Junk like the scanners' junk. Unchanged when
 * nothing was filed as junk.
 */
export function withPolicyJunk(
  report: SpamReport | undefined,
  junk: readonly string[] | undefined,
  now: number,
): SpamReport | undefined {
  if (junk === undefined || junk.length === 0) return report;
  const marked = new Set(junk.map((j) => j.toLowerCase()));
  const judged = (report?.recipients ?? []).map((r): RecipientSpam =>
    marked.has(r.recipient.toLowerCase()) ? { ...r, verdict: 'junk' } : r,
  );
  const seen = new Set(judged.map((r) => r.recipient.toLowerCase()));
  const added = [...marked]
    .filter((j) => !seen.has(j))
    .map((recipient): RecipientSpam => ({ recipient, verdict: 'junk', scanners: [] }));
  return {
    scans: report?.scans ?? [],
    recipients: [...judged, ...added],
    scannedAt: report?.scannedAt ?? now,
  };
}

/**
 * The spam verdict of each DID target and of the off-ramp's addresses, from the recipients (RCPT
 * TO addresses) that lead to them. A DID that two recipients lead to is junk only when both are.
 */
export function spamByTarget(
  recipients: readonly RecipientPlan[],
  report: SpamReport | undefined,
): { readonly byDid: ReadonlyMap<string, RecipientSpam>; readonly offramp: RecipientSpam[] } {
  const byDid = new Map<string, RecipientSpam>();
  const offramp: RecipientSpam[] = [];
  if (report === undefined) return { byDid, offramp };
  const of = new Map(report.recipients.map((r) => [r.recipient.toLowerCase(), r]));
  for (const plan of recipients) {
    const r = of.get(plan.address.toLowerCase());
    if (r === undefined) continue;
    for (const t of plan.targets) {
      if (t.kind === 'address') {
        offramp.push(r);
        continue;
      }
      const prior = byDid.get(t.did);
      if (prior === undefined || (prior.verdict === 'junk' && r.verdict !== 'junk')) {
        byDid.set(t.did, r);
      }
    }
  }
  return { byDid, offramp };
}
