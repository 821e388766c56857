// mx_record_map: route values in Postfix transport(5) syntax, good and bad, and the lookup
// order (full address, domain, .parent domains, regexp entries, *).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MapInputError } from '../../src/routing/index.js';
import { formatRoute, parseRoute } from '../../src/routing/routes.js';
import { engineWith, snapshotWith } from './helpers.js';

describe('route values', () => {
  it('parses amp, smtp and smtps with and without MX lookup, and error', () => {
    const cases = [
      [
        'amp:relay.example.org:4434',
        { kind: 'amp', host: 'relay.example.org', port: 4434 },
        'amp:relay.example.org:4434',
      ],
      [
        'amp:relay.example.org',
        { kind: 'amp', host: 'relay.example.org', port: 4434 },
        'amp:relay.example.org:4434',
      ],
      [
        'AMP:[2001:DB8::1]:5000',
        { kind: 'amp', host: '2001:db8::1', port: 5000 },
        'amp:[2001:db8::1]:5000',
      ],
      ['amp:192.0.2.1:4434', { kind: 'amp', host: '192.0.2.1', port: 4434 }, 'amp:192.0.2.1:4434'],
      [
        'smtp:[mx.example.org]:2525',
        { kind: 'smtp', host: 'mx.example.org', port: 2525, mxLookup: false, implicitTls: false },
        'smtp:[mx.example.org]:2525',
      ],
      [
        'smtp:[mx.example.org]',
        { kind: 'smtp', host: 'mx.example.org', port: 25, mxLookup: false, implicitTls: false },
        'smtp:[mx.example.org]:25',
      ],
      [
        'smtp:example.org',
        { kind: 'smtp', host: 'example.org', port: 25, mxLookup: true, implicitTls: false },
        'smtp:example.org:25',
      ],
      [
        'smtp:Example.org:587',
        { kind: 'smtp', host: 'example.org', port: 587, mxLookup: true, implicitTls: false },
        'smtp:example.org:587',
      ],
      [
        'smtp:[192.0.2.25]',
        { kind: 'smtp', host: '192.0.2.25', port: 25, mxLookup: false, implicitTls: false },
        'smtp:[192.0.2.25]:25',
      ],
      [
        'smtp:[ipv6:2001:db8::25]:25',
        { kind: 'smtp', host: '2001:db8::25', port: 25, mxLookup: false, implicitTls: false },
        'smtp:[2001:db8::25]:25',
      ],
      [
        'smtp:[2001:db8::25]',
        { kind: 'smtp', host: '2001:db8::25', port: 25, mxLookup: false, implicitTls: false },
        'smtp:[2001:db8::25]:25',
      ],
      [
        'SMTPS:[smtp.provider.example]',
        {
          kind: 'smtp',
          host: 'smtp.provider.example',
          port: 465,
          mxLookup: false,
          implicitTls: true,
        },
        'smtps:[smtp.provider.example]:465',
      ],
      [
        'smtps:example.org:4650',
        { kind: 'smtp', host: 'example.org', port: 4650, mxLookup: true, implicitTls: true },
        'smtps:example.org:4650',
      ],
      [
        'error:5.1.1 no such user',
        { kind: 'error', text: '5.1.1 no such user' },
        'error:5.1.1 no such user',
      ],
    ] as const;
    for (const [value, route, normal] of cases) {
      assert.deepEqual(parseRoute(value), route, value);
      assert.equal(formatRoute(parseRoute(value)), normal, value);
    }
  });

  it('refuses bad routes with the reason', () => {
    for (const [value, why] of [
      ['relay:host', /unknown route/],
      ['smtp', /unknown route/],
      ['smtp:', /needs a host/],
      ['amp:', /needs a host/],
      ['error:', /needs a text/],
      ['error:caf\u00e9', /printable ASCII/],
      ['smtp:mx.example.org:0', /bad port/],
      ['smtp:mx.example.org:65536', /bad port/],
      ['smtp:mx.example.org:smtp', /bad port/],
      ['smtp:[mx.example.org', /missing \]/],
      ['amp:2001:db8::1:4434', /IPv6 addresses go in brackets/],
      ['smtp:192.0.2.1', /write smtp:\[192\.0\.2\.1\]/],
      ['smtps:192.0.2.1', /write smtps:\[192\.0\.2\.1\]/],
      ['smtps:', /smtps: needs a host/],
      ['smtp:[2001:db8::zz]', /not an IPv6 address/],
      ['smtp:bad_host.example', /not a host name/],
      ['amp:999.1.1.1:4434', /not a valid IPv4 address/],
    ] as const) {
      assert.throws(
        () => parseRoute(value),
        (e: unknown) => e instanceof MapInputError && why.test(e.message),
        value,
      );
    }
  });
});

