/**
 * The AMP QUIC transport, driven from TypeScript: one native endpoint (server and client on one
 * UDP socket, run by this thread's event loop), the peer-certificate check, the inbound-message
 * hand-off and a client connection pool.
 *
 * Guarantees:
 * - Inbound: no message of a connection reaches `onMessage` before `verifyInboundPeer` accepted
 *   the peer's certificate; a rejected peer's connection is closed with PEER_REJECTED (0x10).
 *   An accepted connection shares the small budget of unverified connections until it is
 *   accepted as 'verified' or `markVerified` is called for it (docs/ARCHITECTURE.md).
 *   Every message gets exactly one answer: ACK with the handler's receipt, ERROR with a
 *   QuicRefusal's code, or INTERNAL with a transaction id (never internal text) when the
 *   handler fails.
 * - Outbound: a message is sent only on a connection whose peer certificate `peer.verify`
 *   accepted; `send` resolves with the peer's receipt when the peer acknowledges, and rejects
 *   with a QuicError (busy, too large, refused, timeout, reset, connection refused, closed...).
 * - Connections are pooled per peer (`host:port`), up to `connectionsPerPeer` each, and reused.
 */
import { randomUUID } from 'node:crypto';
import { QuicEndpoint, type QuicStats } from '../native/index.js';
import { certificateSpki } from '../tls/certificate.js';
import { QUIC_CODES, QuicError, QuicRefusal } from './errors.js';

/** Caps of the endpoint (see docs/OPERATIONS.md, AFTERSMTP_QUIC_*); unset ones use defaults. */
export interface QuicLimits {
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  maxStreamsPerConnection?: number;
  maxFrameBytes?: number;
  maxBufferedBytes?: number;
  /** The part of maxBufferedBytes that connections not yet verified may hold together. */
  unverifiedBufferedBytes?: number;
  /** Declared bytes one peer (certificate; unverified: also IP address) may have in progress. */
  peerBufferedBytes?: number;
  connectionWindowBytes?: number;
  queueDepth?: number;
  retryThreshold?: number;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  streamTimeoutMs?: number;
}

/** What `verifyInboundPeer` says about a connection (see there). */
export type InboundVerdict = boolean | 'verified';

/** The peer at the other end of a connection, as TLS showed it. */
export interface QuicPeerInfo {
  readonly conn: number;
  readonly address: string;
  readonly port: number;
  /** The peer's leaf certificate (DER). */
  readonly certificate: Buffer;
  /** Its DER SubjectPublicKeyInfo: compare with the peer gateway's DID record. */
  readonly spki: Buffer;
}

export interface InboundMessage {
  /**
   * The message body, not copied. A small body is a view of a page shared with other
   * messages (docs/ARCHITECTURE.md): copy what is kept after the answer.
   */
  readonly data: Buffer;
  readonly peer: QuicPeerInfo;
}

/** A destination gateway. */
export interface QuicPeer {
  readonly host: string;
  readonly port: number;
  /** TLS SNI (default: `host` when it is a name). */
  readonly serverName?: string;
  /** Checks the gateway's certificate (e.g. its SPKI against the DID record). */
  readonly verify: (peer: QuicPeerInfo) => boolean | Promise<boolean>;
}

export interface QuicTransportOptions {
  readonly certPem: string;
  readonly keyPem: string;
  /** Bind address (default 0.0.0.0) and UDP port (default 4434; 0: any free port). */
  readonly host?: string;
  readonly port?: number;
  /** Accept inbound connections (default: true when `onMessage` is given). */
  readonly listen?: boolean;
  readonly limits?: QuicLimits;
  /**
   * Checks an inbound peer's certificate; required when listening. `true` accepts the
   * connection as not verified yet (its messages share the small budget of unverified
   * connections, see `markVerified`); `'verified'` accepts it as bound to a verified gateway
   * record already; false closes it (PEER_REJECTED).
   */
  readonly verifyInboundPeer?: (peer: QuicPeerInfo) => InboundVerdict | Promise<InboundVerdict>;
  /** Called when an outbound connection's certificate passed its peer's check. */
  readonly onOutboundVerified?: (peer: QuicPeerInfo) => void;
  /**
   * Handles an inbound message; resolves to the receipt sent in the ACK (or nothing). Throw
   * QuicRefusal to refuse it; anything else thrown becomes INTERNAL with a transaction id.
   */
  readonly onMessage?: (msg: InboundMessage) => Buffer | undefined | Promise<Buffer | undefined>;
  /** Called with errors the transport cannot hand to a caller (a failing handler's error). */
  readonly onError?: (err: unknown, txid: string) => void;
  /** Outbound connections kept per peer (default 1); sends are spread over them. */
  readonly connectionsPerPeer?: number;
}

