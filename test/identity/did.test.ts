// DID syntax: accept/reject tables for parseDid/formatDid and the address mapping.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import { addressToDid, didToAddress, formatDid, parseDid } from '../../src/identity/did.js';

const ACCEPT: [string, string, string][] = [
  ['did:aftersmtp:example.com:alice', 'example.com', 'alice'],
  ['did:aftersmtp:mail.example.co.uk:first.last', 'mail.example.co.uk', 'first.last'],
  ['did:aftersmtp:xn--bcher-kva.example:max', 'xn--bcher-kva.example', 'max'],
  ['did:aftersmtp:example.com:john%2Btag', 'example.com', 'john+tag'],
  ['did:aftersmtp:example.com:a_b-c', 'example.com', 'a_b-c'],
  [
    'did:aftersmtp:example.com:%21%23%24%25%26%27%2A%2B%2F%3D%3F%5E%60%7B%7C%7D%7E',
    'example.com',
    "!#$%&'*+/=?^`{|}~",
  ],
  ['did:aftersmtp:a.b:x', 'a.b', 'x'],
  ['did:aftersmtp:1example.com:Bob', '1example.com', 'Bob'],
  [
    `did:aftersmtp:${'a'.repeat(63)}.com:${'x'.repeat(64)}`,
    `${'a'.repeat(63)}.com`,
    'x'.repeat(64),
  ],
];

const REJECT: [string, RegExp][] = [
  ['', /method/],
  ['did:example:example.com:alice', /method/],
  ['DID:aftersmtp:example.com:alice', /method/],
  ['did:aftersmtp:example.com', /exactly/],
  ['did:aftersmtp:example.com:alice:x', /exactly/],
  ['did:aftersmtp:Example.com:alice', /domain.*LDH/],
  ['did:aftersmtp:localhost:alice', /domain.*two labels/],
  ['did:aftersmtp:example..com:alice', /domain.*empty label/],
  ['did:aftersmtp:.example.com:alice', /domain.*empty label/],
  ['did:aftersmtp:example.com.:alice', /domain.*empty label/],
  ['did:aftersmtp:-example.com:alice', /domain.*LDH/],
  ['did:aftersmtp:example-.com:alice', /domain.*LDH/],
  ['did:aftersmtp:exa_mple.com:alice', /domain.*LDH/],
  [`did:aftersmtp:${'a'.repeat(64)}.com:alice`, /domain.*63/],
  [`did:aftersmtp:${Array(64).fill('abc').join('.')}.com:a`, /domain.*253/],
  ['did:aftersmtp:bücher.example:max', /domain/],
  ['did:aftersmtp:ab--cd.example:max', /domain.*reserved/],
  ['did:aftersmtp:xn--zz.example:max', /domain.*A-label/],
  ['did:aftersmtp:192.168.0.1:max', /domain.*numeric/],
  ['did:aftersmtp:example.com:', /localpart.*empty/],
  ['did:aftersmtp:example.com:.alice', /localpart.*dot/],
  ['did:aftersmtp:example.com:alice.', /localpart.*dot/],
  ['did:aftersmtp:example.com:al..ice', /localpart.*dot/],
  ['did:aftersmtp:example.com:john+tag', /localpart.*percent-encoded/],
  ['did:aftersmtp:example.com:%22quoted%22', /localpart.*canonical/],
  ['did:aftersmtp:example.com:%61lice', /localpart.*canonical/],
  ['did:aftersmtp:example.com:john%2btag', /localpart.*upper-case/],
  ['did:aftersmtp:example.com:john%2', /localpart.*percent/],
  ['did:aftersmtp:example.com:j%C3%A9', /localpart/],
  ['did:aftersmtp:example.com:a b', /localpart/],
  ['did:aftersmtp:example.com:alice@example.com', /localpart/],
  [`did:aftersmtp:example.com:${'x'.repeat(65)}`, /localpart.*64/],
];

describe('parseDid', () => {
  for (const [input, domain, localpart] of ACCEPT) {
    it(`accepts ${input.slice(0, 60)}`, () => {
      assert.deepEqual(parseDid(input), { domain, localpart });
      assert.equal(formatDid({ domain, localpart }), input, 'one canonical string form');
    });
  }
  for (const [input, message] of REJECT) {
    it(`rejects ${JSON.stringify(input.slice(0, 60))}`, () => {
      assert.throws(
        () => parseDid(input),
        (err: unknown) =>
          err instanceof AfterSmtpError && err.code === 'ERR_DID' && message.test(err.message),
      );
    });
  }
  it('rejects non-strings and absurd lengths without work', () => {
    assert.throws(() => parseDid(42 as unknown as string), { code: 'ERR_DID' });
    assert.throws(() => parseDid(`did:aftersmtp:${'a'.repeat(1_000_000)}`), { code: 'ERR_DID' });
  });
});

describe('addressToDid / didToAddress', () => {
  it('maps an ASCII address', () => {
    assert.equal(addressToDid('alice@example.com'), 'did:aftersmtp:example.com:alice');
    assert.equal(didToAddress('did:aftersmtp:example.com:alice'), 'alice@example.com');
  });
  it('lower-cases the domain but keeps the localpart case (RFC 5321 §2.4)', () => {
    assert.equal(addressToDid('Alice@EXAMPLE.Com'), 'did:aftersmtp:example.com:Alice');
  });
  it('converts a U-label domain to its A-label and back', () => {
    const did = addressToDid('max@Bücher.example');
    assert.equal(did, 'did:aftersmtp:xn--bcher-kva.example:max');
    assert.equal(didToAddress(did), 'max@xn--bcher-kva.example');
    assert.equal(didToAddress(did, { unicode: true }), 'max@bücher.example');
  });
  it('percent-encodes atext that DID syntax does not allow', () => {
    assert.equal(addressToDid('john+tag@example.com'), 'did:aftersmtp:example.com:john%2Btag');
    assert.equal(didToAddress('did:aftersmtp:example.com:john%2Btag'), 'john+tag@example.com');
  });
  for (const bad of [
    'alice',
    '@example.com',
    'alice@',
    '"a b"@example.com',
    'a..b@example.com',
    'alice@localhost',
    'alice@exa mple.com',
    'alice@[127.0.0.1]',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => addressToDid(bad), { code: 'ERR_DID' });
    });
  }
});
