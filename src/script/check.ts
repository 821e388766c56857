/**
 * MailScript as a check of the policy stage (DESIGN.md §1b): the global script runs first, then
 * the script of each recipient domain (in the order the recipients were given, each domain
 * once); their actions become one verdict.
 *
 * Actions to verdicts: reject(code, text) refuses with that code (4xx temporary, 5xx
 * permanent); defer(text) refuses for now (451); the first refusal stops the scripts after it.
 * discard() -> Effects.discard; add_header -> Effects.headers (legacy only; ignored for AMP,
 * whose content the gateway cannot touch); set_junk -> Effects.junk; redirect -> Effects.redirect;
 * route_via -> Effects.route; webhook / route_to_webhook -> Effects.webhooks (queued after the
 * commit). accept() says the script has no objection; it overrides nothing.
 *
 * A script that fails (throws, runs past its deadline, runs out of memory, asks for an action
 * that does not check: a webhook name nobody allowed, a header with a CR in it, a redirect of
 * sealed AMP mail) costs its message a temporary failure and an error log line; nothing is lost,
 * the sender tries again, the operator fixes the script. Never the process: the sandbox holds it.
 */
import { parseRoute } from '../routing/index.js';
import { mergeEffects } from '../pipeline/admission.js';
import type { PolicyCheck, PolicySubject } from '../pipeline/policy.js';
import type { Effects, Refusal, Verdict, WebhookCall } from '../pipeline/types.js';
import { parseActions, ScriptActionError, type ScriptAction } from './actions.js';
import { scriptInput, type ScriptInput } from './input.js';
import { ScriptRunError, type ScriptSandbox } from './sandbox.js';
import type { ScriptSnapshot, StoredScript } from './store.js';

export interface ScriptLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MailScriptOptions {
  readonly scripts: () => ScriptSnapshot;
  readonly sandbox: ScriptSandbox;
  /** Webhook names an administrator allowed, with their URLs. */
  readonly webhooks: ReadonlyMap<string, string>;
  readonly log: ScriptLogger;
  /** Called with each run's duration in µs and its result (metrics, the benchmark). */
  readonly observe?: (scope: string, micros: number, result: 'ok' | 'failed') => void;
}

/** What one script asked for, before it becomes a verdict. */
export interface ScriptOutcome {
  readonly script: StoredScript;
  readonly actions: readonly ScriptAction[];
}

/** The scripts that apply to a submission: global, then each recipient domain's once. */
export function scriptsFor(subject: PolicySubject, snapshot: ScriptSnapshot): StoredScript[] {
  const out: StoredScript[] = [];
  if (snapshot.global !== undefined) out.push(snapshot.global);
  const domains =
    subject.kind === 'legacy'
      ? subject.submission.recipients.map((r) => r.address)
      : subject.submission.envelope.wraps.map((w) => w.recipient);
  const seen = new Set<string>();
  for (const r of domains) {
    const d = recipientDomain(r);
    if (d === undefined || seen.has(d)) continue;
    seen.add(d);
    const s = snapshot.byDomain.get(d);
    if (s !== undefined) out.push(s);
  }
  return out;
}

function recipientDomain(r: string): string | undefined {
  if (r.startsWith('did:')) {
    // did:aftersmtp:<domain>:<localpart>
    const parts = r.split(':');
    return parts.length >= 4 ? parts[2]?.toLowerCase() : undefined;
  }
  const at = r.lastIndexOf('@');
  return at < 0 ? undefined : r.slice(at + 1).toLowerCase();
}

/** The key of a script version in the sandbox's pool of warm contexts. */
export function scriptKey(s: StoredScript): string {
  return `${s.scope}@${s.version}`;
}

/** Runs one script on `input`; throws ScriptRunError or ScriptActionError. */
export function runScript(
  sandbox: ScriptSandbox,
  script: StoredScript,
  input: string,
): ScriptAction[] {
  const { output } = sandbox.run(scriptKey(script), script.source, input);
  return parseActions(output);
}

