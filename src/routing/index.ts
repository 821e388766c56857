/**
 * The MappingEngine (DESIGN.md §1b): Postfix-grade maps that the pipeline consults through an
 * immutable snapshot: access_map, relay_domains, mx_record_map, canonical_maps and
 * virtual_alias_maps, and spam_policy (the spam scanners and thresholds per recipient). docs/MAPS.md describes each map, its keys, lookup order and limits.
 */
export { MappingEngine, DEFAULT_POLL_MS, mapsDatabasePath } from './engine.js';
export { MAPS_NAMESPACE, PgMapsFollower, PgSharedDocuments, sharedMaps } from './postgres.js';
export type {
  ImportOptions,
  ImportResult,
  MappingEngineOptions,
  SetOptions,
  WriteResult,
} from './engine.js';
export { MAP_FORMATS, checkEntry, type ImportFormat } from './entries.js';
export { MapInputError, MapLimitError, MapStoreError } from './errors.js';
export { formatSpamPolicy, parseSpamPolicy } from './spam-policy.js';
export { parsePostfixTable, type TableLine } from './postfix-format.js';
export { formatRoute, parseRoute } from './routes.js';
export {
  ENTRY_CLASSES,
  LIMITS,
  MAP_NAMES,
  isMapName,
  type AccessAction,
  type AccessMatch,
  type AliasExpansion,
  type AliasStep,
  type EntryClass,
  type EntryKind,
  type MapEntry,
  type MapName,
  type MapSnapshot,
  type MapTestResult,
  type MapTestValue,
  type Route,
  type SpamPolicy,
  type SpamScannerName,
  type TestAs,
  type UnavailableRule,
  SPAM_SCANNERS,
} from './types.js';
