/** The registry of CLI subcommands, in the order `aftersmtp --help` lists them. */
import type { Command } from '../command.js';
import { benchCommand } from './bench.js';
import { envelopeOpenCommand, envelopeSealCommand } from './envelope.js';
import { keygenCommand } from './keygen.js';
import { serveCommand } from './serve.js';

export const COMMANDS: readonly Command[] = [
  serveCommand,
  keygenCommand,
  envelopeSealCommand,
  envelopeOpenCommand,
  benchCommand,
];
