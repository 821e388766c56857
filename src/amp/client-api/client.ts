/**
 * The client side of the client API: a pinned TLS channel to one gateway and promise-returning
 * calls with typed results. Used by the CLI (register, resolve) and by tests.
 *
 * Trust: there is no CA. The client pins the gateway's certificate key, by the certificate
 * itself (--gateway-cert, PEM) or by `sha256/<base64>` of its SubjectPublicKeyInfo
 * (--gateway-spki, RFC 7469 form). Before the channel is built, a TLS probe reads the presented
 * certificate and compares its key with the pin, so a mismatch is a clear ERR_TLS_PIN_MISMATCH;
 * the channel then trusts exactly that certificate as its root and re-checks the pin on every
 * connection (checkServerIdentity), so a later different certificate is refused as well. Host
 * names are not checked: the pin is the identity (the gateway may be reached by IP).
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import {
  credentials,
  Metadata,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ServiceError,
  type ChannelCredentials,
} from '@grpc/grpc-js';
import type { SecretKeySet } from '../../identity/keys.js';
import { authTranscript, PURPOSE_AUTH, TOKEN_SCHEME } from './auth.js';
import { CryptoError, InputError, errnoWords } from '../../errors.js';

/** "connection refused [ECONNREFUSED]", or undefined for a code that is not the network's. */
function describe(code: string | undefined): string | undefined {
  const words = errnoWords(code);
  return words === undefined ? code : `${words} [${code}]`;
}
import { certificateSpki, parseSpkiPin, spkiPin } from '../../tls/certificate.js';
import { gatewayServiceClient } from './definition.js';
import { signatureToMsg } from './messages.js';
import type {
  GetTransitProofRequestMsg,
  GetTransitReceiptResponseMsg,
  TransitProofMsg,
} from './transit.js';
import type {
  AckRequestMsg,
  AckResponseMsg,
  AuthenticateRequestMsg,
  AuthenticateResponseMsg,
  DispatchMessageRequestMsg,
  DispatchMessageResponseMsg,
  FetchInboxRequestMsg,
  GetReceiptRequestMsg,
  GetReceiptResponseMsg,
  GetTimeRequestMsg,
  ReleaseKeyRequestMsg,
  ReleaseKeyResponseMsg,
  TimeStatementMsg,
  InboxItemMsg,
  LoginChallengeMsg,
  RequestChallengeRequestMsg,
  GetCheckpointRequestMsg,
  GetCheckpointResponseMsg,
  GetRegistrationChallengeRequestMsg,
  LedgerWriteResponseMsg,
  RegisterIdentityRequestMsg,
  RegistrationChallengeMsg,
  ResolveIdentityRequestMsg,
  ResolveIdentityResponseMsg,
  RevokeIdentityRequestMsg,
  RotateIdentityRequestMsg,
} from './messages.js';
import { ClientApiError } from './status.js';
import { DispatchStream } from './dispatch-stream.js';

/** How the client pins the gateway: its certificate (PEM) or its key's SPKI hash. */
export type GatewayPin = { readonly certPem: string } | { readonly spki: string };

export interface GatewayClientOptions {
  /** `host:port` or `[v6]:port`. */
  readonly target: string;
  readonly pin: GatewayPin;
  /** Per-call deadline. */
  readonly timeoutMs?: number;
  readonly maxMessageBytes?: number;
}

const PROBE_TIMEOUT_MS = 5000;
/** A fixed TLS server name: the pin, not the name, authenticates the gateway. */
const SERVER_NAME = 'aftersmtp-gateway';

function splitTarget(target: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(target);
  const port = Number(m?.[3]);
  if (m === null || port < 1 || port > 65535) {
    throw new InputError(
      'ERR_GATEWAY_ADDRESS',
      `expected host:port, got ${JSON.stringify(target)}`,
    );
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

/** Reads the certificate a TLS server presents, without trusting it. */
export function probeCertificate(target: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<string> {
  const { host, port } = splitTarget(target);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port,
      servername: isIP(host) === 0 ? host : undefined,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false, // the pin is checked by the caller, on the certificate read here
    });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new InputError('ERR_GATEWAY_UNREACHABLE', `no TLS answer from ${target}`)),
    );
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate(false).raw;
      socket.end();
      if (raw === undefined) {
        reject(new CryptoError('ERR_TLS_PIN_MISMATCH', `${target} presented no certificate`));
        return;
      }
      resolve(new X509Certificate(raw).toString());
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(
        err instanceof InputError
          ? err
          : new InputError(
              'ERR_GATEWAY_UNREACHABLE',
              `cannot reach ${target}: ${describe((err as NodeJS.ErrnoException).code) ?? err.message}`,
            ),
      );
    });
  });
}

