/**
 * Per-stage CPU cost of a message, from the V8 CPU profiles that a benchmark has each `serve`
 * write: a relayed message at gateway A and at gateway B (bench/relay.ts, RELAY_CPU_PROF_DIR), or
 * a message taken in by the SMTP on-ramp (bench/onramp.ts, ONRAMP_CPU_PROF_DIR), or one sent out
 * by the off-ramp (bench/offramp.ts, OFFRAMP_CPU_PROF_DIR). Each sample is charged to the
 * nearest frame of the project's own code on its stack (so a native call, a library call or
 * Node.js internals count for the stage that made them); logging, metrics and garbage collection
 * are charged to themselves; samples with no project frame at all are the runtime's (event loop,
 * sockets, HTTP/2). Only the samples of the measured window count (<suite>-window: its start and
 * end on the monotonic clock V8's profiles use, and the messages carried in it), so start-up and
 * warm-up are left out. Figures are µs of CPU per message. A process with worker threads gets a
 * column per thread (`on-ramp/1`: the SMTP listener thread).
 *
 * Run:
 *   RELAY_CPU_PROF_DIR=/tmp/prof RELAY_SENDERS=64 node dist/bench/relay.js
 *   ONRAMP_CPU_PROF_DIR=/tmp/prof ONRAMP_SESSIONS=16 node dist/bench/onramp.js
 *   OFFRAMP_CPU_PROF_DIR=/tmp/prof OFFRAMP_SESSIONS=64 node dist/bench/offramp.js
 *   node dist/bench/stages.js /tmp/prof
 * It reports; it never asserts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The stage of a project file (dist/src/...), first match wins. */
