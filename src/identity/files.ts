/**
 * Bounded file reading and crash-safe file writing for identity files (key files, public
 * records). Guarantees: a read never allocates more than `maxBytes` + 1 bytes whatever the file
 * claims or grows to; a write is atomic (temporary file, fsync, then link/rename) so a crash
 * leaves either the old file or the new one, never a torn file; I/O failures become
 * InputError(`<code>`) with the path in the message. The path `-` is standard input (read once
 * per process: a second `-` is refused), bounded the same way.
 */
import { randomBytes } from 'node:crypto';
import { open, link, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { InputError, errnoWords } from '../errors.js';

function describeErrno(code: string | undefined): string {
  const words = errnoWords(code);
  return words === undefined ? (code ?? 'error') : `${words} [${code}]`;
}

/** Whether `-` (standard input) was read already: a stream, it has one reader per process. */
let stdinTaken = false;

async function readStdin(maxBytes: number, code: string, tooLargeCode: string): Promise<Buffer> {
  if (stdinTaken) {
    throw new InputError(code, 'standard input (-) can be given for one file only');
  }
  stdinTaken = true;
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) {
      process.stdin.destroy();
      throw new InputError(tooLargeCode, `standard input is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

/** Reads a regular file (or, for `-`, standard input) of at most `maxBytes` bytes. */
export async function readBoundedFile(
  path: string,
  maxBytes: number,
  code: string,
  tooLargeCode: string = code,
): Promise<Buffer> {
  if (path === '-') return readStdin(maxBytes, code, tooLargeCode);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new InputError(
      code,
      `cannot open ${path}: ${describeErrno((err as NodeJS.ErrnoException).code)}`,
      { cause: err },
    );
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InputError(code, `${path} is not a regular file`);
    if (st.size > maxBytes)
      throw new InputError(tooLargeCode, `${path} is larger than ${maxBytes} bytes`);
    // Sized by the file (it may still grow while we read: one byte more than the cap tells).
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes)
        throw new InputError(tooLargeCode, `${path} is larger than ${maxBytes} bytes`);
      if (length === buf.length) throw new InputError(code, `${path} grew while it was read`);
    }
    return buf.subarray(0, length);
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to `path` atomically with `mode`. Without `overwrite`, refuses (InputError
 * `<code>_EXISTS`) to replace an existing file.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  options: { mode: number; overwrite: boolean; code: string },
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', options.mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (options.overwrite) {
      await rename(tmp, path);
    } else {
      try {
        await link(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new InputError(
            `${options.code}_EXISTS`,
            `${path} already exists; not overwriting it`,
          );
        }
        throw err;
      }
      await unlink(tmp);
    }
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
