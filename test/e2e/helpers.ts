// End-to-end pieces: a real `aftersmtp serve` process per domain on fixed ports chosen by the
// test (so that the DNS records can name them before the gateways start), with its log key
// created in its data directory beforehand (so that `k=` is known too); its JSON log lines are
// kept and can be awaited. Users are made with the real CLI (keygen, register with hashcash).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_KEY_FILE, createLogKey } from '../../src/ledger/logkey.js';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import {
  runCli,
  startServe,
  stopChild,
  type CliResult,
  type LogLine,
  type StartedServe,
} from '../helpers/cli.js';
import { restartablePort } from '../helpers/ports.js';

export const GATEWAY_PASS = 'gateway pass';

/** What every node of one domain shares (docs/OPERATIONS.md, "Running several nodes"). */
export const NODE_SECRETS = [
  'gateway.key',
  'gateway.record.json',
  'ledger.key',
  'tls.crt',
  'tls.key',
  'store.key',
  'srs.secret',
  'dkim',
] as const;

/** Copies the shared secret files of the node in `fromDir` into the data directory `toDir`. */
export function shareSecrets(fromDir: string, toDir: string): void {
  for (const f of NODE_SECRETS) cpSync(join(fromDir, f), join(toDir, f), { recursive: true });
}
export const USER_PASS = 'user pass';

export type { LogLine };

/** One domain's gateway: its fixed ports, data directory and log key, and the running process. */
export class E2eGateway {
  readonly domain: string;
  readonly dataDir: string;
  readonly quicPort: number;
  readonly grpcPort: number;
  readonly logKey: string;
  readonly env: Record<string, string>;
  /** Node.js options for the `serve` process (e.g. --cpu-prof for bench/stages.ts). */
  nodeArgs: string[] = [];
  child: ChildProcess | undefined;
  ready: LogLine | undefined;
  /** Every log line of the current process (cleared at each start). */
  lines: LogLine[] = [];
  /**
   * Once serving, only the lines whose text passes this are parsed, kept and handed to the
   * listeners (bench/relay: every other line of its gateways would cost the bench's CPU).
   */
  keepLine: ((text: string) => boolean) | undefined;
  /** Called with every log line as it arrives (bench/relay's per-message signal). */
  readonly listeners = new Set<(l: LogLine) => void>();
  #stderr: () => string = () => '';
  #waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  private constructor(
    domain: string,
    dataDir: string,
    ports: { quic: number; grpc: number },
    logKey: string,
    env: Record<string, string>,
  ) {
    this.domain = domain;
    this.dataDir = dataDir;
    this.quicPort = ports.quic;
    this.grpcPort = ports.grpc;
    this.logKey = logKey;
    this.env = env;
  }

  /** Prepares (does not start) the gateway of `domain` under `work`. */
  static async prepare(
    work: string,
    domain: string,
    env: Record<string, string>,
  ): Promise<E2eGateway> {
    const dataDir = join(work, domain);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const signer = await createLogKey(join(dataDir, LOG_KEY_FILE), logOrigin(domain), GATEWAY_PASS);
    // A restarted gateway binds the same ports again (test/helpers/ports.ts).
    const quic = await restartablePort('udp');
    const grpc = await restartablePort('tcp');
    return new E2eGateway(domain, dataDir, { quic, grpc }, signer.verifierKey, {
      AFTERSMTP_DATA_DIR: dataDir,
      AFTERSMTP_DOMAIN: domain,
      AFTERSMTP_PASSPHRASE: GATEWAY_PASS,
      AFTERSMTP_ADMIN_LISTEN: '127.0.0.1:0',
      AFTERSMTP_GRPC_LISTEN: `127.0.0.1:${grpc}`,
      AFTERSMTP_QUIC_LISTEN: `127.0.0.1:${quic}`,
      AFTERSMTP_SMTP_LISTEN: '127.0.0.1:0',
      AFTERSMTP_SUBMISSION_LISTEN: '127.0.0.1:0',
      AFTERSMTP_SUBMISSIONS_LISTEN: '127.0.0.1:0',
      AFTERSMTP_LEDGER_POLICY: `${domain}=open-pow:8`,
      AFTERSMTP_LEDGER_RATE_LIMIT: '1000/1',
      ...env,
    });
  }

  /** The `_aftersmtp._tcp` TXT record: p= QUIC relay, c= client API, k= log key. */
  /** The discovery record, naming the gateway by `host` (an address, or a name DNS resolves). */
  txt(host = '127.0.0.1'): string {
    return `v=aftersmtp1; p=${host}:${this.quicPort}; c=${host}:${this.grpcPort}; k=${this.logKey}`;
  }

  get grpc(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  get spki(): string {
    return String(this.ready?.tlsSpki);
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  async start(): Promise<void> {
    assert.ok(!this.running, `${this.domain} is already running`);
    this.lines = [];
    this.ready = undefined;
    let started: StartedServe;
    try {
      started = await startServe(this.env, {
        nodeArgs: this.nodeArgs,
        keepLog: false,
        onLine: (line) => this.#take(line),
        keepLine: (text) => this.keepLine?.(text) !== false,
      });
    } catch (err) {
      throw new Error(`${this.domain}: ${(err as Error).message}`);
    }
    this.child = started.child;
    this.#stderr = started.stderr;
    this.ready = started.ready;
  }

  /** What the current process wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr();
  }

  #take(line: LogLine): void {
    this.lines.push(line);
    for (const f of this.listeners) f(line);
    for (const w of [...this.#waiters]) {
      if (w.pred(line)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  /** Resolves with the first line (already logged or future) that matches, or fails after ms. */
  waitLog(pred: (l: LogLine) => boolean, ms = 20_000): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        const recent = this.lines.slice(-12).map((l) => JSON.stringify(l).slice(0, 600));
        reject(
          new Error(
            `${this.domain}: no matching log line within ${ms} ms; last lines:\n${recent.join('\n')}`,
          ),
        );
      }, ms);
      this.#waiters.push(w);
    });
  }

  /** SIGKILL (a crash) or SIGTERM (a clean stop); resolves with the exit code or signal. */
  stop(signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM'): Promise<number | string | null> {
    return this.child === undefined ? Promise.resolve(null) : stopChild(this.child, signal);
  }
}

