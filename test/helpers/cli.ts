// Runs the real `aftersmtp` CLI (bin/aftersmtp over the compiled dist/) in a child process, the
// way an operator does (with the Node.js flags of bin/aftersmtp's first line, under the Node.js
// that runs the tests), and collects its exit code and output.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

export const BIN = fileURLToPath(new URL('../../../bin/aftersmtp', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Environment for a child: the parent's, less any AFTERSMTP_* settings, plus `extra`. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AFTERSMTP_')) env[k] = v;
  return { ...env, ...extra };
}

export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; input?: Buffer | string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], {
      env: cliEnv(options.env),
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Starts a long-running CLI command (with Node.js options `nodeArgs`); the caller stops it. */
export function startCli(
  args: string[],
  env: Record<string, string>,
  cwd?: string,
  nodeArgs: readonly string[] = [],
): ChildProcess {
  return spawn(process.execPath, [...NODE_FLAGS, ...nodeArgs, BIN, ...args], {
    env: cliEnv(env),
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Sends `signal` to a child and resolves with its exit code (or the signal that ended it) once it
 * is gone; at once when it has exited already, by itself or by a signal (no 'exit' event is left
 * to wait for then, and a promise waiting for one would never settle).
 */
export function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode);
  }
  return new Promise((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? sig));
    child.kill(signal);
  });
}

const madeDirs: string[] = [];

/** Removes this process's temporary directories; an exit handler, so it must not throw. */
function removeMadeDirs(): void {
  for (const dir of madeDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a child still writing there, or a file made read-only: left for the system's cleaner
    }
  }
}

/**
 * A new directory `aftersmtp-<prefix>-XXXXXX` in the system's temporary directory, removed with
 * everything in it when this process exits (every test file runs in a process of its own).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `aftersmtp-${prefix}-`));
  if (madeDirs.push(dir) === 1) process.once('exit', removeMadeDirs);
  return dir;
}

export type LogLine = Record<string, unknown> & { msg?: string };

export interface StartedServe {
  child: ChildProcess;
  /** Its log lines up to "aftersmtp serving", and after it unless started with `keepLog: false`. */
  log: LogLine[];
  ready: LogLine;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

export interface ServeOptions {
  /** Started by `node` without bin/aftersmtp's Node.js flags (only `nodeArgs`). */
  readonly bare?: boolean;
  /** Node.js options before the script (a CPU profile, a preloaded module). */
  readonly nodeArgs?: readonly string[];
  /** Keep its log lines in `log` once it serves (default true). */
  readonly keepLog?: boolean;
  /** Called with each log line as it arrives, before and after it serves. */
  readonly onLine?: (line: LogLine) => void;
  /**
   * Once it serves, a line whose text does not pass is neither parsed, kept nor handed to
   * `onLine` (a benchmark that needs one kind of line should not pay for parsing every other).
   */
  readonly keepLine?: (text: string) => boolean;
  /** How long it may take to serve before it is killed and the start fails (default 60 s). */
  readonly readyWithinMs?: number;
}

/**
 * `serve`, resolved once it logs that it serves, with its log lines so far. Its stdout is its
 * JSON log; a line that is not JSON (none should be) is skipped.
 */
export function startServe(
  env: Record<string, string>,
  options: ServeOptions = {},
): Promise<StartedServe> {
  const child = options.bare
    ? spawn(process.execPath, [...(options.nodeArgs ?? []), BIN, 'serve'], {
        env: cliEnv(env),
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : startCli(['serve'], env, undefined, options.nodeArgs);
  const log: LogLine[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const { keepLog = true, onLine, keepLine, readyWithinMs = 60_000 } = options;
  return new Promise((resolve, reject) => {
    let serving = false;
    let parsing = true;
    let buffered = '';
    const take = (text: string): void => {
      if (serving && keepLine?.(text) === false) return;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      if (!serving || keepLog) log.push(line);
      onLine?.(line);
      if (serving || line.msg !== 'aftersmtp serving') return;
      serving = true;
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      if (!keepLog && onLine === undefined) {
        parsing = false;
        child.stdout?.removeListener('data', onData);
      }
      resolve({ child, log, ready: line, stderr: () => stderr });
    };
    const onData = (d: Buffer): void => {
      buffered += d.toString();
      let nl: number;
      while (parsing && (nl = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        take(text);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      reject(new Error(`serve exited before serving (${code ?? signal}): ${stderr}`));
    };
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      child.kill('SIGKILL');
      const last = log.slice(-12).map((l) => JSON.stringify(l).slice(0, 600));
      reject(
        new Error(
          `serve did not serve within ${readyWithinMs} ms; last lines:\n${last.join('\n')}\n${stderr}`,
        ),
      );
    }, readyWithinMs);
    child.stdout?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** `serve`'s settings for a test: `dataDir`, every listener on 127.0.0.1 at a free port, classic-v1. */
export function localServeEnv(dataDir: string): Record<string, string> {
  return {
    AFTERSMTP_DATA_DIR: dataDir,
    AFTERSMTP_ADMIN_LISTEN: '127.0.0.1:0',
    AFTERSMTP_GRPC_LISTEN: '127.0.0.1:0',
    AFTERSMTP_QUIC_LISTEN: '127.0.0.1:0',
    AFTERSMTP_SMTP_LISTEN: '127.0.0.1:0',
    AFTERSMTP_SUBMISSION_LISTEN: '127.0.0.1:0',
    AFTERSMTP_SUBMISSIONS_LISTEN: '127.0.0.1:0',
    AFTERSMTP_DOMAIN: 'example.org',
    AFTERSMTP_SUITE: 'classic-v1',
  };
}
