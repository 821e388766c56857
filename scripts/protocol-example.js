// Prints the worked example of docs/PROTOCOL.md §8 (every intermediate value of a classic-v1
// envelope sealed from fixed seeds). Run after `npm run build:ts`:
//   node scripts/protocol-example.js [--json]
import console from 'node:console';
import process from 'node:process';
import { protocolExample } from '../dist/src/envelope/example.js';

const { values } = protocolExample();
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(values, null, 2));
} else {
  for (const [name, value] of Object.entries(values)) {
    const text = String(value);
    const isHex = typeof value === 'string' && /^([0-9a-f]{2})*$/.test(text);
    if (!isHex) {
      console.log(`${name}: ${JSON.stringify(value)}`);
      continue;
    }
    console.log(`${name} (${text.length / 2} bytes):`);
    for (let i = 0; i < text.length; i += 64) console.log(`  ${text.slice(i, i + 64)}`);
  }
}
