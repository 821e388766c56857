// The relay benchmark's two views of CPU: the cryptography's floor (bench/lib/crypto-floor.ts)
// and the kinds of code and modules in Linux perf's samples (bench/lib/cpu-kind.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeFloor, relayCryptoFloor } from '../../bench/lib/crypto-floor.js';
import { kindOf, moduleOf, samplesOf } from '../../bench/lib/cpu-kind.js';

test('the floor counts what a relayed message needs and sums count x each', () => {
  for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
    const f = relayCryptoFloor(suite, { ciphertextBytes: 4112, envelopeBytes: 4600 }, 0.01);
    assert.equal(f.suite, suite);
    assert.deepEqual(
      f.parts.map((p) => [p.name, p.count]),
      [
        ['signature', 2],
        ['verification', 2],
        ['SHA-256 of the ciphertext', 2],
        ['AES-256-GCM of the envelope (transport)', 3],
        ['ChaCha20-Poly1305 of the envelope (at rest)', 1],
      ],
    );
    for (const p of f.parts) assert.ok(p.eachUs > 0 && Number.isFinite(p.eachUs), p.name);
    const sum = f.parts.reduce((s, p) => s + p.count * p.eachUs, 0);
    assert.ok(Math.abs(f.totalUs - sum) < 1e-9);
    assert.match(describeFloor(f), new RegExp(`^${suite} \\d+ µs \\(2 x signature `));
  }
});

const PERF_SCRIPT = `node 1297/1297 24044.000101: 
\t    7f00aa JS:*pack file:///x/node_modules/msgpackr/pack.js:472:16 (/tmp/perf-1297.map)
\t    7f00bb Builtins_JSEntry (/usr/bin/node)

node 1297/1301 24044.000202: 
\tffffffff81a0 mpage_process_page_bufs ([kernel.kallsyms])
\tffffffff81b0 do_fsync ([kernel.kallsyms])
\tffffffff81c0 __x64_sys_fdatasync ([kernel.kallsyms])
\tffffffff81d0 do_syscall_64 ([kernel.kallsyms])
\t    7f0011 fdatasync (/usr/lib/x86_64-linux-gnu/libc.so.6)

kworker/1:2H-kb  4140/4140  24044.000303: 
\tffffffff8222 iowrite16 ([kernel.kallsyms])
`;

test('perf script text parses into samples: process, main thread or not, time, frames', () => {
  const samples = samplesOf(PERF_SCRIPT);
  assert.deepEqual(
    samples.map((s) => [s.pid, s.main, s.time, s.frames.length]),
    [
      ['1297', true, 24044.000101, 2],
      ['1297', false, 24044.000202, 5],
      ['4140', true, 24044.000303, 1],
    ],
  );
  assert.equal(samples[0]?.frames[1], 'Builtins_JSEntry (/usr/bin/node)');
});

test('a sample is of the kind of its leaf frame; the kernel by the system call it serves', () => {
  const [js, flush] = samplesOf(PERF_SCRIPT);
  assert.equal(kindOf(js?.frames ?? []), 'JavaScript (JIT code)');
  assert.equal(kindOf(flush?.frames ?? []), 'kernel: fdatasync');
  const kinds: [string, string][] = [
    ['Builtins_LoadIC (/usr/bin/node)', 'V8 built-ins'],
    ['v8::internal::Scavenger::ScavengeObject (/usr/bin/node)', 'V8 garbage collection'],
    ['v8::internal::LookupIterator::Start (/usr/bin/node)', 'V8 runtime'],
    ['node::BaseObject::BaseObject (/usr/bin/node)', 'Node.js runtime, OpenSSL'],
    ['_int_malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)', 'libc: malloc, free'],
    ['__memmove_avx_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)', 'libc: memcpy, memset'],
    ['mdb_node_search (/x/@lmdb/lmdb-linux-x64/node.abi115.glibc.node)', 'LMDB (native)'],
    [
      'chacha20::backends::avx2::inner (/x/native/aftersmtp-native.linux-x64-gnu.node)',
      'native core: cryptography',
    ],
    [
      'quiche::Connection::send (/x/native/aftersmtp-native.linux-x64-gnu.node)',
      'native core: QUIC, BoringSSL',
    ],
  ];
  for (const [frame, kind] of kinds) assert.equal(kindOf([frame]), kind, frame);
  assert.equal(
    kindOf([
      'vfs_write ([kernel.kallsyms])',
      'ksys_write ([kernel.kallsyms])',
      'do_syscall_64 ([kernel.kallsyms])',
    ]),
    'kernel: write',
  );
  assert.equal(
    kindOf(['handle_softirqs ([kernel.kallsyms])', 'asm_common_interrupt ([kernel.kallsyms])']),
    'kernel: interrupts, scheduling',
  );
});

test('a sample counts for the module whose JavaScript frame is nearest the leaf', () => {
  const [js, flush] = samplesOf(PERF_SCRIPT);
  assert.equal(moduleOf(js?.frames ?? []), 'npm:msgpackr');
  assert.equal(moduleOf(flush?.frames ?? []), 'no JavaScript frame ([kernel.kallsyms])');
  const under = (leaf: string, js: string): string =>
    moduleOf([leaf, `JS:*f ${js} (/tmp/perf-1.map)`, 'Builtins_JSEntry (/usr/bin/node)']);
  assert.equal(
    under('Builtins_StringAdd (/usr/bin/node)', 'file:///w/dist/src/queue/lmdb.js:40:32'),
    'src/queue/lmdb',
  );
  assert.equal(
    under('sha256_block (/x/native/aftersmtp-native.linux-x64-gnu.node)', 'node:buffer:12:3'),
    'node:buffer',
  );
  assert.equal(
    under(
      'memmove (/usr/lib/x86_64-linux-gnu/libc.so.6)',
      'file:///w/node_modules/@grpc/grpc-js/build/src/server.js:9:1',
    ),
    'npm:@grpc/grpc-js',
  );
  assert.equal(
    moduleOf(['v8::internal::Heap::Scavenge (/usr/bin/node)']),
    'no JavaScript frame (node)',
  );
});