describe('route lookups', () => {
  const s = snapshotWith([
    ['mx_record_map', '*', 'smtp:[smarthost.example]:587'],
    ['mx_record_map', 'example.org', 'amp:relay.example.org:4434'],
    ['mx_record_map', '.example.org', 'smtp:[sub-mx.example.org]'],
    ['mx_record_map', 'ceo@example.org', 'smtp:[vip.example.org]'],
    ['mx_record_map', 'gone@example.org', 'error:5.1.1 this address is gone'],
    ['mx_record_map', '/\\.internal$/', 'smtp:[internal-mx.example]'],
  ]);

  it('tries the full address (with +ext), the domain, parent domains, regexps, then *', () => {
    assert.equal(s.route('ceo+x@example.org')?.kind, 'smtp');
    assert.deepEqual(s.route('ceo@example.org'), {
      kind: 'smtp',
      host: 'vip.example.org',
      port: 25,
      mxLookup: false,
      implicitTls: false,
    });
    assert.deepEqual(s.route('gone@example.org'), {
      kind: 'error',
      text: '5.1.1 this address is gone',
    });
    assert.deepEqual(s.route('anyone@example.org'), {
      kind: 'amp',
      host: 'relay.example.org',
      port: 4434,
    });
    assert.equal(s.route('a@deep.sub.example.org')?.kind, 'smtp');
    assert.deepEqual(s.route('host.internal'), {
      kind: 'smtp',
      host: 'internal-mx.example',
      port: 25,
      mxLookup: false,
      implicitTls: false,
    });
    assert.deepEqual(s.route('a@example.net'), {
      kind: 'smtp',
      host: 'smarthost.example',
      port: 587,
      mxLookup: false,
      implicitTls: false,
    });
  });

  it('takes bare domains too, in any case', () => {
    assert.equal(s.route('EXAMPLE.ORG')?.kind, 'amp');
    assert.equal(s.route('sub.example.org')?.kind, 'smtp');
  });

  it('has nothing for input that is neither an address nor a domain', () => {
    assert.equal(s.route(''), undefined);
    assert.equal(s.route('a@'), undefined);
  });

  it('without * an unknown destination has no route (the caller uses AMP discovery, then MX)', () => {
    assert.equal(
      snapshotWith([['mx_record_map', 'example.org', 'smtp:example.org']]).route('a@example.net'),
      undefined,
    );
  });

  it('a regexp route is substituted, and one whose result is not a route does not apply', () => {
    const t = snapshotWith([
      ['mx_record_map', '/^(.+)\\.hosted\\.example$/', 'smtp:[$1.mx.hosted.example]'],
      ['mx_record_map', '*', 'error:5.1.2 unroutable'],
    ]);
    assert.deepEqual(t.route('shop.hosted.example'), {
      kind: 'smtp',
      host: 'shop.mx.hosted.example',
      port: 25,
      mxLookup: false,
      implicitTls: false,
    });
    assert.equal(t.route('bad_name.hosted.example')?.kind, 'error');
  });

  it('refuses keys the map does not know and classes', () => {
    const engine = engineWith([]);
    assert.throws(
      () => engine.set('mx_record_map', 'user@', 'smtp:x.example'),
      /expected user@domain, domain, \.domain or \*/,
    );
    assert.throws(
      () => engine.set('mx_record_map', 'a.example', 'smtp:x.example', { class: 'sender' }),
      /no sender\/recipient class/,
    );
    engine.close();
  });
});