/** A user of one gateway: key file (made by `aftersmtp keygen`) and client state file. */
export interface E2eUser {
  readonly did: string;
  readonly keyFile: string;
  readonly stateFile: string;
  readonly gateway: E2eGateway;
}

export async function cli(
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<CliResult> {
  return runCli(args, { env: { AFTERSMTP_PASSPHRASE: USER_PASS, ...env }, input });
}

/**
 * keygen + register, the gateway's log key pinned beforehand in the user's client state
 * (`aftersmtp ledger pin --state`), for domains that publish no DNS record.
 */
export async function makeUserWith(
  work: string,
  gw: E2eGateway,
  local: string,
  env: Record<string, string>,
  logKey: string,
): Promise<E2eUser> {
  const stateFile = join(work, `${local}@${gw.domain}.state.json`);
  const p = await cli(['ledger', 'pin', '--state', stateFile, gw.domain, logKey], {});
  assert.equal(p.code, 0, p.stderr);
  return makeUser(work, gw, local, 'classic-v1', env);
}

/** keygen + register (hashcash) with the real CLI; the log key comes from DNS (no --log-key). */
export async function makeUser(
  work: string,
  gw: E2eGateway,
  local: string,
  suite: 'classic-v1' | 'hybrid-v1',
  env: Record<string, string>,
): Promise<E2eUser> {
  const did = `did:aftersmtp:${gw.domain}:${local}`;
  const keyFile = join(work, `${local}@${gw.domain}.key`);
  const stateFile = join(work, `${local}@${gw.domain}.state.json`);
  const k = await cli(['keygen', '--did', did, '--suite', suite, '--out', keyFile], env);
  assert.equal(k.code, 0, k.stderr);
  const user = { did, keyFile, stateFile, gateway: gw };
  const r = await cli(['register', ...userArgs(user), '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  return user;
}

/** The gateway and key flags of `send` / `inbox` for `u` (no --log-key: DNS k=, pinned). */
export function userArgs(u: E2eUser): string[] {
  return [
    '--key',
    u.keyFile,
    '--gateway',
    u.gateway.grpc,
    '--gateway-spki',
    u.gateway.spki,
    '--state',
    u.stateFile,
  ];
}
