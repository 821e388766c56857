/**
 * Latency marks: named points on a message's way through the gateway, published on the
 * diagnostics channel `aftersmtp:latency` as `{ point, key, at, link? }`. `key` names the
 * message where the point is (an SMTP session's id on the listener thread, the transaction id
 * in the pipeline); `link` ties the two (the mark where the session hands its message to the
 * pipeline carries the transaction); `at` is wall-clock milliseconds with sub-millisecond
 * precision (performance.timeOrigin + performance.now()), comparable across threads.
 *
 * The points today are the SMTP on-ramp's: `smtp.*` on the listener thread (src/legacy/smtp/
 * server.ts) and `pipeline.start`, `pipeline.sealed`, `pipeline.committed` for a legacy message
 * (src/pipeline/pipeline.ts); bench/lib/latency.ts's ONRAMP_PHASES names the spans between them.
 *
 * Nothing is recorded unless something in the same thread subscribes: bench/onramp does, with
 * ONRAMP_LATENCY_DIR, by preloading bench/lib/latency-recorder.ts into `serve`, and prints
 * where a message's time goes (bench/lib/latency.ts). With no subscriber a mark costs one
 * property check; the gateway itself never reads the channel.
 */
import { channel } from 'node:diagnostics_channel';

/** The channel's name, for subscribers. */
export const LATENCY_CHANNEL = 'aftersmtp:latency';

/** What a mark publishes. */
export interface LatencyMark {
  readonly point: string;
  readonly key: string;
  readonly at: number;
  readonly link?: string;
}

const latency = channel(LATENCY_CHANNEL);

/** Publishes `point` for the message `key` (and its `link`), if anyone listens. */
export function markLatency(point: string, key: string, link?: string): void {
  if (!latency.hasSubscribers) return;
  const at = performance.timeOrigin + performance.now();
  latency.publish(link === undefined ? { point, key, at } : { point, key, at, link });
}
