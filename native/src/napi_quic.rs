//! N-API surface of the QUIC transport ([`crate::quic`]): one class, `QuicEndpoint`, whose
//! endpoint runs on Node's event loop ([`crate::node_loop`]).
//!
//! Events (handshakes with the peer's certificate, inbound messages, answers to outbound
//! messages, closed connections) reach JavaScript in flat batches ([`flatten`])
//! through one callback, in the order the endpoint produced them. Message bodies are handed
//! over without a copy: the memory they were read into becomes an external Buffer. Thrown errors carry a `code`:
//! `ERR_QUIC_CONFIG` (bad options, PEM or key), `ERR_QUIC_BIND`, `ERR_QUIC_PARAM`,
//! `ERR_QUIC_CLOSED` (the endpoint was closed, or stopped by a fault).
use crate::node_loop::{Flat, NodeEndpoint};
use crate::quic::{self, frame, Answer, Batch, Command, Endpoint, Event, Limits, Outcome, Payload};
use napi::bindgen_prelude::{Buffer, BufferSlice, Function};
use napi::Env;
use napi_derive::napi;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Custom N-API status: its string becomes the JS error's `code` property.
#[derive(Debug, Clone, Copy)]
pub struct QuicCode(&'static str);

impl AsRef<str> for QuicCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

type JsError = napi::Error<QuicCode>;

fn err(code: &'static str, msg: impl Into<String>) -> JsError {
    napi::Error::new(QuicCode(code), msg.into())
}

/// Options of `QuicEndpoint.open`. Every cap is optional (defaults in docs/OPERATIONS.md);
/// durations are in milliseconds.
#[napi(object)]
pub struct QuicEndpointOptions {
    /// IP address to bind (default `0.0.0.0`); a host name is refused (`ERR_QUIC_PARAM`): the
    /// caller resolves names, asynchronously, before it calls.
    pub host: Option<String>,
    /// UDP port to bind (default 4434; 0 picks a free port).
    pub port: Option<u32>,
    /// Accept inbound connections (default true). A client-only endpoint sets false.
    pub listen: Option<bool>,
    /// This gateway's certificate (PEM, leaf first), shown to peers in both roles.
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8 or traditional).
    pub key_pem: String,
    pub max_connections: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub max_streams_per_connection: Option<u32>,
    pub max_frame_bytes: Option<u32>,
    pub max_buffered_bytes: Option<f64>,
    pub unverified_buffered_bytes: Option<f64>,
    pub peer_buffered_bytes: Option<f64>,
    pub connection_window_bytes: Option<u32>,
    pub queue_depth: Option<u32>,
    pub retry_threshold: Option<u32>,
    pub handshake_timeout_ms: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub stream_timeout_ms: Option<u32>,
}

/// Event kinds in the records handed to JavaScript (see [`flatten`]).
const KIND_CONNECTED: f64 = 0.0;
const KIND_MESSAGE: f64 = 1.0;
const KIND_RESPONSE: f64 = 2.0;
const KIND_CLOSED: f64 = 3.0;
const NO_PAYLOAD: [f64; 3] = [-1.0, 0.0, 0.0];

