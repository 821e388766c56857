/**
 * `aftersmtp store-key list|rotate|add|use|retire`: the keyring that seals the mailbox store at
 * rest, in AFTERSMTP_STORE_KEY_FILE (default <data dir>/store.key; docs/STORE.md, Key rotation).
 * A running gateway takes a change within a second and, under a new write key, re-seals the
 * records in the background; `list` says which keys records may still be sealed with, and
 * `retire` refuses those and the write key, so no key that opens stored mail is ever dropped.
 * With the keys in AFTERSMTP_STORE_KEY instead, every subcommand refuses: change the variable and
 * restart.
 */
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../errors.js';
import {
  addKeyFile,
  keyFileOf,
  loadKeyring,
  readKeyFile,
  retireKey,
  rotateKeyFile,
  useKeyFile,
} from '../../store/keys.js';
import { StoreKeyError } from '../../store/errors.js';
import { openStore, storeKeySource } from '../../store/open.js';
import type { KeyStatus } from '../../store/types.js';
import { flag, requireString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';

/** The keyring file, or a ConfigError when the keys come from the environment. */
function keyringFile(): string {
  const file = keyFileOf(storeKeySource(loadConfig()));
  if (file === undefined) {
    throw new ConfigError(
      'ERR_CONFIG',
      'the store keys come from AFTERSMTP_STORE_KEY: rotate by changing it (the new key first) and restarting',
    );
  }
  return file;
}

/** Which keys the store's records may be sealed with, read from the store itself. */
async function storeKeyStatus(): Promise<KeyStatus> {
  const store = await openStore(loadConfig());
  try {
    return await store.keyStatus();
  } finally {
    await store.close();
  }
}

const json = { json: { type: 'boolean' as const } };
const key = { key: { type: 'string' as const } };

const AFTER_CHANGE = 'a running gateway takes it within a second (docs/STORE.md, Key rotation)';

export const storeKeyCommands: readonly Command[] = [
  {
    path: ['store-key', 'list'],
    summary:
      "List the store's keys: the write key, and which ones records may still be sealed with.",
    usage: '[--json]',
    options: json,
    async run(args) {
      const source = storeKeySource(loadConfig());
      const file = keyFileOf(source);
      const ring = loadKeyring(source);
      const status = await storeKeyStatus();
      const keys = ring.ids().map((id) => ({
        id,
        write: id === ring.write.id,
        inUse: status.inUse.includes(id),
      }));
      if (flag(args, 'json')) {
        printJson({ file: file ?? null, writeKeyId: ring.write.id, keys });
        return;
      }
      printLines([
        `keyring: ${file ?? 'AFTERSMTP_STORE_KEY (rotate by changing it and restarting)'}`,
        ...keys.map((k) => {
          if (k.write) return `${k.id}  write key`;
          return k.inUse
            ? `${k.id}  records may still be sealed with it: wait for the re-sealing`
            : `${k.id}  no record is sealed with it: may be retired`;
        }),
      ]);
    },
  },
  {
    path: ['store-key', 'rotate'],
    summary: 'Make a new key the write key; the records are then re-sealed under it.',
    usage:
      '[--json]\n\n' +
      'For a gateway with its own store (lmdb). Gateways sharing one PostgreSQL database: "add"\n' +
      'on one, copy its line to every other keyring file, then "use" on each.',
    options: json,
    async run(args) {
      const id = rotateKeyFile(keyringFile());
      if (flag(args, 'json')) printJson({ writeKeyId: id });
      else
        printLines([
          `new write key ${id}: ${AFTER_CHANGE} and re-seals the records under it;`,
          'then "aftersmtp store-key retire --key <id>" the old key(s) that "list" shows may be retired',
        ]);
    },
  },
  {
    path: ['store-key', 'add'],
    summary: 'Add a new key after the write key: it opens records but seals none yet.',
    usage: '[--json]',
    options: json,
    async run(args) {
      const id = addKeyFile(keyringFile());
      if (flag(args, 'json')) printJson({ keyId: id });
      else
        printLines([
          `added key ${id}; "aftersmtp store-key use --key ${id}" makes it the write key`,
        ]);
    },
  },
  {
    path: ['store-key', 'use'],
    summary: 'Make a key of the keyring the write key; the records are then re-sealed under it.',
    usage: '--key <id>',
    options: key,
    async run(args) {
      const id = requireString(args, 'key');
      useKeyFile(keyringFile(), id);
      printLines([`write key ${id}: ${AFTER_CHANGE} and re-seals the records under it`]);
    },
  },
  {
    path: ['store-key', 'retire'],
    summary: 'Remove a key that no record is sealed with any more (see "list").',
    usage: '--key <id>',
    options: key,
    async run(args) {
      const id = requireString(args, 'key');
      const file = keyringFile();
      const status = await storeKeyStatus();
      if (id !== readKeyFile(file).write.id && status.inUse.includes(id)) {
        throw new StoreKeyError(
          `records may still be sealed with key ${id}: wait until "aftersmtp store-key list" says it may be retired`,
        );
      }
      retireKey(file, id);
      printLines([`removed key ${id} from ${file}`]);
    },
  },
];
