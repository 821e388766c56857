// Runs every compiled test file under the directories given (default dist/test) with node's
// built-in test runner, under the Node.js that runs this script. The files are listed explicitly because `node --test <dir>`
// means "this directory" on Node.js 20 and "this glob pattern" on Node.js 22 and later.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(path);
    return entry.name.endsWith('.test.js') ? [path] : [];
  });
}

const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['dist/test'];
const files = dirs.flatMap((dir) => testFiles(dir)).sort();
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
