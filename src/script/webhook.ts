/**
 * MailScript webhooks: the administrator's allow list (AFTERSMTP_SCRIPT_WEBHOOKS, `name=URL`
 * pairs), and the delivery worker's handler for `webhook:<name>` jobs, which POSTs the call's
 * JSON payload to the URL.
 *
 * A call is a queue entry of its own, committed after the message it came from, so a slow or
 * dead endpoint never holds up mail: the queue retries it with its backoff (temporary: no
 * answer, a 5xx, 408 or 429) until the queue's maximum age, or gives up at once (permanent: any
 * other 4xx, a name no longer allowed or now allowed with another URL, a malformed record).
 * Redirects are not followed (a 3xx is permanent): the call goes only where it was allowed.
 * A webhook entry has the null sender and the bounce flag, so it never bounces.
 */
import { decodeWebhook, WEBHOOK_DESTINATION_PREFIX } from '../queue/webhook.js';
import type { LeasedJob, RecipientOutcome } from '../queue/types.js';

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Parses `name=URL[,name=URL...]` (http or https); throws an Error saying what is expected. */
export function parseWebhookList(raw: string): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const part of raw.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? '' : part.slice(0, eq).trim();
    const url = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!NAME.test(name)) {
      throw new Error(
        `expected name=URL pairs with names of a-z, 0-9, - and _, got ${JSON.stringify(part)}`,
      );
    }
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Error(`${name}: expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      throw new Error(`${name}: expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (u.username !== '' || u.password !== '') {
      throw new Error(`${name}: put no credentials in the URL`);
    }
    if (out.has(name)) throw new Error(`${name} is given twice`);
    out.set(name, u.toString());
  }
  return out;
}

export interface WebhookDeliveryOptions {
  /** The allow list as it is now (a call to a name removed since is not made). */
  readonly allowed: () => ReadonlyMap<string, string>;
  /** How long one POST may take (default 10 s). */
  readonly timeoutMs?: number;
  /** The User-Agent header. */
  readonly userAgent?: string;
}

type Outcome = RecipientOutcome & { readonly code?: string };

/** The delivery worker's `DestinationHandler` for `webhook:` destinations. */
export function createWebhookDelivery(
  o: WebhookDeliveryOptions,
): (job: LeasedJob) => Promise<Outcome[]> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  return async (job) => {
    const all = (status: 'temporary' | 'permanent', code: string, reason: string): Outcome[] =>
      job.recipients.map((recipient) => ({
        recipient,
        status,
        code,
        reason: `${code}: ${reason}`,
      }));
    let call;
    try {
      call = decodeWebhook(job.body);
    } catch (err) {
      return all('permanent', 'ERR_WEBHOOK_FORMAT', (err as Error).message);
    }
    if (job.destination !== `${WEBHOOK_DESTINATION_PREFIX}${call.name}`) {
      return all('permanent', 'ERR_WEBHOOK_FORMAT', 'the record names another webhook');
    }
    if (o.allowed().get(call.name) !== call.url) {
      return all(
        'permanent',
        'ERR_WEBHOOK_NOT_ALLOWED',
        `${call.name} is no longer allowed at this URL`,
      );
    }
    let res: Response;
    try {
      res = await fetch(call.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': o.userAgent ?? 'aftersmtp-mailscript',
          'x-aftersmtp-message-id': call.messageId,
          'x-aftersmtp-entry-id': job.entryId,
        },
        body: call.payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
    } catch (err) {
      const reason =
        (err as Error).name === 'TimeoutError' ? 'no answer in time' : 'cannot connect';
      return all('temporary', 'ERR_WEBHOOK_UNREACHABLE', reason);
    }
    if (res.status >= 200 && res.status < 300) {
      return job.recipients.map((recipient) => ({ recipient, status: 'delivered' }));
    }
    const retry = res.status >= 500 || res.status === 408 || res.status === 429;
    return all(retry ? 'temporary' : 'permanent', 'ERR_WEBHOOK_STATUS', `HTTP ${res.status}`);
  };
}
