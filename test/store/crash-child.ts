// Child process of crash.test.ts. It opens the lmdb mailbox store given on the command line and
// delivers a burst from 64 concurrent writers (each delivery with a transit commitment), printing
// `ack <message id>` only after each deliver() has resolved, until the parent kills it with
// SIGKILL. It does nothing unless started by the parent.
import { createHash, randomBytes } from 'node:crypto';
import { Keyring, nodeKey } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';

/** The transit commitment the child gives each delivery (a stand-in for a receipt's). */
export function commitmentOf(messageId: string): Buffer {
  return createHash('sha256').update(`receipt ${messageId}`).digest();
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`); // synchronous on a pipe: written before the next step
};

async function main(): Promise<void> {
  const [path = '', key = '', run = 'r'] = process.argv.slice(2);
  const store = await LmdbMailboxStore.open({
    path,
    keyring: new Keyring([nodeKey(Buffer.from(key, 'base64'))]),
  });
  say('ready');
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      for (let i = 0; ; i++) {
        const body = randomBytes(4096);
        const messageId = `${run}-${w}-${i}`;
        await store.deliver({
          recipient: `did:aftersmtp:crash.example:user${w % 8}`,
          messageId,
          sender: 'did:aftersmtp:sender.example:s',
          receivedAt: Date.now(),
          expiresAt: Date.now() + 3_600_000,
          ciphertextHash: createHash('sha256').update(body).digest(),
          envelope: body,
          receipt: Buffer.from(`receipt ${messageId}`),
          transitCommitment: commitmentOf(messageId),
        });
        say(`ack ${messageId}`);
      }
    }),
  );
}

if (process.env.AFTERSMTP_STORE_CRASH_CHILD === '1') {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
