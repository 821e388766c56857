// The Postfix lookup-key orders (access(5), virtual(5), transport(5)) and the extension split
// (split_addr), key by key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accessAddressKeys,
  mailAddressKeys,
  normalizeDomain,
  routeKeys,
  splitExtension,
} from '../../src/routing/addresses.js';

const off = { recipientDelimiter: '+', parentDomainMatches: false };
const on = { recipientDelimiter: '+', parentDomainMatches: true };

describe('access_map address keys (access(5))', () => {
  it('tries user@domain, domain, parent domains in dot form, user@', () => {
    assert.deepEqual(accessAddressKeys('joe@mail.example.org', off), [
      'joe@mail.example.org',
      'mail.example.org',
      '.example.org',
      '.org',
      'joe@',
    ]);
  });

  it('with an extension: user+ext@domain, user@domain, domain..., user+ext@, user@', () => {
    assert.deepEqual(accessAddressKeys('joe+news@example.org', off), [
      'joe+news@example.org',
      'joe@example.org',
      'example.org',
      '.org',
      'joe+news@',
      'joe@',
    ]);
  });

  it('with parent domain matching on, parents are tried as bare domains', () => {
    assert.deepEqual(accessAddressKeys('joe@mail.example.org', on), [
      'joe@mail.example.org',
      'mail.example.org',
      'example.org',
      'org',
      'joe@',
    ]);
  });

  it('the null sender is <>', () => {
    assert.deepEqual(accessAddressKeys('', off), ['<>']);
    assert.deepEqual(accessAddressKeys('<>', off), ['<>']);
  });

  it('folds case and converts U-labels to A-labels', () => {
    assert.deepEqual(accessAddressKeys('Joe@BÜCHER.Example.', off).slice(0, 2), [
      'joe@xn--bcher-kva.example',
      'xn--bcher-kva.example',
    ]);
  });

  it('a bare local part gets the user@ keys only; garbage gets none', () => {
    assert.deepEqual(accessAddressKeys('postmaster', off), ['postmaster@']);
    assert.deepEqual(accessAddressKeys('x@', off), []);
    assert.deepEqual(accessAddressKeys(`a@${'b'.repeat(2000)}.org`, off), []);
  });

  it('an address literal has no parent domains', () => {
    assert.deepEqual(accessAddressKeys('joe@[192.0.2.1]', off), [
      'joe@[192.0.2.1]',
      '[192.0.2.1]',
      'joe@',
    ]);
  });
});

describe('canonical and virtual keys (virtual(5))', () => {
  it('user+ext@domain, user@domain (carrying the extension), @domain', () => {
    const keys = mailAddressKeys('Joe+Tag@Example.org', '+');
    assert.deepEqual(
      keys.map((k) => k.key),
      ['joe+tag@example.org', 'joe@example.org', '@example.org'],
    );
    assert.deepEqual(keys[1]?.unmatched, { base: 'joe', ext: 'tag', delimiter: '+' });
    assert.equal(keys[2]?.catchAll, true);
  });
});

describe('mx_record_map keys (transport(5))', () => {
  it('address: user+ext@domain, user@domain, domain, .parents', () => {
    assert.deepEqual(routeKeys('a+b@x.example.org', '+'), [
      'a+b@x.example.org',
      'a@x.example.org',
      'x.example.org',
      '.example.org',
      '.org',
    ]);
  });
  it('bare domain: domain, .parents', () => {
    assert.deepEqual(routeKeys('Example.ORG', '+'), ['example.org', '.org']);
  });
});

describe('extension split (Postfix split_addr)', () => {
  it('splits at the first delimiter of the set', () => {
    assert.deepEqual(splitExtension('a-b+c', '+-'), { base: 'a', ext: 'b+c', delimiter: '-' });
    assert.deepEqual(splitExtension('a+', '+'), { base: 'a', ext: '', delimiter: '+' });
  });
  it('does not split when the local part would be empty, nor special addresses', () => {
    assert.equal(splitExtension('+a', '+'), undefined);
    assert.equal(splitExtension('postmaster', '+'), undefined);
    assert.equal(splitExtension('owner-list', '-'), undefined);
    assert.equal(splitExtension('list-request', '-'), undefined);
    assert.equal(splitExtension('a+b', ''), undefined);
  });
});

describe('normalizeDomain', () => {
  it('lower-cases, drops the trailing dot, converts IDNA, refuses garbage', () => {
    assert.equal(normalizeDomain('Example.ORG.'), 'example.org');
    assert.equal(normalizeDomain('bücher.example'), 'xn--bcher-kva.example');
    assert.equal(normalizeDomain(''), undefined);
    assert.equal(normalizeDomain('a b.example'), undefined);
  });
});
