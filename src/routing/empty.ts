/** The snapshot of empty maps: every lookup answers nothing (no entry). */
import type { MapSnapshot } from './index.js';

export const EMPTY_MAPS: MapSnapshot = {
  version: 0,
  accessClient: () => undefined,
  accessSender: () => undefined,
  accessRecipient: () => undefined,
  isRelayDomain: () => false,
  route: () => undefined,
  canonicalRecipient: () => undefined,
  canonicalSender: () => undefined,
  expandAlias: () => ({ kind: 'none' }),
};
