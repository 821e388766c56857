// The admin listener's /metrics, checked the way Prometheus reads it: by Prometheus' own
// `promtool check metrics` (the exposition-format parser Prometheus scrapes with, plus its lint
// of the naming conventions: counters end in _total, base units in names, help on every metric),
// from a real `aftersmtp serve` right after start-up and again after traffic. Then what the
// conventions cannot say: every family the gateway documents is there from the start with the
// right type, the QUIC metrics do not mix counters and gauges, and the counters move. /readyz
// answers ready with its checks. promtool comes from Debian's prometheus package
// (scripts/services/promtool.sh); without it the test is skipped locally and fails under CI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayClient } from '../../src/amp/client-api/index.js';
import { startGateway, type Gateway } from '../client-api/helpers.js';

function promtoolPath(): string | undefined {
  const cached = join(
    process.env.AFTERSMTP_TOOLS_DIR ?? '/var/tmp/aftersmtp-tools',
    'promtool',
    'promtool',
  );
  if (existsSync(cached)) return cached;
  const onPath = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();
  return onPath === '' ? undefined : onPath;
}

const PROMTOOL = promtoolPath();
const MISSING =
  PROMTOOL === undefined
    ? 'promtool is not installed (bash scripts/services/promtool.sh install)'
    : undefined;
if (MISSING !== undefined && process.env.CI === 'true')
  throw new Error(`${MISSING}: required under CI`);

/** `promtool check metrics` on `text`: its exit code and what it said. */
function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL as string, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** name -> type, from the # TYPE lines promtool accepted. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] as string, m[2] as string);
  return out;
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('admin metrics, by Prometheus conventions', { skip: MISSING }, () => {
  let gw: Gateway;
  let admin: string;
  before(async () => {
    gw = await startGateway();
    admin = String(gw.ready.admin);
  });
  after(async () => {
    await gw?.stop();
  });

  test('promtool parses and lints the scrape at start-up without a complaint', async () => {
    const text = await (await fetch(`${admin}/metrics`)).text();
    const r = promtool(text);
    assert.equal(r.output, '', r.output);
    assert.equal(r.status, 0);
    const f = families(text);
    for (const [name, type] of [
      ['aftersmtp_gateway_info', 'gauge'],
      ['aftersmtp_queue_depth', 'gauge'],
      ['aftersmtp_queue_oldest_age_seconds', 'gauge'],
      ['aftersmtp_queue_retries_total', 'counter'],
      ['aftersmtp_queue_dead_letters', 'gauge'],
      ['aftersmtp_messages_in_total', 'counter'],
      ['aftersmtp_messages_out_total', 'counter'],
      ['aftersmtp_store_latency_seconds', 'histogram'],
      ['aftersmtp_client_api_requests_total', 'counter'],
      ['aftersmtp_client_api_request_duration_seconds', 'histogram'],
      ['aftersmtp_ledger_writes_total', 'counter'],
      ['aftersmtp_tls_certificate_expiry_timestamp_seconds', 'gauge'],
      ['aftersmtp_quic_connections_open', 'gauge'],
      ['aftersmtp_quic_message_bytes_total', 'counter'],
      ['aftersmtp_quic_refusals_total', 'counter'],
      ['aftersmtp_quic_buffered_bytes', 'gauge'],
      ['aftersmtp_process_resident_memory_bytes', 'gauge'],
      ['aftersmtp_dns_cache_lookups_total', 'counter'],
      ['aftersmtp_dns_cache_evictions_total', 'counter'],
      ['aftersmtp_dns_cache_entries', 'gauge'],
      ['aftersmtp_dns_cache_bytes', 'gauge'],
    ]) {
      assert.equal(f.get(name as string), type, `${name} is a ${type}`);
    }
    // No family mixes kinds: a _total is a counter, a counter is a _total.
    for (const [name, type] of f) {
      assert.equal(name.endsWith('_total'), type === 'counter', `${name} (${type})`);
    }
    // Present from the start, at zero.
    for (const series of [
      'aftersmtp_messages_in_total{entrance="smtp",result="accepted"}',
      'aftersmtp_messages_out_total{result="delivered"}',
      'aftersmtp_messages_out_total{result="permanent"}',
      'aftersmtp_ledger_writes_total{operation="register",result="accepted"}',
      'aftersmtp_client_api_requests_total{method="DispatchMessage",code="OK"}',
      'aftersmtp_quic_message_bytes_total{direction="sent"}',
      'aftersmtp_quic_refusals_total{reason="busy"}',
      'aftersmtp_queue_retries_total',
      'aftersmtp_dns_cache_lookups_total{result="hit"}',
      'aftersmtp_dns_cache_lookups_total{result="miss"}',
      'aftersmtp_dns_cache_evictions_total',
      'aftersmtp_dns_cache_entries',
    ]) {
      assert.equal(sample(text, series), 0, series);
    }
    const expiry = sample(text, 'aftersmtp_tls_certificate_expiry_timestamp_seconds') as number;
    assert.ok(expiry > Date.now() / 1000 + 365 * 86400, 'the generated certificate lasts years');
  });

  test('calls are counted by method and status code; the scrape still passes promtool', async () => {
    const client = await GatewayClient.connect({ target: gw.grpc, pin: { spki: gw.spki } });
    try {
      await client.getRegistrationChallenge({ domain: 'example.org' });
      await client
        .resolveIdentity({ did: 'did:aftersmtp:example.org:nobody' })
        .catch(() => undefined);
    } finally {
      client.close();
    }
    const text = await (await fetch(`${admin}/metrics`)).text();
    assert.equal(promtool(text).status, 0);
    assert.equal(
      sample(
        text,
        'aftersmtp_client_api_requests_total{method="GetRegistrationChallenge",code="OK"}',
      ),
      1,
    );
    assert.equal(
      sample(
        text,
        'aftersmtp_client_api_requests_total{method="ResolveIdentity",code="NOT_FOUND"}',
      ),
      1,
    );
    assert.equal(
      sample(
        text,
        'aftersmtp_client_api_request_duration_seconds_count{method="GetRegistrationChallenge"}',
      ),
      1,
    );
  });

  test('/readyz: ready, each check named; /healthz stays a liveness answer', async () => {
    const r = await fetch(`${admin}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'ready\nstore: ok\nqueue: ok\nledger: ok\n');
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
  });
});
