// Shared pieces of the messaging tests: identities registered through the real client API
// (hashcash at low difficulty), a logged-in client, sealing for local recipients, and reading an
// inbox to the end.
import assert from 'node:assert/strict';
import {
  GatewayClient,
  ClientApiError,
  recordToMsg,
  signatureToMsg,
} from '../../src/amp/client-api/index.js';
import { SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import {
  PURPOSE_REGISTER,
  PURPOSE_REVOKE,
  revokeTranscript,
  mintStamp,
  recordHash,
  registerTranscript,
} from '../../src/ledger/index.js';
import type { InboxItemMsg } from '../../src/amp/client-api/index.js';
import { DOMAIN, startGateway, type Gateway } from '../client-api/helpers.js';

export { DOMAIN };
export const BITS = 8;

export function startMessagingGateway(
  extra: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<Gateway> {
  return startGateway(
    {
      AFTERSMTP_LEDGER_POLICY: `${DOMAIN}=open-pow:${BITS}`,
      AFTERSMTP_PASSPHRASE: 'gateway pass',
      ...extra,
    },
    nodeArgs,
  );
}

export function did(local: string): string {
  return `did:aftersmtp:${DOMAIN}:${local}`;
}

export async function register(
  client: GatewayClient,
  who: string | SecretKeySet,
  suite: SuiteId = 'classic-v1',
): Promise<SecretKeySet> {
  const k = typeof who === 'string' ? SecretKeySet.generate(did(who), suite) : who;
  const c = await client.getRegistrationChallenge({ domain: DOMAIN });
  const stamp = await mintStamp(c.challenge, k.did, recordHash(k.record), c.bits);
  await client.registerIdentity({
    record: recordToMsg(k.record),
    extensions: [],
    proof_of_possession: signatureToMsg(k.sign(registerTranscript(k.record, []), PURPOSE_REGISTER)),
    stamp,
  });
  return k;
}

export async function connect(gw: Gateway): Promise<GatewayClient> {
  return GatewayClient.connect({ target: gw.grpc, pin: { spki: gw.spki } });
}

export async function token(client: GatewayClient, keys: SecretKeySet): Promise<string> {
  return (await client.login(keys)).token;
}

/** Reads the mailbox until `n` items arrived (follow mode, bounded by `ms`). */
export async function waitInbox(
  client: GatewayClient,
  tok: string,
  n: number,
  ms = 10_000,
): Promise<InboxItemMsg[]> {
  const items: InboxItemMsg[] = [];
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    for await (const item of client.fetchInbox(tok, { follow: true }, abort.signal)) {
      items.push(item);
      if (items.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  assert.equal(items.length, n, `expected ${n} inbox items within ${ms} ms`);
  return items;
}

export async function refusal(p: Promise<unknown>): Promise<ClientApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ClientApiError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

export async function revoke(client: GatewayClient, k: SecretKeySet): Promise<void> {
  const res = await client.resolveIdentity({ did: k.did });
  const leaf = res.inclusion?.leaf_index as number;
  const t = revokeTranscript(k.did, leaf, k.keyId, 'test');
  await client.revokeIdentity({
    did: k.did,
    prev_leaf: leaf,
    key_id: k.keyId,
    reason: 'test',
    signature: signatureToMsg(k.sign(t, PURPOSE_REVOKE)),
  });
}