/** The effects and refusal one script's actions make (throws ScriptActionError). */
export function actionsToVerdict(
  actions: readonly ScriptAction[],
  subject: PolicySubject,
  input: ScriptInput,
  webhooks: ReadonlyMap<string, string>,
  label: string,
): Verdict {
  let effects: Effects = {};
  const headers: string[] = [];
  const junk: string[] = [];
  const calls: WebhookCall[] = [];
  const amp = subject.kind === 'amp';
  for (const a of actions) {
    switch (a.action) {
      case 'accept':
        break;
      case 'reject': {
        const r: Refusal = {
          code: 'ERR_SCRIPT_REJECT',
          temporary: a.code < 500,
          text: a.text,
          smtpCode: a.code,
        };
        return { kind: 'refuse', refusal: r };
      }
      case 'defer':
        return {
          kind: 'refuse',
          refusal: { code: 'ERR_SCRIPT_DEFER', temporary: true, text: a.text, smtpCode: 451 },
        };
      case 'discard':
        effects = { ...effects, discard: effects.discard ?? `MailScript ${label}` };
        break;
      case 'add_header':
        if (!amp) headers.push(`${a.name}: ${a.value}`);
        break;
      case 'set_junk': {
        const all = input.envelope.recipients;
        const wanted = a.recipients ?? all;
        for (const r of wanted) {
          const match = all.find((x) => x.toLowerCase() === r.toLowerCase());
          if (match === undefined) {
            throw new ScriptActionError(`set_junk: ${r} is not a recipient of this message`);
          }
          if (!junk.includes(match)) junk.push(match);
        }
        break;
      }
      case 'redirect':
        if (amp) throw new ScriptActionError('redirect: AMP mail is sealed to its recipients');
        effects = { ...effects, redirect: effects.redirect ?? a.to };
        break;
      case 'route_via': {
        if (amp) throw new ScriptActionError('route_via: applies to mail for ordinary addresses');
        let route;
        try {
          route = parseRoute(a.route);
        } catch (err) {
          throw new ScriptActionError(`route_via: ${(err as Error).message}`);
        }
        if (route.kind !== 'smtp') {
          throw new ScriptActionError(
            'route_via: only smtp:[host]:port, smtp:host:port or smtps:[host]:port routes',
          );
        }
        effects = { ...effects, route: effects.route ?? a.route.trim() };
        break;
      }
      case 'webhook': {
        const url = webhooks.get(a.name);
        if (url === undefined) {
          throw new ScriptActionError(`webhook: ${a.name} is not an allowed webhook`);
        }
        calls.push({ name: a.name, url, payload: a.payload });
        break;
      }
    }
  }
  return {
    kind: 'continue',
    effects: {
      ...effects,
      ...(headers.length > 0 ? { headers } : {}),
      ...(junk.length > 0 ? { junk } : {}),
      ...(calls.length > 0 ? { webhooks: calls } : {}),
    },
  };
}

function failed(transaction: string): Verdict {
  return {
    kind: 'refuse',
    refusal: {
      code: 'ERR_SCRIPT_FAILED',
      temporary: true,
      text: `the message cannot be checked now; try again later (transaction ${transaction})`,
    },
  };
}

/** The policy check; see the module comment. */
export function mailScriptCheck(o: MailScriptOptions): PolicyCheck {
  return (subject, _maps, prior) => {
    const scripts = scriptsFor(subject, o.scripts());
    if (scripts.length === 0) return { kind: 'continue' };
    const auth = subject.kind === 'legacy' ? subject.auth : undefined;
    const input = scriptInput(subject, auth, prior);
    const json = JSON.stringify(input);
    let effects: Effects = {};
    const merged: Effects[] = [];
    for (const script of scripts) {
      const label = `${script.scope} v${script.version}`;
      const started = process.hrtime.bigint();
      let verdict: Verdict;
      try {
        const actions = runScript(o.sandbox, script, json);
        verdict = actionsToVerdict(actions, subject, input, o.webhooks, label);
        o.observe?.(script.scope, Number(process.hrtime.bigint() - started) / 1000, 'ok');
      } catch (err) {
        o.observe?.(script.scope, Number(process.hrtime.bigint() - started) / 1000, 'failed');
        const known = err instanceof ScriptRunError || err instanceof ScriptActionError;
        o.log.error(
          {
            transaction: input.envelope.transaction,
            script: script.scope,
            version: script.version,
            reason: err instanceof ScriptRunError ? err.reason : 'action',
            error: known ? (err as Error).message : undefined,
            ...(known ? {} : { err }),
          },
          'MailScript failed: the message is deferred',
        );
        return failed(input.envelope.transaction);
      }
      if (verdict.kind === 'refuse') {
        o.log.info(
          {
            transaction: input.envelope.transaction,
            script: script.scope,
            version: script.version,
            code: verdict.refusal.smtpCode,
            temporary: verdict.refusal.temporary,
          },
          'MailScript refused the message',
        );
        return verdict;
      }
      if (verdict.effects !== undefined) merged.push(verdict.effects);
    }
    for (const e of merged) effects = mergeEffects(effects, e);
    return { kind: 'continue', effects };
  };
}
