/**
 * The header section of an RFC 5322 message as the gateway reads and edits it: fields split at
 * their line starts (folded continuation lines kept with their field), the body untouched.
 * Bytes are kept as they are (latin1 in, latin1 out), so an 8-bit or UTF-8 header (RFC 6532)
 * passes through unchanged and a signature over it stays valid.
 */

export interface HeaderField {
  /** Lower-cased name. */
  readonly name: string;
  /** The whole field as received, CRLF and folding included. */
  readonly raw: string;
}

/** Splits a message into its header fields and the body (what follows the blank line). */
export function splitMessage(message: Buffer): { fields: HeaderField[]; body: Buffer } {
  let end = message.indexOf('\r\n\r\n');
  let bodyStart: number;
  if (message.subarray(0, 2).toString() === '\r\n') {
    end = 0;
    bodyStart = 2;
  } else if (end < 0) {
    end = message.length;
    bodyStart = message.length;
  } else {
    end += 2;
    bodyStart = end + 2;
  }
  const text = message.subarray(0, end).toString('latin1');
  const fields: HeaderField[] = [];
  for (const line of text.split(/(?<=\r\n)/)) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      const last = fields.pop() as HeaderField;
      fields.push({ name: last.name, raw: last.raw + line });
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a field: dropped (a signature cannot cover it either)
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), raw: line });
  }
  return { fields, body: message.subarray(bodyStart) };
}

/** A field's value: unfolded, without its name and surrounding white space. */
export function fieldValue(f: HeaderField): string {
  return f.raw
    .slice(f.raw.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/\r\n$/, '')
    .trim();
}

/** A whole field from a name and a value (the value must hold no CR or LF). */
export function field(name: string, value: string): HeaderField {
  return { name: name.toLowerCase(), raw: `${name}: ${value}\r\n` };
}

/** The message made of `fields`, the blank line and `body`. */
export function joinMessage(fields: readonly HeaderField[], body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(fields.map((f) => f.raw).join('') + '\r\n', 'latin1'), body]);
}
