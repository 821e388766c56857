/**
 * Postfix regexp_table(5) entries: `/pattern/flags result` and `!/pattern/flags result`, with
 * `$1`, `${1}`, `$(1)` substitutions in the result and `$$` for a dollar sign.
 *
 * Postfix semantics kept: matching is case-insensitive unless the `i` flag toggles it off; `m`
 * toggles multi-line mode; the pattern ends at the first `/` not preceded by a backslash; a
 * negated pattern matches when the expression does not, and its result may not use `$n`; the
 * pattern is applied to the whole lookup string (no parent domains, no extension stripping).
 * Differences, refused with a clear error rather than silently misread: the expressions are
 * JavaScript's (ECMAScript), not POSIX ERE, so POSIX classes such as `[:alpha:]` are refused;
 * the `x` flag (basic RE syntax) is refused; `if /pattern/ ... endif` blocks are not supported.
 *
 * Guarantees: a key is compiled once, when it is stored or loaded, never per lookup; a pattern
 * that does not compile, or a result that refers to a group the pattern does not have, is an
 * error naming the key; patterns are at most LIMITS.maxRegexpLength characters and are applied
 * to lookup strings of at most LIMITS.maxLookupInput characters (no RegExp has state: no g/y flag).
 */
import { MapInputError } from './errors.js';
import { LIMITS } from './types.js';

export interface RegexpKey {
  /** The key as written, e.g. `/^(.*)@example\.org$/i`. */
  readonly text: string;
  readonly re: RegExp;
  readonly negated: boolean;
  /** Number of capture groups, the highest `$n` a result may use. */
  readonly groups: number;
}

export function isRegexpKey(key: string): boolean {
  return key.startsWith('/') || key.startsWith('!/');
}

/** Compiles a `/pattern/flags` key; throws MapInputError naming the key and the problem. */
export function compileRegexpKey(key: string): RegexpKey {
  const text = key.trim();
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  if (text.length > LIMITS.maxRegexpLength) {
    throw new MapInputError(
      `regexp ${JSON.stringify(shown)} is longer than ${LIMITS.maxRegexpLength} characters`,
    );
  }
  const negated = text.startsWith('!');
  const body = negated ? text.slice(1) : text;
  if (!body.startsWith('/'))
    throw new MapInputError(`regexp ${JSON.stringify(shown)} must start with /`);
  let end = 1;
  while (end < body.length && body[end] !== '/') end += body[end] === '\\' ? 2 : 1;
  if (end >= body.length) {
    throw new MapInputError(`regexp ${JSON.stringify(shown)} has no closing /`);
  }
  const pattern = body.slice(1, end);
  if (pattern.length === 0) throw new MapInputError(`regexp ${JSON.stringify(shown)} is empty`);
  let ignoreCase = true;
  let multiline = false;
  for (const flag of body.slice(end + 1)) {
    if (flag === 'i') ignoreCase = !ignoreCase;
    else if (flag === 'm') multiline = !multiline;
    else if (flag === 'x') {
      throw new MapInputError(
        `regexp ${JSON.stringify(shown)}: the x flag (basic regular expressions) is not supported`,
      );
    } else {
      throw new MapInputError(
        `regexp ${JSON.stringify(shown)}: unknown flag ${JSON.stringify(flag)} (i and m are supported)`,
      );
    }
  }
  const posix = /\[:[a-z]+:\]/.exec(pattern);
  if (posix) {
    throw new MapInputError(
      `regexp ${JSON.stringify(shown)}: POSIX class ${posix[0]} is not supported (patterns are JavaScript regular expressions; write e.g. [a-z] or \\d)`,
    );
  }
  let re: RegExp;
  try {
    re = new RegExp(pattern, `${ignoreCase ? 'i' : ''}${multiline ? 'm' : ''}`);
  } catch (err) {
    // V8 repeats the pattern ("Invalid regular expression: /.../: why"); keep the why.
    const reason = (err as Error).message.replace(
      /^Invalid regular expression: \/.*\/[a-z]*: /s,
      '',
    );
    throw new MapInputError(`regexp ${JSON.stringify(shown)} does not compile: ${reason}`);
  }
  // An alternative that matches the empty string makes exec() report every group.
  const groups = (new RegExp(`(?:${pattern})|`).exec('') as RegExpExecArray).length - 1;
  return { text, re, negated, groups };
}

type Piece = string | number;

/** Splits a result into literal text and group numbers; throws on a malformed `$`. */
function pieces(template: string): Piece[] {
  const out: Piece[] = [];
  let literal = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i] as string;
    if (ch !== '$') {
      literal += ch;
      continue;
    }
    const rest = template.slice(i + 1);
    const m = /^(?:\$|([0-9]+)|\{([0-9]+)\}|\(([0-9]+)\))/.exec(rest);
    if (!m) {
      throw new MapInputError(
        `bad $ in ${JSON.stringify(template)}: expected $1, \${1}, $(1) or $$ for a dollar sign`,
      );
    }
    if (m[0] === '$') literal += '$';
    else {
      if (literal) out.push(literal);
      literal = '';
      out.push(Number(m[1] ?? m[2] ?? m[3]));
    }
    i += m[0].length;
  }
  if (literal) out.push(literal);
  return out;
}

/** Checks a regexp entry's result: every `$n` names a group the pattern has. */
export function checkTemplate(template: string, key: RegexpKey): void {
  for (const p of pieces(template)) {
    if (typeof p !== 'number') continue;
    if (key.negated) {
      throw new MapInputError(
        `${JSON.stringify(template)}: a negated pattern (!/.../) has no groups for $${p}`,
      );
    }
    if (p < 1 || p > key.groups) {
      throw new MapInputError(
        `${JSON.stringify(template)} uses $${p} but ${key.text} has ${key.groups} group${key.groups === 1 ? '' : 's'}`,
      );
    }
  }
}

/** Whether a result uses substitutions at all. */
export function hasSubstitutions(template: string): boolean {
  return template.includes('$');
}

/** The result with `$n` replaced from `groups` (an unmatched group is empty) and `$$` as `$`. */
export function substitute(template: string, groups: readonly (string | undefined)[]): string {
  return pieces(template)
    .map((p) => (typeof p === 'number' ? (groups[p] ?? '') : p))
    .join('');
}

/** The result with every `$n` replaced by `x`: how its shape is checked before any match. */
export function probe(template: string): string {
  return substitute(template, new Array<string>(100).fill('x'));
}

/** Applies a key to a lookup string: the groups on a match (none for a negated key). */
export function execRegexp(
  key: RegexpKey,
  subject: string,
): readonly (string | undefined)[] | undefined {
  if (subject.length > LIMITS.maxLookupInput) return undefined;
  const m = key.re.exec(subject);
  if (key.negated) return m === null ? [subject] : undefined;
  return m === null ? undefined : m;
}
