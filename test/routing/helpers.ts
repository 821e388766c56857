// Shared by the routing tests: an engine on an in-memory database, filled from [map, key, value]
// rows, with the lookup options of the test.
import {
  MappingEngine,
  type EntryClass,
  type MapName,
  type MapSnapshot,
} from '../../src/routing/index.js';

export type Row = readonly [MapName, string, string, EntryClass?];

export function engineWith(
  rows: readonly Row[],
  options: {
    parentDomainMatches?: boolean;
    recipientDelimiter?: string;
    maxEntriesPerMap?: number;
  } = {},
): MappingEngine {
  const engine = MappingEngine.open({ path: ':memory:', pollMs: 0, ...options });
  for (const [map, key, value, cls] of rows) engine.set(map, key, value, cls ? { class: cls } : {});
  return engine;
}

export function snapshotWith(
  rows: readonly Row[],
  options: Parameters<typeof engineWith>[1] = {},
): MapSnapshot {
  const engine = engineWith(rows, options);
  const snapshot = engine.snapshot();
  engine.close();
  return snapshot;
}
