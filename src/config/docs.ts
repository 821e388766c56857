/**
 * Renders the settings table of docs/OPERATIONS.md from SETTINGS, so the documentation cannot
 * drift from what the loader accepts. `node dist/src/config/docs.js --write` rewrites the table
 * between its markers; a test fails when the committed table is not the rendered one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLIENT_VARIABLES, EXTRA_VARIABLES } from './load.js';
import { SETTINGS } from './schema.js';

export const BEGIN = '<!-- settings:begin (generated from src/config/schema.ts) -->';
export const END = '<!-- settings:end -->';
export const CLIENT_BEGIN = '<!-- client-settings:begin (generated from src/config/load.ts) -->';
export const CLIENT_END = '<!-- client-settings:end -->';

export function renderSettingsTable(): string {
  const rows = Object.values(SETTINGS).map(
    (s) =>
      `| \`${s.env}\` | ${s.default === undefined ? '(unset)' : `\`${s.default}\``} | ${s.doc} |`,
  );
  for (const [env, doc] of EXTRA_VARIABLES) rows.push(`| \`${env}\` | (unset) | ${doc} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

export function renderClientTable(): string {
  const rows = [...CLIENT_VARIABLES].map(([env, doc]) => `| \`${env}\` | ${doc} |`);
  return ['| variable | meaning |', '| --- | --- |', ...rows].join('\n');
}

function replaceBetween(markdown: string, begin: string, end: string, table: string): string {
  const start = markdown.indexOf(begin);
  const stop = markdown.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`docs/OPERATIONS.md lacks the markers ${begin}`);
  return `${markdown.slice(0, start + begin.length)}\n${table}\n${markdown.slice(stop)}`;
}

/** Rewrites both generated tables (the gateway's settings, the client commands' defaults). */
export function replaceSettingsTable(markdown: string): string {
  const server = replaceBetween(markdown, BEGIN, END, renderSettingsTable());
  return replaceBetween(server, CLIENT_BEGIN, CLIENT_END, renderClientTable());
}

export const OPERATIONS_MD = fileURLToPath(new URL('../../../docs/OPERATIONS.md', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  writeFileSync(OPERATIONS_MD, replaceSettingsTable(readFileSync(OPERATIONS_MD, 'utf8')));
}
