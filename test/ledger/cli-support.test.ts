// The CLI pieces: `ledger key` (read without a passphrase, created with one) and
// `ledger checkpoint [--json]`, over the data-directory layout that `serve` uses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verifyCheckpoint } from '../../src/ledger/checkpoint.js';
import {
  formatLedgerCheckpoint,
  formatLedgerKey,
  ledgerCheckpoint,
  ledgerKey,
  mintProgressLine,
  openDataDirLedger,
} from '../../src/ledger/cli-support.js';
import { parseVerifierKey } from '../../src/ledger/note.js';
import { DOMAIN, hasCode, identity, registerRequest, tempDir } from './helpers.js';

const FAST = { N: 2 ** 10, r: 8, p: 1 };

test('ledger key and ledger checkpoint over a data directory', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await assert.rejects(ledgerKey({ dataDir: dir, domain: DOMAIN }), hasCode('ERR_LOG_KEY'));
    const created = await ledgerKey({
      dataDir: dir,
      domain: DOMAIN,
      passphrase: 'pw',
      scrypt: FAST,
    });
    assert.equal(created.created, true);
    const again = await ledgerKey({ dataDir: dir, domain: DOMAIN });
    assert.equal(again.verifierKey, created.verifierKey);
    assert.equal(again.dnsField, `k=${created.verifierKey}`);
    assert.equal(formatLedgerKey(again)[0], created.verifierKey);
    await assert.rejects(
      ledgerKey({ dataDir: dir, domain: 'example.net' }),
      hasCode('ERR_LOG_KEY'),
    );

    const { ledger, keyCreated } = await openDataDirLedger({
      dataDir: dir,
      domains: [DOMAIN],
      passphrase: 'pw',
      scrypt: FAST,
      ledger: { policies: new Map([[DOMAIN, { policy: 'open-pow', bits: 4 }]]) },
    });
    try {
      assert.equal(keyCreated, false);
      ledger.register(await registerRequest(ledger, identity('a')));
      const info = ledgerCheckpoint(ledger);
      assert.equal(info.size, 1);
      const text = formatLedgerCheckpoint(info, false);
      const cp = verifyCheckpoint(text, parseVerifierKey(again.verifierKey));
      assert.equal(cp.root.toString('base64'), info.rootHash);
      assert.deepEqual(JSON.parse(formatLedgerCheckpoint(info, true)), info);
    } finally {
      ledger.close();
    }
    await assert.rejects(
      openDataDirLedger({ dataDir: dir, domains: [DOMAIN], passphrase: 'wrong', scrypt: FAST }),
      hasCode('ERR_LOG_KEY_DECRYPT'),
    );
    assert.match(
      mintProgressLine(19, { hashes: 524288, elapsedMs: 900, expected: 2 ** 19 }),
      /^minting 19 bits: 0\.52 M hashes \(100% of 2\^19\), 0\.9 s$/,
    );
  } finally {
    cleanup();
  }
});
