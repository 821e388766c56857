/**
 * The process's own metrics (CPU, memory, file descriptors, event-loop lag, GC, active handles by
 * type) from prom-client's default collectors, prefixed `aftersmtp_`, less three that break
 * Prometheus' naming rules: prom-client names the sums of the active handles, requests and
 * resources `..._total`, a suffix Prometheus reserves for counters, and they are gauges. The
 * per-type gauges (`aftersmtp_nodejs_active_handles{type}`, ..._requests, ..._resources) say the
 * same and stay.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

const MISNAMED = [
  'aftersmtp_nodejs_active_handles_total',
  'aftersmtp_nodejs_active_requests_total',
  'aftersmtp_nodejs_active_resources_total',
];

export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'aftersmtp_' });
  for (const name of MISNAMED) {
    if (registry.getSingleMetric(name) !== undefined) registry.removeSingleMetric(name);
  }
}
