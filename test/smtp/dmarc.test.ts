// The From domain's DMARC policy acted on (src/pipeline/dmarc.ts, AFTERSMTP_SMTP_DMARC_ENFORCE),
// through the on-ramp against a real DNS server (unbound) publishing SPF and DMARC records:
// mail failing DMARC from a domain whose policy is reject is refused 550 5.7.1 after DATA and
// nothing is delivered; quarantine is delivered to the Junk folder; p=none to the inbox; a
// client trusted by access_map is not refused; pct samples the failing mail, the rest getting
// the next weaker policy.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { dmarcCheck, parseTrustedSealers } from '../../src/pipeline/dmarc.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import type { PolicySubject } from '../../src/pipeline/policy.js';
import type {
  AuthResults,
  DmarcPolicy,
  LegacySubmission,
  Verdict,
} from '../../src/pipeline/types.js';
import { openEnvelope } from '../../src/envelope/index.js';
import { until } from '../helpers/wait.js';
import { startUnbound, unboundMissing, type DnsServer } from '../client-api/helpers.js';
import { DOMAIN, message, setMapEntry, startSmtpGateway, type SmtpGateway } from './helpers.js';

describe('DMARC reject through the on-ramp', { skip: unboundMissing() }, () => {
  let dns: DnsServer;
  let gw: SmtpGateway;
  let dan: SecretKeySet;
  before(async () => {
    dns = await startUnbound('test', {
      'strict.test': ['v=spf1 -all'],
      '_dmarc.strict.test': ['v=DMARC1; p=reject'],
      'relaxed.test': ['v=spf1 -all'],
      '_dmarc.relaxed.test': ['v=DMARC1; p=none'],
      'careful.test': ['v=spf1 -all'],
      '_dmarc.careful.test': ['v=DMARC1; p=quarantine'],
    });
    gw = await startSmtpGateway({ dnsServers: [dns.server], policy: [dmarcCheck()] });
    dan = await gw.user('dan');
  });
  after(async () => {
    await gw.close();
    await dns.close();
  });

  const send = (from: string, subject: string) =>
    nodemailer
      .createTransport({ host: '127.0.0.1', port: gw.port.mx, secure: false, ignoreTLS: true })
      .sendMail({
        envelope: { from, to: [`dan@${DOMAIN}`] },
        raw: message({ from, to: `dan@${DOMAIN}`, subject }),
      });

  test('p=reject and failing: 550 5.7.1 after DATA, nothing delivered', async () => {
    await assert.rejects(send('ceo@strict.test', 'spoofed'), (err: { response?: string }) => {
      assert.equal(
        err.response,
        '550 5.7.1 Message rejected: the DMARC policy of strict.test is reject, and the message fails it',
      );
      return true;
    });
    const r = await send('someone@relaxed.test', 'p=none');
    assert.match(r.response, /^250 /);
    const got = await gw.inbox(dan, 1);
    assert.deepEqual(
      got.map((g) => g.opened.subject),
      ['p=none'],
    );
    assert.equal((await gw.store.list(dan.did, { folder: 'junk' })).envelopes.length, 0);
  });

  test('p=quarantine and failing: delivered to the Junk folder', async () => {
    const r = await send('someone@careful.test', 'quarantined');
    assert.match(r.response, /^250 /);
    const [filed] = await until('the copy in Junk', async () => {
      const junk = (await gw.store.list(dan.did, { folder: 'junk' })).envelopes;
      return junk.length > 0 && junk;
    });
    const opened = openEnvelope(filed!.envelope, dan);
    assert.equal(opened.subject, 'quarantined');
    // No scanner scored it: the copy says who filed it, not a score of 0.
    assert.match(opened.content.toString(), /^X-Spam-Flag: YES\r$/m);
    assert.match(
      opened.content.toString(),
      /^X-Spam-Status: Yes, filed as junk by policy, not scanned\r$/m,
    );
  });

  test('a client trusted by access_map is not refused', async () => {
    await setMapEntry(gw, 'access_map', '127.0.0.1', 'OK');
    const r = await send('ceo@strict.test', 'from our own list server');
    assert.match(r.response, /^250 /);
  });
});

/** A port 25 message that fails DMARC, its From domain's record being `policy`. */
function failing(policy: DmarcPolicy, auth: Partial<AuthResults> = {}): PolicySubject {
  return {
    kind: 'legacy',
    submission: {
      transaction: 't1',
      client: { entrance: 'smtp', address: '192.0.2.1', port: 25, tls: false },
      trusted: false,
      recipients: [{ address: 'dan@example.org', targets: [] }],
    } as unknown as LegacySubmission,
    auth: {
      headers: '',
      authenticationResults: '',
      spf: 'fail',
      dkim: 'none',
      dmarc: 'fail',
      arc: 'none',
      dmarcPolicy: policy,
      ...auth,
    },
  };
}

test('pct: that share of the failing mail gets the policy, the rest the next weaker', () => {
  const verdict = (policy: string, pct: number, drawn: number): string => {
    const v = dmarcCheck({ draw: () => drawn })(
      failing({ domain: 'sampled.test', policy, pct }),
      undefined as never,
      {},
    ) as Verdict;
    if (v.kind === 'refuse') return 'reject';
    return v.effects?.junk !== undefined ? 'quarantine' : 'none';
  };
  assert.equal(verdict('reject', 50, 49), 'reject');
  assert.equal(verdict('reject', 50, 50), 'quarantine');
  assert.equal(verdict('reject', 100, 99), 'reject');
  assert.equal(verdict('reject', 0, 0), 'quarantine');
  assert.equal(verdict('quarantine', 50, 49), 'quarantine');
  assert.equal(verdict('quarantine', 50, 50), 'none');
  assert.equal(verdict('none', 100, 0), 'none');
});

test('an ARC seal overrides only when it passed, is by a trusted domain and recorded DMARC pass', () => {
  const subject = (arc: string, sealer: string, dmarc: string): PolicySubject =>
    failing(
      { domain: 'author.test', policy: 'reject', pct: 100 },
      { arc, arcSeal: { sealer, dmarc } },
    );
  const seen: string[] = [];
  const check = dmarcCheck({
    trustedArcSealers: parseTrustedSealers('lists.example, Google.com.'),
    onOverride: (f) => seen.push(`${f.transaction} ${f.domain} ${f.sealer}`),
  });
  const kind = (arc: string, sealer: string, dmarc: string): string =>
    (check(subject(arc, sealer, dmarc), undefined as never, {}) as Verdict).kind;
  assert.equal(kind('pass', 'lists.example', 'pass'), 'continue');
  assert.equal(kind('pass', 'google.com', 'pass'), 'continue');
  assert.equal(kind('pass', 'a.lists.example', 'pass'), 'continue');
  assert.equal(kind('pass', 'evillists.example', 'pass'), 'refuse');
  assert.equal(kind('pass', 'example', 'pass'), 'refuse');
  assert.equal(kind('pass', 'lists.example', 'fail'), 'refuse');
  assert.equal(kind('pass', 'lists.example', 'none'), 'refuse');
  assert.equal(kind('fail', 'lists.example', 'pass'), 'refuse');
  assert.deepEqual(seen, [
    't1 author.test lists.example',
    't1 author.test google.com',
    't1 author.test a.lists.example',
  ]);
  assert.throws(() => parseTrustedSealers('lists.example, not a domain'), /expected a domain/);
  assert.deepEqual(parseTrustedSealers(''), []);
});
