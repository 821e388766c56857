/**
 * Registration policy per domain (Sybil protection): `open-pow` (anyone with a hashcash stamp of
 * at least `bits`), `admin-only` (an administrator's approval reference is required) or `closed`
 * (no registration requests at all; only an administrator's direct registration).
 *
 * Guarantees: parsePolicySpec accepts exactly `domain=policy[:bits][,domain=policy[:bits]...]`
 * (the form an AFTERSMTP_* variable or the admin CLI passes) and refuses anything else with
 * InputError(ERR_LEDGER_POLICY) naming the bad part; bits are only allowed for open-pow.
 */
import { InputError } from '../errors.js';
import { checkDomainName } from './domains.js';
import { DEFAULT_BITS, MAX_BITS, MIN_BITS } from './hashcash.js';

export const POLICIES = ['open-pow', 'admin-only', 'closed'] as const;
export type PolicyName = (typeof POLICIES)[number];

export interface DomainPolicy {
  readonly policy: PolicyName;
  /** Required hashcash difficulty (open-pow only). */
  readonly bits: number;
}

export const DEFAULT_POLICY: DomainPolicy = { policy: 'open-pow', bits: DEFAULT_BITS };

function bad(why: string): InputError {
  return new InputError('ERR_LEDGER_POLICY', `invalid ledger policy: ${why}`);
}

export function checkPolicy(p: DomainPolicy): DomainPolicy {
  if (!(POLICIES as readonly string[]).includes(p.policy)) {
    throw bad(`unknown policy ${JSON.stringify(String(p.policy).slice(0, 40))}`);
  }
  if (!Number.isInteger(p.bits) || p.bits < MIN_BITS || p.bits > MAX_BITS) {
    throw bad(`bits must be ${MIN_BITS}..${MAX_BITS}`);
  }
  return p;
}

/** Parses `example.org=open-pow:20,corp.example=admin-only`. */
export function parsePolicySpec(spec: string): Map<string, DomainPolicy> {
  const out = new Map<string, DomainPolicy>();
  if (spec.trim() === '') return out;
  for (const item of spec.split(',')) {
    const m = /^\s*([^=\s]+)=(open-pow|admin-only|closed)(?::([0-9]{1,2}))?\s*$/.exec(item);
    if (m === null) throw bad(`"${item.slice(0, 80)}" is not domain=policy[:bits]`);
    const [, domain, policy, bitsText] = m as unknown as [string, string, PolicyName, string?];
    try {
      checkDomainName(domain);
    } catch (err) {
      throw bad((err as Error).message);
    }
    if (bitsText !== undefined && policy !== 'open-pow') throw bad('bits only apply to open-pow');
    if (out.has(domain)) throw bad(`${domain} is listed twice`);
    out.set(domain, checkPolicy({ policy, bits: bitsText ? Number(bitsText) : DEFAULT_BITS }));
  }
  return out;
}
