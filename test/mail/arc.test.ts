// ARC seals of forwarded mail (src/mail/arc.ts) over what the on-ramp verified
// (src/pipeline/authentication.ts, mailauth), checked by dkimpy's arc_verify (the code behind
// Debian's arcverify): a first seal (i=1, cv=none), a second one over a chain dkimpy's arc_sign
// started (i=2, cv=pass), a chain broken in transit sealed as cv=fail (never pass; dkimpy then
// calls the chain terminated), and a chain that already failed left unsealed.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { zoneTxt } from '../../src/cli/commands/dns.js';
import { arcSeal } from '../../src/mail/arc.js';
import { dkimSign, type DkimKey } from '../../src/mail/dkim.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import { mailAuthenticator, type AuthResults } from '../../src/pipeline/authentication.js';
import type { Client } from '../../src/pipeline/types.js';
import { startZone, tempDir, unboundMissing, type Dns } from '../offramp/helpers.js';
import { dkimpyArcSign, dkimpyArcVerify, dkimpyMissing } from './verifiers.js';

const ZONE = 'arc.test';
const ORIGIN = `origin.${ZONE}`;
const FIRST = `first.${ZONE}`;
const FORWARDER = `fwd.${ZONE}`;
const MISSING = unboundMissing() || dkimpyMissing();

const CLIENT: Client = {
  entrance: 'smtp',
  address: '127.0.0.1',
  port: 25,
  helo: 'mail.origin',
  tls: false,
};

function original(subject: string): Buffer {
  return Buffer.from(
    [
      `From: Alice <alice@${ORIGIN}>`,
      `To: list@${FORWARDER}`,
      `Subject: ${subject}`,
      'Date: Wed, 02 Dec 2026 10:00:00 +0000',
      `Message-ID: <${subject.replace(/\W/g, '')}@${ORIGIN}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Forward me.',
      '',
    ].join('\r\n'),
  );
}

describe('ARC seals, verified by dkimpy', { skip: MISSING }, () => {
  let dir: string;
  let dns: Dns;
  let keys: DkimKeys;
  let forwarderKey: DkimKey;
  let firstKeyPem: string;
  let check: (m: Buffer) => Promise<AuthResults>;

  before(async () => {
    dir = tempDir('arc');
    keys = new DkimKeys(dir, 'a passphrase for the test keys');
    await keys.generate(ORIGIN, 'o1', 'rsa-sha256');
    await keys.generate(FIRST, 'f1', 'rsa-sha256');
    await keys.generate(FORWARDER, 'w1', 'rsa-sha256');
    forwarderKey = keys.signingKeys(FORWARDER)[0] as DkimKey;
    firstKeyPem = (keys.signingKeys(FIRST)[0] as DkimKey).privateKey
      .export({ type: 'pkcs1', format: 'pem' })
      .toString();
    dns = await startZone(ZONE, [
      ...keys.list().map((k) => `${k.dnsName}. 60 IN TXT ${zoneTxt(k.dnsValue)}`),
      `${ORIGIN}. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
      `_dmarc.${ORIGIN}. 60 IN TXT "v=DMARC1; p=reject"`,
    ]);
    const auth = mailAuthenticator({ hostname: `mx.${FORWARDER}`, dnsServers: [dns.server] });
    check = (m) => auth.check(m, CLIENT, `alice@${ORIGIN}`);
  });
  after(async () => {
    await dns?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const signedByOrigin = (subject: string): Buffer => {
    const m = original(subject);
    return Buffer.concat([Buffer.from(dkimSign(m, keys.signingKeys(ORIGIN)), 'latin1'), m]);
  };

  /** What the gateway forwards: our results on top, then our ARC set over all of it. */
  const forward = async (m: Buffer, auth: AuthResults): Promise<Buffer> => {
    const stamped = Buffer.concat([Buffer.from(auth.headers, 'latin1'), m]);
    assert.ok(auth.arcChain, 'the chain may be sealed');
    const set = await arcSeal(stamped, forwarderKey, auth.arcChain);
    return Buffer.concat([Buffer.from(set, 'latin1'), stamped]);
  };

  test('i=1: a message without a chain is sealed cv=none and verifies', async () => {
    const m = signedByOrigin('first hop');
    const auth = await check(m);
    assert.equal(auth.dkim, 'pass');
    assert.equal(auth.spf, 'pass');
    assert.equal(auth.arcChain?.cv, 'none');
    const sealed = await forward(m, auth);
    assert.match(
      sealed.toString('latin1'),
      /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=fwd\.arc\.test; s=w1;/,
    );
    assert.match(
      sealed.toString('latin1'),
      /ARC-Authentication-Results: i=1; mx\.fwd\.arc\.test;[^]*dkim=pass/,
    );
    assert.equal(dkimpyArcVerify(dns.server, sealed).cv, 'pass');
  });

  test('i=2: over a chain dkimpy began, sealed cv=pass, and the whole chain verifies', async () => {
    const m = signedByOrigin('second hop');
    const firstHop = dkimpyArcSign(
      dns.server,
      Buffer.concat([
        Buffer.from(`Authentication-Results: ${FIRST}; dkim=pass header.d=${ORIGIN}\r\n`),
        m,
      ]),
      { selector: 'f1', domain: FIRST, keyPem: firstKeyPem, authservId: FIRST, dir },
    );
    assert.equal(dkimpyArcVerify(dns.server, firstHop).cv, 'pass');
    const auth = await check(firstHop);
    assert.equal(auth.arc, 'pass');
    assert.equal(auth.arcChain?.cv, 'pass');
    const sealed = await forward(firstHop, auth);
    assert.match(sealed.toString('latin1'), /^ARC-Seal: i=2; a=rsa-sha256; t=\d+; cv=pass;/);
    assert.equal(dkimpyArcVerify(dns.server, sealed).cv, 'pass');
  });

  test('a chain broken in transit is sealed cv=fail, never pass, and ends there', async () => {
    const m = signedByOrigin('broken');
    const firstHop = dkimpyArcSign(
      dns.server,
      Buffer.concat([Buffer.from(`Authentication-Results: ${FIRST}; dkim=pass\r\n`), m]),
      { selector: 'f1', domain: FIRST, keyPem: firstKeyPem, authservId: FIRST, dir },
    );
    const tampered = Buffer.from(
      firstHop.toString('latin1').replace('Forward me.', 'Forward me, changed.'),
      'latin1',
    );
    const auth = await check(tampered);
    assert.equal(auth.arc, 'fail');
    assert.equal(auth.arcChain?.cv, 'fail');
    const sealed = await forward(tampered, auth);
    assert.match(sealed.toString('latin1'), /^ARC-Seal: i=2; a=rsa-sha256; t=\d+; cv=fail;/);
    // dkimpy reads our seal, takes its cv=fail as the end of the chain, and passes nothing.
    const verdict = dkimpyArcVerify(dns.server, sealed);
    assert.notEqual(verdict.cv, 'pass');
    assert.match(verdict.comment, /ARC-Seal\[2\] reported failure, the chain is terminated/);

    // The next forwarder finds the chain ended in cv=fail: it must not seal it again.
    const next = await check(sealed);
    assert.equal(next.arc, 'fail');
    assert.equal(next.arcChain, undefined);
  });
});
