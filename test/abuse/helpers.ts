// Tools of the abuse tests (issue #12): the resident memory and descriptors of a real gateway
// process sampled while it is attacked, a raw HTTP/2 client that speaks gRPC frames the way an
// attacker does (declared lengths it never sends, source addresses of its choosing on the
// loopback network), and the latency record of a legitimate client.
import { readdirSync, readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** Resident set size of process `pid`, in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** Open file descriptors of process `pid`. */
export function fdsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export interface Sampler {
  readonly peakRss: number;
  readonly peakFds: number;
  stop(): void;
}

/** Samples `pid`'s RSS and descriptors every `everyMs` until stopped. */
export function sample(pid: number, everyMs = 50): Sampler {
  const s = { peakRss: rssOf(pid), peakFds: fdsOf(pid) };
  const timer = setInterval(() => {
    try {
      s.peakRss = Math.max(s.peakRss, rssOf(pid));
      s.peakFds = Math.max(s.peakFds, fdsOf(pid));
    } catch {
      // the process is gone: the test sees it elsewhere
    }
  }, everyMs);
  return {
    get peakRss() {
      return s.peakRss;
    },
    get peakFds() {
      return s.peakFds;
    },
    stop: () => clearInterval(timer),
  };
}

export const MiB = 1024 * 1024;

export function mib(n: number): string {
  return `${(n / MiB).toFixed(1)} MiB`;
}

/** A raw HTTP/2 session over TLS to `target` (host:port), from `localAddress` if given. */
export function rawSession(target: string, localAddress?: string): Promise<ClientHttp2Session> {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://${host}:${port}`, {
      createConnection: () =>
        tlsConnect({
          socket: netConnect({ host, port, localAddress }),
          ALPNProtocols: ['h2'],
          rejectUnauthorized: false,
          servername: 'aftersmtp-gateway',
        }),
    });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export interface RawAnswer {
  /** grpc-status, or -1 when the stream ended without one (reset, session gone). */
  readonly status: number;
  readonly code: string | undefined;
  /** Request bytes the client managed to write. */
  readonly written: number;
}

/** A protobuf `bytes`/`string` field 1 of `len` bytes: its tag and length, without the data. */
export function field1Header(len: number): Buffer {
  const out = [0x0a];
  let v = len;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/**
 * One gRPC call written by hand: the 5-byte length prefix declares `declared` bytes, then
 * `body` is written (repeating `chunk` when `body` is a number of bytes) as fast as flow
 * control allows, until all is written or the server answers.
 */
export function rawCall(
  session: ClientHttp2Session,
  method: string,
  opts: { declared: number; body: Buffer | number; chunk?: Buffer; token?: string },
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {
      ':method': 'POST',
      ':path': `/aftersmtp.client.v1.Gateway/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (opts.token !== undefined) headers.authorization = `AfterSMTP ${opts.token}`;
    let stream;
    try {
      stream = session.request(headers);
    } catch {
      resolve({ status: -1, code: undefined, written: 0 });
      return;
    }
    let status = -1;
    let code: string | undefined;
    let written = 0;
    let done = false;
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
      if (typeof h['aftersmtp-code'] === 'string') code = h['aftersmtp-code'];
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    stream.on('close', () => {
      done = true;
      resolve({ status, code, written });
    });
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(opts.declared, 1);
    const s = stream;
    const pump = async () => {
      s.write(prefix);
      if (Buffer.isBuffer(opts.body)) {
        s.write(opts.body);
        written += opts.body.length;
        s.end();
        return;
      }
      const chunk = opts.chunk ?? Buffer.alloc(256 * 1024, 0x61);
      while (!done && written < opts.body) {
        const piece = chunk.subarray(0, Math.min(chunk.length, opts.body - written));
        written += piece.length;
        if (!s.write(piece)) {
          await new Promise<void>((r) => {
            const go = (): void => {
              s.off('drain', go);
              s.off('close', go);
              r();
            };
            s.on('drain', go);
            s.on('close', go);
          });
        }
      }
      if (!done) s.end();
    };
    void pump().catch(() => undefined);
  });
}

/** Latencies of a legitimate client's calls, and its failures. */
export class Probe {
  readonly latencies: number[] = [];
  failures = 0;
  readonly errors: string[] = [];

  async run(call: () => Promise<unknown>): Promise<void> {
    const t0 = performance.now();
    try {
      await call();
      this.latencies.push(performance.now() - t0);
    } catch (err) {
      this.failures++;
      if (this.errors.length < 5) this.errors.push(String((err as Error).message ?? err));
    }
  }

  /** Calls `call` one after another until `signal` aborts. */
  async loop(call: () => Promise<unknown>, signal: AbortSignal, pauseMs = 20): Promise<void> {
    while (!signal.aborted) {
      await this.run(call);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  get successRate(): number {
    const n = this.latencies.length + this.failures;
    return n === 0 ? 0 : this.latencies.length / n;
  }

  percentile(p: number): number {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  }

  summary(): string {
    return `${this.latencies.length} ok, ${this.failures} failed, p50 ${this.percentile(50).toFixed(1)} ms, p99 ${this.percentile(99).toFixed(1)} ms, max ${Math.max(...this.latencies).toFixed(1)} ms`;
  }
}
