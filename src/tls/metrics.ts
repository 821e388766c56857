/**
 * The gateway certificate's expiry as a Prometheus gauge (seconds since the epoch, the
 * convention of `probe_ssl_earliest_cert_expiry`), so an alert fires weeks before clients and
 * peers start refusing it. One certificate serves gRPC and QUIC (src/tls/certificate.ts).
 */
import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';

/** `certPem` may be a function: the certificate is read at every scrape (undefined: not loaded). */
export function registerCertificateMetrics(
  registry: Registry,
  certPem: () => string | undefined,
): void {
  let cached: { pem: string; notAfter: number } | undefined;
  new Gauge({
    name: 'aftersmtp_tls_certificate_expiry_timestamp_seconds',
    help: "When the gateway's TLS certificate (gRPC and QUIC) expires, in seconds since the epoch.",
    registers: [registry],
    collect() {
      const pem = certPem();
      if (pem === undefined) return;
      if (cached?.pem !== pem) {
        cached = { pem, notAfter: Date.parse(new X509Certificate(pem).validTo) / 1000 };
      }
      this.set(cached.notAfter);
    },
  });
}
