/**
 * The MailScript sandbox: QuickJS compiled to WebAssembly (quickjs-emscripten), one QuickJS
 * runtime per warm context.
 *
 * Guarantees:
 * - A script runs inside the WebAssembly instance's memory with only the ECMAScript intrinsics:
 *   no file system, network, process, timers, `require` or module loader (`import()` rejects);
 *   nothing of the host is reachable (the host hands in JSON text and reads back JSON text;
 *   no host function is ever exposed).
 * - Each run has a CPU deadline (an interrupt handler QuickJS polls) and each context a maximum
 *   stack size (256 KB: QuickJS's stack check is what keeps unbounded recursion from corrupting
 *   the WebAssembly heap). Memory is bounded by the sandbox's own WebAssembly instance, whose
 *   linear memory is created with a fixed maximum (`memoryBytes`): QuickJS's per-runtime limit
 *   is set too, but this build has no malloc_usable_size, so QuickJS counts allocations rather
 *   than bytes and one `new ArrayBuffer(1e9)` would pass it; the instance's maximum is the bound
 *   that holds (measured: a bomb fails at it with "out of memory" in milliseconds and the
 *   process stays at that size). A run that hits a limit fails with a ScriptRunError and its
 *   context is thrown away, never reused; its memory goes back to the instance.
 * - Every intrinsic is frozen before a script is compiled (prelude.ts), so a run cannot leave
 *   anything behind for the next message's run in the same warm context; a context whose run
 *   left promise jobs pending is thrown away too.
 * - A script is compiled once per context; warm contexts are kept per (scope, version) in an
 *   LRU bounded by `poolSize`. Runs are synchronous on the calling thread (QuickJS's sync
 *   build), so one warm context per script is all a gateway ever needs at a time; a runaway
 *   script therefore holds the event loop for at most its deadline.
 *
 * Not guaranteed: a constant-time or side-channel-free run (a script sees timing through
 * Date.now), and protection against a QuickJS or WebAssembly engine bug.
 */
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  RELEASE_SYNC,
  shouldInterruptAfterDeadline,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten';
import { AfterSmtpError } from '../errors.js';
import { PRELUDE } from './prelude.js';

/** The deadline of making a context (the prelude freezing every built-in, the compile). */
const SETUP_MS = 1000;

/** QuickJS's C stack allowance; NOTES-DEPENDENCIES: always set, at most 256 KB. */
export const MAX_STACK_BYTES = 256 * 1024;

export interface SandboxLimits {
  /** CPU deadline of one run, in ms (AFTERSMTP_SCRIPT_TIMEOUT_MS). */
  readonly timeoutMs: number;
  /**
   * The sandbox's WebAssembly memory, all contexts together, in bytes (AFTERSMTP_SCRIPT_MEMORY_MB);
   * a multiple of 64 KiB, at least 16 MiB.
   */
  readonly memoryBytes: number;
  /** Warm contexts kept (AFTERSMTP_SCRIPT_POOL_SIZE). */
  readonly poolSize: number;
}

/** The WebAssembly global (its types are not in this project's TypeScript lib). */
const Wasm = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => object };
  }
).WebAssembly;
const WASM_PAGE = 64 * 1024;
const MIN_MEMORY = 16 * 1024 * 1024;

export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 50,
  memoryBytes: 64 * 1024 * 1024,
  poolSize: 32,
};

/** Why a run failed: a syntax error, an uncaught exception, the deadline, the memory limit. */
export type RunFailure = 'syntax' | 'exception' | 'timeout' | 'memory' | 'output';

export class ScriptRunError extends AfterSmtpError {
  readonly reason: RunFailure;
  constructor(reason: RunFailure, message: string) {
    super('ERR_SCRIPT_FAILED', message);
    this.reason = reason;
  }
}

/** One line of an error a script raised, bounded (never a stack, never host text). */
function describe(dumped: unknown): string {
  if (typeof dumped === 'object' && dumped !== null) {
    const e = dumped as { name?: unknown; message?: unknown };
    const name = typeof e.name === 'string' ? e.name : 'Error';
    const message = typeof e.message === 'string' ? e.message : '';
    return `${name}: ${message}`.replace(/[\r\n]+/g, ' ').slice(0, 200);
  }
  return String(dumped)
    .replace(/[\r\n]+/g, ' ')
    .slice(0, 200);
}

function classify(text: string): RunFailure {
  if (/^InternalError: interrupted/.test(text)) return 'timeout';
  if (/out of memory|stack overflow/i.test(text)) return 'memory';
  return 'exception';
}

/** A warm context: its own runtime (memory limit), the prelude run, one script compiled. */
class WarmContext {
  readonly #runtime: QuickJSRuntime;
  readonly #ctx: QuickJSContext;
  readonly #run: QuickJSHandle;
  readonly #hooks: QuickJSHandle;
  #disposed = false;

