/**
 * Host names of peer gateways (a discovery record's `p=` and `c=`, a relay route) to addresses,
 * asynchronously, before anything connects: the native QUIC endpoint takes IP addresses only
 * (a lookup there would block the event loop), and the client API channel is opened by address
 * so that the name is looked up where the operator said.
 *
 * Where names are looked up:
 * - with AFTERSMTP_DNS_SERVERS set, at those servers only (A, then AAAA), like the TXT records
 *   of discovery; `localhost` is the loopback address (RFC 6761 §6.3) and asks no server;
 * - without it, by the system's resolver (getaddrinfo on the libuv thread pool: /etc/hosts,
 *   then the servers of /etc/resolv.conf), as any program on the host would.
 *
 * An IP literal is returned as is. A name that does not resolve is InputError ERR_DNS_HOST
 * (naming the host and the servers asked); callers decide whether that is temporary.
 */
import { lookup } from 'node:dns/promises';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { InputError } from '../errors.js';

export interface HostResolverOptions {
  /** AFTERSMTP_DNS_SERVERS (parseDnsServers form); undefined: the system's resolver. */
  readonly servers?: readonly string[];
  readonly timeoutMs?: number;
}

export class HostResolver {
  readonly #resolver: Resolver | undefined;
  readonly #servers: readonly string[] | undefined;

  constructor(options: HostResolverOptions = {}) {
    this.#servers = options.servers;
    if (options.servers !== undefined) {
      this.#resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: 2 });
      this.#resolver.setServers([...options.servers]);
    }
  }

  /** An IP address of `host` (the first the DNS gives; IPv4 first). */
  async address(host: string): Promise<string> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(bare) !== 0) return bare;
    const name = bare.replace(/\.$/, '').toLowerCase();
    if (this.#resolver === undefined) {
      try {
        return (await lookup(name, { verbatim: false })).address;
      } catch (err) {
        throw this.#failed(host, err);
      }
    }
    if (name === 'localhost' || name.endsWith('.localhost')) return '127.0.0.1';
    let v4Error: unknown;
    try {
      const [a] = await this.#resolver.resolve4(name);
      if (a !== undefined) return a;
    } catch (err) {
      v4Error = err;
    }
    try {
      const [aaaa] = await this.#resolver.resolve6(name);
      if (aaaa !== undefined) return aaaa;
    } catch (err) {
      throw this.#failed(host, v4Error ?? err);
    }
    throw this.#failed(host, v4Error);
  }

  cancel(): void {
    this.#resolver?.cancel();
  }

  #failed(host: string, err: unknown): InputError {
    const code = (err as { code?: unknown } | undefined)?.code;
    const where =
      this.#servers === undefined
        ? 'the system resolver'
        : `${this.#servers.join(', ')} (AFTERSMTP_DNS_SERVERS)`;
    return new InputError(
      'ERR_DNS_HOST',
      `cannot resolve ${host} at ${where}${code === undefined ? '' : `: ${String(code)}`}`,
      { cause: err },
    );
  }
}
