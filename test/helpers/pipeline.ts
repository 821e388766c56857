// The pipeline as `serve` builds it, for tests that drive an entrance (the relay receiver, the
// client API, the SMTP listeners) in process: the real ledger, mailbox writer, queue and maps.
import { remoteDirectory, type RemoteIdentityResolver } from '../../src/amp/relay/index.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import type { IdentityLedger } from '../../src/ledger/ledger.js';
import type { MailboxSignal } from '../../src/mailbox/signal.js';
import { MailboxWriter } from '../../src/mailbox/writer.js';
import { mailAuthenticator } from '../../src/pipeline/authentication.js';
import { Pipeline, type PipelineOptions } from '../../src/pipeline/pipeline.js';
import type { DeliveryQueue } from '../../src/queue/types.js';
import { MappingEngine } from '../../src/routing/index.js';
import type { MailboxStore } from '../../src/store/types.js';

export const QUIET = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface TestPipelineOptions {
  readonly domain: string;
  readonly ledger: IdentityLedger;
  readonly keys: SecretKeySet;
  readonly store: MailboxStore;
  readonly queue: DeliveryQueue;
  readonly identities?: RemoteIdentityResolver;
  /** The maps (default: an empty engine in memory). */
  readonly maps?: MappingEngine;
  readonly signal?: MailboxSignal;
  readonly dnsServers?: readonly string[];
  readonly overrides?: Partial<PipelineOptions>;
}

export function testPipeline(o: TestPipelineOptions): Pipeline {
  return new Pipeline({
    domains: [o.domain],
    ledger: o.ledger,
    ...(o.identities !== undefined ? { remote: remoteDirectory(o.identities) } : {}),
    maps: (() => {
      const engine = o.maps ?? MappingEngine.open({ path: ':memory:', pollMs: 0 });
      return () => engine.snapshot();
    })(),
    queue: o.queue,
    mailbox: new MailboxWriter({
      store: o.store,
      gatewayKeys: o.keys,
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
    }),
    gatewayKeys: o.keys,
    hostname: `mx.${o.domain}`,
    maxEnvelopeBytes: 32 * 1024 * 1024,
    legacyTtlMs: 7 * 24 * 3_600_000,
    authenticator: mailAuthenticator({
      hostname: `mx.${o.domain}`,
      dnsServers: o.dnsServers ?? ['127.0.0.1:1'],
      timeoutMs: 1000,
    }),
    log: QUIET,
    ...o.overrides,
  });
}
