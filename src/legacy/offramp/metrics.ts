/**
 * The off-ramp's metrics, on a registry the caller owns: TLS-RPT counters (RFC 8460 §4.3:
 * sessions that met their TLS policy, and failures by policy type and result type) and the
 * recipients it settled, by outcome. The off-ramp gets the small interface, not prom-client;
 * the usual series exist from the first scrape, at 0.
 */
import { Counter, type Registry } from 'prom-client';

/** RFC 8460 §4.4 policy types. */
export type TlsPolicyType = 'sts' | 'tlsa' | 'no-policy-found';

/** RFC 8460 §4.3 result types. */
export const TLSRPT_FAILURES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type TlsFailure = (typeof TLSRPT_FAILURES)[number];

export interface OffRampMetrics {
  /** One session (or policy fetch) measured against its policy: success or a failure type. */
  tls(policy: TlsPolicyType, result: 'success' | TlsFailure): void;
  /** Recipients settled by the off-ramp. */
  recipients(result: 'delivered' | 'temporary' | 'permanent', n?: number): void;
}

export const NO_OFFRAMP_METRICS: OffRampMetrics = {
  tls: () => undefined,
  recipients: () => undefined,
};

export function registerOffRampMetrics(registry: Registry): OffRampMetrics {
  const tls = new Counter({
    name: 'aftersmtp_offramp_tls_sessions_total',
    help: 'Off-ramp SMTP sessions by TLS policy type (RFC 8460: sts, tlsa, no-policy-found) and result (success or an RFC 8460 failure result type).',
    labelNames: ['policy', 'result'],
    registers: [registry],
  });
  for (const policy of ['sts', 'tlsa', 'no-policy-found'] as const) {
    tls.inc({ policy, result: 'success' }, 0);
  }
  const recipients = new Counter({
    name: 'aftersmtp_offramp_recipients_total',
    help: 'Recipients the SMTP off-ramp settled, by outcome: delivered, temporary (retried) or permanent (bounced).',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of ['delivered', 'temporary', 'permanent']) recipients.inc({ result }, 0);
  return {
    tls: (policy, result) => tls.inc({ policy, result }),
    recipients: (result, n = 1) => recipients.inc({ result }, n),
  };
}
