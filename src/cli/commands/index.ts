/** The registry of CLI subcommands, in the order `aftersmtp --help` lists them. */
import type { Command } from '../command.js';
import { benchCommand } from './bench.js';
import { serveCommand } from './serve.js';

export const COMMANDS: readonly Command[] = [serveCommand, benchCommand];
