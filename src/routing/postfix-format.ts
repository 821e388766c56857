/**
 * Reads Postfix table source text, the files `postmap` and friends take, into (line, key, value)
 * triples for `maps import`:
 *
 *   hash    `key value` lines (postmap(1) input format)
 *   cidr    `network value` lines (cidr_table(5)): 192.0.2.0/24, 2001:db8::/32, 192.0.2.7
 *   regexp  `/pattern/flags value` lines (regexp_table(5)), `!/pattern/` negated
 *
 * Common rules, as Postfix's readlline(): a line whose first non-blank character is `#` is a
 * comment and a blank line is skipped, neither ends a logical line; a line that starts with
 * whitespace continues the logical line before it (joined with one space); CRLF line ends are
 * accepted. Key and value are separated by whitespace and trimmed.
 *
 * Guarantees: the input is bounded (LIMITS.maxImportBytes, and each logical line), has no NUL
 * character, and every error is a MapInputError (code ERR_MAP_IMPORT) that starts with
 * `line N:`, N being the first physical line of the logical line; quoted keys, if/endif blocks
 * and negated networks, which this importer does not support, are refused by name rather than
 * misread. The entries themselves (keys, values) are checked by the map (entries.ts).
 */
import type { ImportFormat } from './entries.js';
import { MapInputError } from './errors.js';
import { LIMITS } from './types.js';

export interface TableLine {
  /** The first physical line (1-based) of the logical line. */
  readonly line: number;
  readonly key: string;
  readonly value: string;
}

const MAX_LOGICAL_LINE = LIMITS.maxRegexpLength + LIMITS.maxValueLength + 64;

function fail(line: number, message: string): never {
  throw new MapInputError(`line ${line}: ${message}`, 'ERR_MAP_IMPORT');
}

/** Logical lines: comments and blank lines skipped, continuation lines joined. */
function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const physical = text.split('\n');
  physical.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.includes('\0')) fail(n, 'NUL character (is this a text file?)');
    const content = line.trim();
    if (content === '' || content.startsWith('#')) return;
    const current = out[out.length - 1];
    if (/^\s/.test(line)) {
      if (current === undefined)
        fail(n, 'a continuation line (it starts with whitespace) with no line before it');
      current.text += ` ${content}`;
      if (current.text.length > MAX_LOGICAL_LINE)
        fail(current.line, `longer than ${MAX_LOGICAL_LINE} characters`);
    } else {
      if (line.length > MAX_LOGICAL_LINE) fail(n, `longer than ${MAX_LOGICAL_LINE} characters`);
      out.push({ line: n, text: line.trimEnd() });
    }
  });
  return out;
}

function splitKeyValue(
  line: number,
  text: string,
  bareKeys: boolean,
): { key: string; value: string } {
  const ws = text.search(/\s/);
  const key = ws < 0 ? text : text.slice(0, ws);
  const value = ws < 0 ? '' : text.slice(ws + 1).trim();
  if (value === '' && !bareKeys)
    fail(line, `expected "key value", found only ${JSON.stringify(key.slice(0, 80))}`);
  return { key, value };
}

/** The end of a `/pattern/flags` key: index just past the flags. */
function regexpKeyEnd(line: number, text: string): number {
  let i = text.startsWith('!') ? 1 : 0;
  if (text[i] !== '/') fail(line, 'expected /pattern/flags followed by a value');
  i += 1;
  while (i < text.length && text[i] !== '/') i += text[i] === '\\' ? 2 : 1;
  if (i >= text.length) fail(line, 'the pattern has no closing /');
  i += 1;
  while (i < text.length && !/\s/.test(text[i] as string)) i += 1;
  return i;
}

/** Parses table text in `format`; throws MapInputError naming the line. */
export function parsePostfixTable(
  text: string,
  format: ImportFormat,
  options: { readonly bareKeys?: boolean } = {},
): TableLine[] {
  if (text.length > LIMITS.maxImportBytes) {
    throw new MapInputError(
      `the input is larger than ${LIMITS.maxImportBytes} bytes`,
      'ERR_MAP_IMPORT',
    );
  }
  const out: TableLine[] = [];
  for (const { line, text: l } of logicalLines(text)) {
    if (/^(?:if|endif)(?:\s|$)/i.test(l)) fail(line, 'if/endif blocks are not supported');
    if (l.startsWith('"')) fail(line, 'quoted keys are not supported');
    switch (format) {
      case 'hash': {
        if (l.startsWith('/') || l.startsWith('!/'))
          fail(line, 'a regexp entry in a hash table (use --format regexp)');
        out.push({ line, ...splitKeyValue(line, l, options.bareKeys ?? false) });
        break;
      }
      case 'cidr': {
        if (l.startsWith('!')) fail(line, 'negated networks are not supported');
        out.push({ line, ...splitKeyValue(line, l, false) });
        break;
      }
      case 'regexp': {
        const end = regexpKeyEnd(line, l);
        const value = l.slice(end).trim();
        if (value === '')
          fail(line, `no value after ${JSON.stringify(l.slice(0, Math.min(end, 80)))}`);
        out.push({ line, key: l.slice(0, end), value });
        break;
      }
    }
  }
  return out;
}
