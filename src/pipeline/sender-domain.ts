/**
 * Whether the reverse path's domain can receive mail at all (Postfix's
 * reject_unknown_sender_domain, for port 25 when AFTERSMTP_SMTP_REJECT_UNKNOWN_SENDER_DOMAIN=yes):
 * a domain that does not exist, or has neither MX nor address records, cannot take the bounce of
 * what it sends, and such mail is nearly always forged. As Postfix, that refusal is temporary
 * (450 4.1.8: a sender whose DNS is broken for a moment tries again). A domain that publishes a
 * null MX (RFC 7505: one MX record, preference 0, exchange ".") says it sends no mail; RFC 7505
 * §4.2 has its mail refused for good, 550 5.7.27.
 *
 * Fails open: a lookup that fails or does not answer within `timeoutMs` refuses nothing.
 */
import { answerWithin, DnsError, isNullMx, type DnsAnswer, type DnsResolver } from '../net/dns.js';
import { lookupDomain } from '../routing/addresses.js';
import { domainOf } from './addresses.js';
import { refusal } from './refusals.js';
import { CONTINUE, type Verdict } from './types.js';

export interface SenderDomainOptions {
  readonly dns: DnsResolver;
  /** The longest wait for the lookups (default 3 s); later is "exists". */
  readonly timeoutMs?: number;
}

export type SenderDomainState = 'exists' | 'unknown' | 'null-mx' | 'lookup-failed';

export class SenderDomainCheck {
  readonly #dns: DnsResolver;
  readonly #timeoutMs: number;

  constructor(o: SenderDomainOptions) {
    this.#dns = o.dns;
    this.#timeoutMs = o.timeoutMs ?? 3_000;
  }

  /** What DNS says of `domain`: MX records first, else A or AAAA records. */
  async state(domain: string): Promise<SenderDomainState> {
    return (await answerWithin(this.#lookup(domain), this.#timeoutMs)) ?? 'lookup-failed';
  }

  async #lookup(domain: string): Promise<SenderDomainState> {
    try {
      const mx = await this.#dns.query(domain, 'MX');
      if (mx.rcode === 'NXDOMAIN') return 'unknown';
      if (isNullMx(mx)) return 'null-mx';
      if (mx.answers.some((r) => r.type === 'MX')) return 'exists';
      const [a, aaaa] = await Promise.all([
        this.#dns.query(domain, 'A'),
        this.#dns.query(domain, 'AAAA'),
      ]);
      return hasAddress(a) || hasAddress(aaaa) ? 'exists' : 'unknown';
    } catch (err) {
      if (err instanceof DnsError) return 'lookup-failed';
      throw err;
    }
  }

  /** The verdict on the reverse path `address` (its domain's state). */
  async verdict(address: string): Promise<Verdict> {
    const domain = lookupDomain(domainOf(address));
    if (domain === undefined) return CONTINUE; // an address literal: no domain to ask about
    switch (await this.state(domain)) {
      case 'unknown':
        return {
          kind: 'refuse',
          refusal: refusal(
            'ERR_SENDER_DOMAIN_UNKNOWN',
            `<${address}>: Sender address rejected: Domain not found`,
          ),
        };
      case 'null-mx':
        return {
          kind: 'refuse',
          refusal: refusal(
            'ERR_SENDER_NULL_MX',
            `<${address}>: Sender address rejected: Domain ${domain} sends no mail (null MX, RFC 7505)`,
          ),
        };
      default:
        return CONTINUE;
    }
  }
}

function hasAddress(a: DnsAnswer): boolean {
  return a.rcode === 'NOERROR' && a.answers.some((r) => r.type === 'A' || r.type === 'AAAA');
}
