/** The registry of CLI subcommands, in the order `aftersmtp --help` lists them. */
import type { Command } from '../command.js';
import { benchCommand } from './bench.js';
import { envelopeOpenCommand, envelopeSealCommand } from './envelope.js';
import { inboxCommand } from './inbox.js';
import { keygenCommand } from './keygen.js';
import { mapsCommands } from './maps.js';
import { queueCommands } from './queue.js';
import {
  ledgerApproveCommand,
  ledgerCheckpointCommand,
  ledgerKeyCommand,
  ledgerPolicyCommand,
} from './ledger.js';
import { registerCommand } from './register.js';
import { resolveCommand } from './resolve.js';
import { sendCommand } from './send.js';
import { serveCommand } from './serve.js';
import { usersCommands } from './users.js';

export const COMMANDS: readonly Command[] = [
  serveCommand,
  keygenCommand,
  registerCommand,
  resolveCommand,
  sendCommand,
  inboxCommand,
  ledgerKeyCommand,
  ledgerCheckpointCommand,
  ledgerPolicyCommand,
  ledgerApproveCommand,
  envelopeSealCommand,
  envelopeOpenCommand,
  ...mapsCommands,
  ...queueCommands,
  ...usersCommands,
  benchCommand,
];
