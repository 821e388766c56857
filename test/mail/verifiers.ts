// Independent implementations the gateway's signatures and addresses are checked against, all
// from Debian's packages: dkimpy (python3-dkim: DKIM, ARC signing and verification), Mail::DKIM
// (libmail-dkim-perl) and postsrsd (SRS). Each asks the test's own DNS server (unbound).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { unavailable } from '../offramp/helpers.js';
import { stopChild } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

// dist/test/mail/ -> test/fixtures/mail/ in the source tree
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/mail/', import.meta.url));
/** Debian's interpreter: the one python3-dkim is installed for. */
const PYTHON = '/usr/bin/python3';

export const dkimpyMissing = (): string | false =>
  unavailable(
    'python3-dkim',
    spawnSync(PYTHON, ['-c', 'import dkim, dns.query, authres']).status === 0
      ? undefined
      : 'dkimpy is not installed (Debian packages python3-dkim, python3-authres)',
  );

export const mailDkimMissing = (): string | false =>
  unavailable(
    'libmail-dkim-perl',
    spawnSync('perl', ['-MMail::DKIM::Verifier', '-MNet::DNS', '-e', '1']).status === 0
      ? undefined
      : 'Mail::DKIM is not installed (Debian package libmail-dkim-perl)',
  );

export const postsrsdMissing = (): string | false =>
  unavailable(
    'postsrsd',
    existsSync('/usr/sbin/postsrsd')
      ? undefined
      : 'postsrsd is not installed (Debian package postsrsd)',
  );

function python(args: readonly string[], input: Buffer): Buffer {
  const r = spawnSync(PYTHON, [join(FIXTURES, 'dkimpy.py'), ...args], { input });
  if (r.status !== 0) throw new Error(`dkimpy ${args[0]}: ${r.stderr.toString()}`);
  return r.stdout;
}

/** dkimpy's verdict on each DKIM-Signature, top first: true, false or an error text. */
export function dkimpyVerify(dns: string, message: Buffer): (boolean | string)[] {
  return (
    JSON.parse(python(['dkim-verify', dns], message).toString()) as {
      results: (boolean | string)[];
    }
  ).results;
}

/** dkimpy's ARC verdict: the chain's cv and its comment. */
export function dkimpyArcVerify(dns: string, message: Buffer): { cv: string; comment: string } {
  return JSON.parse(python(['arc-verify', dns], message).toString()) as {
    cv: string;
    comment: string;
  };
}

/** The message with an ARC set made by dkimpy (`authservId` must name an A-R field in it). */
export function dkimpyArcSign(
  dns: string,
  message: Buffer,
  o: { selector: string; domain: string; keyPem: string; authservId: string; dir: string },
): Buffer {
  const keyFile = join(o.dir, `${o.selector}.${o.domain}.pem`);
  writeFileSync(keyFile, o.keyPem, { mode: 0o600 });
  return python(['arc-sign', dns, o.selector, o.domain, keyFile, o.authservId], message);
}

/** Mail::DKIM's result for each signature: "pass example.org sel rsa-sha256". */
export function mailDkimVerify(dns: string, message: Buffer): string[] {
  const [ip, port] = dns.split(':') as [string, string];
  const r = spawnSync('perl', [join(FIXTURES, 'mail-dkim.pl'), ip, port], { input: message });
  if (r.status !== 0) throw new Error(`Mail::DKIM: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export interface Postsrsd {
  forward(address: string): Promise<string>;
  reverse(address: string): Promise<string>;
  close(): Promise<void>;
}

/** postsrsd for `domain` with `secret`, its two TCP lookup tables on 127.0.0.1. */
export async function startPostsrsd(
  domain: string,
  secret: string,
  dir: string,
): Promise<Postsrsd> {
  const ports = { forward: await freePort('tcp'), reverse: await freePort('tcp') };
  const secretFile = join(dir, 'postsrsd.secret');
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const child: ChildProcess = spawn(
    '/usr/sbin/postsrsd',
    [
      `-s${secretFile}`,
      `-d${domain}`,
      '-l127.0.0.1',
      `-f${ports.forward}`,
      `-r${ports.reverse}`,
      '-4',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  // postfix tcp_table(5): "get <%-encoded key>\n" -> "200 <%-encoded value>\n" or 500.
  const ask = (port: number, key: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\n')) {
          s.destroy();
          const [code, ...rest] = got.trim().split(' ');
          if (code === '200') resolve(decodeURIComponent(rest.join(' ')));
          else reject(new Error(`postsrsd: ${got.trim()}`));
        }
      });
      s.write(`get ${encodeURIComponent(key)}\n`);
    });
  for (let i = 0; ; i++) {
    try {
      await ask(ports.forward, 'probe@probe.example');
      break;
    } catch (err) {
      if (child.exitCode !== null || i > 50) {
        throw new Error(`postsrsd did not start: ${String(err)} ${stderr}`);
      }
      await sleep(100);
    }
  }
  return {
    forward: (a) => ask(ports.forward, a),
    reverse: (a) => ask(ports.reverse, a),
    close: async () => {
      await stopChild(child);
    },
  };
}
