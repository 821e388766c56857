// The gateway's TLS certificate: generated once (ECDSA P-256, self-signed), reloaded with the same
// pin, key encrypted at rest under the passphrase, and a certificate/key pair that does not match
// (or half a pair) refused rather than silently regenerated.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  certificateSpki,
  loadOrCreateCertificate,
  parseSpkiPin,
  spkiPin,
} from '../../src/tls/certificate.js';
import { tempDir } from '../helpers/cli.js';

test('generates a P-256 certificate once and reloads it with the same pin', async () => {
  const dir = tempDir('tls');
  const opts = {
    dir,
    commonName: 'example.org',
    dnsNames: ['example.org'],
    ips: ['127.0.0.1'],
    passphrase: 'pw',
  };
  const first = await loadOrCreateCertificate(opts);
  assert.equal(first.created, true);
  const cert = new X509Certificate(first.certPem);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(
    cert.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(first.keyPem))),
    true,
  );
  assert.match(cert.subjectAltName ?? '', /DNS:example.org/);
  assert.equal(statSync(first.keyFile).mode & 0o777, 0o600);
  assert.match(readFileSync(first.keyFile, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
  assert.equal(first.spkiPin, spkiPin(certificateSpki(first.certPem)));
  assert.equal(parseSpkiPin(first.spkiPin), first.spkiPin);

  const again = await loadOrCreateCertificate(opts);
  assert.equal(again.created, false);
  assert.equal(again.spkiPin, first.spkiPin);
  await assert.rejects(loadOrCreateCertificate({ ...opts, passphrase: 'wrong' }), {
    code: 'ERR_TLS_CERT',
  });
});

test('a mismatched or half pair is refused, never regenerated', async () => {
  const a = tempDir('tls-a');
  const b = tempDir('tls-b');
  await loadOrCreateCertificate({ dir: a, commonName: 'a' });
  await loadOrCreateCertificate({ dir: b, commonName: 'b' });
  copyFileSync(join(b, 'tls.crt'), join(a, 'tls.crt'));
  await assert.rejects(loadOrCreateCertificate({ dir: a, commonName: 'a' }), {
    code: 'ERR_TLS_CERT',
  });
  unlinkSync(join(b, 'tls.key'));
  await assert.rejects(loadOrCreateCertificate({ dir: b, commonName: 'b' }), /only one of/);
  for (const bad of ['sha256/abc', 'sha1/' + 'A'.repeat(43) + '=', '']) {
    assert.throws(() => parseSpkiPin(bad), { code: 'ERR_TLS_PIN' });
  }
});
