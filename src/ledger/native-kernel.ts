/**
 * The native core's hashcash search as a MintKernel (hashcash.ts). The formats match exactly:
 * the native search hashes SHA-256(prefix || u64-big-endian(nonce)), which is the stamp's
 * work = SHA-256(binding || u64(counter)) with prefix = binding (PROTOCOL.md §9.5).
 */
import { hashcashSearch } from '../native/index.js';
import type { MintKernel } from './hashcash.js';

export const nativeMintKernel: MintKernel = (binding, bits, start, count) =>
  hashcashSearch(binding, bits, start, count) ?? -1;
