// canonical_maps: DID <-> address both ways, sender and recipient classes, Postfix forms
// (@domain, extensions), regexp entries with $n substitutions, and shadowed entries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { engineWith, snapshotWith } from './helpers.js';

const TEAM = 'did:aftersmtp:msgs.global:support-team';

describe('canonical_maps exact entries', () => {
  it('an address <-> DID pair works both ways, whichever side is the key', () => {
    for (const [key, value] of [
      ['helpdesk@msgs.global', TEAM],
      [TEAM, 'helpdesk@msgs.global'],
    ]) {
      const s = snapshotWith([['canonical_maps', key as string, value as string]]);
      assert.equal(s.canonicalRecipient('helpdesk@msgs.global'), TEAM, key);
      assert.equal(s.canonicalRecipient('HelpDesk@MSGS.global'), TEAM, key);
      assert.equal(s.canonicalSender(TEAM), 'helpdesk@msgs.global', key);
      // The pair does not rewrite the other way round in either class.
      assert.equal(s.canonicalSender('helpdesk@msgs.global'), undefined, key);
      assert.equal(s.canonicalRecipient(TEAM), undefined, key);
    }
  });

  it('a class limits an entry to sender or recipient rewriting', () => {
    const s = snapshotWith([
      ['canonical_maps', 'support@msgs.global', TEAM, 'recipient'],
      ['canonical_maps', 'helpdesk@msgs.global', TEAM, 'both'],
      ['canonical_maps', 'did:aftersmtp:msgs.global:ceo', 'boss@msgs.global', 'sender'],
    ]);
    assert.equal(s.canonicalRecipient('support@msgs.global'), TEAM);
    assert.equal(
      s.canonicalSender(TEAM),
      'helpdesk@msgs.global',
      'the recipient-only alias is not the sender address',
    );
    assert.equal(s.canonicalSender('did:aftersmtp:msgs.global:ceo'), 'boss@msgs.global');
    assert.equal(s.canonicalRecipient('boss@msgs.global'), undefined);
  });

  it('address to address entries rewrite key to value, as Postfix canonical(5)', () => {
    const s = snapshotWith([['canonical_maps', 'old@example.org', 'new@example.org']]);
    assert.equal(s.canonicalRecipient('old@example.org'), 'new@example.org');
    assert.equal(s.canonicalSender('old@example.org'), 'new@example.org');
    assert.equal(s.canonicalSender('new@example.org'), undefined);
  });

  it('tries user+ext@domain, user@domain, @domain; carries an unmatched extension into addresses', () => {
    const s = snapshotWith([
      ['canonical_maps', 'joe@example.org', 'joseph@example.org'],
      ['canonical_maps', 'joe+exact@example.org', 'other@example.org'],
      ['canonical_maps', '@old.example', '@new.example'],
      ['canonical_maps', '@catch.example', 'did:aftersmtp:catch.example:all'],
      ['canonical_maps', 'help@msgs.global', TEAM],
    ]);
    assert.equal(s.canonicalRecipient('joe+exact@example.org'), 'other@example.org');
    assert.equal(s.canonicalRecipient('joe+news@example.org'), 'joseph+news@example.org');
    assert.equal(
      s.canonicalRecipient('Ann+x@old.example'),
      'Ann+x@new.example',
      '@domain keeps the local part',
    );
    assert.equal(s.canonicalRecipient('anyone@catch.example'), 'did:aftersmtp:catch.example:all');
    assert.equal(s.canonicalRecipient('help+x@msgs.global'), TEAM, 'no extension in a DID');
  });

  it('answers nothing without an entry: the default mapping is the pipeline’s', () => {
    const s = snapshotWith([]);
    assert.equal(s.canonicalRecipient('user@msgs.global'), undefined);
    assert.equal(s.canonicalSender('did:aftersmtp:msgs.global:user'), undefined);
    assert.equal(s.canonicalSender(''), undefined);
  });

  it('when two entries rewrite the same input, the first wins and set() warns', () => {
    const engine = engineWith([['canonical_maps', 'helpdesk@msgs.global', TEAM]]);
    const r = engine.set('canonical_maps', 'support@msgs.global', TEAM);
    assert.equal(r.warnings.length, 1);
    assert.match(
      r.warnings[0] as string,
      /sender rewriting of did:aftersmtp:msgs\.global:support-team already comes from entry helpdesk@msgs\.global/,
    );
    assert.equal(engine.snapshot().canonicalSender(TEAM), 'helpdesk@msgs.global');
    assert.equal(engine.snapshot().canonicalRecipient('support@msgs.global'), TEAM);
    engine.close();
  });

  it('refuses values that are not a DID or an address, and malformed DIDs', () => {
    const engine = engineWith([]);
    assert.throws(
      () => engine.set('canonical_maps', 'a@example.org', 'b@example.org c@example.org'),
      /one DID or address/,
    );
    assert.throws(
      () => engine.set('canonical_maps', 'a@example.org', 'did:aftersmtp:example.org:a+b'),
      /percent-encoded/,
    );
    assert.throws(
      () => engine.set('canonical_maps', 'a@example.org', 'nobody'),
      /expected local@domain/,
    );
    assert.throws(
      () => engine.set('canonical_maps', TEAM, '@example.org'),
      /expected a DID or local@domain/,
    );
    assert.throws(
      () => engine.set('canonical_maps', 'example.org', TEAM),
      /expected a DID, user@domain or @domain/,
    );
    engine.close();
  });
});