  constructor(module: QuickJSWASMModule, source: string, limits: SandboxLimits) {
    this.#runtime = module.newRuntime();
    this.#runtime.setMemoryLimit(limits.memoryBytes);
    this.#runtime.setMaxStackSize(MAX_STACK_BYTES);
    this.#ctx = this.#runtime.newContext();
    try {
      this.#runtime.setInterruptHandler(
        shouldInterruptAfterDeadline(Date.now() + Math.max(limits.timeoutMs, SETUP_MS)),
      );
      this.#hooks = this.#unwrap(this.#ctx.evalCode(PRELUDE, 'prelude.js'), 'exception');
      const compile = this.#ctx.getProp(this.#hooks, 'compile');
      const src = this.#ctx.newString(source);
      try {
        const r = this.#ctx.callFunction(compile, this.#ctx.undefined, src);
        this.#unwrap(r, 'syntax').dispose();
      } finally {
        src.dispose();
        compile.dispose();
      }
      this.#run = this.#ctx.getProp(this.#hooks, 'run');
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  #unwrap(r: { error?: QuickJSHandle; value?: QuickJSHandle }, reason: RunFailure): QuickJSHandle {
    if (r.error !== undefined) {
      const dumped: unknown = this.#ctx.dump(r.error);
      r.error.dispose();
      // QuickJS throws null when it runs out of memory while making its out-of-memory error; a
      // script's own `throw null` is labelled the same (both defer the message alike).
      if (dumped === null && reason !== 'syntax') {
        throw new ScriptRunError('memory', 'out of memory (no error object could be made)');
      }
      const text = describe(dumped);
      throw new ScriptRunError(reason === 'syntax' ? 'syntax' : classify(text), text);
    }
    return r.value as QuickJSHandle;
  }

  /** One run; throws ScriptRunError (after which the context must be disposed). */
  run(input: string, timeoutMs: number): string {
    this.#runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + timeoutMs));
    const arg = this.#ctx.newString(input);
    try {
      const out = this.#unwrap(
        this.#ctx.callFunction(this.#run, this.#ctx.undefined, arg),
        'exception',
      );
      try {
        const v: unknown = this.#ctx.dump(out);
        if (typeof v !== 'string')
          throw new ScriptRunError('output', 'the run returned no action list');
        return v;
      } finally {
        out.dispose();
      }
    } finally {
      arg.dispose();
    }
  }

  /** Whether the last run left work queued (a promise callback): such a context is not reused. */
  get tainted(): boolean {
    return this.#runtime.hasPendingJob();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // Handles first, then the context, then the runtime (quickjs-emscripten's order).
    try {
      this.#run?.dispose();
      this.#hooks?.dispose();
      this.#ctx.dispose();
      this.#runtime.dispose();
    } catch {
      // A runtime that failed (out of memory) may refuse an orderly teardown; its memory stays
      // with the WebAssembly instance, bounded by the limit it was given.
    }
  }
}

export interface RunResult {
  /** The action list as JSON text (parse it with parseActions). */
  readonly output: string;
  /** Whether a warm context served the run (false: one was made for it). */
  readonly warm: boolean;
}

export class ScriptSandbox {
  readonly #module: QuickJSWASMModule;
  readonly #limits: SandboxLimits;
  /** Warm contexts by `<scope>@<version>`, least recently used first. */
  readonly #pool = new Map<string, WarmContext>();

  private constructor(module: QuickJSWASMModule, limits: SandboxLimits) {
    this.#module = module;
    this.#limits = limits;
  }

  static async create(limits: Partial<SandboxLimits> = {}): Promise<ScriptSandbox> {
    const l = { ...DEFAULT_LIMITS, ...limits };
    if (!(l.timeoutMs >= 1) || !(l.memoryBytes >= MIN_MEMORY) || !(l.poolSize >= 1)) {
      throw new RangeError('sandbox limits: timeoutMs >= 1, memoryBytes >= 16 MiB, poolSize >= 1');
    }
    // Its own instance, its own memory: a bound for this sandbox alone, and a bomb in it never
    // grows the memory of another sandbox (the CLI's `script test`, a benchmark).
    const pages = Math.floor(l.memoryBytes / WASM_PAGE);
    const wasmMemory = new Wasm.Memory({ initial: MIN_MEMORY / WASM_PAGE, maximum: pages });
    const module = await newQuickJSWASMModuleFromVariant(
      newVariant(RELEASE_SYNC, { wasmMemory } as Parameters<typeof newVariant>[1]),
    );
    return new ScriptSandbox(module, l);
  }

  get limits(): SandboxLimits {
    return this.#limits;
  }

  /** Compiles `source` in a fresh context and throws a ScriptRunError('syntax') if it does not. */
  check(source: string): void {
    new WarmContext(this.#module, source, this.#limits).dispose();
  }

  /**
   * Runs the script `source`, known as `key` (scope and version: a new version is a new key),
   * on `input` (JSON text). Throws ScriptRunError.
   */
  run(key: string, source: string, input: string): RunResult {
    let ctx = this.#pool.get(key);
    const warm = ctx !== undefined;
    if (ctx !== undefined) this.#pool.delete(key);
    else ctx = new WarmContext(this.#module, source, this.#limits);
    let output: string;
    try {
      output = ctx.run(input, this.#limits.timeoutMs);
    } catch (err) {
      ctx.dispose();
      throw err;
    }
    if (ctx.tainted) {
      ctx.dispose();
    } else {
      this.#pool.set(key, ctx);
      while (this.#pool.size > this.#limits.poolSize) {
        const [oldest, c] = this.#pool.entries().next().value as [string, WarmContext];
        this.#pool.delete(oldest);
        c.dispose();
      }
    }
    return { output, warm };
  }

  /** Drops the warm contexts of keys `keep` does not accept (old versions after a reload). */
  retain(keep: (key: string) => boolean): void {
    for (const [k, c] of this.#pool) {
      if (!keep(k)) {
        this.#pool.delete(k);
        c.dispose();
      }
    }
  }

  get warmContexts(): number {
    return this.#pool.size;
  }

  close(): void {
    for (const c of this.#pool.values()) c.dispose();
    this.#pool.clear();
  }
}
