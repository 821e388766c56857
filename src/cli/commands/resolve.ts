/**
 * `aftersmtp resolve <did>`: asks the DID's gateway for its latest ledger entry and verifies the
 * answer (PROTOCOL.md §9.6): the checkpoint is signed by the domain's pinned log key, the entry
 * is in that tree, and the tree is consistent with the newest checkpoint this client has seen
 * (kept in the state file). Prints the record, the checkpoint and the proof, and whether it
 * verified; a failed verification exits 1 and names the check (e.g. ERR_LEDGER_SPLIT_VIEW).
 */
import { checkDid, publicRecordToJson } from '../../identity/index.js';
import { verifyAnswer } from '../../ledger/index.js';
import { AfterSmtpError } from '../../errors.js';
import { bundleFromMsg } from '../../amp/client-api/index.js';
import { UsageError, flag, type Command } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  connectGateway,
  gatewayTarget,
  loadClientState,
  logKeyFor,
} from '../ledger-client.js';
import { printJson, printLines } from '../output.js';
import {
  ATTESTATION_OPTIONS,
  ATTESTATION_USAGE,
  applyAttestationPolicy,
} from '../attestation-policy.js';

export const resolveCommand: Command = {
  path: ['resolve'],
  summary: "Look up a DID's keys in its domain's ledger and verify the proofs.",
  usage:
    '<did> --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    ATTESTATION_USAGE,
  options: { ...GATEWAY_OPTIONS, ...ATTESTATION_OPTIONS },
  positionals: true,
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('exactly one DID is expected');
    const did = checkDid(args.positionals[0] as string);
    const domain = did.split(':')[2] as string;
    const json = flag(args, 'json');
    const state = await loadClientState(args);
    gatewayTarget(args); // a usage error before any lookup
    const logKey = await logKeyFor(args, did, state);
    const client = await connectGateway(args);
    let answer;
    try {
      const known = state.get(domain)?.size;
      answer = await client.resolveIdentity(
        known === undefined ? { did } : { did, known_tree_size: known },
      );
    } finally {
      client.close();
    }
    const bundle = bundleFromMsg(answer.inclusion, answer.consistency);
    const proof = {
      leafIndex: bundle.leafIndex,
      treeSize: bundle.treeSize,
      inclusionProof: bundle.inclusionProof.map((h) => h.toString('base64')),
      // The leaf bytes (§9.3): with the proof and the checkpoint, checkable from this alone.
      entry: bundle.entry.toString('base64'),
      consistency:
        bundle.consistency === undefined
          ? undefined
          : {
              fromSize: bundle.consistency.fromSize,
              proof: bundle.consistency.proof.map((h) => h.toString('base64')),
            },
      checkpoint: bundle.checkpoint,
    };
    let verified;
    let attestation;
    try {
      verified = verifyAnswer(did, bundle, state, { dnsVerifierKey: logKey.key });
      attestation = await applyAttestationPolicy(
        args,
        bundle.checkpoint,
        state.get(domain)?.verifierKey ?? String(logKey.key),
        answer.attested ?? [],
        process.env.AFTERSMTP_SUBSTRATE_URL,
      );
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_INTERNAL';
      if (json)
        printJson({
          did,
          verified: false,
          error: { code, message: (err as Error).message },
          ...proof,
        });
      else process.stderr.write(`verified: NO: ${(err as Error).message} (${code})\n`);
      throw err;
    }
    await state.save();
    const out = {
      did,
      verified: true,
      state: verified.revoked ? 'revoked' : 'active',
      entryType: verified.entry.type,
      loggedAt: new Date(verified.entry.loggedAt).toISOString(),
      record: verified.record === undefined ? undefined : publicRecordToJson(verified.record),
      extensions:
        verified.entry.type === 'revoke'
          ? []
          : verified.entry.extensions.map((e) => ({
              name: e.name,
              value: e.value.toString('base64'),
            })),
      ...proof,
      rootHash: verified.checkpoint.root.toString('base64'),
      previousTreeSize: verified.previousSize,
      logKeySource: logKey.source,
      ...attestation,
    };
    if (json) {
      printJson(out);
      return;
    }
    printLines([
      `did        ${did} (${out.state}, ${out.entryType} at ${out.loggedAt})`,
      ...(verified.record !== undefined
        ? [
            `suite      ${verified.record.suite}`,
            `key id     ${verified.record.keyId.toString('base64')}`,
          ]
        : []),
      ...out.extensions.map((e) => `extension  ${e.name} ${e.value}`),
      `leaf       ${out.leafIndex} of ${out.treeSize}`,
      `proof      ${out.inclusionProof.length === 0 ? '(empty)' : out.inclusionProof.join(' ')}`,
      ...(out.consistency !== undefined
        ? [
            `consistent from size ${out.consistency.fromSize} (${out.consistency.proof.length} hashes)`,
          ]
        : []),
      'checkpoint',
      ...bundle.checkpoint
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
      `verified   yes (log key from ${logKey.source})`,
      ...(attestation.witnessedBy !== undefined
        ? [`witnessed  by ${attestation.witnessedBy.join(', ')}`]
        : []),
      ...(attestation.anchor !== undefined
        ? [
            `anchored   block ${attestation.anchor.blockNumber} ${attestation.anchor.blockHash} (${attestation.anchor.blockTime})`,
          ]
        : []),
    ]);
  },
};
