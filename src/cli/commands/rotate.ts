/**
 * `aftersmtp rotate` and `aftersmtp revoke`: the key holder's own ledger writes (PROTOCOL.md
 * §9.3-§9.4), through the domain's gateway, each verified like `register` before it is reported.
 *
 * rotate: reads the current entry of the key file's DID (verified, §9.6) and checks that the key
 * file holds its current key; makes the new keys (or takes them from --new-key); writes the new
 * key file BEFORE asking the ledger, so that a crash after the ledger accepted never leaves the
 * holder without the key the ledger now names; signs the rotation with the old key and proves
 * possession with the new one; keeps the entry's extensions; and checks that the logged entry is
 * this rotation.
 *
 * revoke: signs the revocation of the current key with that key. It cannot be undone, so it
 * needs --yes. (An operator revokes a lost key on the gateway host: `aftersmtp ledger revoke`.)
 */
import {
  PURPOSE_REVOKE,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  revokeTranscript,
  rotateTranscript,
  verifyAnswer,
  type VerifiedEntry,
} from '../../ledger/index.js';
import {
  bundleFromMsg,
  recordToMsg,
  signatureToMsg,
  type GatewayClient,
} from '../../amp/client-api/index.js';
import { AfterSmtpError, CryptoError } from '../../errors.js';
import {
  generateIdentity,
  isSuiteId,
  publicRecordToJson,
  readKeyFile,
  writeKeyFile,
  writePublicRecordFile,
  type SecretKeySet,
} from '../../identity/index.js';
import type { ClientState } from '../../ledger/index.js';
import {
  UsageError,
  flag,
  optionalString,
  requireString,
  type Command,
  type ParsedArgs,
} from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  connectGateway,
  gatewayTarget,
  keyFileOption,
  loadClientState,
  logKeyFor,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { resolveVerified } from './send.js';

/** The verified current entry of `keys`' DID, which must name `keys`' key. */
async function currentEntry(
  client: GatewayClient,
  args: ParsedArgs,
  state: ClientState,
  keys: SecretKeySet,
): Promise<VerifiedEntry> {
  const v = await resolveVerified(client, args, state, keys.did);
  if (v.revoked) {
    throw new AfterSmtpError('ERR_LEDGER_REVOKED', `${keys.did} is revoked in its ledger`);
  }
  if (v.record === undefined || !v.record.keyId.equals(keys.keyId)) {
    throw new AfterSmtpError(
      'ERR_KEY_NOT_CURRENT',
      `the key file holds key ${keys.keyId.toString('base64')}, but the ledger's current key of ${keys.did} is ${v.record?.keyId.toString('base64')}`,
    );
  }
  return v;
}

async function loggedAs(
  type: 'rotate' | 'revoke',
  args: ParsedArgs,
  state: ClientState,
  did: string,
  res: Awaited<ReturnType<GatewayClient['rotateIdentity']>>,
): Promise<VerifiedEntry> {
  const logKey = await logKeyFor(args, did, state);
  const v = verifyAnswer(did, bundleFromMsg(res.inclusion, res.consistency), state, {
    dnsVerifierKey: logKey.key,
  });
  if (v.entry.type !== type) {
    throw new CryptoError('ERR_LEDGER_WRONG_ENTRY', `the logged entry is not this ${type}`);
  }
  await state.save();
  return v;
}

