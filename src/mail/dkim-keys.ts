/**
 * DKIM keys per domain and selector, in `<data dir>/dkim/<domain>/`: one private key per
 * selector (`<selector>.key`, PKCS#8 PEM encrypted with the gateway's passphrase, mode 0600), its
 * public half (`<selector>.pub`, so records can be listed without the passphrase) and
 * `active.json`, the selectors that sign (at most one per algorithm, so a domain can sign with
 * rsa-sha256 and ed25519-sha256 at once). Rotation is by selector: make a new key, publish its
 * record, `use` it (it replaces the active selector of its algorithm), and remove the old one
 * once no message in flight needs it (`retire`).
 *
 * Guarantees: a private key is never written in clear or with other permissions; the DNS record
 * printed is the public half of the key written; `signingKeys` answers only active, readable
 * keys, re-read when active.json changes (checked at most once a second per domain).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { fileStatus, sameFileStatus } from '../file-status.js';
import { checkDomain } from '../identity/did.js';
import { writeFileAtomic } from '../identity/files.js';
import type { DkimKey } from './dkim.js';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKeyInfo {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  readonly active: boolean;
  /** The TXT record to publish at `<selector>._domainkey.<domain>`. */
  readonly dnsName: string;
  readonly dnsValue: string;
}

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

function checkSelector(selector: string): string {
  if (!SELECTOR.test(selector)) {
    throw new InputError(
      'ERR_DKIM_SELECTOR',
      `a selector is a DNS label of lower-case letters, digits and '-', got ${JSON.stringify(selector.slice(0, 70))}`,
    );
  }
  return selector;
}

/** The TXT value that publishes `publicKey` (RFC 6376 §3.6.1; RFC 8463 for ed25519). */
export function dnsRecordValue(algorithm: DkimAlgorithm, publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  // RFC 8463 §4.2: an Ed25519 key is published as the raw 32-byte key, not SPKI.
  const p = (algorithm === 'ed25519-sha256' ? der.subarray(der.length - 32) : der).toString(
    'base64',
  );
  return `v=DKIM1; k=${algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=${p}`;
}

export class DkimKeys {
  readonly #dir: string;
  readonly #passphrase: string | undefined;
  readonly #cache = new Map<
    string,
    { checkedAt: number; status: Stats | undefined; keys: DkimKey[] }
  >();

  /** Without a passphrase, only `list` (the public halves) works. */
  constructor(dataDir: string, passphrase?: string) {
    this.#dir = join(dataDir, 'dkim');
    this.#passphrase = passphrase;
  }

  #domainDir(domain: string): string {
    return join(this.#dir, checkDomain(domain.toLowerCase()));
  }

  #active(domain: string): Record<string, string> {
    const f = join(this.#domainDir(domain), 'active.json');
    if (!existsSync(f)) return {};
    return JSON.parse(readFileSync(f, 'utf8')) as Record<string, string>;
  }

  #readKey(domain: string, selector: string): { algorithm: DkimAlgorithm; key: KeyObject } {
    const file = join(this.#domainDir(domain), `${checkSelector(selector)}.key`);
    if (!existsSync(file)) {
      throw new InputError('ERR_DKIM_UNKNOWN', `no DKIM key ${selector} for ${domain}`);
    }
    if (this.#passphrase === undefined) {
      throw new InputError(
        'ERR_DKIM_PASSPHRASE',
        'reading a DKIM private key needs the passphrase',
      );
    }
    const key = createPrivateKey({
      key: readFileSync(file, 'utf8'),
      format: 'pem',
      passphrase: this.#passphrase,
    });
    return {
      algorithm: key.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256',
      key,
    };
  }

