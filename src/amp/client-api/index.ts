/**
 * The client API (DESIGN.md §4: gRPC over TLS on TCP 4433): the server the gateway runs and the
 * pinned client the CLI uses. It lives under src/amp because the client API is the client's side
 * of AMP: the relay issue adds RequestChallenge/Authenticate/DispatchMessage/FetchInbox/Ack/
 * GetReceipt to the same service and the same folder, next to the relay they feed.
 */
export {
  GatewayClient,
  probeCertificate,
  type GatewayClientOptions,
  type GatewayPin,
} from './client.js';
export { clientApiPackage, gatewayServiceClient, SERVICE_NAME } from './definition.js';
export * from './messages.js';
export {
  peerAddress,
  startClientApi,
  type ClientApiOptions,
  type ClientApiServer,
} from './server.js';
export { ClientApiError, CODE_TRAILER, toGrpcStatus } from './status.js';
