/**
 * The AMP relay between gateways (DESIGN.md §2b-§4, docs/PROTOCOL.md §13): peer discovery,
 * verified resolution of remote identities, the outbound RelaySender and the inbound
 * RelayReceiver (the QUIC onMessage handler). `serve` wires them; see the Relay section of
 * docs/PROTOCOL.md for the wire rules.
 */
export { decodeRelayAck, encodeRelayAck, type RelayResult } from './ack.js';
export { LruTtlCache } from './cache.js';
export { PeerDirectory, type PeerDirectoryOptions, type RelayPeer } from './discovery.js';
export {
  RELAY_REFUSALS,
  RelayError,
  classify,
  refusalByWire,
  type Classified,
  type RelayRefusalCode,
} from './errors.js';
export {
  RELAY_STATE_FILE,
  RemoteIdentityResolver,
  gatewayDid,
  relayStatePath,
  type RemoteGateway,
  type RemoteIdentity,
  type RemoteIdentityOptions,
} from './identities.js';
export { RelayReceiver, type RelayLogger, type RelayReceiverOptions } from './receiver.js';
export {
  DEFAULT_CLIENT_API_PORT,
  parseRelayRoutes,
  type Endpoint,
  type RelayRoute,
} from './routes.js';
export { RelaySender, type RelayOutcome, type RelaySenderOptions } from './sender.js';
export {
  openRelay,
  openRemoteIdentities,
  type OpenRelayOptions,
  type Relay,
  type RelayConfig,
} from './relay.js';
export { remoteDirectory } from './directory.js';
