// C2SP signed notes and tlog-checkpoints: the reference example of golang.org/x/mod/sumdb/note
// (the PeterNeumann key), strict parsing, verification rules, checkpoints, the log key file.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatCheckpoint,
  parseCheckpoint,
  signCheckpoint,
  verifyCheckpoint,
} from '../../src/ledger/checkpoint.js';
import {
  createLogKey,
  decryptLogKey,
  encryptLogKey,
  readLogKey,
  loadOrCreateLogKey,
} from '../../src/ledger/logkey.js';
import { sha256 } from '../../src/identity/merkle.js';
import {
  NoteSigner,
  MAX_NOTE_BYTES,
  formatVerifierKey,
  openNote,
  parseNote,
  parseVerifierKey,
  signNote,
} from '../../src/ledger/note.js';
import { flipBit, hasCode, tempDir } from './helpers.js';

// golang.org/x/mod/sumdb/note, note_test.go / package documentation.
const GO_SKEY_B64 = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'; // 0x01 || seed
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT =
  'If you think cryptography is the answer to your problem,\n' +
  "then you don't know what your problem is.\n";
const GO_NOTE =
  GO_TEXT +
  '\n' +
  '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

const goSigner = (): NoteSigner =>
  new NoteSigner('PeterNeumann', Buffer.from(GO_SKEY_B64, 'base64').subarray(1));

test('the Go reference key gives the reference verifier key, key id and signed note', () => {
  const s = goSigner();
  assert.equal(s.verifierKey, GO_VKEY);
  assert.equal(s.keyId.toString('hex'), 'c74f20a3');
  assert.equal(signNote(GO_TEXT, [s]), GO_NOTE);
  const v = parseVerifierKey(GO_VKEY);
  assert.deepEqual(openNote(GO_NOTE, [v]), { text: GO_TEXT, verifiedBy: ['PeterNeumann'] });
  assert.deepEqual(openNote(Buffer.from(GO_NOTE), [v]).text, GO_TEXT);
});

test('key id is SHA-256(name || 0x0A || 0x01 || key)[:4]', () => {
  const s = goSigner();
  const expected = sha256(Buffer.from('PeterNeumann\n\x01', 'latin1'), s.publicKey).subarray(0, 4);
  assert.deepEqual(s.keyId, expected);
  assert.equal(formatVerifierKey('PeterNeumann', s.publicKey), GO_VKEY);
});

test('verifier keys are parsed strictly', () => {
  for (const bad of [
    'PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // wrong id
    'PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // upper-case hex
    'PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', // bad key
    'PeterNeumann+c74f20a3',
    'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    '',
  ]) {
    assert.throws(() => parseVerifierKey(bad), hasCode('ERR_NOTE_KEY'), bad);
  }
});

test('unknown keys are ignored, a known key must verify, and one must', () => {
  const other = new NoteSigner('other.example/log', Buffer.alloc(32, 1));
  const both = signNote(GO_TEXT, [goSigner(), other]);
  const v = parseVerifierKey(GO_VKEY);
  assert.deepEqual(openNote(both, [v]).verifiedBy, ['PeterNeumann']);
  assert.throws(() => openNote(signNote(GO_TEXT, [other]), [v]), hasCode('ERR_NOTE_SIGNATURE'));
  // Same name and id as the known key, but a wrong signature: the whole note is refused.
  const forged = GO_NOTE.replace('x08go/', 'x08go+');
  assert.throws(() => openNote(forged, [v]), hasCode('ERR_NOTE_SIGNATURE'));
});

test('malformed notes are refused before any signature is checked', () => {
  const v = parseVerifierKey(GO_VKEY);
  const cases = [
    GO_NOTE.slice(0, -1), // no final newline
    GO_NOTE.replace('\n\n', '\n'), // no blank line
    GO_NOTE.replace('\u2014', '-'), // not an em dash
    GO_NOTE.replace('problem,', 'problem,\r'), // control character
    GO_NOTE.replace('problem,', 'problem,\u0000'),
    GO_NOTE.replace('PeterNeumann x08', 'PeterNeumann  x08'),
    GO_NOTE.replace('AM=\n', 'AM\n'), // non-canonical base64
    `${GO_NOTE}\u2014 x AAAA\n`, // signature too short
    GO_TEXT + '\n' + 'x'.repeat(MAX_NOTE_BYTES),
    GO_TEXT + '\n' + `\u2014 PeterNeumann ${Buffer.alloc(68).toString('base64')}\n`.repeat(40),
  ];
  for (const note of cases) {
    assert.throws(
      () => openNote(note, [v]),
      hasCode('ERR_NOTE_FORMAT'),
      JSON.stringify(note.slice(0, 60)),
    );
  }
  assert.throws(() => parseNote(Buffer.from([0xff, 0x0a, 0x0a])), hasCode('ERR_NOTE_FORMAT'));
  // A text that is only a newline parses, but the signature over it does not verify.
  assert.throws(
    () => openNote(`\n\n${GO_NOTE.split('\n\n')[1]}`, [v]),
    hasCode('ERR_NOTE_SIGNATURE'),
  );
});