interface Pending {
  resolve: (receipt: Buffer) => void;
  reject: (err: QuicError) => void;
}

interface Outbound {
  readonly conn: number;
  readonly key: string;
  readonly ready: Promise<void>;
  /** The check the connection was opened with. */
  readonly verify: QuicPeer['verify'];
  settle?: (err?: QuicError) => void;
  open: boolean;
  /** The handshake completed and `verify` accepted the peer. */
  verified: boolean;
  /** The peer's certificate, once the handshake completed. */
  info?: QuicPeerInfo;
  /** Why the connection closed (once it has). */
  closed?: QuicError;
}

interface Inbound {
  readonly info: QuicPeerInfo;
  readonly verdict: Promise<boolean>;
  /** The verdict, once known. */
  verified?: boolean;
}

/** Event kinds and record width of the endpoint's event records (native/src/napi_quic.rs). */
const CONNECTED = 0;
const MESSAGE = 1;
const RESPONSE = 2;
const CLOSED = 3;
const RECORD = 9;
const EMPTY = Buffer.alloc(0);

function peerInfo(conn: number, address: string, port: number, certificate: Buffer): QuicPeerInfo {
  let spki: Buffer = EMPTY;
  try {
    spki = certificateSpki(certificate);
  } catch {
    // An unparsable certificate has no SPKI: no DID record can match it.
  }
  return { conn, address, port, certificate, spki };
}

export class QuicTransport {
  readonly #native: QuicEndpoint;
  readonly #opts: QuicTransportOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #pool = new Map<string, Outbound[]>();
  readonly #outbound = new Map<number, Outbound>();
  readonly #inbound = new Map<number, Inbound>();
  readonly #perPeer: number;
  #rr = 0;
  #closed = false;

