/**
 * `aftersmtp register`: registers an identity in its domain's ledger through the domain's
 * gateway: asks for a challenge, mints the hashcash stamp in the native core (progress on
 * stderr), or uses an administrator's approval reference, then verifies what the gateway returns
 * (checkpoint signature by the pinned log key, inclusion of the entry, consistency with the
 * newest checkpoint this client has seen) before it reports success.
 */
import { readKeyFile, publicRecordToJson } from '../../identity/index.js';
import {
  PURPOSE_REGISTER,
  mintProgressLine,
  mintStamp,
  recordHash,
  registerTranscript,
  verifyAnswer,
} from '../../ledger/index.js';
import { CryptoError } from '../../errors.js';
import { bundleFromMsg, recordToMsg, signatureToMsg } from '../../amp/client-api/index.js';
import { flag, optionalString, type Command } from '../command.js';
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

export const registerCommand: Command = {
  path: ['register'],
  summary: "Register an identity's keys in its domain's ledger (hashcash or admin approval).",
  usage:
    '--key <key file> --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--approval <reference>] [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    "\n  --approval <reference>       an administrator's approval (aftersmtp ledger approve)\n\n" +
    'The key file passphrase comes from AFTERSMTP_PASSPHRASE, or is asked on the terminal.',
  options: { ...GATEWAY_OPTIONS, key: { type: 'string' }, approval: { type: 'string' } },
  async run(args) {
    const keyFile = keyFileOption(args);
    const approval = optionalString(args, 'approval');
    const json = flag(args, 'json');
    const state = await loadClientState(args);
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const did = keys.did;
    const domain = did.split(':')[2] as string;
    gatewayTarget(args); // a usage error before any lookup
    const logKey = await logKeyFor(args, did, state);
    const client = await connectGateway(args);
    try {
      let stamp: Buffer | undefined;
      let bits: number | undefined;
      let mintMs: number | undefined;
      if (approval === undefined) {
        const c = await client.getRegistrationChallenge({ domain });
        bits = c.bits;
        const t0 = performance.now();
        let last = 0;
        stamp = await mintStamp(c.challenge, did, recordHash(keys.record), c.bits, (p) => {
          if (p.elapsedMs - last < 250) return;
          last = p.elapsedMs;
          process.stderr.write(`${mintProgressLine(c.bits, p)}\n`);
        });
        mintMs = Math.round(performance.now() - t0);
        process.stderr.write(`minted a ${c.bits}-bit stamp in ${(mintMs / 1000).toFixed(2)} s\n`);
      }
      const known = state.get(domain)?.size;
      const res = await client.registerIdentity({
        record: recordToMsg(keys.record),
        extensions: [],
        proof_of_possession: signatureToMsg(
          keys.sign(registerTranscript(keys.record, []), PURPOSE_REGISTER),
        ),
        ...(stamp !== undefined ? { stamp } : { approval }),
        ...(known !== undefined ? { known_tree_size: known } : {}),
      });
      const bundle = bundleFromMsg(res.inclusion, res.consistency);
      const verified = verifyAnswer(did, bundle, state, { dnsVerifierKey: logKey.key });
      if (verified.entry.type !== 'register' || !verified.entry.record.keyId.equals(keys.keyId)) {
        throw new CryptoError(
          'ERR_LEDGER_WRONG_ENTRY',
          'the logged entry is not this registration',
        );
      }
      await state.save();
      const out = {
        did,
        leafIndex: verified.leafIndex,
        treeSize: verified.checkpoint.size,
        rootHash: verified.checkpoint.root.toString('base64'),
        checkpoint: bundle.checkpoint,
        inclusionProof: bundle.inclusionProof.map((h) => h.toString('base64')),
        // The leaf bytes (§9.3): with the proof and the checkpoint, checkable from this alone.
        entry: bundle.entry.toString('base64'),
        authorisation: stamp !== undefined ? { hashcash: { bits, mintMs } } : { approval },
        logKeySource: logKey.source,
        verified: true,
        record: publicRecordToJson(keys.record),
      };
      if (json) {
        printJson(out);
        return;
      }
      printLines([
        `registered ${did}`,
        `leaf       ${out.leafIndex} of ${out.treeSize}`,
        `root       ${out.rootHash}`,
        `verified   yes (checkpoint signed by the ${logKey.source === 'flag' ? 'given' : logKey.source === 'dns' ? 'DNS-pinned' : 'pinned'} log key, inclusion proof of ${bundle.inclusionProof.length} hashes)`,
      ]);
    } finally {
      client.close();
    }
  },
};
