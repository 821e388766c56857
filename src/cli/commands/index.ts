/** The registry of CLI subcommands, in the order `aftersmtp --help` lists them. */
import type { Command } from '../command.js';
import { benchCommand } from './bench.js';
import { dnsCommand } from './dns.js';
import { envelopeOpenCommand, envelopeSealCommand } from './envelope.js';
import { inboxCommand } from './inbox.js';
import { keygenCommand } from './keygen.js';
import { mapsCommands } from './maps.js';
import { queueCommands } from './queue.js';
import { scriptCommands } from './script.js';
import {
  ledgerApproveCommand,
  ledgerCheckpointCommand,
  ledgerConsistencyCommand,
  ledgerKeyCommand,
  ledgerPinCommand,
  ledgerPolicyCommand,
  ledgerRevokeCommand,
} from './ledger.js';
import { ledgerVerifyAnchorCommand } from './verify-anchor.js';
import { revokeCommand, rotateCommand } from './rotate.js';
import { registerCommand } from './register.js';
import { resolveCommand } from './resolve.js';
import { sendCommand } from './send.js';
import { statusCommand } from './status.js';
import { receiptCommand } from './receipt.js';
import { serveCommand } from './serve.js';
import { usersCommands } from './users.js';
import { dkimCommands } from './dkim.js';
import { storeKeyCommands } from './store-key.js';

export const COMMANDS: readonly Command[] = [
  serveCommand,
  keygenCommand,
  registerCommand,
  resolveCommand,
  rotateCommand,
  revokeCommand,
  sendCommand,
  statusCommand,
  receiptCommand,
  inboxCommand,
  ledgerKeyCommand,
  ledgerCheckpointCommand,
  ledgerConsistencyCommand,
  ledgerPolicyCommand,
  ledgerApproveCommand,
  ledgerPinCommand,
  ledgerRevokeCommand,
  ledgerVerifyAnchorCommand,
  dnsCommand,
  envelopeSealCommand,
  envelopeOpenCommand,
  ...mapsCommands,
  ...scriptCommands,
  ...queueCommands,
  ...usersCommands,
  ...dkimCommands,
  ...storeKeyCommands,
  benchCommand,
];