/// A batch of events, flat: the callback gets `(records, count, pages, texts)` rather than an
/// object per event (creating objects property by property through N-API costs more than the
/// rest of a small message's trip).
///
/// `records` is a Float64Array reused from batch to batch (read it before the callback
/// returns): event `i` of `count` is `records[9i .. 9i+9]` = `kind, conn, id, code, inbound,
/// page, offset, length, text`; its payload is `length` bytes at `offset` of `pages[page]`
/// (`page` -1: none), its text `texts[text]` (-1: none); `pages` and `texts` are undefined
/// when empty.
/// - kind 0, connected: `id` the remote port, `inbound` 1 or 0, payload the peer's certificate
///   (DER), text the remote address;
/// - kind 1, message: `id` the stream (answer with `reply` or `refuse`), payload the message;
/// - kind 2, response: `id` the request; `code` -1 and payload the ACK's receipt (none when
///   empty), or `code` the error code and text the reason;
/// - kind 3, closed: `code`, `inbound` 1 or 0, text the reason.
///
/// Small message bodies share pages (`crate::quic::batch`); every other payload is a page of
/// its own. Nothing is copied: each page becomes an external Buffer.
fn flatten(batch: Batch, flat: &mut Flat) {
    let Batch { events, pages } = batch;
    flat.count = events.len() as u32;
    flat.pages.extend(pages.into_iter().map(Buffer::from));
    let Flat {
        records,
        pages,
        texts,
        ..
    } = flat;
    // A payload in a buffer of its own becomes a page of its own: `[page, offset, length]`.
    let mut own = |v: Vec<u8>| -> [f64; 3] {
        if v.is_empty() {
            return NO_PAYLOAD;
        }
        let len = v.len() as f64;
        pages.push(Buffer::from(v));
        [(pages.len() - 1) as f64, 0.0, len]
    };
    for e in events {
        let (head, at, text) = match e {
            Event::Connected {
                conn,
                inbound,
                peer,
                peer_cert,
            } => (
                [
                    KIND_CONNECTED,
                    conn.into(),
                    peer.port().into(),
                    -1.0,
                    flag(inbound),
                ],
                own(peer_cert),
                Some(peer.ip().to_string()),
            ),
            Event::Message { conn, stream, data } => (
                [KIND_MESSAGE, conn.into(), stream as f64, -1.0, 0.0],
                match data {
                    Payload::Owned(v) => own(v),
                    Payload::Paged { page, off, len } => [page.into(), off.into(), len.into()],
                },
                None,
            ),
            Event::Response {
                conn,
                request,
                outcome: Outcome::Ack(receipt),
            } => (
                [KIND_RESPONSE, conn.into(), request.into(), -1.0, 0.0],
                own(receipt),
                None,
            ),
            Event::Response {
                conn,
                request,
                outcome: Outcome::Error { code, reason },
            } => (
                [KIND_RESPONSE, conn.into(), request.into(), code.into(), 0.0],
                NO_PAYLOAD,
                Some(reason),
            ),
            Event::Closed {
                conn,
                inbound,
                code,
                reason,
            } => (
                [KIND_CLOSED, conn.into(), 0.0, code.into(), flag(inbound)],
                NO_PAYLOAD,
                Some(reason),
            ),
        };
        let text = text.map_or(-1.0, |t| {
            texts.push(t);
            (texts.len() - 1) as f64
        });
        records.extend_from_slice(&head);
        records.extend_from_slice(&at);
        records.push(text);
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Counters of one endpoint (monotonic unless marked as a gauge).
#[napi(object, object_from_js = false)]
pub struct QuicStats {
    /// Gauge: open connections (inbound and outbound).
    pub connections_open: f64,
    pub connections_inbound: f64,
    pub connections_outbound: f64,
    pub connections_closed: f64,
    pub handshakes_completed: f64,
    pub retries_sent: f64,
    pub streams_inbound: f64,
    pub streams_outbound: f64,
    pub frames_received: f64,
    pub frames_sent: f64,
    pub acks_sent: f64,
    pub errors_sent: f64,
    pub acks_received: f64,
    pub errors_received: f64,
    /// Stream bytes of inbound messages (frames, headers included).
    pub bytes_received: f64,
    /// Stream bytes of outbound messages (frames, headers included).
    pub bytes_sent: f64,
    /// Gauge: message bytes held (received so far, or with the application).
    pub buffered_bytes: f64,
    /// Highest `bufferedBytes` seen.
    pub buffered_bytes_peak: f64,
    /// Gauge: message bytes held by connections not verified yet.
    pub buffered_bytes_unverified: f64,
    /// Inbound connections the application verified.
    pub connections_verified: f64,
    /// Gauge: messages with the application, not yet answered.
    pub queue_length: f64,
    pub packets_received: f64,
    pub packets_sent: f64,
    pub packets_dropped: f64,
    /// Refusals by reason.
    pub refused_connections_total: f64,
    pub refused_connections_per_address: f64,
    pub refused_busy: f64,
    pub refused_too_large: f64,
    pub refused_malformed: f64,
    pub refused_timeout: f64,
    pub handshake_timeouts: f64,
}

/// A QUIC endpoint (server and client on one UDP socket) run by this thread's event loop.
#[napi]
pub struct QuicEndpoint {
    inner: Option<NodeEndpoint>,
}

fn opt_usize(v: Option<u32>, d: usize) -> usize {
    v.map_or(d, |n| n as usize)
}

fn opt_ms(v: Option<u32>, d: Duration) -> Duration {
    v.map_or(d, |n| Duration::from_millis(u64::from(n)))
}

fn limits(o: &QuicEndpointOptions) -> Result<Limits, JsError> {
    let d = Limits::default();
    let bytes = |v: Option<f64>, d: usize, name: &str| match v {
        None => Ok(d),
        Some(n) if n.fract() == 0.0 && (1.0..=2f64.powi(50)).contains(&n) => Ok(n as usize),
        Some(n) => Err(err("ERR_QUIC_PARAM", format!("{name}: {n}"))),
    };
    let max_buffered = bytes(
        o.max_buffered_bytes,
        d.max_buffered_bytes,
        "maxBufferedBytes",
    )?;
    let unverified = bytes(
        o.unverified_buffered_bytes,
        d.unverified_buffered_bytes,
        "unverifiedBufferedBytes",
    )?;
    let per_peer = bytes(
        o.peer_buffered_bytes,
        d.peer_buffered_bytes,
        "peerBufferedBytes",
    )?;
    let l = Limits {
        max_connections: opt_usize(o.max_connections, d.max_connections),
        max_connections_per_address: opt_usize(
            o.max_connections_per_address,
            d.max_connections_per_address,
        ),
        max_streams_per_connection: opt_usize(
            o.max_streams_per_connection,
            d.max_streams_per_connection,
        ),
        max_frame_bytes: opt_usize(o.max_frame_bytes, d.max_frame_bytes),
        max_buffered_bytes: max_buffered,
        unverified_buffered_bytes: unverified,
        peer_buffered_bytes: per_peer,
        connection_window: opt_usize(o.connection_window_bytes, d.connection_window),
        queue_depth: opt_usize(o.queue_depth, d.queue_depth),
        retry_threshold: opt_usize(o.retry_threshold, d.retry_threshold),
        handshake_timeout: opt_ms(o.handshake_timeout_ms, d.handshake_timeout),
        idle_timeout: opt_ms(o.idle_timeout_ms, d.idle_timeout),
        stream_timeout: opt_ms(o.stream_timeout_ms, d.stream_timeout),
    };
    if l.max_connections == 0 || l.max_connections_per_address == 0 || l.queue_depth == 0 {
        return Err(err(
            "ERR_QUIC_PARAM",
            "maxConnections, maxConnectionsPerAddress and queueDepth must be at least 1",
        ));
    }
    if l.max_streams_per_connection == 0 || l.connection_window < 65536 {
        return Err(err(
            "ERR_QUIC_PARAM",
            "maxStreamsPerConnection must be at least 1 and connectionWindowBytes at least 65536",
        ));
    }
    Ok(l)
}

/// `host` (an IP address, IPv6 with or without brackets) and `port` as a socket address. No name
/// is looked up here: a DNS lookup would block the JavaScript thread this runs on, so names are
/// resolved by the caller (asynchronously, with the configured DNS servers) before the call.
fn socket_addr(host: &str, port: u32) -> Result<SocketAddr, JsError> {
    let port = u16::try_from(port).map_err(|_| err("ERR_QUIC_PARAM", format!("port {port}")))?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare.parse().map_err(|_| {
        err(
            "ERR_QUIC_PARAM",
            format!("{host} is not an IP address (host names are resolved before this call)"),
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[napi]
impl QuicEndpoint {
    /// Bind the UDP socket and run the endpoint on this thread's event loop. `onEvents`
    /// receives every event in batches. The endpoint keeps the process alive until `close()`.
    #[napi(factory)]
    pub fn open(
        env: Env,
        options: QuicEndpointOptions,
        #[napi(
            ts_arg_type = "(records: Float64Array, count: number, pages: Buffer[] | undefined, texts: string[] | undefined) => void"
        )]
        on_events: Function<'_>,
    ) -> Result<Self, JsError> {
        let limits = limits(&options)?;
        let bind = socket_addr(
            options.host.as_deref().unwrap_or("0.0.0.0"),
            options.port.unwrap_or(u32::from(quic::DEFAULT_PORT)),
        )?;
        let ep = Endpoint::bind(
            bind,
            options.listen.unwrap_or(true),
            options.cert_pem.as_bytes(),
            options.key_pem.as_bytes(),
            limits,
        )
        .map_err(|e| {
            let code = if e.starts_with("cannot bind") {
                "ERR_QUIC_BIND"
            } else {
                "ERR_QUIC_CONFIG"
            };
            err(code, e)
        })?;
        let node = NodeEndpoint::start(&env, ep, &on_events, flatten)
            .map_err(|e| err("ERR_QUIC_CONFIG", e))?;
        Ok(QuicEndpoint { inner: Some(node) })
    }

    fn stopped() -> JsError {
        err("ERR_QUIC_CLOSED", "the QUIC endpoint has stopped")
    }

    /// Apply a command to the running endpoint.
    fn command<R>(&self, f: impl FnOnce(&mut Endpoint) -> R) -> Result<R, JsError> {
        self.inner
            .as_ref()
            .ok_or_else(|| err("ERR_QUIC_CLOSED", "the QUIC endpoint is closed"))?
            .command(f)
            .ok_or_else(Self::stopped)
    }

    fn send_bytes(&self, conn: u32, bytes: Vec<u8>, fin: bool) -> Result<u32, JsError> {
        self.command(|ep| {
            let request = ep.ids().request();
            ep.apply(Command::Send {
                conn,
                request,
                bytes,
                fin,
            });
            request
        })
    }

    /// The bound UDP port.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.inner
            .as_ref()
            .map_or(0, |h| u32::from(h.local_addr().port()))
    }

    /// Open a connection to `host:port` (`host` an IP address: never a name, see socket_addr;
    /// SNI `serverName`, may be empty); returns its id. A `connected` (with the peer's
    /// certificate) or `closed` event follows.
    #[napi]
    pub fn connect(&self, host: String, port: u32, server_name: String) -> Result<u32, JsError> {
        let addr = socket_addr(&host, port)?;
        self.command(|ep| {
            let conn = ep.ids().conn();
            ep.apply(Command::Connect {
                conn,
                addr,
                server_name,
            });
            conn
        })
    }

    /// Send `data` as one MESSAGE on a new stream of connection `conn`; returns the request id
    /// that the `response` event carries. The bytes are copied once, here, into the frame that
    /// quiche then sends from. Messages sent before the handshake completes wait for it.
    #[napi]
    pub fn send(&self, conn: u32, data: BufferSlice<'_>) -> Result<u32, JsError> {
        if u32::try_from(data.len()).is_err() {
            return Err(err(
                "ERR_QUIC_PARAM",
                "a message is at most 4 GiB - 1 bytes",
            ));
        }
        self.send_bytes(conn, frame::encode(frame::TYPE_MESSAGE, &data), true)
    }

    /// Write `data` as is (no frame header) on a new stream, with FIN only if `fin`; the
    /// outcome arrives like `send`'s. For robustness tests and diagnostics only: malformed
    /// and never-finished streams.
    #[napi]
    pub fn send_raw(&self, conn: u32, data: BufferSlice<'_>, fin: bool) -> Result<u32, JsError> {
        self.send_bytes(conn, data.to_vec(), fin)
    }

    /// Acknowledge the inbound message on `stream` of `conn`, with an optional receipt (at most
    /// 65536 bytes, longer is cut). Unknown or already answered streams are ignored.
    #[napi]
    pub fn reply(
        &self,
        conn: u32,
        stream: f64,
        receipt: Option<BufferSlice<'_>>,
    ) -> Result<(), JsError> {
        self.answer(
            conn,
            stream,
            Answer::ack(receipt.as_deref().unwrap_or_default()),
        )
    }

    /// Refuse the inbound message on `stream` of `conn` with an ERROR frame: `code` (16 bits,
    /// see docs/PROTOCOL.md) and a reason for the peer (at most 1024 bytes, never internal text).
    #[napi]
    pub fn refuse(&self, conn: u32, stream: f64, code: u32, reason: String) -> Result<(), JsError> {
        let code = u16::try_from(code).map_err(|_| err("ERR_QUIC_PARAM", "code is 16 bits"))?;
        self.answer(conn, stream, Answer::error(code, &reason))
    }

    fn answer(&self, conn: u32, stream: f64, answer: Answer) -> Result<(), JsError> {
        self.command(|ep| {
            ep.apply(Command::Reply {
                conn,
                stream: stream as u64,
                answer,
            })
        })
    }

    /// The inbound connection `conn`'s certificate is bound to a verified gateway record: its
    /// messages count against the verified part of the byte budget from now on (unknown or
    /// outbound connections are ignored).
    #[napi]
    pub fn verify_connection(&self, conn: u32) -> Result<(), JsError> {
        self.command(|ep| ep.apply(Command::Verify { conn }))
    }

    /// Close connection `conn` with an application error `code` (e.g. 0x10, peer rejected).
    #[napi]
    pub fn close_connection(&self, conn: u32, code: u32, reason: String) -> Result<(), JsError> {
        let code = u16::try_from(code).map_err(|_| err("ERR_QUIC_PARAM", "code is 16 bits"))?;
        self.command(|ep| ep.apply(Command::CloseConnection { conn, code, reason }))
    }

    /// A snapshot of the endpoint's counters.
    #[napi]
    pub fn stats(&self) -> Result<QuicStats, JsError> {
        let s = self
            .inner
            .as_ref()
            .ok_or_else(|| err("ERR_QUIC_CLOSED", "the QUIC endpoint is closed"))?
            .stats()
            .snapshot();
        Ok(QuicStats {
            connections_open: s.connections_open as f64,
            connections_inbound: s.connections_inbound as f64,
            connections_outbound: s.connections_outbound as f64,
            connections_closed: s.connections_closed as f64,
            handshakes_completed: s.handshakes_completed as f64,
            retries_sent: s.retries_sent as f64,
            streams_inbound: s.streams_inbound as f64,
            streams_outbound: s.streams_outbound as f64,
            frames_received: s.frames_received as f64,
            frames_sent: s.frames_sent as f64,
            acks_sent: s.acks_sent as f64,
            errors_sent: s.errors_sent as f64,
            acks_received: s.acks_received as f64,
            errors_received: s.errors_received as f64,
            bytes_received: s.bytes_received as f64,
            bytes_sent: s.bytes_sent as f64,
            buffered_bytes: s.buffered_bytes as f64,
            buffered_bytes_peak: s.buffered_bytes_peak as f64,
            buffered_bytes_unverified: s.buffered_bytes_unverified as f64,
            connections_verified: s.connections_verified as f64,
            queue_length: s.queue_length as f64,
            packets_received: s.packets_received as f64,
            packets_sent: s.packets_sent as f64,
            packets_dropped: s.packets_dropped as f64,
            refused_connections_total: s.refused_connections_total as f64,
            refused_connections_per_address: s.refused_connections_per_address as f64,
            refused_busy: s.refused_busy as f64,
            refused_too_large: s.refused_too_large as f64,
            refused_malformed: s.refused_malformed as f64,
            refused_timeout: s.refused_timeout as f64,
            handshake_timeouts: s.handshake_timeouts as f64,
        })
    }

    /// Close every connection (CONNECTION_CLOSE with code 0x07, shutdown) and stop. Pending
    /// sends get `response` events with code 0x07 (shutdown) before this returns; idempotent.
    #[napi]
    pub fn close(&mut self) {
        if let Some(node) = self.inner.take() {
            node.close();
        }
    }
}

/// The wire codes (docs/PROTOCOL.md), for JavaScript.
#[napi(object, object_from_js = false)]
#[cfg_attr(test, allow(dead_code))] // only referenced by the N-API registration
pub struct QuicCodes {
    pub busy: u32,
    pub too_large: u32,
    pub malformed: u32,
    pub refused: u32,
    pub internal: u32,
    pub timeout: u32,
    pub shutdown: u32,
    pub peer_rejected: u32,
    pub connection_refused: u32,
    pub handshake_timeout: u32,
    pub reset: u32,
    pub closed: u32,
}

/// The stream and connection error codes of AMP over QUIC, as the native core defines them.
#[napi]
#[cfg_attr(test, allow(dead_code))] // only referenced by the N-API registration
pub fn quic_codes() -> QuicCodes {
    use frame::code as c;
    QuicCodes {
        busy: c::BUSY.into(),
        too_large: c::TOO_LARGE.into(),
        malformed: c::MALFORMED.into(),
        refused: c::REFUSED.into(),
        internal: c::INTERNAL.into(),
        timeout: c::TIMEOUT.into(),
        shutdown: c::SHUTDOWN.into(),
        peer_rejected: c::PEER_REJECTED.into(),
        connection_refused: c::CONNECTION_REFUSED.into(),
        handshake_timeout: c::HANDSHAKE_TIMEOUT.into(),
        reset: c::RESET.into(),
        closed: c::CLOSED.into(),
    }
}
