// Subject and From as the on-ramp reads them for the envelope (src/pipeline/transform.ts,
// messageFacts): the first of each field in the header section, unfolded, RFC 2047 decoded. The
// expected values are what mailparser gave for the same messages before it was replaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { messageFacts } from '../../src/pipeline/transform.js';

const CASES: [string, string, string, string][] = [
  // [what, message, subject, headerFrom]
  [
    'plain',
    'From: Carol <carol@example.org>\r\nSubject: hi\r\n\r\nbody',
    'hi',
    'carol@example.org',
  ],
  [
    'encoded words, joined',
    'Subject: =?utf-8?B?w6lsw6k=?= =?utf-8?B?w6k=?=\r\nFrom: "=?utf-8?q?J=C3=B6rg?=" <j@example.org>\r\n\r\n',
    'éléé',
    'j@example.org',
  ],
  [
    'folded, any case',
    'subject:   folded\r\n  over\r\n\tlines  \r\nFROM: a@b.example, c@d.example\r\n\r\n',
    'folded over lines',
    'a@b.example',
  ],
  [
    'the first of each',
    'Subject: one\r\nSubject: two\r\nFrom: x@y.z\r\nFrom: q@r.s\r\n\r\n',
    'one',
    'x@y.z',
  ],
  ['a group first', 'From: Group: a@b.c, d@e.f;\r\n\r\n', '', ''],
  [
    'an encoded name',
    'From: =?utf-8?q?ceo=40bank=2Ecom?= <x@evil.example>\r\n\r\n',
    '',
    'x@evil.example',
  ],
  ['an encoded addr-spec, dropped', 'From: <=?utf-8?q?ceo=40bank=2Ecom?=>\r\n\r\n', '', ''],
  ['an IDNA domain', 'From: u@xn--bcher-kva.example\r\n\r\n', '', 'u@bücher.example'],
  [
    'UTF-8 as it is',
    'From: café <café@exämple.org>\r\nSubject: café\r\n\r\n',
    'café',
    'café@exämple.org',
  ],
  ['only the header section', 'X: y\r\n\r\nSubject: in body\r\nFrom: b@x.y\r\n', '', ''],
  ['an unknown charset', 'Subject: =?bogus?Q?abc?=\r\n\r\n', 'abc', ''],
  ['ISO-8859-1', 'Subject: =?ISO-8859-1?Q?Andr=E9?= Pirard\r\n\r\n', 'André Pirard', ''],
  ['a space before the colon', 'Subject : spaced\r\nFrom : sp@x.y\r\n\r\n', 'spaced', 'sp@x.y'],
  ['no header section', 'just text', '', ''],
  [
    'a folded line that looks like a field',
    'DKIM-Signature: v=1; d=a.example; h=\r\n subject : from;\r\n From:To:Date; b=xyz\r\n' +
      'Subject: the real one\r\nFrom: real@a.example\r\n\r\n',
    'the real one',
    'real@a.example',
  ],
];

for (const [what, message, subject, headerFrom] of CASES) {
  test(`messageFacts: ${what}`, () => {
    assert.deepEqual(messageFacts(Buffer.from(message)), { subject, headerFrom });
  });
}

test('messageFacts: a long subject is cut to 4096 bytes on a character boundary', () => {
  const facts = messageFacts(Buffer.from(`Subject: ${'é'.repeat(3000)}\r\n\r\n`));
  assert.equal(facts.subject, 'é'.repeat(2048));
});
