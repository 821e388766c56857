// SRS addresses (src/mail/srs.ts) checked against postsrsd, an independent implementation of the
// same scheme, given the same secret and domain: forward rewriting (SRS0, and SRS1 for mail that
// another forwarder rewrote already), reversal both ways, and what must not reverse: a forged
// hash, an address older than the maximum age, the wrong secret.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Srs } from '../../src/mail/srs.js';
import { tempDir } from '../offramp/helpers.js';
import { postsrsdMissing, startPostsrsd, type Postsrsd } from './verifiers.js';

const DOMAIN = 'fwd.test';
const SECRET = 'a shared secret for the SRS tests';
const DAY = 86_400_000;

const local = (a: string): string => a.slice(0, a.lastIndexOf('@'));

describe('SRS', () => {
  const srs = new Srs({ secret: SECRET });

  test('the null sender and senders of the forwarding domain are not rewritten', () => {
    assert.equal(srs.forward('', DOMAIN), '');
    assert.equal(srs.forward(`alice@${DOMAIN}`, DOMAIN), `alice@${DOMAIN}`);
  });

  test('forward then reverse gives the address back, for any local part and domain', () => {
    fc.assert(
      fc.property(fc.emailAddress(), (address) => {
        const rewritten = srs.forward(address, DOMAIN);
        assert.match(rewritten, new RegExp(`^SRS[01]=.*@${DOMAIN}$`));
        const back = srs.reverse(local(rewritten));
        if (/^SRS0[=+-]/i.test(local(address))) {
          // An SRS0 address of another forwarder comes back as itself (SRS1 keeps it whole).
          assert.equal(back?.toLowerCase(), address.toLowerCase());
        } else {
          assert.equal(back, address);
        }
      }),
    );
  });

  test('a forged hash, another secret, or an address older than 21 days does not reverse', () => {
    const now = Date.now();
    const rewritten = local(srs.forward('bob@example.com', DOMAIN, now));
    const forged = rewritten.replace(
      /^SRS0=(.)/,
      (_m, c: string) => `SRS0=${c.toUpperCase() === 'A' ? 'B' : 'A'}`,
    );
    assert.equal(srs.reverse(forged, now), undefined);
    assert.equal(
      new Srs({ secret: 'another secret, long enough' }).reverse(rewritten, now),
      undefined,
    );
    assert.equal(srs.reverse(rewritten, now + 21 * DAY), 'bob@example.com');
    assert.equal(srs.reverse(rewritten, now + 22 * DAY), undefined);
    // The hash is compared without case (some MTAs lower-case addresses).
    assert.equal(srs.reverse(rewritten.toLowerCase(), now), 'bob@example.com');
  });
});

describe('SRS against postsrsd', { skip: postsrsdMissing() }, () => {
  let dir: string;
  let postsrsd: Postsrsd;
  const srs = new Srs({ secret: SECRET });

  before(async () => {
    dir = tempDir('srs');
    postsrsd = await startPostsrsd(DOMAIN, SECRET, dir);
  });
  after(async () => {
    await postsrsd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const address of [
    'alice@example.com',
    'Mixed.Case+tag@Example.ORG',
    "o'brien@sub.domain.example",
    'SRS0=HHHH=TT=orig.example=user@first.example',
  ]) {
    test(`${address}: the same address as postsrsd, and each reverses the other's`, async () => {
      const ours = srs.forward(address, DOMAIN);
      assert.equal(ours, await postsrsd.forward(address));
      assert.equal((await postsrsd.reverse(ours)).toLowerCase(), address.toLowerCase());
      assert.equal(srs.reverse(local(ours))?.toLowerCase(), address.toLowerCase());
    });
  }
});
