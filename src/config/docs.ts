/**
 * Renders the settings table of docs/OPERATIONS.md from SETTINGS, so the documentation cannot
 * drift from what the loader accepts. `node dist/src/config/docs.js --write` rewrites the table
 * between its markers; a test fails when the committed table is not the rendered one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EXTRA_VARIABLES } from './load.js';
import { SETTINGS } from './schema.js';

export const BEGIN = '<!-- settings:begin (generated from src/config/schema.ts) -->';
export const END = '<!-- settings:end -->';

export function renderSettingsTable(): string {
  const rows = Object.values(SETTINGS).map(
    (s) =>
      `| \`${s.env}\` | ${s.default === undefined ? '(unset)' : `\`${s.default}\``} | ${s.doc} |`,
  );
  for (const [env, doc] of EXTRA_VARIABLES) rows.push(`| \`${env}\` | (unset) | ${doc} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

export function replaceSettingsTable(markdown: string): string {
  const start = markdown.indexOf(BEGIN);
  const end = markdown.indexOf(END);
  if (start < 0 || end < start) throw new Error('docs/OPERATIONS.md lacks the settings markers');
  return `${markdown.slice(0, start + BEGIN.length)}\n${renderSettingsTable()}\n${markdown.slice(end)}`;
}

export const OPERATIONS_MD = fileURLToPath(new URL('../../../docs/OPERATIONS.md', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  writeFileSync(OPERATIONS_MD, replaceSettingsTable(readFileSync(OPERATIONS_MD, 'utf8')));
}
