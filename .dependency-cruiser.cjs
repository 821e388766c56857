/**
 * The layer order of src/ (docs/ARCHITECTURE.md, "Layers"): a folder imports only from folders
 * in layers below it, never from its own layer's other folders or from above; type-only
 * imports count too. With `no-circular`, no module imports one that imports it back.
 * `npm run lint` runs it: `depcruise src --config .dependency-cruiser.cjs`.
 */
const LAYERS = [
  ['cli'],
  ['config'],
  ['admin'],
  ['delivery'],
  ['amp', 'legacy'],
  ['script'],
  ['pipeline'],
  ['spam'],
  ['routing'],
  ['mailbox', 'anchor', 'witness'],
  ['transit'],
  ['queue', 'store', 'ledger', 'quic'],
  ['tls', 'envelope', 'net', 'mail'],
  ['identity'],
  ['native'],
];

const folder = (names) => `^src/(${names.join('|')})/`;
/** The root modules (src/errors.ts, src/log.ts, src/env.ts, src/bounded-map.ts, src/latency.ts, src/random.ts, src/workload.ts) are the lowest layer. */
const ROOT = '^src/[^/]+\\.ts$';

const forbidden = [
  {
    name: 'no-circular',
    severity: 'error',
    comment: 'A module must not import one that (through others) imports it back.',
    from: {},
    to: { circular: true },
  },
  {
    name: 'root-modules-lowest',
    severity: 'error',
    comment:
      'src/*.ts (errors, log, env, bounded-map, latency, random, workload) import nothing of the folders.',
    from: { path: ROOT },
    to: { path: '^src/[^/]+/', pathNot: folder(['native']) },
  },
];
LAYERS.forEach((layer, i) => {
  const above = LAYERS.slice(0, i).flat();
  for (const name of layer) {
    const peers = layer.filter((p) => p !== name);
    const banned = [...above, ...peers];
    if (banned.length === 0) continue;
    forbidden.push({
      name: `layer-${name}`,
      severity: 'error',
      comment: `src/${name} may import only from the layers below it (docs/ARCHITECTURE.md, Layers).`,
      from: { path: folder([name]) },
      to: { path: folder(banned) },
    });
  }
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
  },
};
