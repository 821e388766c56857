/**
 * IP networks for access_map's client keys: parsing (IPv4 and IPv6, `addr`, `addr/len`,
 * `[v6]/len`, and Postfix's partial IPv4 keys `1.2.3` = 1.2.3.0/24) and a longest-prefix table.
 *
 * Matching is longest prefix, not Postfix cidr_table(5)'s first match in file order: the map is
 * edited key by key (`maps set`), so the answer must not depend on the order entries were added,
 * and a host entry (`192.0.2.7 OK`) must win over its network (`192.0.2.0/24 REJECT`), which is
 * also what Postfix's hash tables do with their 1.2.3.4, 1.2.3, 1.2, 1 search. A cidr table whose
 * meaning depends on first match (a narrower network after a wider one) gets an import warning.
 *
 * Guarantees: a network's key has exactly one text form (hosts without /len, networks with it,
 * IPv6 in RFC 5952 form, IPv4-mapped IPv6 as IPv4), so one network is one key; a network with host
 * bits set is refused (as Postfix does) with the network it probably meant; client addresses that
 * are IPv4-mapped IPv6 (`::ffff:192.0.2.7`, what a dual-stack socket reports) match IPv4 keys;
 * a lookup costs one Map probe per distinct prefix length in the table.
 */
import ipaddr from 'ipaddr.js';
import { MapInputError } from './errors.js';

export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  /** Canonical text (IPv4 dotted quad, IPv6 RFC 5952). */
  readonly text: string;
}

export interface Network extends IpAddress {
  /** Prefix length: 0–32 or 0–128. The bytes have no bit set beyond it. */
  readonly prefix: number;
}

const PARTIAL_V4 =
  /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){0,2}$/;

function fromParsed(addr: ipaddr.IPv4 | ipaddr.IPv6): IpAddress {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return fromParsed((addr as ipaddr.IPv6).toIPv4Address());
  }
  const bytes = Uint8Array.from(addr.toByteArray());
  if (addr.kind() === 'ipv4') return { family: 4, bytes, text: bytes.join('.') };
  return { family: 6, bytes, text: (addr as ipaddr.IPv6).toRFC5952String() };
}

const DOTTED_QUAD =
  /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/;

function parseStrict(raw: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // Dotted quads without leading zeros (no octal, hex or short forms), read directly: this is the
  // common case of a client lookup and of a large cidr table.
  const quad = DOTTED_QUAD.exec(raw);
  if (quad) {
    const octets = quad.slice(1, 5).map(Number);
    return octets.every((o) => o <= 255) ? new ipaddr.IPv4(octets) : undefined;
  }
  if (raw.includes(':') && ipaddr.IPv6.isValid(raw)) return ipaddr.IPv6.parse(raw);
  return undefined;
}

/**
 * A client address as the listener reports it: IPv4, IPv6 (brackets and a zone id allowed), or
 * IPv4-mapped IPv6, which becomes IPv4. Undefined when it is not an IP address.
 */
export function parseIp(raw: string): IpAddress | undefined {
  let s = raw.trim();
  if (s.length > 64) return undefined;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.toLowerCase().startsWith('ipv6:')) s = s.slice(5);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const addr = parseStrict(s);
  return addr === undefined ? undefined : fromParsed(addr);
}

/** Whether a map key is written as a network (IP, CIDR or partial IPv4), by its shape alone. */
export function looksLikeNetwork(key: string): boolean {
  // Domain keys never have a ':' and never are all digits and dots (a numeric TLD is invalid).
  return (
    /^[0-9.]+(?:\/[0-9]*)?$/.test(key) ||
    /^\[?[0-9a-fA-F:.]*:[0-9a-fA-F:.%]*\]?(?:\/[0-9]*)?$/.test(key)
  );
}

