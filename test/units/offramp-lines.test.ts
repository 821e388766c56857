// The off-ramp's line limit (src/pipeline/amp-offramp.ts): a message with a line of more than
// 998 octets before its CRLF is refused (RFC 5322 2.1.1), at the first line, the last line (with
// or without its CRLF) and after bare LFs are made CRLF; 998 octets pass.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { OpenedMessage } from '../../src/envelope/envelope.js';
import { legacyMessage, RCPT_TO_FIELD } from '../../src/pipeline/amp-offramp.js';
import { MappingEngine } from '../../src/routing/index.js';

const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
after(() => maps.close());

function outcome(content: string): string {
  const opened = {
    messageId: Buffer.alloc(16, 7),
    createdAt: Date.UTC(2026, 11, 5),
    content: Buffer.from(content, 'latin1'),
  } as unknown as OpenedMessage;
  const result = legacyMessage({
    opened,
    from: 'alice@a.test',
    hostname: 'gw.a.test',
    domains: new Set(['a.test']),
    maps: maps.snapshot(),
  });
  return 'code' in result ? result.code : 'ok';
}

const head = `${RCPT_TO_FIELD}: bob@example.test\r\nSubject: lines\r\n\r\n`;
const line = (n: number): string => 'x'.repeat(n);

describe('the off-ramp refuses a line over 998 octets', () => {
  it('lets 998 octets through, anywhere', () => {
    assert.equal(outcome(`${head}${line(998)}\r\n`), 'ok');
    assert.equal(outcome(`${head}a\r\n${line(998)}\r\nb\r\n`), 'ok');
    assert.equal(outcome(`${head}a\r\n${line(998)}`), 'ok');
    assert.equal(outcome(`${head}\r\n\r\n${line(998)}\n${line(998)}\n`), 'ok');
  });

  it('refuses 999, as the first, a middle or the last line, with or without its line end', () => {
    const refused = 'ERR_MESSAGE_FORMAT';
    assert.equal(outcome(`X-Long: ${line(991)}\r\n${head}body\r\n`), refused);
    assert.equal(outcome(`${head}a\r\n${line(999)}\r\nb\r\n`), refused);
    assert.equal(outcome(`${head}a\r\n${line(999)}\r\n`), refused);
    assert.equal(outcome(`${head}a\r\n${line(999)}`), refused);
    assert.equal(outcome(`${head}a\n${line(999)}\nb\n`), refused);
    assert.equal(outcome(`${head}${line(5000)}\r\n`), refused);
  });

  it('counts a line between bare CRs as a line of its own', () => {
    assert.equal(outcome(`${head}${line(600)}\r${line(600)}\r\n`), 'ok');
  });
});