const STAGES: readonly (readonly [RegExp, string])[] = [
  [/\/src\/legacy\/smtp\//, 'SMTP listener: dialogue, guard'],
  [/\/src\/legacy\/offramp\//, 'off-ramp: SMTP client'],
  [/\/src\/pipeline\/(amp-)?offramp/, 'pipeline: open, rewrite, DKIM'],
  [/\/src\/mail\//, 'mail: headers, DKIM, ARC'],
  [/\/src\/pipeline\/authentication/, 'pipeline: SPF, DKIM, DMARC, ARC'],
  [/\/src\/amp\/client-api\//, 'client API: handler, decode, token'],
  [/\/src\/pipeline\/(admission|recipients)/, 'pipeline: admission, recipient check'],
  [/\/src\/pipeline\/(transform|gateway-sign)/, 'pipeline: transform, gateway signature'],
  [/\/src\/pipeline\//, 'pipeline: runner, commit'],
  [/\/src\/queue\//, 'queue: commit, lease, settle'],
  [/\/src\/delivery\//, 'delivery worker: route, settle'],
  [/\/src\/amp\/relay\/receiver/, 'relay: receive'],
  [/\/src\/amp\/relay\//, 'relay: peer lookup, send'],
  [/\/src\/quic\//, 'QUIC driver (native endpoint)'],
  [/\/src\/envelope\/receipt/, 'receipt: sign, verify'],
  [/\/src\/envelope\//, 'envelope: seal, encode, decode, verify'],
  [/\/src\/mailbox\//, 'mailbox writer'],
  [/\/src\/store\//, 'store: encrypt, LMDB'],
  [/\/src\/transit\//, 'transit log'],
  [/\/src\/ledger\//, 'ledger: lookups'],
  [/\/src\/identity\//, 'identity: keys, signatures'],
  [/\/src\/native\//, 'native binding'],
  [/\/src\/log\.js/, 'logging'],
  [/\/src\/admin\//, 'metrics'],
  [/\/src\//, 'other project code'],
];

const LIBRARIES: readonly (readonly [RegExp, string])[] = [
  [/node_modules\/smtp-server/, 'SMTP listener: dialogue, guard'],
  [/node_modules\/mailauth/, 'pipeline: SPF, DKIM, DMARC, ARC'],
  [/node_modules\/nodemailer/, 'off-ramp: SMTP client'],
  [/node_modules\/pino/, 'logging'],
  [/node_modules\/prom-client/, 'metrics'],
];

function stageTotals(profile: Profile, from: number, to: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const memo = new Map<number, string | null>();
  const stageOf = (leafId: number): string | null => {
    const cached = memo.get(leafId);
    if (cached !== undefined) return cached;
    const leaf = byId.get(leafId);
    const fn = leaf?.callFrame.functionName;
    let stage: string | null;
    if (fn === '(idle)') stage = null;
    else if (fn === '(garbage collector)') stage = 'garbage collection';
    else if (fn === '(program)') stage = 'V8 and native code, no JS frame';
    else {
      stage = 'Node.js runtime: event loop, sockets, HTTP/2';
      for (let id: number | undefined = leafId; id !== undefined; id = parent.get(id)) {
        const url = byId.get(id)?.callFrame.url ?? '';
        const lib = LIBRARIES.find(([re]) => re.test(url));
        if (lib !== undefined) {
          stage = lib[1];
          break;
        }
        if (url.includes('/dist/src/')) {
          stage = STAGES.find(([re]) => re.test(url))?.[1] ?? 'other project code';
          break;
        }
      }
    }
    memo.set(leafId, stage);
    return stage;
  };
  const totals = new Map<string, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from || at > to) return;
    const stage = stageOf(id);
    if (stage === null) return;
    totals.set(stage, (totals.get(stage) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  });
  return totals;
}

/**
 * The profiles in `dir`, one per thread (`--cpu-prof` names each file
 * CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile), the main thread (0) first.
 */
function profilesIn(dir: string): { thread: number; profile: Profile }[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  return files
    .map((f) => ({
      thread: Number(f.split('.').at(-3) ?? 0),
      profile: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile,
    }))
    .sort((a, b) => a.thread - b.thread);
}

const dir = process.argv[2];
if (dir === undefined) {
  console.error('usage: node dist/bench/stages.js <RELAY_CPU_PROF_DIR or ONRAMP_CPU_PROF_DIR>');
  process.exit(2);
}
/** The serving processes a benchmark profiles, as the column each is printed in. */
const PROCESSES = [
  ['A', 'A'],
  ['B', 'B'],
  ['onramp', 'on-ramp'],
  ['offramp', 'off-ramp'],
] as const;
const json: Record<string, unknown> = {};
for (const suite of ['classic-v1', 'hybrid-v1']) {
  let window: number[];
  try {
    window = readFileSync(join(dir, `${suite}-window`), 'utf8')
      .trim()
      .split(' ')
      .map(Number);
  } catch {
    continue;
  }
  const [from = 0, to = 0, messages = 1] = window;
  // A column per thread of each profiled process (the on-ramp's SMTP listeners have their own).
  const columns = PROCESSES.filter(([sub]) => existsSync(join(dir, `${suite}-${sub}`))).flatMap(
    ([sub, title]) =>
      profilesIn(join(dir, `${suite}-${sub}`)).map(({ thread, profile }) => ({
        title: thread === 0 ? title : `${title}/${thread}`,
        totals: stageTotals(profile, from, to),
      })),
  );
  const all = (s: string): number => columns.reduce((n, c) => n + (c.totals.get(s) ?? 0), 0);
  const stages = [...new Set(columns.flatMap((c) => [...c.totals.keys()]))].sort(
    (x, y) => all(y) - all(x),
  );
  const us = (m: Map<string, number>, s: string): number => (m.get(s) ?? 0) / messages;
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
  const row = (label: string, cells: number[]): string =>
    `${label.padEnd(46)} ${cells.map((n) => n.toFixed(0).padStart(10)).join(' ')}`;
  console.log(`\n## ${suite}: CPU per message by stage (µs), ${messages} messages\n`);
  console.log(`${'stage'.padEnd(46)} ${columns.map((c) => c.title.padStart(10)).join(' ')}`);
  console.log(`${'-'.repeat(46)} ${columns.map(() => '-'.repeat(10)).join(' ')}`);
  for (const s of stages)
    console.log(
      row(
        s,
        columns.map((c) => us(c.totals, s)),
      ),
    );
  console.log(
    row(
      'total',
      columns.map((c) => sum(c.totals) / messages),
    ),
  );
  json[suite] = {
    messages,
    ...Object.fromEntries(
      columns.map((c) => [
        c.title,
        Object.fromEntries(stages.map((s) => [s, Math.round(us(c.totals, s))])),
      ]),
    ),
  };
}
console.log(`\n${JSON.stringify({ stages: json }, null, 2)}`);