describe('canonical_maps regexp entries', () => {
  it('substitute $n, ${n} and $(n) into DIDs (encoding the local part) and addresses', () => {
    const s = snapshotWith([
      ['canonical_maps', '/^(.+)@legacy\\.example$/', 'did:aftersmtp:msgs.global:$1', 'recipient'],
      ['canonical_maps', '/^did:aftersmtp:msgs\\.global:(.+)$/', '${1}@legacy.example', 'sender'],
      ['canonical_maps', '/^([^@]+)@([^.]+)\\.split\\.example$/', '$(2)-$1@joined.example'],
      ['canonical_maps', '/^x@dollar\\.example$/', 'a$$b@example.org'],
    ]);
    assert.equal(s.canonicalRecipient('john@legacy.example'), 'did:aftersmtp:msgs.global:john');
    assert.equal(
      s.canonicalRecipient('john+tag@legacy.example'),
      'did:aftersmtp:msgs.global:john%2Btag',
    );
    assert.equal(s.canonicalSender('did:aftersmtp:msgs.global:jane'), 'jane@legacy.example');
    assert.equal(s.canonicalSender('jane@legacy.example'), undefined, 'recipient-only pattern');
    assert.equal(s.canonicalRecipient('ann@sales.split.example'), 'sales-ann@joined.example');
    assert.equal(s.canonicalRecipient('x@dollar.example'), 'a$b@example.org');
  });

  it('exact entries win over patterns; a result that is no DID or address does not apply', () => {
    const s = snapshotWith([
      ['canonical_maps', '/^(.*)@any\\.example$/', '$1'],
      ['canonical_maps', '/@any\\.example$/', 'fallback@example.org'],
      ['canonical_maps', 'vip@any.example', TEAM],
    ]);
    assert.equal(s.canonicalRecipient('vip@any.example'), TEAM);
    assert.equal(s.canonicalRecipient('joe@any.example'), 'fallback@example.org');
  });

  it('refuses references to groups the pattern does not have', () => {
    const engine = engineWith([]);
    assert.throws(
      () => engine.set('canonical_maps', '/^(a)(b)$/', '$3@example.org'),
      /uses \$3 but .* has 2 groups/,
    );
    assert.throws(() => engine.set('canonical_maps', '/^(a)$/', '$x@example.org'), /bad \$/);
    engine.close();
  });
});