export function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (out[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function textOf(bytes: Uint8Array, family: 4 | 6): string {
  if (family === 4) return bytes.join('.');
  return (ipaddr.fromByteArray(Array.from(bytes)) as ipaddr.IPv6).toRFC5952String();
}

/** The canonical key text of a network: `addr` for a host, `addr/len` otherwise. */
export function networkText(net: Network): string {
  return net.prefix === net.bytes.length * 8 ? net.text : `${net.text}/${net.prefix}`;
}

/** Parses a network key; throws MapInputError saying what is wrong. */
export function parseNetwork(raw: string): Network {
  const input = raw.trim();
  if (PARTIAL_V4.test(input) && input.split('.').length < 4) {
    // Postfix hash tables: `1.2.3` matches 1.2.3.x (access(5) "HOST NAME/ADDRESS PATTERNS").
    const octets = input.split('.').map(Number);
    const prefix = octets.length * 8;
    const bytes = Uint8Array.from([...octets, 0, 0, 0].slice(0, 4));
    return { family: 4, bytes, prefix, text: textOf(bytes, 4) };
  }
  const slash = input.indexOf('/');
  let addrText = slash < 0 ? input : input.slice(0, slash);
  if (addrText.startsWith('[') && addrText.endsWith(']')) addrText = addrText.slice(1, -1);
  const addr = parseStrict(addrText);
  if (addr === undefined) {
    throw new MapInputError(`${JSON.stringify(raw)} is not an IP address or network`);
  }
  const bits = addr.kind() === 'ipv4' ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const len = input.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(len) || Number(len) > bits) {
      throw new MapInputError(`bad prefix length in ${JSON.stringify(raw)} (0 to ${bits})`);
    }
    prefix = Number(len);
  }
  let ip = fromParsed(addr);
  if (ip.family === 4 && bits === 128) {
    // ::ffff:a.b.c.d/len: the IPv4 network it covers, if it covers only IPv4-mapped addresses.
    if (prefix < 96) ip = { family: 6, bytes: Uint8Array.from(addr.toByteArray()), text: '' };
    else prefix -= 96;
  }
  const masked = maskBytes(ip.bytes, prefix);
  const net: Network = {
    family: ip.family,
    bytes: masked,
    prefix,
    text: textOf(masked, ip.family),
  };
  if (!Buffer.from(masked).equals(Buffer.from(ip.bytes))) {
    throw new MapInputError(
      `${JSON.stringify(raw)} has host bits set beyond /${prefix}; the network is ${networkText(net)}`,
    );
  }
  return net;
}

interface Family<T> {
  /** Prefix lengths present, longest first. */
  lengths: number[];
  byLength: Map<number, Map<string, { net: Network; value: T }>>;
}

/** Networks with values; lookup finds the longest prefix that contains an address. */
export class PrefixTable<T> {
  readonly #families: Record<4 | 6, Family<T>> = {
    4: { lengths: [], byLength: new Map() },
    6: { lengths: [], byLength: new Map() },
  };

  /** Adds a network; returns false (and keeps the first) if the same network is already there. */
  add(net: Network, value: T): boolean {
    const fam = this.#families[net.family];
    let table = fam.byLength.get(net.prefix);
    if (table === undefined) {
      table = new Map();
      fam.byLength.set(net.prefix, table);
      fam.lengths = [...fam.byLength.keys()].sort((a, b) => b - a);
    }
    const hex = Buffer.from(net.bytes).toString('hex');
    if (table.has(hex)) return false;
    table.set(hex, { net, value });
    return true;
  }

  /** The longest-prefix match for `ip`; each network probed is appended to `tried`. */
  lookup(ip: IpAddress, tried?: string[]): { net: Network; value: T } | undefined {
    const fam = this.#families[ip.family];
    for (const len of fam.lengths) {
      const masked = maskBytes(ip.bytes, len);
      if (tried) {
        const probe = {
          family: ip.family,
          bytes: masked,
          prefix: len,
          text: textOf(masked, ip.family),
        };
        tried.push(networkText(probe));
      }
      const hit = fam.byLength.get(len)?.get(Buffer.from(masked).toString('hex'));
      if (hit) return hit;
    }
    return undefined;
  }

  /** The networks in the table strictly wider than `net` that contain it, widest first. */
  wider(net: Network): { net: Network; value: T }[] {
    const fam = this.#families[net.family];
    const out: { net: Network; value: T }[] = [];
    for (const len of [...fam.lengths].reverse()) {
      if (len >= net.prefix) break;
      const hit = fam.byLength
        .get(len)
        ?.get(Buffer.from(maskBytes(net.bytes, len)).toString('hex'));
      if (hit) out.push(hit);
    }
    return out;
  }

  /** Every network, for the import check of first-match tables. */
  *networks(): Iterable<{ net: Network; value: T }> {
    for (const fam of Object.values(this.#families)) {
      for (const table of fam.byLength.values()) yield* table.values();
    }
  }
}
