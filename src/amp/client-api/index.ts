/**
 * The client API (DESIGN.md §4: gRPC over TLS on TCP 4433): the server the gateway runs and the
 * pinned client the CLI uses. It lives under src/amp because the client API is the client's side
 * of AMP: the ledger methods and the messaging methods (RequestChallenge, Authenticate,
 * DispatchMessage, DispatchStream, FetchInbox, Ack, GetReceipt; auth.ts, messaging.ts) share one
 * service.
 */
export {
  GatewayClient,
  probeCertificate,
  type GatewayClientOptions,
  type GatewayPin,
} from './client.js';
export { DispatchStream } from './dispatch-stream.js';
export { clientApiPackage, gatewayServiceClient, SERVICE_NAME } from './definition.js';
export * from './messages.js';
export {
  peerAddress,
  startClientApi,
  type ClientApiOptions,
  type ClientApiServer,
} from './server.js';
export { ClientApiError, ClientApiRefusal, CODE_TRAILER, toGrpcStatus } from './status.js';
export {
  Authenticator,
  authTranscript,
  CHALLENGE_LENGTH,
  challengeMac,
  decodeTokenPayload,
  encodeTokenPayload,
  formatToken,
  parseToken,
  PURPOSE_AUTH,
  PURPOSE_TOKEN,
  TOKEN_SCHEME,
  type TokenClaims,
} from './auth.js';
export { ExpiryOpener, type ExpiryOpenerOptions } from './opener.js';
export { messagingService, type MessagingDeps, type MessagingService } from './messaging.js';
