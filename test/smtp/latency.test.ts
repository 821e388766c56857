// Latency marks (src/latency.ts) and the benchmark's reading of them (bench/lib/latency.ts): a
// mark is published only to a subscriber; a real `serve` with the recorder preloaded (as
// bench/onramp runs it with ONRAMP_LATENCY_DIR) leaves, for each SMTP message, one timeline
// with every on-ramp point in the order of the message's way, across its two threads; and the
// reading joins, windows and measures timelines as documented.
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { LATENCY_CHANNEL, markLatency, type LatencyMark } from '../../src/latency.js';
import { ONRAMP_PHASES, phaseFigures, readMarks, timelines } from '../../bench/lib/latency.js';
import {
  connect,
  register,
  startMessagingGateway,
  waitInbox,
  token,
} from '../messaging/helpers.js';
import { DOMAIN, RawSmtp, message } from './helpers.js';

const RECORDER = fileURLToPath(new URL('../../bench/lib/latency-recorder.js', import.meta.url));

test('a mark reaches a subscriber with its point, key, link and time', () => {
  const seen: LatencyMark[] = [];
  const listener = (m: unknown): void => {
    seen.push(m as LatencyMark);
  };
  subscribe(LATENCY_CHANNEL, listener);
  try {
    const t0 = performance.timeOrigin + performance.now();
    markLatency('smtp.authenticated', 'session-1', 'tx-1');
    markLatency('pipeline.start', 'tx-1');
    const t1 = performance.timeOrigin + performance.now();
    assert.deepEqual(
      seen.map(({ point, key, link }) => ({ point, key, link })),
      [
        { point: 'smtp.authenticated', key: 'session-1', link: 'tx-1' },
        { point: 'pipeline.start', key: 'tx-1', link: undefined },
      ],
    );
    for (const m of seen) assert.ok(m.at >= t0 && m.at <= t1, `${m.at} in [${t0}, ${t1}]`);
  } finally {
    unsubscribe(LATENCY_CHANNEL, listener);
  }
});

test('timelines join a session to its transaction; a session with two messages is left out', () => {
  const lines = [
    '# dropped 0',
    '1000.000 smtp.connect s1',
    '1000.200 smtp.rcpt s1',
    '1000.500 smtp.authenticated s1 t1',
    '1000.600 pipeline.start t1',
    '1001.600 pipeline.committed t1',
    '1001.700 smtp.replied s1',
    '1001.700 smtp.replied s1', // a repeated point counts at its first mark
    '2000.000 smtp.connect s2',
    '2000.100 smtp.authenticated s2 t2',
    '2000.200 smtp.authenticated s2 t3',
    'garbage',
  ];
  const all = timelines(lines);
  assert.equal(all.length, 1);
  const m = all[0];
  assert.equal(m?.get('smtp.connect'), 1000);
  assert.equal(m?.get('pipeline.committed'), 1001.6);
  assert.equal(m?.get('smtp.replied'), 1001.7);

  const figures = phaseFigures(all, ONRAMP_PHASES, { from: 999, to: 1001 });
  const byName = new Map(figures.map((f) => [f.phase, f]));
  assert.equal(byName.get('connect to RCPT (banner, EHLO, MAIL)')?.messages, 1);
  assert.ok(
    Math.abs((byName.get('connect to RCPT (banner, EHLO, MAIL)')?.medianUs ?? 0) - 200) < 1e-6,
  );
  // No smtp.received mark: the phases that need it count no message.
  assert.equal(byName.get('DATA and the message bytes')?.messages, 0);
  assert.ok(Number.isNaN(byName.get('DATA and the message bytes')?.medianUs ?? 0));
  // Outside the window: nothing.
  assert.ok(
    phaseFigures(all, ONRAMP_PHASES, { from: 1500, to: 3000 }).every((f) => f.messages === 0),
  );
});

test('a real serve with the recorder: every on-ramp point of each message, in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'latency-marks-'));
  const gw = await startMessagingGateway(
    { AFTERSMTP_DNS_SERVERS: '127.0.0.1:1', LATENCY_TRACE_DIR: dir },
    [`--import=${RECORDER}`],
  );
  try {
    const client = await connect(gw);
    const alice = await register(client, 'alice');
    const port = Number(
      String((gw.ready.smtp as { mx: string }).mx)
        .split(':')
        .at(-1),
    );
    for (let i = 0; i < 3; i++) {
      const s = await RawSmtp.open(port);
      await s.cmd('EHLO latency.test');
      assert.match(await s.cmd('MAIL FROM:<sender@latency.test>'), /^250 /);
      assert.match(await s.cmd(`RCPT TO:<alice@${DOMAIN}>`), /^250 /);
      assert.match(await s.cmd('DATA'), /^354 /);
      assert.match(await s.cmd(`${message({ subject: `m${i}` })}.`), /^250 /);
      assert.match(await s.cmd('QUIT'), /^221 /);
      s.close();
    }
    await waitInbox(client, await token(client, alice), 3);
    client.close();
    // The recorder writes every quarter second.
    await new Promise((r) => setTimeout(r, 600));
  } finally {
    await gw.stop();
  }
  try {
    const all = timelines(readMarks(dir));
    assert.equal(all.length, 3);
    const points = [...new Set(ONRAMP_PHASES.flatMap((p) => [p.from, p.to]))];
    const order = [
      'smtp.connect',
      'smtp.rcpt',
      'smtp.rcpt.answered',
      'smtp.received',
      'smtp.authenticated',
      'pipeline.start',
      'pipeline.sealed',
      'pipeline.committed',
      'smtp.replied',
      'smtp.close',
    ];
    for (const p of points) assert.ok(order.includes(p), p);
    for (const m of all) {
      const times = order.map((p) => m.get(p));
      assert.ok(
        times.every((t) => t !== undefined),
        JSON.stringify([...m]),
      );
      for (let i = 1; i < times.length; i++) {
        assert.ok(
          (times[i] as number) >= (times[i - 1] as number),
          `${order[i]} after ${order[i - 1]}`,
        );
      }
    }
    const window = { from: 0, to: Number.MAX_SAFE_INTEGER };
    assert.ok(phaseFigures(all, ONRAMP_PHASES, window).every((f) => f.messages === 3));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
