// Client networks: parsing into one canonical key, and a property test that the longest-prefix
// table (and the engine's accessClient) agree with a straightforward BigInt reference check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  networkText,
  parseIp,
  parseNetwork,
  PrefixTable,
  type Network,
} from '../../src/routing/cidr.js';
import { MapInputError } from '../../src/routing/index.js';
import { engineWith } from './helpers.js';

describe('parseNetwork', () => {
  it('gives every network one key text', () => {
    for (const [input, key] of [
      ['192.0.2.0/24', '192.0.2.0/24'],
      ['192.0.2.7', '192.0.2.7'],
      ['192.0.2.7/32', '192.0.2.7'],
      ['10', '10.0.0.0/8'],
      ['172.16', '172.16.0.0/16'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['2001:DB8:0:0::/32', '2001:db8::/32'],
      ['[2001:db8::]/48', '2001:db8::/48'],
      ['2001:db8::1', '2001:db8::1'],
      ['::/0', '::/0'],
      ['::ffff:192.0.2.0/120', '192.0.2.0/24'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
    ]) {
      assert.equal(networkText(parseNetwork(input as string)), key, input);
    }
  });

  it('refuses what is not a network, with the reason', () => {
    for (const [input, why] of [
      ['192.0.2.1/24', /host bits/],
      ['2001:db8::1/32', /host bits .* 2001:db8::\/32/],
      ['192.0.2.0/33', /prefix length/],
      ['192.0.2.0/024', /prefix length/],
      ['192.0.02.1', /not an IP/],
      ['256.0.0.0/8', /not an IP/],
      ['1.2.3.4.5', /not an IP/],
      ['2001:db8:::1', /not an IP/],
    ] as const) {
      assert.throws(
        () => parseNetwork(input),
        (e: unknown) => e instanceof MapInputError && why.test(e.message),
        input,
      );
    }
  });

  it('parses client addresses leniently (brackets, zones, IPv4-mapped) and never throws', () => {
    assert.equal(parseIp('::ffff:192.0.2.1')?.text, '192.0.2.1');
    assert.equal(parseIp('[2001:db8::1]')?.text, '2001:db8::1');
    assert.equal(parseIp('fe80::1%eth0')?.text, 'fe80::1');
    assert.equal(parseIp('example.org'), undefined);
    assert.equal(parseIp('127.1'), undefined);
  });
});

// The reference: an address and a network as BigInts, membership by masking.
function big(bytes: Uint8Array): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function referenceContains(net: Network, ip: { family: 4 | 6; bytes: Uint8Array }): boolean {
  if (net.family !== ip.family) return false;
  const bits = BigInt(ip.bytes.length * 8);
  const hostBits = bits - BigInt(net.prefix);
  const mask = ((1n << bits) - 1n) ^ ((1n << hostBits) - 1n);
  return (big(ip.bytes) & mask) === big(net.bytes);
}

function referenceLongest(
  nets: readonly Network[],
  ip: { family: 4 | 6; bytes: Uint8Array },
): Network | undefined {
  let best: Network | undefined;
  for (const n of nets) if (referenceContains(n, ip) && (!best || n.prefix > best.prefix)) best = n;
  return best;
}

function textOfIp(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return groups.join(':');
}

// Networks from random bytes and prefixes, written out as text and parsed back (as a map key is).
const arbFamily = fc.constantFrom<4 | 6>(4, 6);
const arbNetwork = arbFamily.chain((family) =>
  fc
    .record({
      bytes: fc.uint8Array({ minLength: family === 4 ? 4 : 16, maxLength: family === 4 ? 4 : 16 }),
      prefix: fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
    })
    .map(({ bytes, prefix }) => {
      const masked = Uint8Array.from(
        bytes,
        (b, i) => b & ((0xff << (8 - Math.max(0, Math.min(8, prefix - i * 8)))) & 0xff),
      );
      return parseNetwork(`${textOfIp(family, masked)}/${prefix}`);
    }),
);
// Addresses near the networks (so that there are hits), or anywhere.
const arbCase = fc.array(arbNetwork, { minLength: 1, maxLength: 24 }).chain((nets) =>
  fc
    .record({
      pick: fc.nat({ max: nets.length - 1 }),
      noise: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      keep: fc.integer({ min: 0, max: 128 }),
      random: fc.boolean(),
    })
    .map(({ pick, noise, keep, random }) => {
      const base = nets[pick] as Network;
      const len = base.bytes.length;
      const bytes = Uint8Array.from({ length: len }, (_, i) => {
        if (random) return noise[i] as number;
        const k = Math.max(0, Math.min(8, keep - i * 8));
        const m = (0xff << (8 - k)) & 0xff;
        return ((base.bytes[i] as number) & m) | ((noise[i] as number) & ~m & 0xff);
      });
      return { nets, ip: { family: base.family, bytes, text: textOfIp(base.family, bytes) } };
    }),
);

describe('longest-prefix match (property)', () => {
  it('PrefixTable agrees with the reference check', () => {
    fc.assert(
      fc.property(arbCase, ({ nets, ip }) => {
        const table = new PrefixTable<Network>();
        const unique: Network[] = [];
        for (const n of nets) if (table.add(n, n)) unique.push(n);
        const got = table.lookup(parseIp(ip.text) ?? ip)?.value;
        const want = referenceLongest(unique, ip);
        assert.equal(got && networkText(got), want && networkText(want));
      }),
      { numRuns: 2000 },
    );
  });

  it('the engine answers accessClient with the entry the reference picks', () => {
    fc.assert(
      fc.property(arbCase, ({ nets, ip }) => {
        const engine = engineWith([]);
        try {
          engine.import(
            'access_map',
            nets.map((n, i) => `${networkText(n)} REJECT n${i}`).join('\n'),
            {
              format: 'cidr',
            },
          );
          const stored = engine.list('access_map').map((e) => parseNetwork(e.key));
          const want = referenceLongest(stored, ip);
          assert.equal(engine.snapshot().accessClient(ip.text)?.key, want && networkText(want));
        } finally {
          engine.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
