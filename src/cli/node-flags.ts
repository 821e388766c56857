/**
 * The Node.js flags every `aftersmtp` process runs with. They are written where a process is
 * launched: bin/aftersmtp's first line (`env -S`), the systemd unit's ExecStart, and
 * package.json's `serve` script; test/packaging/launchers.test.ts checks that each carries
 * exactly this list, and the tests' launcher (test/helpers/cli.ts) passes it as bin/aftersmtp does.
 * `serve` logs a warning when it was started without them.
 *
 * `--min-semi-space-size=16`: V8's young generation keeps 16 MiB per semi-space (its largest
 * default size on 64-bit machines), where it starts at 1 MiB and shrinks again whenever the
 * process allocates slowly. A gateway that carries one message at a time, or that was idle for a
 * while, had a young generation too small for a message's short-lived buffers (the 4 KiB body,
 * the envelope, signatures of 3.3 KB for hybrid-v1), and V8's garbage-collection threads took up
 * to 70% of a core beside the main thread. Measured on two cores
 * (docs/ARCHITECTURE.md, "The young generation"): one on-ramp session about 25% more messages
 * per second for hybrid-v1, and more at 16 and 64 sessions. The cost is memory: up to 32 MiB more
 * resident while busy.
 */
export const NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];
