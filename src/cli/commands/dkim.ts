/**
 * `aftersmtp dkim keygen|list|use|retire`: the DKIM keys the off-ramp signs with, per domain and
 * selector, in <AFTERSMTP_DATA_DIR>/dkim (src/mail/dkim-keys.ts), encrypted with the gateway's
 * passphrase. A running gateway picks up a change within a second. Rotation: `keygen` a new
 * selector, publish its record, `use` it once the record is visible, `retire` the old one a few
 * days later (mail in flight may still be checked against it).
 */
import { mkdir } from 'node:fs/promises';
import { loadConfig } from '../../config/load.js';
import { gatewayIdentityFiles, gatewayPassphrase } from '../../identity/gateway.js';
import { DkimKeys, type DkimAlgorithm, type DkimKeyInfo } from '../../mail/dkim-keys.js';
import { UsageError, flag, optionalString, requireString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';
import { zoneTxt } from './dns.js';

async function openKeys(): Promise<{ keys: DkimKeys; domain: string }> {
  const config = loadConfig();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const passphrase = await gatewayPassphrase(config, gatewayIdentityFiles(config), []);
  return { keys: new DkimKeys(config.dataDir, passphrase), domain: config.domain };
}

const ALGORITHMS: Readonly<Record<string, readonly DkimAlgorithm[]>> = {
  rsa: ['rsa-sha256'],
  ed25519: ['ed25519-sha256'],
};

/** A key's record in zone-file form. */
export function dkimZoneLine(k: DkimKeyInfo): string {
  return `${k.dnsName}. 3600 IN TXT ${zoneTxt(k.dnsValue)}`;
}

function describe(k: DkimKeyInfo): string {
  return `${k.domain} ${k.selector} ${k.algorithm}${k.active ? ' (signing)' : ''}`;
}

const domainOption = { domain: { type: 'string' as const } };
const json = { json: { type: 'boolean' as const } };

export const dkimCommands: readonly Command[] = [
  {
    path: ['dkim', 'keygen'],
    summary: 'Make a DKIM key for a selector and print the DNS TXT record to publish.',
    usage:
      '--selector <name> [--domain <domain>] [--algorithm rsa|ed25519] [--use] [--json]\n\n' +
      '  --domain     default AFTERSMTP_DOMAIN\n' +
      '  --algorithm  rsa (2048 bits, rsa-sha256; the default) or ed25519 (RFC 8463)\n' +
      '  --use        sign with it at once (else only when the domain has no key of its kind)\n\n' +
      'A domain signs with one rsa and one ed25519 key at once when it has both.',
    options: {
      ...domainOption,
      ...json,
      selector: { type: 'string' },
      algorithm: { type: 'string' },
      use: { type: 'boolean' },
    },
    async run(args) {
      const { keys, domain } = await openKeys();
      const name = optionalString(args, 'algorithm') ?? 'rsa';
      const algorithm = ALGORITHMS[name]?.[0];
      if (algorithm === undefined) throw new UsageError('--algorithm is rsa or ed25519');
      const info = await keys.generate(
        optionalString(args, 'domain') ?? domain,
        requireString(args, 'selector'),
        algorithm,
        flag(args, 'use'),
      );
      if (flag(args, 'json')) printJson(info);
      else
        printLines([
          `; ${describe(info)}: publish this record${info.active ? '' : ', then "aftersmtp dkim use"'}`,
          dkimZoneLine(info),
        ]);
    },
  },
  {
    path: ['dkim', 'list'],
    summary: 'List the DKIM keys, which ones sign, and their DNS records.',
    usage: '[--domain <domain>] [--json]',
    options: { ...domainOption, ...json },
    async run(args) {
      const { keys } = await openKeys();
      const list = keys.list(optionalString(args, 'domain'));
      if (flag(args, 'json')) printJson(list);
      else if (list.length === 0)
        printLines(['no DKIM keys (the gateway makes them at its first start)']);
      else printLines(list.flatMap((k) => [`; ${describe(k)}`, dkimZoneLine(k)]));
    },
  },
  {
    path: ['dkim', 'use'],
    summary: 'Sign with this selector from now on (it replaces the signing key of its algorithm).',
    usage: '--selector <name> [--domain <domain>] [--json]',
    options: { ...domainOption, ...json, selector: { type: 'string' } },
    async run(args) {
      const { keys, domain } = await openKeys();
      const info = await keys.use(
        optionalString(args, 'domain') ?? domain,
        requireString(args, 'selector'),
      );
      if (flag(args, 'json')) printJson(info);
      else printLines([`${describe(info)}: its record must be published`, dkimZoneLine(info)]);
    },
  },
  {
    path: ['dkim', 'retire'],
    summary: 'Delete a DKIM key that no longer signs (keep its record a few days longer).',
    usage: '--selector <name> [--domain <domain>]',
    options: { ...domainOption, selector: { type: 'string' } },
    async run(args) {
      const { keys, domain } = await openKeys();
      const d = optionalString(args, 'domain') ?? domain;
      const selector = requireString(args, 'selector');
      keys.retire(d, selector);
      printLines([`deleted the key ${selector} of ${d}; remove ${selector}._domainkey.${d} later`]);
    },
  },
];
