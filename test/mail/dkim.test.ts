// DKIM signatures of the off-ramp (src/mail/dkim.ts) with keys from src/mail/dkim-keys.ts,
// checked by two independent verifiers (dkimpy and Mail::DKIM) against records that unbound
// publishes (Debian 12's Mail::DKIM has no ed25519-sha256: it checks the rsa-sha256 signature
// and calls the other one unsupported, which the tests expect of it): rsa-sha256 and ed25519-sha256 at once, awkward messages (folded and repeated
// fields, 8-bit headers, trailing blank lines, no body), From oversigned (a From added after
// signing breaks both signatures), a changed body fails, and rotation by selector.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { dkimSign, dkimSignAsync } from '../../src/mail/dkim.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import { zoneTxt } from '../../src/cli/commands/dns.js';
import { startZone, tempDir, unboundMissing, type Dns } from '../offramp/helpers.js';
import { dkimpyMissing, dkimpyVerify, mailDkimMissing, mailDkimVerify } from './verifiers.js';

const DOMAIN = 'sign.test';
const MISSING = unboundMissing() || dkimpyMissing() || mailDkimMissing();

const CASES: Record<string, string> = {
  plain: [
    'From: Alice <alice@sign.test>',
    'To: Bob <bob@dest.test>',
    'Subject: plain',
    'Date: Wed, 02 Dec 2026 10:00:00 +0000',
    'Message-ID: <plain@sign.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello Bob.',
    '',
  ].join('\r\n'),
  'folded and repeated fields, odd spacing': [
    'From:   "Alice A."   <alice@sign.test>  ',
    'To: bob@dest.test,',
    '\tcarol@dest.test,',
    '   dave@dest.test',
    'Cc: eve@dest.test',
    'Subject:\tmany   spaces\t here',
    'Date: Wed, 02 Dec 2026 10:00:00 +0000',
    'Message-ID: <folded@sign.test>',
    'Received: from a by b; Wed, 02 Dec 2026 10:00:00 +0000',
    'Received: from c by d; Wed, 02 Dec 2026 10:00:00 +0000',
    'X-Unsigned: not in h=',
    '',
    'Line with trailing spaces   ',
    '\tindented line',
    '',
    '',
    '',
  ].join('\r\n'),
  '8-bit header and body (RFC 6532)': [
    'From: Zoë <zoe@sign.test>',
    'To: Jürgen <juergen@dest.test>',
    'Subject: Grüße aus Köln',
    'Date: Wed, 02 Dec 2026 10:00:00 +0000',
    'Message-ID: <utf8@sign.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Schöne Grüße — ✉',
    '',
  ].join('\r\n'),
  'no body': [
    'From: alice@sign.test',
    'To: bob@dest.test',
    'Subject: empty',
    'Date: Wed, 02 Dec 2026 10:00:00 +0000',
    '',
    '',
  ].join('\r\n'),
};

describe('DKIM signatures, verified by dkimpy and Mail::DKIM', { skip: MISSING }, () => {
  let dir: string;
  let dns: Dns;
  let keys: DkimKeys;

  before(async () => {
    dir = tempDir('dkim');
    keys = new DkimKeys(dir, 'a passphrase for the test keys');
    await keys.generate(DOMAIN, 'r1', 'rsa-sha256');
    await keys.generate(DOMAIN, 'e1', 'ed25519-sha256');
    await keys.generate(DOMAIN, 'r2', 'rsa-sha256');
    dns = await startZone(
      DOMAIN,
      keys.list(DOMAIN).map((k) => `${k.dnsName}. 60 IN TXT ${zoneTxt(k.dnsValue)}`),
    );
  });
  after(async () => {
    await dns?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sign = (message: Buffer): Buffer =>
    Buffer.concat([Buffer.from(dkimSign(message, keys.signingKeys(DOMAIN)), 'latin1'), message]);

  for (const [name, text] of Object.entries(CASES)) {
    test(`${name}: both signatures pass both verifiers`, () => {
      const signed = sign(Buffer.from(text, 'utf8'));
      assert.deepEqual(dkimpyVerify(dns.server, signed), [true, true]);
      const results = mailDkimVerify(dns.server, signed).sort();
      assert.deepEqual(results, [
        `invalid ${DOMAIN} e1 ed25519-sha256 (unsupported algorithm ed25519-sha256)`,
        `pass ${DOMAIN} r1 rsa-sha256`,
      ]);
    });
  }

  test('signed on the thread pool: the same fields byte for byte, and both verifiers pass', async () => {
    const now = Date.UTC(2026, 11, 5, 12);
    for (const text of Object.values(CASES)) {
      const message = Buffer.from(text, 'utf8');
      // rsa-sha256 (PKCS #1 v1.5) and Ed25519 are deterministic: one key, one signature.
      const fields = await dkimSignAsync(message, keys.signingKeys(DOMAIN), now);
      assert.equal(fields, dkimSign(message, keys.signingKeys(DOMAIN), now));
      const signed = Buffer.concat([Buffer.from(fields, 'latin1'), message]);
      assert.deepEqual(dkimpyVerify(dns.server, signed), [true, true]);
    }
  });

  test('h= names From once more than it occurs: a From added after signing fails', () => {
    const signed = sign(Buffer.from(CASES.plain as string, 'utf8'));
    assert.match(
      signed.toString('latin1'),
      /h=from:from:to:subject:date:message-id:mime-version:content-type;/,
    );
    const forged = Buffer.concat([Buffer.from('From: mallory@evil.test\r\n'), signed]);
    assert.deepEqual(dkimpyVerify(dns.server, forged), [false, false]);
    assert.match(mailDkimVerify(dns.server, forged).join('\n'), /^fail \S+ r1 rsa-sha256/m);
  });

  test('a changed body fails', () => {
    const signed = sign(Buffer.from(CASES.plain as string, 'utf8'));
    const changed = Buffer.from(
      signed.toString('latin1').replace('Hello Bob.', 'Hello Bob!'),
      'latin1',
    );
    for (const r of dkimpyVerify(dns.server, changed))
      assert.match(String(r), /body hash mismatch/);
    assert.match(mailDkimVerify(dns.server, changed).join('\n'), /^fail \S+ r1 rsa-sha256/m);
  });

  test('rotation: "use" makes a new selector sign; the retired key is gone from the list', async () => {
    await keys.use(DOMAIN, 'r2');
    const signed = sign(Buffer.from(CASES.plain as string, 'utf8'));
    assert.match(signed.toString('latin1'), /s=r2;/);
    assert.doesNotMatch(signed.toString('latin1'), /s=r1;/);
    assert.deepEqual(dkimpyVerify(dns.server, signed), [true, true]);
    keys.retire(DOMAIN, 'r1');
    assert.deepEqual(
      keys.list(DOMAIN).map((k) => [k.selector, k.active]),
      [
        ['e1', true],
        ['r2', true],
      ],
    );
    assert.throws(() => keys.retire(DOMAIN, 'r2'), { code: 'ERR_DKIM_ACTIVE' });
  });
});
