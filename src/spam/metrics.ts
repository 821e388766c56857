/**
 * The spam policy's metrics, on a registry the caller owns: scans by scanner and result (ok, or
 * why it failed), what the scanner-unavailable rule did (so a scanner that is down is seen at
 * once, never a silent pass), the per-recipient verdicts, and scan latency. The usual series exist
 * from the first scrape, at 0.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ScannerFailure, SpamScannerName } from './types.js';

export type SpamVerdictName =
  'ham' | 'junk' | 'reject' | 'unavailable-accept' | 'unavailable-tempfail';

export interface SpamMetrics {
  scan(scanner: SpamScannerName, result: 'ok' | ScannerFailure, seconds: number): void;
  /** One recipient's verdict. */
  verdict(verdict: SpamVerdictName): void;
}

export const NO_SPAM_METRICS: SpamMetrics = { scan: () => undefined, verdict: () => undefined };

export function registerSpamMetrics(registry: Registry): SpamMetrics {
  const scans = new Counter({
    name: 'aftersmtp_spam_scans_total',
    help: 'Spam scans by scanner (rspamd, spamassassin) and result: ok, or timeout, connect, protocol, too-large, refused (the scanner gave no score).',
    labelNames: ['scanner', 'result'],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: 'aftersmtp_spam_scan_seconds',
    help: 'Time a spam scan took, by scanner, whatever its result.',
    labelNames: ['scanner'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const verdicts = new Counter({
    name: 'aftersmtp_spam_verdicts_total',
    help: 'Per-recipient spam verdicts: ham, junk, reject, and unavailable-accept / unavailable-tempfail (a scanner was down or slow and the spam_policy unavailable= rule applied).',
    labelNames: ['verdict'],
    registers: [registry],
  });
  for (const scanner of ['rspamd', 'spamassassin']) scans.inc({ scanner, result: 'ok' }, 0);
  for (const v of ['ham', 'junk', 'reject', 'unavailable-accept', 'unavailable-tempfail']) {
    verdicts.inc({ verdict: v }, 0);
  }
  return {
    scan: (scanner, result, s) => {
      scans.inc({ scanner, result });
      seconds.observe({ scanner }, s);
    },
    verdict: (verdict) => verdicts.inc({ verdict }),
  };
}
