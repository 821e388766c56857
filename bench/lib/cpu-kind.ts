/**
 * Linux perf's samples as bench/cpu-kinds.ts reads them: the text of `perf script -F
 * comm,pid,tid,time,ip,sym,dso` parsed into samples, the kind of code each sampled frame
 * belongs to, and the module whose JavaScript was running.
 */
export interface Sample {
  pid: string;
  main: boolean;
  time: number;
  /** The stack, leaf first: "symbol (object)" per frame. */
  frames: string[];
}

const HEADER = /^\S.*?\s+(\d+)\/(\d+)\s+(\d+\.\d+):/;

export function samplesOf(text: string): Sample[] {
  const out: Sample[] = [];
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.length > 0);
    const m = HEADER.exec(lines[0] ?? '');
    if (m === null) continue;
    out.push({
      pid: m[1] as string,
      main: m[1] === m[2],
      time: Number(m[3]),
      frames: lines.slice(1).map((l) => l.trim().replace(/^[0-9a-f]+ /, '')),
    });
  }
  return out;
}

/** The system call a kernel stack serves, or what brought the kernel in. */
function kernelKind(frames: readonly string[]): string {
  const kernel = frames.filter((f) => f.includes('[kernel.kallsyms]')).map((f) => f.split(' ')[0]);
  const call = kernel.find((s) => /^(__x64_sys_|__do_sys_|ksys_|__sys_)/.test(s ?? ''));
  if (call !== undefined)
    return `kernel: ${call.replace(/^(__x64_sys_|__do_sys_|ksys_|__sys_)/, '')}`;
  return kernel.some((s) => /page_fault/.test(s ?? ''))
    ? 'kernel: page faults'
    : 'kernel: interrupts, scheduling';
}

/** The kind of code the sampled instruction belongs to (the leaf frame). */
export function kindOf(frames: readonly string[]): string {
  const leaf = frames[0] ?? '';
  if (leaf.includes('[kernel.kallsyms]')) return kernelKind(frames);
  if (/libc\.so/.test(leaf)) {
    if (/malloc|free|_int_|chunk|consolidate|realloc/.test(leaf)) return 'libc: malloc, free';
    return /mem(move|set|cpy|cmp)/.test(leaf) ? 'libc: memcpy, memset' : 'libc: other';
  }
  if (/lmdb/.test(leaf)) return 'LMDB (native)';
  if (/better_sqlite3|better-sqlite3/.test(leaf)) return 'SQLite (native)';
  if (/aftersmtp-native/.test(leaf)) {
    if (/quiche|boring|ssl|mio/i.test(leaf)) return 'native core: QUIC, BoringSSL';
    if (/dalek|ed25519|sha2|sha3|keccak|chacha|poly1305|aes|ml_dsa|ml_kem|libcrux|hpke/i.test(leaf))
      return 'native core: cryptography';
    return 'native core: other';
  }
  if (/JS:/.test(leaf)) return 'JavaScript (JIT code)';
  if (/Builtins_/.test(leaf)) return 'V8 built-ins';
  if (/Scaveng|GC|Marking|Sweep|Heap|Compact|Evacuat/.test(leaf)) return 'V8 garbage collection';
  if (/compiler::|Compile|Parse|Scanner|Ast|Bytecode|Maglev|Turbofan/.test(leaf))
    return 'V8 compilers, parser';
  if (/\/node\)|\(\/usr\/bin\/node\)/.test(leaf)) {
    return /node::|uv_|nghttp2|ssl|SSL|EVP|aes|gcm|sha256|bn_|BN_|OPENSSL/.test(leaf)
      ? 'Node.js runtime, OpenSSL'
      : 'V8 runtime';
  }
  return 'other';
}

/**
 * The module whose JavaScript frame is nearest the leaf: a compiled module of the project
 * (`src/queue/lmdb`), a package (`npm:msgpackr`) or a Node.js module (`node:buffer`), so that the
 * built-ins, runtime and native calls a function makes count for its module. perf finds no
 * JavaScript frame under code built without frame pointers (much of V8 and Node.js, the garbage
 * collector): those samples are "no JavaScript frame" with the leaf's object.
 */
export function moduleOf(frames: readonly string[]): string {
  for (const f of frames) {
    const own = /\/dist\/((?:src|bench|test)\/[\w./-]+?)\.js/.exec(f);
    if (own !== null) return own[1] as string;
    const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f);
    if (pkg !== null) return `npm:${pkg[1] as string}`;
    const core = /\bnode:([\w/]+)/.exec(f);
    if (core !== null) return `node:${core[1] as string}`;
  }
  const object = /\(([^()]*)\)\s*$/.exec(frames[0] ?? '')?.[1] ?? '?';
  return `no JavaScript frame (${object.replace(/.*\//, '')})`;
}
