/**
 * The store's keyring file while `serve` runs (docs/STORE.md, Key rotation). The file is read
 * again whenever its status changes (a stat each second) and handed to the store
 * (`useKeyring`); then, while records may still be sealed with a key other than the write key,
 * the store re-seals them in the background (`rewrap`, in short transactions while mail flows).
 * So `aftersmtp store-key rotate` needs no restart and ends with the old key retirable. The same
 * happens once at start: records left under an old key (a rotation made while the gateway was
 * stopped, a rewrap cut short by a stop) are re-sealed.
 *
 * A file that cannot be read, or that the store refuses (it lacks a key that records are sealed
 * with), is logged and the keyring in force stays. One pass runs at a time; a change made during
 * a pass is seen by the next check.
 */
import type { Stats } from 'node:fs';
import { fileStatus, sameFileStatus } from '../file-status.js';
import type { Logger } from '../log.js';
import { readKeyFile } from './keys.js';
import type { MailboxStore } from './types.js';

/** How often the file's status is read, ms. */
const CHECK_INTERVAL_MS = 1_000;

export class KeyringFollower {
  readonly #path: string;
  readonly #store: MailboxStore;
  readonly #log: Logger;
  /** The status the last pass saw; undefined until the first pass, and while there is no file. */
  #seen: Stats | undefined;
  #passed = false;
  #pass: Promise<void> | undefined;
  #closed = false;
  readonly #timer: NodeJS.Timeout;

  constructor(path: string, store: MailboxStore, log: Logger) {
    this.#path = path;
    this.#store = store;
    this.#log = log;
    this.#check();
    // Unref'd: the check holds no process alive.
    this.#timer = setInterval(() => this.#check(), CHECK_INTERVAL_MS).unref();
  }

  /** The pass in progress, if any (for tests and for a stop that wants it over). */
  settled(): Promise<void> {
    return this.#pass ?? Promise.resolve();
  }

  /** Stops following; a pass in progress ends with the store's closing (its error not logged). */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  #check(): void {
    if (this.#closed || this.#pass !== undefined) return;
    const now = fileStatus(this.#path);
    if (this.#passed && sameFileStatus(now, this.#seen)) return;
    this.#passed = true;
    this.#seen = now;
    this.#pass = this.#apply()
      .catch((err: unknown) => {
        if (!this.#closed) this.#log.error({ err }, 'store keyring: re-sealing stopped');
      })
      .finally(() => {
        this.#pass = undefined;
      });
  }

  async #apply(): Promise<void> {
    const file = this.#path;
    let ring;
    try {
      ring = readKeyFile(file);
      await this.#store.useKeyring(ring);
    } catch (err) {
      if (!this.#closed) {
        this.#log.error(
          { file, err: (err as Error).message },
          'store keyring file changed and refused: the keyring in force stays',
        );
      }
      return;
    }
    const status = await this.#store.keyStatus();
    const old = status.inUse.filter((id) => id !== status.writeKeyId);
    if (old.length === 0) return;
    this.#log.info(
      { writeKey: status.writeKeyId, oldKeys: old },
      'store keyring: re-sealing records under the write key',
    );
    const done = await this.#store.rewrap();
    this.#log.info(
      { writeKey: status.writeKeyId, rewrapped: done.rewrapped, retirable: done.retirable },
      'store keyring: every record is sealed with the write key; the others may be retired (aftersmtp store-key retire)',
    );
  }
}
