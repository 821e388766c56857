/**
 * Bounds on the connections of a TCP or TLS listener (DESIGN.md §4, §7): a cap in total and one
 * per client address, both checked when the socket is accepted, before a byte of it is read;
 * and, for the sockets it admits, an idle deadline (no traffic for that long closes the socket).
 * TLS listeners add their handshake deadline with tls.Server's `handshakeTimeout` and call
 * `admit` from the server's 'connection' event, so a client that never finishes its handshake
 * still holds one counted slot and loses it at the deadline.
 *
 * Guarantees: at most `maxConnections` sockets, and `maxPerAddress` per address (IPv4-mapped
 * IPv6 counts as its IPv4 address), are open through one guard at any time; a refused socket
 * is destroyed at once and reported to `onRefused`; a slot is released exactly once, when its
 * socket closes. Not guaranteed: fairness among addresses below the caps.
 */
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly maxPerAddress: number;
  /** Closes a socket without traffic in either direction for this long; 0 = never. */
  readonly idleTimeoutMs: number;
}

export type RefusalReason = 'total' | 'address';

export interface GuardHooks {
  onRefused?(reason: RefusalReason, address: string): void;
}

/** The address a connection is counted under ('::ffff:1.2.3.4' counts as '1.2.3.4'). */
export function clientAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #hooks: GuardHooks;
  readonly #perAddress = new Map<string, number>();
  #open = 0;

  constructor(limits: ConnectionLimits, hooks: GuardHooks = {}) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${k} must be an integer >= 0`);
    }
    this.#limits = limits;
    this.#hooks = hooks;
  }

  /** Open sockets in total, or from one address. */
  count(address?: string): number {
    return address === undefined ? this.#open : (this.#perAddress.get(address) ?? 0);
  }

  /** Counts `socket` in, or destroys it when a cap is reached; returns whether it was admitted. */
  admit(socket: Socket): boolean {
    const address = clientAddress(socket);
    const mine = this.#perAddress.get(address) ?? 0;
    const reason: RefusalReason | undefined =
      this.#open >= this.#limits.maxConnections
        ? 'total'
        : mine >= this.#limits.maxPerAddress
          ? 'address'
          : undefined;
    if (reason !== undefined) {
      socket.on('error', () => undefined);
      socket.destroy();
      this.#hooks.onRefused?.(reason, address);
      return false;
    }
    this.#open++;
    this.#perAddress.set(address, mine + 1);
    socket.once('close', () => {
      this.#open--;
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, left);
    });
    if (this.#limits.idleTimeoutMs > 0) {
      socket.setTimeout(this.#limits.idleTimeoutMs, () => socket.destroy());
    }
    return true;
  }
}
