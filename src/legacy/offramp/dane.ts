/**
 * DANE for SMTP (RFC 7672, RFC 7671, RFC 6698): which TLSA records apply to an MX host and
 * whether the certificate chain the server presented matches one of them.
 *
 * - Records are looked up at `_<port>._tcp.<host>`, and count only from a DNSSEC-validated
 *   answer (the resolver's AD bit, dns.ts). A host whose name or addresses were not validated
 *   gets no TLSA lookup at all (RFC 7672 §2.2.1, §2.2.2).
 * - Usable records: usage DANE-TA(2) and DANE-EE(3); selector Cert(0) and SPKI(1); matching
 *   type Full(0), SHA2-256(1), SHA2-512(2). PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP
 *   (RFC 7672 §3.1.3). A validated TLSA RRset with no usable record still means TLS is required,
 *   without authentication (RFC 7672 §2.2).
 * - DANE-EE(3): the server's own certificate (or its key) matches; names and dates are not
 *   checked (RFC 7672 §3.1.1).
 * - DANE-TA(2): a certificate of the chain the server sent (other than its own) matches, the
 *   chain from the server's certificate up to it verifies signature by signature, every
 *   certificate in it is within its validity dates, and the server's certificate names the MX
 *   host or the next-hop domain (RFC 7672 §3.1.2, §3.2.2). The trust anchor must be in the
 *   presented chain (RFC 7671 §5.2.2 asks servers to send it).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import type dnsPacket from 'dns-packet';
import type { DnsAnswer } from '../../net/dns.js';
import { recordsOf } from '../../net/dns.js';

export interface Tlsa {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

export function isUsable(t: Tlsa): boolean {
  return (
    (t.usage === 2 || t.usage === 3) &&
    (t.selector === 0 || t.selector === 1) &&
    (t.matchingType === 0 || t.matchingType === 1 || t.matchingType === 2)
  );
}

export function tlsaRecords(answer: DnsAnswer): Tlsa[] {
  return recordsOf(answer, 'TLSA').map((r: dnsPacket.TlsaAnswer) => ({
    usage: r.data.usage,
    selector: r.data.selector,
    matchingType: r.data.matchingType,
    data: Buffer.from(r.data.certificate),
  }));
}

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function matches(t: Tlsa, cert: X509Certificate): boolean {
  const bytes = selected(cert, t.selector);
  switch (t.matchingType) {
    case 0:
      return bytes.equals(t.data);
    case 1:
      return createHash('sha256').update(bytes).digest().equals(t.data);
    case 2:
      return createHash('sha512').update(bytes).digest().equals(t.data);
    default:
      return false;
  }
}

/** The chain the server presented, its own certificate first (node's issuer links). */
export function presentedChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = peer;
  while (c?.raw !== undefined && out.length < 16) {
    const fp = c.fingerprint256;
    if (seen.has(fp)) break;
    seen.add(fp);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

export type DaneVerdict =
  | { readonly ok: true; readonly matched: string }
  | {
      readonly ok: false;
      /** The TLS-RPT result type (RFC 8460 §4.3). */
      readonly result: 'tlsa-invalid' | 'certificate-host-mismatch' | 'certificate-expired';
      readonly reason: string;
    };

function withinDates(c: X509Certificate, now: number): boolean {
  return Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
}

function names(peer: PeerCertificate, refs: readonly string[]): boolean {
  return refs.some((name) => checkServerIdentity(name, peer) === undefined);
}

/**
 * Checks a presented chain against the usable TLSA records of a host. `refs` are the reference
 * identifiers for DANE-TA: the MX host name and the next-hop domain.
 */
export function verifyDane(
  records: readonly Tlsa[],
  peer: DetailedPeerCertificate,
  refs: readonly string[],
  now: number,
): DaneVerdict {
  const usable = records.filter(isUsable);
  const chain = presentedChain(peer);
  const leaf = chain[0];
  if (leaf === undefined) {
    return { ok: false, result: 'tlsa-invalid', reason: 'the server presented no certificate' };
  }
  for (const t of usable.filter((r) => r.usage === 3)) {
    if (matches(t, leaf)) return { ok: true, matched: `3 ${t.selector} ${t.matchingType}` };
  }
  let taProblem: DaneVerdict | undefined;
  for (const t of usable.filter((r) => r.usage === 2)) {
    const at = chain.findIndex((c, i) => i > 0 && matches(t, c));
    if (at < 0) continue;
    // Each certificate up to the anchor must be issued and signed by the next one.
    let linked = true;
    for (let i = 0; i < at; i++) {
      const child = chain[i] as X509Certificate;
      const parent = chain[i + 1] as X509Certificate;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) linked = false;
    }
    if (!linked) continue;
    if (!chain.slice(0, at + 1).every((c) => withinDates(c, now))) {
      taProblem = {
        ok: false,
        result: 'certificate-expired',
        reason: 'DANE-TA: a certificate of the chain is outside its validity dates',
      };
      continue;
    }
    if (!names(peer, refs)) {
      taProblem = {
        ok: false,
        result: 'certificate-host-mismatch',
        reason: `DANE-TA: the certificate names none of ${refs.join(', ')}`,
      };
      continue;
    }
    return { ok: true, matched: `2 ${t.selector} ${t.matchingType}` };
  }
  return (
    taProblem ?? {
      ok: false,
      result: 'tlsa-invalid',
      reason: 'no TLSA record matches the certificate chain the server presented',
    }
  );
}
