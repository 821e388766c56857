// Prints a worked example of docs/PROTOCOL.md §8 (every intermediate value of an envelope sealed
// from fixed seeds; classic-v1 unless --suite hybrid-v1). Run after `npm run build:ts`:
//   node scripts/protocol-example.js [--suite classic-v1|hybrid-v1] [--json] [--digest-over N]
// --digest-over N prints a value longer than N bytes as its length and SHA-256 (the hybrid-v1
// section of the document does this for keys, signatures and ciphertexts; the fixture
// test/fixtures/envelope/hybrid-v1-example.json has them in full).
import console from 'node:console';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import process from 'node:process';
import { protocolExample } from '../dist/src/envelope/example.js';

const at = process.argv.indexOf('--suite');
const suite = at > 0 ? process.argv[at + 1] : 'classic-v1';
if (suite !== 'classic-v1' && suite !== 'hybrid-v1') {
  console.error('--suite: classic-v1 or hybrid-v1');
  process.exit(2);
}
const { values } = protocolExample(suite);
const over = process.argv.indexOf('--digest-over');
const limit = over > 0 ? Number(process.argv[over + 1]) : Infinity;
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
    if (text.length / 2 > limit) {
      const digest = createHash('sha256').update(Buffer.from(text, 'hex')).digest('hex');
      console.log(`${name} (${text.length / 2} bytes), SHA-256:`);
      console.log(`  ${digest}`);
      continue;
    }
    console.log(`${name} (${text.length / 2} bytes):`);
    for (let i = 0; i < text.length; i += 64) console.log(`  ${text.slice(i, i + 64)}`);
  }
}
