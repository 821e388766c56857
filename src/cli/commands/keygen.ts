/**
 * `aftersmtp keygen`: creates an identity's keys, writes the private key file encrypted under a
 * passphrase, and prints (and optionally writes) the public key record.
 */
import { checkDid, generateIdentity, isSuiteId, publicRecordToJson } from '../../identity/index.js';
import { writeKeyFile, writePublicRecordFile } from '../../identity/index.js';
import { UsageError, flag, optionalString, requireString, type Command } from '../command.js';
import { printJson, printLines, readPassphrase } from '../output.js';

export const keygenCommand: Command = {
  path: ['keygen'],
  summary:
    'Create the keys of an identity: a passphrase-encrypted key file and its public key record.',
  usage:
    '--did <did> --suite classic-v1|hybrid-v1 --out <key file> [--record-out <file>] [--json]\n\n' +
    'The passphrase comes from AFTERSMTP_PASSPHRASE, or is asked on the terminal.\n' +
    'An existing key file is never overwritten.',
  options: {
    did: { type: 'string' },
    suite: { type: 'string' },
    out: { type: 'string' },
    'record-out': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const did = checkDid(requireString(args, 'did'));
    const suite = requireString(args, 'suite');
    if (!isSuiteId(suite)) throw new UsageError('--suite must be classic-v1 or hybrid-v1');
    const out = requireString(args, 'out');
    const recordOut = optionalString(args, 'record-out');
    const passphrase = await readPassphrase(`new key file ${out}`, true);
    const identity = generateIdentity(did, suite);
    await writeKeyFile(out, identity, passphrase);
    if (recordOut !== undefined) await writePublicRecordFile(recordOut, identity.record);
    if (flag(args, 'json')) {
      printJson(publicRecordToJson(identity.record));
      return;
    }
    printLines([
      `identity  ${identity.record.did}`,
      `suite     ${identity.record.suite}`,
      `key id    ${identity.record.keyId.toString('base64')}`,
      `key file  ${out}`,
      ...(recordOut !== undefined ? [`record    ${recordOut}`] : []),
    ]);
  },
};
