/**
 * MailScript's Prometheus series (docs/OPERATIONS.md, "Health, readiness and metrics"): runs by
 * result and their duration. Every series exists from the first scrape, at zero.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** What mailScriptCheck's `observe` is given: the scope, the run's µs, ok or failed. */
export type ScriptObserver = (scope: string, micros: number, result: 'ok' | 'failed') => void;

export function registerScriptMetrics(registry: Registry): ScriptObserver {
  const runs = new Counter({
    name: 'aftersmtp_mailscript_runs_total',
    help: 'MailScript runs, by result: ok, or failed (an exception, the deadline, the memory limit, a refused action; the message was deferred).',
    labelNames: ['result'],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: 'aftersmtp_mailscript_run_seconds',
    help: 'Duration of one MailScript run, input copied in and actions checked.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  for (const result of ['ok', 'failed']) runs.inc({ result }, 0);
  return (_scope, micros, result) => {
    runs.inc({ result });
    seconds.observe(micros / 1e6);
  };
}
