/**
 * One wording for a listener that cannot bind, whatever the listener (admin HTTP, gRPC, QUIC,
 * SMTP): "cannot listen on TCP 127.0.0.1:4433 (AFTERSMTP_GRPC_LISTEN): address already in use
 * [EADDRINUSE]", with a stable code per listener (ERR_ADMIN_BIND, ERR_GRPC_BIND, ERR_QUIC_BIND,
 * ...). The operator reads which address, which setting moves it, and why it failed.
 */
import { EnvironmentError, errnoWords } from '../errors.js';

/** A listen address as the settings give it: a host (name or IP) and a port (0: any free). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port` or `[v6]:port`; port 0 asks the system for a free port. */
export function parseListenAddress(raw: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(raw);
  if (!m) throw new Error(`expected host:port, got ${JSON.stringify(raw)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} is out of range`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export interface ListenTarget {
  readonly protocol: 'TCP' | 'UDP';
  readonly host: string;
  readonly port: number;
  /** The setting that chooses the address, e.g. AFTERSMTP_GRPC_LISTEN. */
  readonly setting?: string;
}

const ERRNO = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL|EPERM|EINVAL|ENOTFOUND|EAI_AGAIN)\b/;
/** Rust's io::Error texts (the native QUIC endpoint's bind). */
const RUST_WORDS: readonly [RegExp, string][] = [
  [/address (already )?in use|os error 98\b/i, 'EADDRINUSE'],
  [/permission denied|os error 13\b/i, 'EACCES'],
  [/cannot assign requested address|os error 99\b/i, 'EADDRNOTAVAIL'],
];

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && errnoWords(code) !== undefined) return code;
  const text = String((err as { message?: unknown } | null)?.message ?? err);
  const m = ERRNO.exec(text);
  if (m !== null) return m[1];
  return RUST_WORDS.find(([re]) => re.test(text))?.[1];
}

export function formatListenTarget(t: ListenTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.protocol} ${host}:${t.port}${t.setting === undefined ? '' : ` (${t.setting})`}`;
}

/** The bind failure `err` of the listener at `target` as an EnvironmentError with `code`. */
export function listenError(code: string, target: ListenTarget, err: unknown): EnvironmentError {
  const errno = errnoOf(err);
  const why =
    errno === undefined
      ? String((err as { message?: unknown } | null)?.message ?? err).split('\n')[0]
      : `${errnoWords(errno) ?? 'invalid address'} [${errno}]`;
  const hint =
    errno === 'EADDRINUSE'
      ? '; another process listens there (another aftersmtp serve?): stop it or choose another address'
      : errno === 'EACCES' && target.port < 1024
        ? '; ports below 1024 need root or CAP_NET_BIND_SERVICE'
        : '';
  return new EnvironmentError(
    code,
    `cannot listen on ${formatListenTarget(target)}: ${why}${hint}`,
    {
      cause: err,
    },
  );
}
