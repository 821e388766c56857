/**
 * MTA-STS (RFC 8461): a domain's published rule that mail to it goes over TLS, only to the MX
 * hosts its policy names, with a certificate valid for that name.
 *
 * Discovery: the TXT record `_mta-sts.<domain>` (`v=STSv1; id=...`, exactly one, §3.1), then
 * the policy from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (§3.3): HTTPS with a
 * certificate that verifies for that name (Node's bundled roots plus `ca`), status 200 only (a
 * redirect is not followed), media type text/plain, at most 64 KiB, bounded in time. The policy
 * text is parsed by mailauth's `parsePolicy` (version, mode, max_age, mx); the fetch is ours
 * because mailauth's uses the process-wide HTTPS agent (no CA of our own), reads unbounded
 * bodies and follows no media-type rule.
 *
 * Cache (§5.1): a policy is kept for its max_age, in memory and, given a folder, on disk (one
 * JSON file per domain, written whole and renamed) so that a restart does not forget a policy
 * an attacker would like forgotten. It is fetched again when the TXT id changes or half its
 * max_age (at most a day) has passed; a failed fetch keeps the cached policy until it expires.
 * With no TXT record (or DNS trouble) an unexpired cached policy still applies (§5.1).
 *
 * MX names (§4.1): `mx.example.org` matches itself; `*.example.org` matches exactly one more
 * label on the left (not `example.org`, not `a.b.example.org`). mailauth's `validateMx` accepts
 * any depth of labels, so the match is ours.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { parsePolicy } from 'mailauth/lib/mta-sts.js';
import { BoundedMap } from '../../bounded-map.js';
import type { DnsResolver } from '../../net/dns.js';
import { DnsError, recordsOf } from '../../net/dns.js';
import { hostAddresses } from './mx.js';

export const MAX_POLICY_BYTES = 64 * 1024;
const MAX_CACHED = 10_000;
const DAY_MS = 86_400_000;
const LDH = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

export interface StsPolicy {
  readonly id: string;
  readonly mode: 'enforce' | 'testing' | 'none';
  readonly mx: readonly string[];
  /** Seconds. */
  readonly maxAge: number;
  /** When it was fetched (ms since the epoch). */
  readonly fetchedAt: number;
}

/** TLS-RPT result types of the policy itself (RFC 8460 §4.3.2.2). */
export type StsFetchFailure =
  'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export type StsLookup =
  | { readonly kind: 'policy'; readonly policy: StsPolicy }
  | { readonly kind: 'none' }
  /** A TXT record exists but no policy could be had and none is cached: deliver as without. */
  | { readonly kind: 'failed'; readonly result: StsFetchFailure; readonly reason: string };

export interface MtaStsOptions {
  readonly dns: DnsResolver;
  /** A folder kept across restarts; unset: memory only. */
  readonly cacheDir?: string;
  /** CA certificates trusted besides Node's bundled roots (a private PKI; tests). */
  readonly ca?: readonly (string | Buffer)[];
  /** Bound on one policy fetch, from connecting to the last byte (default 15 s). */
  readonly timeoutMs?: number;
  /** The HTTPS port (443; other values are for tests only). */
  readonly port?: number;
  readonly now?: () => number;
}

/** RFC 8461 §4.1: does MX host `host` match one of the policy's `mx` patterns? */
export function mxMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.replace(/\.$/, '').toLowerCase();
  return patterns.some((raw) => {
    const p = raw.replace(/\.$/, '').toLowerCase();
    if (!p.startsWith('*.')) return p === h;
    const dot = h.indexOf('.');
    return dot > 0 && h.slice(dot + 1) === p.slice(2);
  });
}

/** The id of the one `v=STSv1` TXT record, undefined when there is none (or more than one). */
export function parseStsRecord(texts: readonly string[]): string | undefined {
  const sts = texts.filter((t) => /^v=STSv1\s*(;|$)/.test(t));
  if (sts.length !== 1) return undefined;
  for (const field of (sts[0] as string).split(';')) {
    const m = /^\s*id=([A-Za-z0-9]{1,32})\s*$/.exec(field);
    if (m) return m[1];
  }
  return undefined;
}

class FetchError extends Error {
  constructor(
    readonly result: StsFetchFailure,
    message: string,
  ) {
    super(message);
  }
}

export class MtaSts {
  readonly #o: MtaStsOptions;
  readonly #now: () => number;
  readonly #ca: (string | Buffer)[] | undefined;
  readonly #memory = new BoundedMap<string, StsPolicy | null>(MAX_CACHED);
  readonly #inflight = new Map<string, Promise<StsLookup>>();

  constructor(o: MtaStsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#ca = o.ca !== undefined && o.ca.length > 0 ? [...rootCertificates, ...o.ca] : undefined;
  }

  /** The policy that applies to mail for `domain` now. Never throws. */
  policyFor(domain: string): Promise<StsLookup> {
    const d = domain.toLowerCase();
    const running = this.#inflight.get(d);
    if (running) return running;
    const p = this.#lookup(d).finally(() => this.#inflight.delete(d));
    this.#inflight.set(d, p);
    return p;
  }

