/**
 * The C2SP tlog-witness client (https://c2sp.org/tlog-witness): `POST <witness URL>/add-checkpoint`
 * with the size the witness last saw of the log, a consistency proof from it, and the signed
 * checkpoint; the answer is the witness's cosignature lines.
 *
 *   request body  = "old " decimal old size "\n" *(base64 proof hash "\n") "\n" signed note
 *   200           = cosignature lines (signed-note signature lines)
 *   409           = the witness knows another size (text/x.tlog.size: decimal size "\n")
 *   403 / 422 / 400 = unknown log or bad signature / bad consistency proof / malformed
 *
 * Guarantees: a 409 is returned as a value (the caller proves consistency from the size the
 * witness knows and asks again); any other refusal is a WitnessError ERR_WITNESS_REFUSED with the
 * status; a witness that cannot be reached, or times out, is ERR_WITNESS_UNAVAILABLE (temporary).
 */
import { AfterSmtpError } from '../errors.js';

export class WitnessError extends AfterSmtpError {
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number, cause?: unknown) {
    super(code, message, { cause });
    this.status = status;
  }
}

export type AddCheckpointResult =
  | { readonly kind: 'cosigned'; readonly lines: string[] }
  | { readonly kind: 'conflict'; readonly knownSize: number };

const MAX_ANSWER_BYTES = 64 * 1024;

export async function addCheckpoint(
  url: string,
  oldSize: number,
  proof: readonly Uint8Array[],
  note: string,
  timeoutMs = 10_000,
): Promise<AddCheckpointResult> {
  const body =
    `old ${oldSize}\n` +
    proof.map((h) => `${Buffer.from(h).toString('base64')}\n`).join('') +
    `\n${note}`;
  let res: Response;
  try {
    res = await fetch(new URL('add-checkpoint', url.endsWith('/') ? url : `${url}/`), {
      method: 'POST',
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new WitnessError(
      'ERR_WITNESS_UNAVAILABLE',
      `witness ${url} cannot be reached`,
      undefined,
      err,
    );
  }
  const text = (await res.text()).slice(0, MAX_ANSWER_BYTES);
  if (res.status === 200) {
    const lines = text.split('\n').filter((l) => l.length > 0);
    if (lines.length === 0) {
      throw new WitnessError('ERR_WITNESS_REFUSED', `witness ${url} answered no cosignature`, 200);
    }
    return { kind: 'cosigned', lines };
  }
  if (res.status === 409) {
    const m = /^(0|[1-9][0-9]{0,15})\n?$/.exec(text);
    if (m === null) {
      throw new WitnessError('ERR_WITNESS_REFUSED', `witness ${url}: 409 without a size`, 409);
    }
    return { kind: 'conflict', knownSize: Number(m[1]) };
  }
  if (res.status >= 500) {
    throw new WitnessError(
      'ERR_WITNESS_UNAVAILABLE',
      `witness ${url} failed (${res.status}): ${text.trim().slice(0, 200)}`,
      res.status,
    );
  }
  throw new WitnessError(
    'ERR_WITNESS_REFUSED',
    `witness ${url} refused the checkpoint (${res.status}): ${text.trim().slice(0, 200)}`,
    res.status,
  );
}
