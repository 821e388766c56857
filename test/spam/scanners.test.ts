// The scanner clients against the real Rspamd and spamd (Debian's, private instances started by
// scripts/services/*.sh): GTUBE scores as spam, an ordinary message does not; and every way a
// scanner can fail to give a score is a ScannerError with its reason, in bounded time: nothing
// listening, a server that never answers, a reply over the cap, a reply that is not a verdict.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  RspamdClient,
  ScannerError,
  SpamdClient,
  parseRspamdReply,
  parseSpamdReply,
  type ScanRequest,
} from '../../src/spam/index.js';
import {
  GTUBE,
  answeringServer,
  deadPort,
  plain,
  rspamd,
  silentServer,
  spamd,
  spammy,
} from './services.js';

const R = await rspamd();
const S = await spamd();

function request(message: Buffer): ScanRequest {
  return {
    message,
    mailFrom: 'bob@sender.test',
    recipients: ['alice@example.org', 'carol@example.org'],
    // A loopback client: Rspamd's reverse-DNS and HELO rules score a remote address by whether
    // DNS failed or timed out, which varies on a machine without DNS.
    clientAddress: '127.0.0.1',
    helo: 'mail.sender.test',
    queueId: 'T1',
  };
}

const gtube = (): Buffer =>
  Buffer.from(`From: a@sender.test\r\nTo: b@example.org\r\nSubject: test\r\n\r\n${GTUBE}\r\n`);

describe('Rspamd (/checkv2)', { skip: R.skip }, () => {
  const client = new RspamdClient({ url: R.url, timeoutMs: 10_000 });
  after(() => client.close());

  test('GTUBE is at the reject score, an ordinary message well below it', async () => {
    const spam = await client.scan(request(gtube()));
    assert.equal(spam.scanner, 'rspamd');
    assert.equal(spam.action, 'reject');
    assert.ok(spam.score >= spam.required, `${spam.score} >= ${spam.required}`);
    assert.ok(spam.symbols.includes('GTUBE'));
    const ham = await client.scan(request(plain('alice@example.org')));
    assert.ok(ham.score < 6, `ham scored ${ham.score}`);
  });

  test('lottery spam scores over the usual junk score', async () => {
    const r = await client.scan(request(spammy('alice@example.org')));
    assert.ok(r.score >= 6, `scored ${r.score}`);
    assert.ok(r.symbols.includes('SUBJ_ALL_CAPS'), r.symbols.join(','));
  });
});

describe('SpamAssassin (spamd SYMBOLS)', { skip: S.skip }, () => {
  const client = new SpamdClient({ url: S.url, timeoutMs: 20_000 });

  test('GTUBE scores 1000 and more with its shipped rules; an ordinary message little', async () => {
    const spam = await client.scan(request(gtube()));
    assert.equal(spam.scanner, 'spamassassin');
    assert.ok(spam.score >= 1000, `GTUBE scored ${spam.score}`);
    assert.ok(spam.symbols.includes('GTUBE'));
    const ham = await client.scan(request(plain('alice@example.org')));
    assert.ok(ham.score < 5, `ham scored ${ham.score}`);
  });

  test('lottery spam hits the shipped content rules', async () => {
    const r = await client.scan(request(spammy('alice@example.org')));
    assert.ok(r.score >= 5, `scored ${r.score}`);
    assert.ok(r.symbols.includes('LOTS_OF_MONEY'), r.symbols.join(','));
  });
});

describe('a scanner that gives no score is a ScannerError, in bounded time', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  before(async () => {
    silent = await silentServer();
  });
  after(() => silent.close());

  const failsWith = async (p: Promise<unknown>, reason: string): Promise<void> => {
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof ScannerError, String(err));
      assert.equal(err.code, 'ERR_SCANNER_UNAVAILABLE');
      assert.equal(err.reason, reason, err.message);
      return true;
    });
  };

  test('nothing listening: connect', async () => {
    const port = await deadPort();
    await failsWith(
      new RspamdClient({ url: `http://127.0.0.1:${port}` }).scan(request(gtube())),
      'connect',
    );
    await failsWith(
      new SpamdClient({ url: `spamd://127.0.0.1:${port}` }).scan(request(gtube())),
      'connect',
    );
  });

  test('a server that never answers: timeout, after the timeout and not much later', async () => {
    const started = Date.now();
    await failsWith(
      new RspamdClient({ url: `http://127.0.0.1:${silent.port}`, timeoutMs: 300 }).scan(
        request(gtube()),
      ),
      'timeout',
    );
    await failsWith(
      new SpamdClient({ url: `spamd://127.0.0.1:${silent.port}`, timeoutMs: 300 }).scan(
        request(gtube()),
      ),
      'timeout',
    );
    const took = Date.now() - started;
    assert.ok(took >= 600 && took < 3000, `took ${took} ms`);
  });

  test('a reply over the cap is refused before it is kept', async () => {
    const huge = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n'),
      Buffer.alloc(1024, 0x20),
    ]);
    const http = await answeringServer(huge);
    const spamdBig = await answeringServer(
      Buffer.concat([Buffer.from('SPAMD/1.1 0 EX_OK\r\n'), Buffer.alloc(300 * 1024, 0x41)]),
    );
    try {
      await failsWith(
        new RspamdClient({ url: `http://127.0.0.1:${http.port}` }).scan(request(gtube())),
        'too-large',
      );
      await failsWith(
        new SpamdClient({ url: `spamd://127.0.0.1:${spamdBig.port}` }).scan(request(gtube())),
        'too-large',
      );
    } finally {
      await http.close();
      await spamdBig.close();
    }
  });

  test('answers that are not verdicts: protocol or refused, never a score', () => {
    const bad = (fn: () => unknown, reason: string): void => {
      assert.throws(fn, (err: unknown) => err instanceof ScannerError && err.reason === reason);
    };
    bad(() => parseRspamdReply(Buffer.from('[]')), 'protocol');
    bad(() => parseRspamdReply(Buffer.from('{"score":"high","required_score":15}')), 'protocol');
    bad(() => parseRspamdReply(Buffer.from('{"score":1e309,"required_score":15}')), 'protocol');
    bad(() => parseSpamdReply(Buffer.alloc(0)), 'protocol');
    bad(() => parseSpamdReply(Buffer.from('SPAMD/1.1 76 Bad header line\r\n\r\n')), 'refused');
    bad(
      () => parseSpamdReply(Buffer.from('SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n')),
      'protocol',
    );
    const ok = parseSpamdReply(
      Buffer.from('SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.5 / 5.0\r\n\r\nA,B\r\n'),
    );
    assert.deepEqual([ok.score, ok.required, ok.symbols], [-1.5, 5, ['A', 'B']]);
  });
});
