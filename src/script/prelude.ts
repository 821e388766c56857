/**
 * The JavaScript that every sandbox context runs once, before any script: it freezes every
 * intrinsic reachable from the global object (so nothing a script changes outlives its run:
 * no prototype pollution carried to the next message) and returns, to the host only, a
 * `compile` and a `run` function. Neither is reachable from a script: they are not on the
 * global object; the host holds their handles.
 *
 * `run(json)` parses the input (plain data the host wrote as JSON), freezes it, hands the
 * script its views (envelope, headers with helpers, auth, spam, recipients, entrance) and the
 * action functions, and returns the actions the script asked for as one JSON text. The action
 * functions check their arguments here too, so a script gets an error it can catch; the host
 * checks everything again (actions.ts).
 */
import { ACTION_LIMITS } from './actions.js';

/** Names a script's body is compiled with: its views, then its action functions. */
export const SCRIPT_PARAMETERS = [
  'envelope',
  'headers',
  'auth',
  'spam',
  'recipients',
  'entrance',
  'accept',
  'reject',
  'defer',
  'discard',
  'redirect',
  'add_header',
  'set_junk',
  'route_via',
  'webhook',
  'route_to_webhook',
] as const;

export const PRELUDE = `(function () {
  'use strict';
  const L = ${JSON.stringify(ACTION_LIMITS)};
  const PARAMS = ${JSON.stringify(SCRIPT_PARAMETERS)};
  const freeze = Object.freeze, keys = Reflect.ownKeys, getProto = Object.getPrototypeOf;
  const seen = new WeakSet();
  function harden(root) {
    const stack = [root];
    while (stack.length > 0) {
      const o = stack.pop();
      if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue;
      seen.add(o);
      freeze(o);
      stack.push(getProto(o));
      for (const k of keys(o)) {
        const d = Object.getOwnPropertyDescriptor(o, k);
        if (d === undefined) continue;
        if ('value' in d) stack.push(d.value);
        else { stack.push(d.get); stack.push(d.set); }
      }
    }
    return root;
  }
  function deepFreeze(v) {
    if (typeof v === 'object' && v !== null) {
      for (const k of Object.keys(v)) deepFreeze(v[k]);
      freeze(v);
    }
    return v;
  }
  let actions = null;
  function push(a) {
    if (actions === null) throw new Error('no message is being checked');
    if (actions.length >= L.maxActions) throw new RangeError('too many actions');
    actions.push(freeze(a));
  }
  function text(v, what) {
    if (typeof v !== 'string') throw new TypeError(what + ': expected a string');
    if (v.length > L.maxText || /[^\\x20-\\x7e]/.test(v)) {
      throw new RangeError(what + ': one line of printable ASCII, at most ' + L.maxText + ' characters');
    }
    return v;
  }
  function str(v, what, max) {
    if (typeof v !== 'string') throw new TypeError(what + ': expected a string');
    if (v.length > max) throw new RangeError(what + ': longer than ' + max + ' characters');
    return v;
  }
  let summary = null;
  const api = {
    accept() { push({ action: 'accept' }); },
    reject(code, t) {
      if (t === undefined) t = 'Message rejected';
      if (!Number.isInteger(code) || code < 400 || code > 599) {
        throw new RangeError('reject: the code must be a 4xx or 5xx SMTP reply code');
      }
      push({ action: 'reject', code: code, text: text(t, 'reject') });
    },
    defer(t) {
      if (t === undefined) t = 'Try again later';
      push({ action: 'defer', text: text(t, 'defer') });
    },
    discard() { push({ action: 'discard' }); },
    redirect(to) { push({ action: 'redirect', to: str(to, 'redirect', L.maxAddress) }); },
    add_header(name, value) {
      name = str(name, 'add_header name', L.maxHeaderName);
      value = str(String(value), 'add_header value', L.maxHeaderValue);
      if (/[\\r\\n\\0]/.test(value) || /[^!-9;-~]/.test(name) || name === '') {
        throw new RangeError('add_header: a field name, and a value without CR, LF or NUL');
      }
      push({ action: 'add_header', name: name, value: value });
    },
    set_junk(list) {
      if (list === undefined) { push({ action: 'set_junk' }); return; }
      if (typeof list === 'string') list = [list];
      if (!Array.isArray(list)) throw new TypeError('set_junk: a recipient or a list of them');
      push({ action: 'set_junk', recipients: list.map((r) => str(r, 'set_junk', L.maxAddress)) });
    },
    route_via(route) { push({ action: 'route_via', route: str(route, 'route_via', L.maxRoute) }); },
    webhook(name, payload) {
      name = str(name, 'webhook name', 63);
      const json = JSON.stringify(payload === undefined ? summary : payload);
      if (json === undefined) throw new TypeError('webhook: the payload must be JSON data');
      if (json.length > L.maxPayloadBytes) throw new RangeError('webhook: payload too large');
      push({ action: 'webhook', name: name, payload: json });
    },
    route_to_webhook(name) { api.webhook(name); },
  };
  function headerView(list) {
    const lower = list.map((h) => freeze({ name: h.name.toLowerCase(), value: h.value }));
    return freeze({
      list: list,
      get(name) {
        const n = String(name).toLowerCase();
        const h = lower.find((x) => x.name === n);
        return h === undefined ? null : h.value;
      },
      getAll(name) {
        const n = String(name).toLowerCase();
        return freeze(lower.filter((x) => x.name === n).map((x) => x.value));
      },
      has(name) {
        const n = String(name).toLowerCase();
        return lower.some((x) => x.name === n);
      },
      contains(t) {
        const needle = String(t).toLowerCase();
        return lower.some((x) => x.value.toLowerCase().includes(needle));
      },
    });
  }
  harden(globalThis);
  harden(api);
  let compiled = null;
  return {
    compile(source) {
      compiled = Function(...PARAMS, '"use strict";\\n' + source);
    },
    run(json) {
      const input = deepFreeze(JSON.parse(json));
      const headers = headerView(input.headers);
      summary = input.summary;
      actions = [];
      try {
        compiled(input.envelope, headers, input.auth, input.spam, input.recipients,
          input.envelope.entrance, api.accept, api.reject, api.defer, api.discard, api.redirect,
          api.add_header, api.set_junk, api.route_via, api.webhook, api.route_to_webhook);
        return JSON.stringify(actions);
      } finally {
        actions = null;
        summary = null;
      }
    },
  };
})()`;