  async #lookup(domain: string): Promise<StsLookup> {
    const cached = await this.#cached(domain);
    const valid = cached !== undefined && this.#unexpired(cached) ? cached : undefined;
    const applies = (p: StsPolicy | undefined): StsLookup =>
      p !== undefined && p.mode !== 'none' ? { kind: 'policy', policy: p } : { kind: 'none' };
    let id: string | undefined;
    try {
      const answer = await this.#o.dns.query(`_mta-sts.${domain}`, 'TXT');
      id = parseStsRecord(
        recordsOf(answer, 'TXT').map((r) =>
          ([] as (string | Buffer)[])
            .concat(r.data)
            .map((x) => x.toString())
            .join(''),
        ),
      );
    } catch {
      return applies(valid); // DNS trouble: what we know still holds (§5.1)
    }
    if (id === undefined) return applies(valid);
    const age = valid === undefined ? Infinity : this.#now() - valid.fetchedAt;
    if (valid !== undefined && valid.id === id && age < Math.min(DAY_MS, valid.maxAge * 500)) {
      return applies(valid);
    }
    try {
      const policy = await this.#fetch(domain, id);
      await this.#store(domain, policy);
      return applies(policy);
    } catch (err) {
      if (valid !== undefined) return applies(valid);
      const e =
        err instanceof FetchError
          ? err
          : new FetchError('sts-policy-fetch-error', (err as Error).message);
      return { kind: 'failed', result: e.result, reason: e.message };
    }
  }

  #unexpired(p: StsPolicy): boolean {
    return this.#now() < p.fetchedAt + p.maxAge * 1000;
  }

  async #cached(domain: string): Promise<StsPolicy | undefined> {
    const hit = this.#memory.get(domain);
    if (hit !== undefined) return hit ?? undefined;
    if (this.#o.cacheDir === undefined || !LDH.test(domain)) return undefined;
    let policy: StsPolicy | undefined;
    try {
      const raw = JSON.parse(
        await readFile(join(this.#o.cacheDir, `${domain}.json`), 'utf8'),
      ) as Partial<StsPolicy>;
      if (
        typeof raw.id === 'string' &&
        (raw.mode === 'enforce' || raw.mode === 'testing' || raw.mode === 'none') &&
        Array.isArray(raw.mx) &&
        raw.mx.every((m) => typeof m === 'string') &&
        typeof raw.maxAge === 'number' &&
        typeof raw.fetchedAt === 'number'
      ) {
        policy = raw as StsPolicy;
      }
    } catch {
      policy = undefined; // none cached, or unreadable: as if none
    }
    this.#remember(domain, policy ?? null);
    return policy;
  }

  #remember(domain: string, p: StsPolicy | null): void {
    this.#memory.set(domain, p);
  }

  async #store(domain: string, p: StsPolicy): Promise<void> {
    this.#remember(domain, p);
    const dir = this.#o.cacheDir;
    if (dir === undefined || !LDH.test(domain)) return;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `${domain}.json`);
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(p), { mode: 0o600 });
      await rename(tmp, file);
    } catch {
      // The memory copy still applies; the disk copy is a help across restarts, not a must.
    }
  }

  async #fetch(domain: string, id: string): Promise<StsPolicy> {
    const host = `mta-sts.${domain}`;
    let addresses: readonly string[];
    try {
      addresses = (await hostAddresses(this.#o.dns, host)).addresses;
    } catch (err) {
      throw new FetchError(
        'sts-policy-fetch-error',
        `${host}: ${err instanceof DnsError ? err.message : String(err)}`,
      );
    }
    const address = addresses[0];
    if (address === undefined) {
      throw new FetchError('sts-policy-fetch-error', `${host} has no address`);
    }
    const body = await this.#get(host, address);
    let parsed: ReturnType<typeof parsePolicy>;
    try {
      parsed = parsePolicy(body);
    } catch (err) {
      throw new FetchError('sts-policy-invalid', `${host}: ${(err as Error).message}`);
    }
    return {
      id,
      mode: parsed.mode,
      mx: parsed.mx ?? [],
      maxAge: parsed.maxAge ?? 0,
      fetchedAt: this.#now(),
    };
  }

  #get(host: string, address: string): Promise<Buffer> {
    const timeoutMs = this.#o.timeoutMs ?? 15_000;
    return new Promise<Buffer>((resolve, reject) => {
      const req = request(
        {
          host: address,
          port: this.#o.port ?? 443,
          servername: host,
          path: '/.well-known/mta-sts.txt',
          headers: { host, 'user-agent': 'aftersmtp' },
          method: 'GET',
          agent: false,
          ...(this.#ca !== undefined ? { ca: this.#ca } : {}),
          timeout: timeoutMs,
        },
        (res) => {
          const type = String(res.headers['content-type'] ?? '');
          if (res.statusCode !== 200) {
            res.resume();
            reject(
              new FetchError(
                'sts-policy-fetch-error',
                `https://${host}/.well-known/mta-sts.txt: HTTP ${res.statusCode ?? '?'}`,
              ),
            );
            return;
          }
          if (!/^text\/plain\s*(;|$)/i.test(type)) {
            res.resume();
            reject(new FetchError('sts-policy-invalid', `${host}: media type ${type || 'none'}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
            if (size > MAX_POLICY_BYTES) {
              req.destroy(
                new FetchError(
                  'sts-policy-invalid',
                  `${host}: policy over ${MAX_POLICY_BYTES} bytes`,
                ),
              );
              return;
            }
            chunks.push(d);
          });
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        },
      );
      const deadline = setTimeout(
        () => req.destroy(new FetchError('sts-policy-fetch-error', `${host}: timed out`)),
        timeoutMs,
      );
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', () =>
        req.destroy(new FetchError('sts-policy-fetch-error', `${host}: timed out`)),
      );
      req.on('error', (err) => {
        if (err instanceof FetchError) return reject(err);
        const code = (err as NodeJS.ErrnoException).code ?? '';
        // A certificate that does not verify for mta-sts.<domain> (RFC 8460 sts-webpki-invalid).
        const webpki = /CERT|SELF_SIGNED|ISSUER|ALTNAME|VERIFY/.test(code);
        reject(
          new FetchError(
            webpki ? 'sts-webpki-invalid' : 'sts-policy-fetch-error',
            `${host}: ${err.message}`,
          ),
        );
      });
      req.end();
    });
  }
}