export const rotateCommand: Command = {
  path: ['rotate'],
  summary: 'Replace your key in the ledger by a new one; writes the new key file first.',
  usage:
    '--key <key file> --out <new key file> [--suite classic-v1|hybrid-v1] [--new-key <key file>]\n' +
    '       [--record-out <file>] --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --out <file>                 where the new key file is written (never overwritten)\n' +
    '  --suite <suite>              of the new keys (default: the current suite)\n' +
    '  --new-key <key file>         rotate to these keys instead of new ones (no --out needed)\n' +
    '  --record-out <file>          also write the new public record\n\n' +
    'Both key files use the passphrase of AFTERSMTP_PASSPHRASE, or the one asked on the terminal.\n' +
    'Keep the old key file: mail sealed to it before the rotation opens with\n' +
    '`aftersmtp inbox --key <new key file> --old-key <old key file>`.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    out: { type: 'string' },
    suite: { type: 'string' },
    'new-key': { type: 'string' },
    'record-out': { type: 'string' },
  },
  async run(args) {
    const keyFile = keyFileOption(args);
    const newKeyFile = optionalString(args, 'new-key');
    const out = newKeyFile === undefined ? requireString(args, 'out') : undefined;
    const suite = optionalString(args, 'suite');
    if (suite !== undefined && !isSuiteId(suite)) {
      throw new UsageError('--suite must be classic-v1 or hybrid-v1');
    }
    gatewayTarget(args);
    const passphrase = await readPassphrase(`key file ${keyFile}`);
    const old = await readKeyFile(keyFile, passphrase);
    const next =
      newKeyFile !== undefined
        ? await readKeyFile(newKeyFile, passphrase)
        : generateIdentity(old.did, suite ?? old.record.suite);
    if (next.did !== old.did) {
      throw new UsageError(`--new-key is for ${next.did}, not ${old.did}`);
    }
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    try {
      const current = await currentEntry(client, args, state, old);
      const extensions = current.entry.type === 'revoke' ? [] : current.entry.extensions;
      if (out !== undefined) await writeKeyFile(out, next, passphrase);
      const recordOut = optionalString(args, 'record-out');
      if (recordOut !== undefined) await writePublicRecordFile(recordOut, next.record);
      const t = rotateTranscript(old.did, current.leafIndex, old.keyId, next.record, extensions);
      const res = await client.rotateIdentity({
        did: old.did,
        prev_leaf: current.leafIndex,
        prev_key_id: old.keyId,
        record: recordToMsg(next.record),
        extensions: extensions.map((e) => ({ name: e.name, value: e.value })),
        previous_key_signature: signatureToMsg(old.sign(t, PURPOSE_ROTATE)),
        proof_of_possession: signatureToMsg(next.sign(t, PURPOSE_ROTATE_POP)),
        known_tree_size: current.checkpoint.size,
      });
      const v = await loggedAs('rotate', args, state, old.did, res);
      if (v.record === undefined || !v.record.keyId.equals(next.keyId)) {
        throw new CryptoError('ERR_LEDGER_WRONG_ENTRY', 'the logged rotation names other keys');
      }
      const result = {
        did: old.did,
        previousKeyId: old.keyId.toString('base64'),
        keyId: next.keyId.toString('base64'),
        suite: next.record.suite,
        keyFile: out ?? newKeyFile,
        leafIndex: v.leafIndex,
        treeSize: v.checkpoint.size,
        verified: true,
        record: publicRecordToJson(next.record),
      };
      if (flag(args, 'json')) {
        printJson(result);
        return;
      }
      printLines([
        `rotated    ${result.did}`,
        `key id     ${result.previousKeyId} -> ${result.keyId} (${result.suite})`,
        `key file   ${result.keyFile}`,
        `leaf       ${result.leafIndex} of ${result.treeSize} (verified)`,
      ]);
    } finally {
      client.close();
    }
  },
};

export const revokeCommand: Command = {
  path: ['revoke'],
  summary: 'Revoke your current key in the ledger (cannot be undone: --yes).',
  usage:
    '--key <key file> --yes [--reason <text>] --gateway <host:port>\n' +
    '       (--gateway-cert <pem> | --gateway-spki sha256/<b64>) [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --reason <text>              logged with the revocation (default "key retired")\n' +
    '  --yes                        revoke: after this, no one can seal mail to this DID\n\n' +
    'A lost key cannot sign its own revocation: the gateway operator revokes it with\n' +
    '`aftersmtp ledger revoke <did>` on the gateway host.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    reason: { type: 'string' },
    yes: { type: 'boolean' },
  },
  async run(args) {
    const keyFile = keyFileOption(args);
    if (!flag(args, 'yes')) {
      throw new UsageError('revoking cannot be undone: add --yes to revoke the key');
    }
    const reason = optionalString(args, 'reason') ?? 'key retired';
    gatewayTarget(args);
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    try {
      const current = await currentEntry(client, args, state, keys);
      const t = revokeTranscript(keys.did, current.leafIndex, keys.keyId, reason);
      const res = await client.revokeIdentity({
        did: keys.did,
        prev_leaf: current.leafIndex,
        key_id: keys.keyId,
        reason,
        signature: signatureToMsg(keys.sign(t, PURPOSE_REVOKE)),
        known_tree_size: current.checkpoint.size,
      });
      const v = await loggedAs('revoke', args, state, keys.did, res);
      const result = {
        did: keys.did,
        keyId: keys.keyId.toString('base64'),
        reason,
        leafIndex: v.leafIndex,
        treeSize: v.checkpoint.size,
        verified: true,
      };
      if (flag(args, 'json')) printJson(result);
      else
        printLines([
          `revoked    ${result.did} (key ${result.keyId}: ${reason})`,
          `leaf       ${result.leafIndex} of ${result.treeSize} (verified)`,
        ]);
    } finally {
      client.close();
    }
  },
};
