/**
 * The pipeline's side of the MailScript effects that are not access-map effects (types.ts
 * `Effects.redirect`, `Effects.webhooks`; `Effects.route` goes into the off-ramp record in
 * offramp.ts): the recipient plan of a redirect, and the queue entry of a webhook call.
 */
import { encodeWebhook, webhookDestination } from '../queue/webhook.js';
import type { MapSnapshot } from '../routing/index.js';
import { addressRecipient, type AddressingDeps } from './addressing.js';
import type { QueueEntry } from './commit.js';
import type { RecipientPlan, Refusal, WebhookCall } from './types.js';

/**
 * The plan for a redirect target, resolved as a recipient given at RCPT TO would be (aliases,
 * DIDs, ordinary addresses). A target that does not resolve is the script's mistake: the message
 * is deferred (temporary), so nothing is lost while the operator fixes the script.
 */
export async function redirectPlan(
  to: string,
  deps: AddressingDeps,
  maps: MapSnapshot,
): Promise<RecipientPlan | Refusal> {
  const r = await addressRecipient(to, deps, maps);
  if (r.kind === 'accepted') return r.plan;
  return {
    code: 'ERR_SCRIPT_FAILED',
    temporary: true,
    text: `MailScript redirect to ${to.slice(0, 100)} failed: ${r.refusal.text}`.slice(0, 400),
  };
}

/** The queue entry of one webhook call: recipient and destination named after the webhook. */
export function webhookEntry(call: WebhookCall, messageId: string): QueueEntry {
  return {
    recipients: [{ address: call.name, destination: webhookDestination(call.name) }],
    body: encodeWebhook({ name: call.name, url: call.url, payload: call.payload, messageId }),
  };
}