const LOG = new NoteSigner('example.org/aftersmtp-ledger/v1', Buffer.alloc(32, 9));
const CP = { origin: LOG.name, size: 20852163, root: sha256(Buffer.from('r')), extensions: [] };

test('checkpoints round-trip and are parsed strictly', () => {
  const text = formatCheckpoint(CP);
  assert.equal(text, `${LOG.name}\n20852163\n${CP.root.toString('base64')}\n`);
  assert.deepEqual(parseCheckpoint(text), CP);
  const note = signCheckpoint(CP, LOG);
  assert.deepEqual(verifyCheckpoint(note, parseVerifierKey(LOG.verifierKey)), CP);
  const root = CP.root.toString('base64');
  for (const bad of [
    `${LOG.name}\n020852163\n${root}\n`,
    `${LOG.name}\n-1\n${root}\n`,
    `${LOG.name}\n99999999999999999\n${root}\n`,
    `${LOG.name}\n1\n${root.slice(0, -2)}\n`,
    `${LOG.name}\n1\n${sha256().subarray(0, 31).toString('base64')}\n`,
    `${LOG.name}\n1\n${root}\n\n`,
    `${LOG.name}\n1\n`,
    `\n1\n${root}\n`,
    `${LOG.name}\n1\n${root}`,
  ]) {
    assert.throws(() => parseCheckpoint(bad), hasCode('ERR_CHECKPOINT_FORMAT'), bad);
  }
  const otherOrigin = signCheckpoint({ ...CP, origin: 'evil.example/log' }, LOG);
  assert.throws(
    () => verifyCheckpoint(otherOrigin, parseVerifierKey(LOG.verifierKey)),
    hasCode('ERR_CHECKPOINT_ORIGIN'),
  );
});

test('property: any single-bit change to a signed checkpoint is rejected', () => {
  const note = Buffer.from(signCheckpoint(CP, LOG));
  const v = parseVerifierKey(LOG.verifierKey);
  fc.assert(
    fc.property(fc.nat(note.length * 8 - 1), (bit) => {
      assert.throws(() => verifyCheckpoint(flipBit(note, bit), v));
    }),
    { numRuns: 500 },
  );
});

const FAST = { N: 2 ** 10, r: 8, p: 1 };

test('the log key file round-trips, refuses a wrong passphrase or an edit, never overwrites', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'ledger.key');
    const created = await loadOrCreateLogKey(path, LOG.name, 'pass', FAST);
    assert.equal(created.created, true);
    const again = await loadOrCreateLogKey(path, LOG.name, 'pass', FAST);
    assert.equal(again.created, false);
    assert.equal(again.signer.verifierKey, created.signer.verifierKey);
    await assert.rejects(readLogKey(path, 'wrong'), hasCode('ERR_LOG_KEY_DECRYPT'));
    await assert.rejects(createLogKey(path, LOG.name, 'pass', FAST), hasCode('ERR_LOG_KEY_EXISTS'));
    await assert.rejects(
      loadOrCreateLogKey(path, 'other.example/x', 'pass', FAST),
      hasCode('ERR_LOG_KEY'),
    );
    const text = encryptLogKey(LOG.name, Buffer.alloc(32, 9), 'pw', FAST);
    assert.equal(decryptLogKey(text, 'pw').verifierKey, LOG.verifierKey);
    const other = new NoteSigner(LOG.name, Buffer.alloc(32, 3)).verifierKey;
    const edited = text.replace(LOG.verifierKey, other);
    assert.throws(() => decryptLogKey(edited, 'pw'), hasCode('ERR_LOG_KEY_DECRYPT'));
    const huge = text.replace(`"N": ${FAST.N}`, `"N": ${2 ** 30}`);
    assert.throws(() => decryptLogKey(huge, 'pw'), hasCode('ERR_LOG_KEY'));
  } finally {
    cleanup();
  }
});

test('the worked checkpoint of docs/PROTOCOL.md §9.2 is reproduced byte for byte', () => {
  const s = new NoteSigner('example.org/aftersmtp-ledger/v1', Buffer.alloc(32, 7));
  const vkey =
    'example.org/aftersmtp-ledger/v1+67538a6a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';
  const note =
    'example.org/aftersmtp-ledger/v1\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n' +
    '\u2014 example.org/aftersmtp-ledger/v1 Z1OKaq2ayrlLnpLmwFIeSTVQAE404CMgGI00OR7AFYBR4BD999dI34zg2b8nTiQ50rtTXRctW1p/tYKHofc7YFiliwQ=\n';
  assert.equal(s.verifierKey, vkey);
  const root = Buffer.from(
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    'hex',
  );
  assert.equal(signCheckpoint({ origin: s.name, size: 8, root, extensions: [] }, s), note);
  assert.equal(verifyCheckpoint(note, parseVerifierKey(vkey)).size, 8);
});
