/**
 * The domains a log serves (DESIGN.md §2b: each domain's gateway operates the log for its own
 * identities). Guarantees: only DIDs whose domain is in the set are accepted by the ledger
 * (LedgerError ERR_DOMAIN_NOT_SERVED otherwise); domain names are validated with the identity
 * module's DID rules (lower-case A-labels), so the comparison is exact.
 */
import { InputError } from '../errors.js';
import { parseDid } from '../identity/index.js';
import { LedgerError } from './errors.js';

/** Validates a domain name by the DID rules; returns it unchanged. */
export function checkDomainName(domain: string): string {
  try {
    parseDid(`did:aftersmtp:${domain}:x`);
  } catch (err) {
    throw new InputError(
      'ERR_LEDGER_DOMAIN',
      `invalid domain ${JSON.stringify(domain.slice(0, 80))}: ${(err as Error).message}`,
    );
  }
  return domain;
}

export class ServedDomains {
  readonly #domains: ReadonlySet<string>;

  constructor(domains: readonly string[]) {
    if (domains.length === 0)
      throw new InputError('ERR_LEDGER_DOMAIN', 'a log serves at least one domain');
    this.#domains = new Set(domains.map(checkDomainName));
  }

  get list(): string[] {
    return [...this.#domains];
  }

  has(domain: string): boolean {
    return this.#domains.has(domain);
  }

  /** Returns the DID's domain if this log serves it. */
  domainOf(did: string): string {
    const { domain } = parseDid(did);
    if (!this.#domains.has(domain)) {
      throw new LedgerError('ERR_DOMAIN_NOT_SERVED', `this log does not serve ${domain}`);
    }
    return domain;
  }
}
