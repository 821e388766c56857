/**
 * The process's file-descriptor budget: the connection caps of the TCP/TLS listeners must stay
 * well below the open-file limit, so that a flood of connections is refused by the caps (each
 * listener's ConnectionGuard) long before accept() or open() start failing for everything else
 * (the stores, the QUIC socket, outbound connections, the admin listener).
 *
 * Node raises the soft RLIMIT_NOFILE to the hard limit at start; the limit in force is read
 * from /proc/self/limits (Linux). Where it cannot be read, nothing is checked.
 */
import { readFileSync } from 'node:fs';
import { invalidConfiguration } from '../errors.js';

/** Descriptors kept for everything but the capped listeners' connections. */
export const DESCRIPTOR_RESERVE = 512;

/** The soft open-file limit of this process, or undefined where it is not known. */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined || soft === 'unlimited') return undefined;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Throws a ConfigError when the listeners' connection caps plus DESCRIPTOR_RESERVE exceed the
 * open-file limit (`limit`, default: this process's).
 */
export function checkDescriptorBudget(
  config: { readonly grpcMaxConnections: number; readonly smtpMaxConnections?: number },
  limit: number | undefined = openFileLimit(),
): void {
  if (limit === undefined) return;
  const smtp = config.smtpMaxConnections ?? 0;
  const wanted = config.grpcMaxConnections + smtp + DESCRIPTOR_RESERVE;
  if (wanted > limit) {
    throw invalidConfiguration([
      `AFTERSMTP_GRPC_MAX_CONNECTIONS (${config.grpcMaxConnections}) and AFTERSMTP_SMTP_MAX_CONNECTIONS (${smtp}) plus ${DESCRIPTOR_RESERVE} descriptors for the rest do not fit the open-file limit of ${limit} (raise it with ulimit -n / LimitNOFILE, or lower the caps)`,
    ]);
  }
}
