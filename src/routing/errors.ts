/**
 * The MappingEngine's typed errors (src/errors.ts): bad keys, values, patterns and import lines are
 * InputErrors whose message names the map, the key or the line; storage trouble has its own class.
 * Callers branch on the class or the code, never on the message.
 */
import { AfterSmtpError, InputError } from '../errors.js';

/** A key, value, pattern or import line that a map refuses; the message says why and where. */
export class MapInputError extends InputError {
  constructor(message: string, code = 'ERR_MAP_INPUT') {
    super(code, message);
  }
}

/** A map is full (AFTERSMTP_MAPS_MAX_ENTRIES) or an input is over a bound. */
export class MapLimitError extends InputError {
  constructor(message: string) {
    super('ERR_MAP_LIMIT', message);
  }
}

/** The maps database cannot be used (newer schema, a stored entry that no longer compiles). */
export class MapStoreError extends AfterSmtpError {
  constructor(message: string, cause?: unknown) {
    super('ERR_MAP_STORE', message, { cause });
  }
}

/**
 * Runs `fn` on each stored entry, in order; an entry that no longer loads (edited by hand, or
 * stored by a version with other rules) becomes a MapStoreError naming its map and key.
 */
export function compileEach<E extends { readonly map: string; readonly key: string }>(
  entries: readonly E[],
  fn: (entry: E) => void,
): void {
  for (const entry of entries) {
    try {
      fn(entry);
    } catch (err) {
      throw new MapStoreError(
        `${entry.map}: stored entry ${JSON.stringify(entry.key)} does not load: ${(err as Error).message}`,
        err,
      );
    }
  }
}
