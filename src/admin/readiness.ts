/**
 * Readiness (GET /readyz): whether this gateway can do its work now, as opposed to liveness
 * (GET /healthz: the process answers). The composition root adds one check per dependency (the
 * mailbox store, the queue, the ledger) as it opens them; a check passes when it resolves within
 * the deadline. Until start-up is complete, and from the start of shutdown, the gateway is not
 * ready whatever the checks say, so a load balancer sends no new work to it.
 */
import { AfterSmtpError } from '../errors.js';

export type ReadinessCheck = () => Promise<unknown> | unknown;

export interface ReadinessReport {
  readonly ready: boolean;
  readonly state: 'starting' | 'serving' | 'stopping';
  /** Each check: "ok", or why it failed. */
  readonly checks: Readonly<Record<string, string>>;
}

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>();
  readonly #timeoutMs: number;
  #state: ReadinessReport['state'] = 'starting';

  constructor(timeoutMs = 2000) {
    this.#timeoutMs = timeoutMs;
  }

  add(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }

  /** Start-up is complete: from now on the checks decide. */
  serving(): void {
    this.#state = 'serving';
  }

  /** Shutdown has begun: not ready any more. */
  stopping(): void {
    this.#state = 'stopping';
  }

  async report(): Promise<ReadinessReport> {
    const entries = await Promise.all(
      [...this.#checks].map(async ([name, check]): Promise<[string, string]> => {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        });
        try {
          await Promise.race([Promise.resolve().then(check), deadline]);
          return [name, 'ok'];
        } catch (err) {
          const code = err instanceof AfterSmtpError ? ` (${err.code})` : '';
          const message = String((err as Error)?.message ?? err).split('\n')[0];
          return [name, `${message}${code}`.slice(0, 300)];
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const checks = Object.fromEntries(entries);
    const ready = this.#state === 'serving' && entries.every(([, v]) => v === 'ok');
    return { ready, state: this.#state, checks };
  }
}