function pinFromCert(cert: PeerCertificate): string {
  return spkiPin(certificateSpki(cert.raw));
}

/** Builds channel credentials trusting exactly the pinned certificate. */
async function pinnedCredentials(target: string, pin: GatewayPin): Promise<ChannelCredentials> {
  const expected =
    'certPem' in pin ? spkiPin(certificateSpki(pin.certPem)) : parseSpkiPin(pin.spki);
  const presented = await probeCertificate(target);
  const got = spkiPin(certificateSpki(presented));
  if (got !== expected) {
    throw new CryptoError(
      'ERR_TLS_PIN_MISMATCH',
      `the gateway at ${target} presents the key ${got}, not the pinned ${expected}`,
    );
  }
  const root = 'certPem' in pin ? pin.certPem : presented;
  return credentials.createSsl(Buffer.from(root), null, null, {
    checkServerIdentity: (_host, cert) =>
      pinFromCert(cert) === expected
        ? undefined
        : new CryptoError('ERR_TLS_PIN_MISMATCH', `the gateway's key is not ${expected}`),
  });
}

function authMetadata(token: string | undefined): Metadata {
  const md = new Metadata();
  if (token !== undefined) md.set('authorization', `${TOKEN_SCHEME} ${token}`);
  return md;
}

type Callback<Res> = (err: ServiceError | null, res?: Res) => void;

export class GatewayClient {
  readonly target: string;
  readonly #client: Client;
  readonly #timeoutMs: number;