  private constructor(opts: QuicTransportOptions) {
    this.#opts = opts;
    this.#perPeer = Math.max(1, Math.floor(opts.connectionsPerPeer ?? 1));
    const listen = opts.listen ?? opts.onMessage !== undefined;
    if (listen && (opts.onMessage === undefined || opts.verifyInboundPeer === undefined)) {
      throw new TypeError('a listening QuicTransport needs onMessage and verifyInboundPeer');
    }
    this.#native = QuicEndpoint.open(
      {
        host: opts.host,
        port: opts.port,
        listen,
        certPem: opts.certPem,
        keyPem: opts.keyPem,
        ...opts.limits,
      },
      (records, count, pages, texts) => this.#onEvents(records, count, pages, texts),
    );
  }

  /** Bind and start the endpoint. Throws ERR_QUIC_CONFIG / ERR_QUIC_BIND / ERR_QUIC_PARAM. */
  static open(opts: QuicTransportOptions): QuicTransport {
    return new QuicTransport(opts);
  }

  /** The bound UDP port. */
  get port(): number {
    return this.#native.port;
  }

  /** The endpoint's counters. */
  stats(): QuicStats {
    return this.#native.stats();
  }

  /**
   * The inbound connection `conn`'s certificate is bound to a verified gateway record (e.g. a
   * message of it passed the gateway check): its messages count against the verified part of
   * the byte budget from now on. Unknown or closed connections are ignored.
   */
  markVerified(conn: number): void {
    if (this.#closed) return;
    this.#native.verifyConnection(conn);
  }

  /**
   * Send one message to `peer` and resolve with its receipt once the peer acknowledges. Rejects
   * with a QuicError: ERR_QUIC_BUSY, _TOO_LARGE, _REFUSED, _TIMEOUT, _RESET, _PEER_REJECTED,
   * _CONNECTION_REFUSED, _HANDSHAKE_TIMEOUT, _CLOSED, _SHUTDOWN, ...
   */
  send(peer: QuicPeer, data: Uint8Array): Promise<Buffer> {
    return this.#send(peer, data, undefined);
  }

  /**
   * Robustness tests and diagnostics only: write `data` as is on a new stream (no frame
   * header; FIN only if `fin`) and resolve or reject like `send` with the peer's answer.
   */
  sendRaw(peer: QuicPeer, data: Uint8Array, fin: boolean): Promise<Buffer> {
    return this.#send(peer, data, fin);
  }

  #send(peer: QuicPeer, data: Uint8Array, rawFin: boolean | undefined): Promise<Buffer> {
    if (this.#closed) {
      return Promise.reject(new QuicError(QUIC_CODES.shutdown, 'the transport is closed'));
    }
    let out: Outbound;
    try {
      out = this.#connection(peer);
    } catch (err) {
      // ERR_QUIC_CLOSED (the endpoint stopped) or ERR_QUIC_PARAM (bad host or port).
      const e = err as { code?: string; message: string };
      if (e.code === 'ERR_QUIC_CLOSED') {
        return Promise.reject(new QuicError(QUIC_CODES.closed, e.message));
      }
      return Promise.reject(err as Error);
    }
    // A verified connection sends at once; a new one first waits for its handshake and check.
    if (out.verified) return this.#checkedSend(out, peer, data, rawFin);
    return out.ready.then(() => this.#checkedSend(out, peer, data, rawFin));
  }

  /**
   * Send on a pooled connection once `peer`'s own check accepts it: a connection is pooled by
   * host and port, and the caller that opened it may have expected another certificate (two
   * gateway records naming the same address). The same check as the opener's is not run twice.
   */
  #checkedSend(
    out: Outbound,
    peer: QuicPeer,
    data: Uint8Array,
    rawFin: boolean | undefined,
  ): Promise<Buffer> {
    if (peer.verify === out.verify || out.info === undefined) {
      return this.#sendOn(out, data, rawFin);
    }
    const rejected = () =>
      new QuicError(
        QUIC_CODES.peerRejected,
        `the certificate of ${out.key} is not the one this message expects`,
      );
    const info = out.info;
    return Promise.resolve()
      .then(() => peer.verify(info))
      .then(
        (ok) => (ok === true ? this.#sendOn(out, data, rawFin) : Promise.reject(rejected())),
        () => Promise.reject(rejected()),
      );
  }

  #sendOn(out: Outbound, data: Uint8Array, rawFin: boolean | undefined): Promise<Buffer> {
    if (this.#closed) {
      return Promise.reject(new QuicError(QUIC_CODES.shutdown, 'the transport is closed'));
    }
    if (out.closed !== undefined) return Promise.reject(out.closed);
    return new Promise<Buffer>((resolve, reject) => {
      const bytes = Buffer.isBuffer(data)
        ? data
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      let request: number;
      try {
        request =
          rawFin === undefined
            ? this.#native.send(out.conn, bytes)
            : this.#native.sendRaw(out.conn, bytes, rawFin);
      } catch (err) {
        // Only when the endpoint has stopped (ERR_QUIC_CLOSED).
        reject(new QuicError(QUIC_CODES.closed, (err as Error).message));
        return;
      }
      this.#pending.set(request, { resolve, reject });
    });
  }

  /** Close every connection and stop the endpoint; pending sends reject with ERR_QUIC_SHUTDOWN. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
    const err = new QuicError(QUIC_CODES.shutdown, 'the transport is closed');
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    for (const o of this.#outbound.values()) o.settle?.(err);
    this.#outbound.clear();
    this.#pool.clear();
    this.#inbound.clear();
  }

  /** A pooled connection to `peer`: a new one until the pool is full, then round robin. */
  #connection(peer: QuicPeer): Outbound {
    const key = `${peer.host}:${peer.port}`;
    let list = this.#pool.get(key);
    if (list === undefined) {
      list = [];
      this.#pool.set(key, list);
    }
    if (list.length < this.#perPeer) {
      const isName = /[a-z]/i.test(peer.host) && !peer.host.includes(':');
      const conn = this.#native.connect(
        peer.host,
        peer.port,
        peer.serverName ?? (isName ? peer.host : ''),
      );
      let settle!: (err?: QuicError) => void;
      const ready = new Promise<void>((resolve, reject) => {
        settle = (err) => (err === undefined ? resolve() : reject(err));
      });
      // A connection nobody awaits any more must not turn into an unhandled rejection.
      ready.catch(() => undefined);
      const out: Outbound = {
        conn,
        key,
        ready,
        verify: peer.verify,
        settle,
        open: true,
        verified: false,
      };
      list.push(out);
      this.#outbound.set(conn, out);
      return out;
    }
    this.#rr = (this.#rr + 1) % list.length;
    return list[this.#rr] as Outbound;
  }

  #drop(out: Outbound): void {
    out.open = false;
    this.#outbound.delete(out.conn);
    const list = this.#pool.get(out.key);
    if (list === undefined) return;
    const i = list.indexOf(out);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#pool.delete(out.key);
  }

  /** A batch of events (layout: `flatten` in native/src/napi_quic.rs). */
  #onEvents(
    records: Float64Array,
    count: number,
    pages: Buffer[] | undefined,
    texts: string[] | undefined,
  ): void {
    if (this.#closed) return;
    for (let i = 0; i < count; i++) {
      const r = i * RECORD;
      const kind = records[r];
      const conn = records[r + 1] as number;
      const id = records[r + 2] as number;
      const code = records[r + 3] as number;
      const inbound = records[r + 4] === 1;
      const page = records[r + 5] as number;
      const offset = records[r + 6] as number;
      const payload =
        page < 0
          ? EMPTY
          : ((pages as Buffer[])[page] as Buffer).subarray(
              offset,
              offset + (records[r + 7] as number),
            );
      const t = records[r + 8] as number;
      const text = t < 0 ? '' : ((texts as string[])[t] as string);
      switch (kind) {
        case MESSAGE:
          this.#onMessage(conn, id, payload);
          break;
        case RESPONSE:
          this.#onResponse(id, code, payload, text);
          break;
        case CONNECTED: {
          const info = peerInfo(conn, text, id, payload);
          if (inbound) this.#onInboundConnected(info);
          else this.#onOutboundConnected(info);
          break;
        }
        case CLOSED:
          this.#onClosed(conn, inbound, code, text);
          break;
      }
    }
  }

  /** `code` -1: the peer's ACK with `receipt`; else its error code and `reason`. */
  #onResponse(request: number, code: number, receipt: Buffer, reason: string): void {
    const p = this.#pending.get(request);
    if (p === undefined) return;
    this.#pending.delete(request);
    if (code < 0) p.resolve(receipt);
    else p.reject(new QuicError(code, reason));
  }

  #onOutboundConnected(info: QuicPeerInfo): void {
    const out = this.#outbound.get(info.conn);
    if (out === undefined) return;
    out.info = info;
    const reject = (reason: string) => {
      this.#native.closeConnection(info.conn, QUIC_CODES.peerRejected, 'peer rejected');
      this.#drop(out);
      out.settle?.(new QuicError(QUIC_CODES.peerRejected, reason));
      out.settle = undefined;
    };
    Promise.resolve()
      .then(() => out.verify(info))
      .then(
        (ok) => {
          if (!out.open) return;
          if (ok) {
            out.verified = true;
            out.settle?.();
            out.settle = undefined;
            this.#opts.onOutboundVerified?.(info);
          } else {
            reject('the peer certificate does not match its gateway keys');
          }
        },
        () => reject('the peer certificate check failed'),
      );
  }

  #onInboundConnected(info: QuicPeerInfo): void {
    const check = this.#opts.verifyInboundPeer;
    const verdict = Promise.resolve()
      .then(() => (check === undefined ? false : check(info)))
      .then(
        (v): InboundVerdict => (v === true || v === 'verified' ? v : false),
        () => false as const,
      )
      .then((v) => {
        inbound.verified = v !== false;
        if (this.#closed) return inbound.verified;
        if (v === false) {
          this.#native.closeConnection(info.conn, QUIC_CODES.peerRejected, 'peer rejected');
        } else if (v === 'verified') {
          this.#native.verifyConnection(info.conn);
        }
        return inbound.verified;
      });
    const inbound: Inbound = { info, verdict };
    this.#inbound.set(info.conn, inbound);
  }

  #onMessage(conn: number, stream: number, data: Buffer): void {
    const inbound = this.#inbound.get(conn);
    if (inbound === undefined) {
      this.#native.refuse(conn, stream, QUIC_CODES.internal, 'connection not verified');
      return;
    }
    const msg: InboundMessage = { data, peer: inbound.info };
    // A verified peer's message is handled at once; until the verdict is known it waits.
    if (inbound.verified === true) this.#handle(conn, stream, msg);
    else if (inbound.verified === undefined) {
      void inbound.verdict.then((ok) => {
        if (ok) this.#handle(conn, stream, msg);
      });
    }
  }

  /** Run the application's handler and answer with its receipt or refusal. */
  #handle(conn: number, stream: number, msg: InboundMessage): void {
    if (this.#closed) return;
    let result: ReturnType<NonNullable<QuicTransportOptions['onMessage']>>;
    try {
      result = (this.#opts.onMessage as NonNullable<QuicTransportOptions['onMessage']>)(msg);
    } catch (err) {
      this.#answerFailure(conn, stream, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (receipt) => {
          if (!this.#closed) this.#native.reply(conn, stream, receipt);
        },
        (err: unknown) => this.#answerFailure(conn, stream, err),
      );
    } else if (!this.#closed) {
      // (The handler may have closed the transport.)
      this.#native.reply(conn, stream, result);
    }
  }

  #answerFailure(conn: number, stream: number, err: unknown): void {
    if (this.#closed) return;
    if (err instanceof QuicRefusal) {
      this.#native.refuse(conn, stream, err.wireCode, err.message);
    } else {
      const txid = randomUUID();
      this.#opts.onError?.(err, txid);
      this.#native.refuse(conn, stream, QUIC_CODES.internal, `temporary failure, tx ${txid}`);
    }
  }

  #onClosed(conn: number, inbound: boolean, code: number, reason: string): void {
    if (inbound) {
      this.#inbound.delete(conn);
      return;
    }
    const out = this.#outbound.get(conn);
    if (out === undefined) return;
    this.#drop(out);
    out.closed = new QuicError(code, reason || 'connection closed');
    out.settle?.(out.closed);
    out.settle = undefined;
  }
}