  /** Makes a key for `selector` of `domain`; it signs at once when `activate` (or when it is the first of its algorithm). */
  async generate(
    domain: string,
    selector: string,
    algorithm: DkimAlgorithm,
    activate = false,
  ): Promise<DkimKeyInfo> {
    const dir = this.#domainDir(domain);
    const file = join(dir, `${checkSelector(selector)}.key`);
    if (existsSync(file)) {
      throw new InputError('ERR_DKIM_EXISTS', `${domain} already has a selector ${selector}`);
    }
    if (this.#passphrase === undefined) {
      throw new InputError('ERR_DKIM_PASSPHRASE', 'making a DKIM key needs the passphrase');
    }
    const pair =
      algorithm === 'rsa-sha256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pem = pair.privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: this.#passphrase,
    });
    await writeFileAtomic(file, Buffer.from(pem), {
      mode: 0o600,
      overwrite: false,
      code: 'ERR_DKIM',
    });
    await writeFileAtomic(
      join(dir, `${selector}.pub`),
      Buffer.from(pair.publicKey.export({ type: 'spki', format: 'pem' })),
      { mode: 0o644, overwrite: true, code: 'ERR_DKIM' },
    );
    const active = this.#active(domain);
    if (activate || active[algorithm] === undefined) {
      await this.#setActive(domain, algorithm, selector);
    }
    return this.#info(domain, selector, algorithm, pair.publicKey);
  }

  /** Makes `selector` the signing key of its algorithm for `domain` (key rotation). */
  async use(domain: string, selector: string): Promise<DkimKeyInfo> {
    const { algorithm, key } = this.#readKey(domain, selector);
    await this.#setActive(domain, algorithm, selector);
    return this.#info(domain, selector, algorithm, createPublicKey(key));
  }

  /** Deletes a key that no longer signs. */
  retire(domain: string, selector: string): void {
    const active = this.#active(domain);
    if (Object.values(active).includes(selector)) {
      throw new InputError(
        'ERR_DKIM_ACTIVE',
        `${selector} still signs for ${domain}: use another first`,
      );
    }
    this.#readKey(domain, selector);
    rmSync(join(this.#domainDir(domain), `${selector}.key`));
    rmSync(join(this.#domainDir(domain), `${selector}.pub`), { force: true });
  }

  async #setActive(domain: string, algorithm: DkimAlgorithm, selector: string): Promise<void> {
    const active = { ...this.#active(domain), [algorithm]: selector };
    await writeFileAtomic(
      join(this.#domainDir(domain), 'active.json'),
      Buffer.from(`${JSON.stringify(active, null, 2)}\n`),
      { mode: 0o600, overwrite: true, code: 'ERR_DKIM_STATE' },
    );
    this.#cache.delete(domain);
  }

  #info(domain: string, selector: string, algorithm: DkimAlgorithm, pub: KeyObject): DkimKeyInfo {
    return {
      domain,
      selector,
      algorithm,
      active: this.#active(domain)[algorithm] === selector,
      dnsName: `${selector}._domainkey.${domain}`,
      dnsValue: dnsRecordValue(algorithm, pub),
    };
  }

  /**
   * A domain's first keys, made when it has none: rsa-sha256 (2048) and ed25519-sha256, both
   * active, selectors named by the month (`202612r`, `202612e`). Answers what was made.
   */
  async ensure(domain: string, now = Date.now()): Promise<DkimKeyInfo[]> {
    if (this.list(domain).length > 0) return [];
    const month = new Date(now).toISOString().slice(0, 7).replace('-', '');
    return [
      await this.generate(domain, `${month}r`, 'rsa-sha256', true),
      await this.generate(domain, `${month}e`, 'ed25519-sha256', true),
    ];
  }

  /** Every key of every domain (or of one), with its DNS record. */
  list(domain?: string): DkimKeyInfo[] {
    if (!existsSync(this.#dir)) return [];
    const domains = domain !== undefined ? [domain] : readdirSync(this.#dir).sort();
    return domains.flatMap((d) => {
      const dir = this.#domainDir(d);
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((f) => f.endsWith('.key'))
        .sort()
        .map((f) => {
          const selector = f.slice(0, -4);
          const pub = join(dir, `${selector}.pub`);
          const key = existsSync(pub)
            ? createPublicKey(readFileSync(pub, 'utf8'))
            : createPublicKey(this.#readKey(d, selector).key);
          const algorithm = key.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
          return this.#info(d, selector, algorithm, key);
        });
    });
  }

  /** The active keys of `domain` (none when it has none): what the off-ramp signs with. */
  signingKeys(domain: string, now = Date.now()): DkimKey[] {
    let d: string;
    try {
      d = checkDomain(domain.toLowerCase());
    } catch {
      return [];
    }
    const f = join(this.#dir, d, 'active.json');
    const hit = this.#cache.get(d);
    if (hit !== undefined && now - hit.checkedAt < 1000) return hit.keys;
    const status = fileStatus(f);
    if (hit !== undefined && sameFileStatus(hit.status, status)) {
      this.#cache.set(d, { ...hit, checkedAt: now });
      return hit.keys;
    }
    const keys = Object.values(this.#active(d)).map((selector): DkimKey => {
      const { algorithm, key } = this.#readKey(d, selector);
      return { domain: d, selector, algorithm, privateKey: key };
    });
    this.#cache.set(d, { checkedAt: now, status, keys });
    return keys;
  }
}
