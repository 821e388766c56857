/**
 * What a MailScript sees (docs/MAILSCRIPT.md, "What a script sees"): plain data copied out of
 * the submission into one JSON text, bounded, never a host object. Legacy mail: the envelope,
 * the header fields (unfolded, at most MAX_HEADER_FIELDS of them and MAX_HEADER_BYTES in all),
 * SPF/DKIM/DMARC results, the recipients with the DIDs they resolved to. AMP mail: the gateway
 * cannot read the content, so `headers` is empty and `auth` says `none`; the sender is a DID.
 */
import { fieldValue, splitMessage } from '../mail/headers.js';
import type { PolicySubject } from '../pipeline/policy.js';
import type { AuthResults, Effects, SpamReport } from '../pipeline/types.js';

/** What a script sees of the gateway's checks: the results, and the ARC seal when known. */
export type ScriptAuth = Pick<AuthResults, 'spf' | 'dkim' | 'dmarc'> &
  Partial<Pick<AuthResults, 'arc' | 'arcSeal'>>;

const NO_AUTH: ScriptInput['auth'] = {
  spf: 'none',
  dkim: 'none',
  dmarc: 'none',
  arc: 'none',
  arcSealer: '',
};

export const MAX_HEADER_FIELDS = 200;
export const MAX_HEADER_BYTES = 64 * 1024;

export interface ScriptInput {
  readonly envelope: {
    readonly sender: string;
    readonly recipients: readonly string[];
    readonly entrance: string;
    readonly client: {
      readonly address: string;
      readonly helo: string | null;
      readonly tls: boolean;
      readonly login: string | null;
      readonly did: string | null;
    };
    readonly kind: 'legacy' | 'amp';
    readonly transaction: string;
  };
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly auth: {
    readonly spf: string;
    readonly dkim: string;
    readonly dmarc: string;
    readonly arc: string;
    /** The domain of the last ARC seal when the chain passed, else ''. */
    readonly arcSealer: string;
  };
  readonly spam: SpamReport | null;
  readonly recipients: readonly { readonly address: string; readonly dids: readonly string[] }[];
  /** The default payload of webhook(name) and route_to_webhook(name). */
  readonly summary: Record<string, unknown>;
}

function headerList(message: Buffer): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  let bytes = 0;
  for (const f of splitMessage(message).fields) {
    if (out.length >= MAX_HEADER_FIELDS) break;
    bytes += f.raw.length;
    if (bytes > MAX_HEADER_BYTES) break;
    const name = f.raw.slice(0, f.raw.indexOf(':')).trim();
    // latin1 in (headers.ts keeps bytes), UTF-8 to the script (RFC 6532 headers read as text).
    const value = Buffer.from(fieldValue(f), 'latin1').toString('utf8');
    out.push({ name, value });
  }
  return out;
}

/** The spam check's report (plain data), if it ran before MailScript and is small. */
function plainSpam(effects: Effects | undefined): SpamReport | null {
  const spam = effects?.spam;
  if (spam === undefined) return null;
  const json = JSON.stringify(spam);
  return json.length <= 16 * 1024 ? (JSON.parse(json) as SpamReport) : null;
}

export function scriptInput(
  subject: PolicySubject,
  auth: ScriptAuth | undefined,
  prior: Effects | undefined,
): ScriptInput {
  const sub = subject.submission;
  const c = sub.client;
  const client = {
    address: c.address,
    helo: c.helo ?? null,
    tls: c.tls,
    login: c.login ?? null,
    did: c.did ?? null,
  };
  if (subject.kind === 'legacy') {
    const s = subject.submission;
    const headers = headerList(s.message);
    const recipients = s.recipients.map((r) => ({
      address: r.address,
      dids: r.targets.flatMap((t) => (t.kind === 'did' ? [t.did] : [])),
    }));
    const subjectLine = headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? '';
    return {
      envelope: {
        sender: s.mailFrom,
        recipients: s.recipients.map((r) => r.address),
        entrance: c.entrance,
        client,
        kind: 'legacy',
        transaction: s.transaction,
      },
      headers,
      auth:
        auth === undefined
          ? NO_AUTH
          : {
              spf: auth.spf,
              dkim: auth.dkim,
              dmarc: auth.dmarc,
              arc: auth.arc ?? 'none',
              arcSealer: auth.arcSeal?.sealer ?? '',
            },
      spam: plainSpam(prior),
      recipients,
      summary: {
        entrance: c.entrance,
        sender: s.mailFrom,
        recipients: s.recipients.map((r) => r.address),
        subject: subjectLine.slice(0, 200),
        transaction: s.transaction,
      },
    };
  }
  const env = subject.submission.envelope;
  const dids = [...new Set(env.wraps.map((w) => w.recipient))];
  return {
    envelope: {
      sender: env.sender,
      recipients: dids,
      entrance: c.entrance,
      client,
      kind: 'amp',
      transaction: subject.submission.transaction,
    },
    headers: [],
    auth: NO_AUTH,
    spam: plainSpam(prior),
    recipients: dids.map((d) => ({ address: d, dids: [d] })),
    summary: {
      entrance: c.entrance,
      sender: env.sender,
      recipients: dids,
      messageId: env.messageId.toString('hex'),
      transaction: subject.submission.transaction,
    },
  };
}