  private constructor(target: string, client: Client, timeoutMs: number) {
    this.target = target;
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  /** Checks the pin against the gateway, then opens the channel. */
  static async connect(opts: GatewayClientOptions): Promise<GatewayClient> {
    const creds = await pinnedCredentials(opts.target, opts.pin);
    const Ctor = gatewayServiceClient();
    const client = new Ctor(opts.target, creds, {
      'grpc.ssl_target_name_override': SERVER_NAME,
      'grpc.default_authority': SERVER_NAME,
      'grpc.max_receive_message_length': opts.maxMessageBytes ?? 4 * 1024 * 1024,
    });
    return new GatewayClient(opts.target, client, opts.timeoutMs ?? 30_000);
  }

  #call<Req, Res>(method: string, req: Req, token?: string): Promise<Res> {
    type Unary = (
      req: Req,
      metadata: Metadata,
      options: { deadline: number },
      cb: Callback<Res>,
    ) => void;
    const fn = (this.#client as unknown as Record<string, Unary>)[method] as Unary;
    return new Promise((resolve, reject) => {
      fn.call(
        this.#client,
        req,
        authMetadata(token),
        { deadline: Date.now() + this.#timeoutMs },
        (err, res) => {
          if (err) reject(ClientApiError.fromStatus(err));
          else resolve(res as Res);
        },
      );
    });
  }

  // ---- messaging (PROTOCOL.md §12) ----

  requestChallenge(req: RequestChallengeRequestMsg) {
    return this.#call<typeof req, LoginChallengeMsg>('RequestChallenge', req);
  }

  authenticate(req: AuthenticateRequestMsg) {
    return this.#call<typeof req, AuthenticateResponseMsg>('Authenticate', req);
  }

  /** RequestChallenge, sign it with `keys` (the DID's current key), Authenticate: a token. */
  async login(keys: SecretKeySet): Promise<AuthenticateResponseMsg> {
    const did = keys.record.did;
    const c = await this.requestChallenge({ did });
    const transcript = authTranscript(c.challenge, did, c.gateway, c.gateway_key_id, c.expires_at);
    return this.authenticate({
      did,
      challenge: c.challenge,
      signature: signatureToMsg(keys.sign(transcript, PURPOSE_AUTH)),
    });
  }

  dispatchMessage(token: string, req: DispatchMessageRequestMsg) {
    return this.#call<typeof req, DispatchMessageResponseMsg>('DispatchMessage', req, token);
  }

  /**
   * DispatchStream (PROTOCOL.md §12.3): one call for many envelopes, each answered as
   * `dispatchMessage` would be. No deadline: each answer comes when its commit is durable.
   */
  dispatchStream(token: string): DispatchStream {
    type Bidi = (metadata: Metadata) => ClientDuplexStream<unknown, unknown>;
    const fn = (this.#client as unknown as Record<string, Bidi>).DispatchStream as Bidi;
    return new DispatchStream(fn.call(this.#client, authMetadata(token)) as never);
  }

  ack(token: string, req: AckRequestMsg) {
    return this.#call<typeof req, AckResponseMsg>('Ack', req, token);
  }

  getReceipt(token: string, req: Partial<GetReceiptRequestMsg>) {
    return this.#call<typeof req, GetReceiptResponseMsg>('GetReceipt', req, token);
  }

  getTransitReceipt(token: string, req: Partial<GetReceiptRequestMsg>) {
    return this.#call<typeof req, GetTransitReceiptResponseMsg>('GetTransitReceipt', req, token);
  }

  getTransitProof(req: GetTransitProofRequestMsg) {
    return this.#call<typeof req, TransitProofMsg>('GetTransitProof', req);
  }

  /** The gateway's signed time for `nonce` (PROTOCOL.md §12.8). */
  getTime(token: string, req: GetTimeRequestMsg) {
    return this.#call<typeof req, TimeStatementMsg>('GetTime', req, token);
  }

  /** The share of an ephemeral message (PROTOCOL.md §12.9), with the gateway's signed time. */
  releaseKey(token: string, req: ReleaseKeyRequestMsg) {
    return this.#call<typeof req, ReleaseKeyResponseMsg>('ReleaseKey', req, token);
  }

  /**
   * FetchInbox as an async iterable of items; errors surface as ClientApiError. Breaking out of
   * the loop (or `signal`) cancels the stream. No deadline in follow mode.
   */
  async *fetchInbox(
    token: string,
    req: Partial<FetchInboxRequestMsg>,
    signal?: AbortSignal,
  ): AsyncGenerator<InboxItemMsg> {
    type Stream = (
      req: Partial<FetchInboxRequestMsg>,
      metadata: Metadata,
      options: { deadline?: number },
    ) => ClientReadableStream<InboxItemMsg>;
    const fn = (this.#client as unknown as Record<string, Stream>).FetchInbox as Stream;
    const stream = fn.call(
      this.#client,
      req,
      authMetadata(token),
      req.follow === true ? {} : { deadline: Date.now() + this.#timeoutMs },
    );
    const cancel = (): void => stream.cancel();
    signal?.addEventListener('abort', cancel);
    try {
      for await (const item of stream) yield item as InboxItemMsg;
    } catch (err) {
      if (signal?.aborted) return;
      throw (err as ServiceError).code !== undefined
        ? ClientApiError.fromStatus(err as ServiceError)
        : err;
    } finally {
      signal?.removeEventListener('abort', cancel);
      stream.cancel();
    }
  }

  getRegistrationChallenge(req: GetRegistrationChallengeRequestMsg) {
    return this.#call<typeof req, RegistrationChallengeMsg>('GetRegistrationChallenge', req);
  }

  registerIdentity(req: Partial<RegisterIdentityRequestMsg>) {
    return this.#call<typeof req, LedgerWriteResponseMsg>('RegisterIdentity', req);
  }

  rotateIdentity(req: RotateIdentityRequestMsg) {
    return this.#call<typeof req, LedgerWriteResponseMsg>('RotateIdentity', req);
  }

  revokeIdentity(req: RevokeIdentityRequestMsg) {
    return this.#call<typeof req, LedgerWriteResponseMsg>('RevokeIdentity', req);
  }

  resolveIdentity(req: ResolveIdentityRequestMsg) {
    return this.#call<typeof req, ResolveIdentityResponseMsg>('ResolveIdentity', req);
  }

  getCheckpoint(req: GetCheckpointRequestMsg = {}) {
    return this.#call<typeof req, GetCheckpointResponseMsg>('GetCheckpoint', req);
  }

  close(): void {
    this.#client.close();
  }
}
