//! One QUIC endpoint: its UDP socket, its connections and every cap, with no thread of its own.
//!
//! One UDP socket carries both roles: inbound connections (the server side, when listening)
//! and outbound ones (the client side, opened by [`Command::Connect`]); packets are routed by
//! Destination Connection ID. A driver runs it (the N-API layer on Node's event loop, or
//! [`super::thread`] on a thread of its own): it applies the application's [`Command`]s, calls
//! [`Endpoint::turn`] when the socket is readable or [`Endpoint::timeout`] has passed, hands
//! [`Endpoint::take_events`] to the application, and calls [`Endpoint::settle`] after a turn
//! and after commands. Together they follow quiche-server: feed datagrams to their connections
//! (accepting, refusing or Retry-ing new ones); run timers; read and write stream data (the
//! turn); flush every connection's packets; reap closed connections (the settle). The flush
//! waits for the settle so that the ACKs of what arrived can leave with the answers to it.
//!
//! Bounds (see [`Limits`]): a MESSAGE's declared length is checked against the maximum before
//! any body byte is read, and reserved against its connection's window and its peer's share
//! (one certificate; for a connection not yet verified, also one IP address): a message that
//! does not fit them waits unread, so a peer that announces large messages and sends nothing
//! only blocks itself. The shared budgets are charged by the bytes actually received: the
//! endpoint's total, and within it the part that unverified connections hold together. A new
//! stream that finds its budget (or the application queue) full is answered `BUSY` at once; a
//! stream in progress that finds it full waits. While the queue is full the loop reads no
//! stream data at all. Unread data means quiche extends no flow-control credit, so the peers'
//! senders stall (backpressure). Streams that do not complete within the stream timeout are
//! answered `TIMEOUT` and release what they held (slowloris). A connection is verified when
//! the application says its certificate is bound to a verified gateway record
//! ([`Command::Verify`]); from then on its bytes count against the verified part only. Memory:
//! at most `max_buffered_bytes` of message bytes here, plus quiche's receive buffers, which
//! flow control bounds to `connection_window` per connection.
use super::batch::{Batch, Pages, Payload, SMALL_BODY};
use super::frame::{self, code, Expect, FrameDecoder, Need};
use super::tls::{self, Secrets};
use super::udp;
use super::Limits;
use bytes::{BufMut, Bytes};
use mio::net::UdpSocket;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timers that are not quiche's (handshake, stream deadlines) are checked this often.
const SWEEP: Duration = Duration::from_millis(50);
/// Close reasons remembered after a connection is forgotten (for late sends).
const RECENTLY_CLOSED: usize = 1024;
/// Refused connections kept alive just long enough to send CONNECTION_CLOSE.
const MAX_REFUSING: usize = 256;
/// Packets per GSO send: at most 64 segments, and [`GSO_BYTES`] in total.
const GSO_BATCH: usize = udp::MAX_SEGMENTS;
/// Bytes per GSO send: one UDP payload at most (65507 bytes).
const GSO_BYTES: usize = 65_000;
/// Packets for unknown connections looked at per sweep at most (offered to connections as a
/// possible stateless reset, or answered with one); a flood of stray packets costs no more.
const MAX_UNKNOWN_PER_SWEEP: usize = 64;
/// Longest stateless reset sent; RFC 9000 §10.3 asks for one shorter than the packet that
/// caused it, and at least 21 bytes (5 unpredictable, then the 16-byte token).
const MAX_RESET_LEN: usize = 43;
const MIN_RESET_LEN: usize = 21;
/// Socket buffers asked of the kernel (bursts of large messages on one socket).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// How a message sent with [`EndpointHandle::send`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer's ACK with its body (a receipt, possibly empty).
    Ack(Vec<u8>),
    /// The peer's ERROR frame, a reset, a timeout or the connection closing: a code from
    /// [`frame::code`] and a reason.
    Error { code: u16, reason: String },
}

/// Something the application must hear about; delivered in batches, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A connection's handshake completed; `peer_cert` is the peer's leaf certificate (DER).
    Connected {
        conn: u32,
        inbound: bool,
        peer: SocketAddr,
        peer_cert: Vec<u8>,
    },
    /// An inbound MESSAGE, complete and well-formed: answer it with [`Command::Reply`].
    Message {
        conn: u32,
        stream: u64,
        data: Payload,
    },
    /// The outcome of an outbound message.
    Response {
        conn: u32,
        request: u32,
        outcome: Outcome,
    },
    /// A connection is gone; every request still pending on it got a `Response` first.
    Closed {
        conn: u32,
        inbound: bool,
        code: u16,
        reason: String,
    },
}

impl Event {
    /// The connection the event is about.
    pub fn conn(&self) -> u32 {
        match self {
            Event::Connected { conn, .. }
            | Event::Message { conn, .. }
            | Event::Response { conn, .. }
            | Event::Closed { conn, .. } => *conn,
        }
    }
}

/// The answer to an inbound message, as its complete frame (built once, where the
/// application's receipt or reason is copied in).
#[derive(Debug)]
pub enum Answer {
    Ack(Vec<u8>),
    Error(Vec<u8>),
}

impl Answer {
    /// An ACK carrying `receipt` (cut to [`frame::MAX_ACK_BODY`] bytes).
    pub fn ack(receipt: &[u8]) -> Self {
        let receipt = &receipt[..receipt.len().min(frame::MAX_ACK_BODY)];
        Answer::Ack(frame::encode(frame::TYPE_ACK, receipt))
    }

    /// An ERROR with `code` and `reason` (cut to [`frame::MAX_ERROR_REASON`] bytes).
    pub fn error(code: u16, reason: &str) -> Self {
        Answer::Error(frame::encode_error(code, reason))
    }
}

/// Requests from the application, applied with [`Endpoint::apply`].
#[derive(Debug)]
pub enum Command {
    Connect {
        conn: u32,
        addr: SocketAddr,
        server_name: String,
    },
    /// Send `bytes` on a new stream of `conn`, then FIN if `fin`: a MESSAGE frame
    /// ([`frame::encode`]), or anything at all for robustness tests and diagnostics.
    Send {
        conn: u32,
        request: u32,
        bytes: Vec<u8>,
        fin: bool,
    },
    /// Answer an inbound message.
    Reply {
        conn: u32,
        stream: u64,
        answer: Answer,
    },
    CloseConnection {
        conn: u32,
        code: u16,
        reason: String,
    },
    /// The inbound connection's certificate is bound to a verified gateway record: its bytes
    /// count against the verified part of the budget from now on.
    Verify {
        conn: u32,
    },
    Shutdown,
}

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Live counters, updated by the socket thread, read by anyone.
        #[derive(Default)]
        pub struct Stats { $(pub $name: AtomicU64,)* }
        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Clone, Default)]
        pub struct StatsSnapshot { $(pub $name: u64,)* }
        impl Stats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    connections_open,
    connections_inbound,
    connections_outbound,
    connections_closed,
    handshakes_completed,
    retries_sent,
    streams_inbound,
    streams_outbound,
    frames_received,
    frames_sent,
    acks_sent,
    errors_sent,
    acks_received,
    errors_received,
    bytes_received,
    bytes_sent,
    buffered_bytes,
    buffered_bytes_peak,
    buffered_bytes_unverified,
    connections_verified,
    queue_length,
    packets_received,
    packets_sent,
    packets_dropped,
    refused_connections_total,
    refused_connections_per_address,
    refused_busy,
    refused_too_large,
    refused_malformed,
    refused_timeout,
    handshake_timeouts,
);

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Connection and request ids: allocated by whoever issues commands, possibly on another thread.
#[derive(Debug)]
pub struct Ids {
    conns: AtomicU32,
    requests: AtomicU32,
}

impl Ids {
    /// The id of a connection about to be opened with [`Command::Connect`].
    pub fn conn(&self) -> u32 {
        self.conns.fetch_add(1, Ordering::Relaxed)
    }

    /// The id of a request about to be sent with [`Command::Send`].
    pub fn request(&self) -> u32 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }
}

impl Endpoint {
    /// Bind `bind` and set the endpoint up. `listen`: accept inbound connections (else only
    /// outbound ones are made).
    pub fn bind(
        bind: SocketAddr,
        listen: bool,
        cert_pem: &[u8],
        key_pem: &[u8],
        limits: Limits,
    ) -> Result<Endpoint, String> {
        let config = tls::build_config(cert_pem, key_pem, &limits).map_err(|e| e.to_string())?;
        let secrets = Secrets::new(key_pem).map_err(|e| e.to_string())?;
        let socket = bind_socket(bind).map_err(|e| format!("cannot bind UDP {bind}: {e}"))?;
        let local_addr = socket.local_addr().map_err(|e| e.to_string())?;
        let gro = udp::enable_gro(&socket);
        udp::set_dont_fragment(&socket, local_addr.is_ipv6());
        let budget = Budget::new(&limits);
        Ok(Endpoint {
            socket,
            local_addr,
            listen,
            config,
            limits,
            secrets,
            unknown_left: MAX_UNKNOWN_PER_SWEEP,
            stats: Arc::new(Stats::default()),
            ids: Arc::new(Ids {
                conns: AtomicU32::new(1),
                requests: AtomicU32::new(1),
            }),
            conns: HashMap::new(),
            touched: HashSet::new(),
            unsent: HashSet::new(),
            starved: false,
            gone: 0,
            by_cid: HashMap::new(),
            per_address: HashMap::new(),
            recently_closed: VecDeque::new(),
            inbound_count: 0,
            refusing: 0,
            budget,
            queued: 0,
            events: Vec::new(),
            pages: Pages::default(),
            buf: vec![0u8; 65535],
            out: vec![0u8; GSO_BYTES],
            next_sweep: Instant::now() + SWEEP,
            shutting_down: false,
            gso: cfg!(target_os = "linux"),
            gro,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The live counters (shared: readable from any thread).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The id allocator (shared: commands may be prepared on another thread).
    pub fn ids(&self) -> &Arc<Ids> {
        &self.ids
    }

    /// The UDP socket, for the driver to wait on (readable).
    pub fn socket_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// True once [`Command::Shutdown`] has been applied and settled: every connection is
    /// reported closed, the driver stops.
    pub fn is_shut_down(&self) -> bool {
        self.shutting_down && self.conns.is_empty()
    }

    /// The driver hands the first `n` events of each batch over on their own (see
    /// [`Batch::split_off`]).
    pub fn split_batches_at(&mut self, n: usize) {
        self.pages.split_at(n);
    }

    /// The events produced so far, in order, with the pages their small message bodies are in.
    pub fn take_events(&mut self) -> Batch {
        Batch {
            events: std::mem::take(&mut self.events),
            pages: self.pages.take(),
        }
    }

    /// How long the driver may wait for the socket before calling [`turn`](Self::turn) anyway
    /// (quiche's timers and this endpoint's own deadlines); `None`: no connection, no timer.
    pub fn timeout(&self) -> Option<Duration> {
        if self.conns.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut timeout = self.next_sweep.saturating_duration_since(now);
        for c in self.conns.values() {
            if let Some(t) = c.q.timeout_instant() {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
        }
        Some(timeout)
    }

    /// Read every waiting datagram, run expired timers and process what arrived: the events
    /// are ready, the packets are not sent yet. The driver hands the events over and then
    /// calls [`settle`](Self::settle), so that the ACKs of what arrived leave in the packets
    /// that carry the answers, not in packets of their own.
    pub fn turn(&mut self) {
        self.read_socket();
        let now = Instant::now();
        for c in self.conns.values_mut() {
            if c.q.timeout_instant().is_some_and(|t| t <= now) {
                c.q.on_timeout();
                self.touched.insert(c.id);
            }
        }
        if now >= self.next_sweep {
            self.sweep(now);
            self.touch_all();
            self.next_sweep = now + SWEEP;
        }
        self.process_touched();
    }

    /// Read and write stream data, send every pending packet, report closed connections.
    pub fn settle(&mut self) {
        self.process_touched();
        let ids: Vec<u32> = self.unsent.drain().collect();
        // Counters first: a peer may read them as soon as it sees these packets.
        self.publish();
        self.flush(&ids);
        // On shutdown the CONNECTION_CLOSE packets have just been sent: do not wait for the
        // draining period (RFC 9000 §10.2.2), report every connection closed now.
        self.reap(&ids, self.shutting_down);
        self.publish();
    }

    /// True when a [`settle`](Self::settle) has something to do: connections touched, or
    /// processed with their packets not sent yet.
    pub fn needs_settle(&self) -> bool {
        !self.touched.is_empty()
            || !self.unsent.is_empty()
            || (self.budget.released && !self.budget.blocked.is_empty())
    }

    /// Read and write the stream data of the touched connections; their packets wait for the
    /// next settle. Connections waiting for budget are looked at again once some was released.
    fn process_touched(&mut self) {
        if self.budget.released {
            self.budget.released = false;
            self.touched.extend(self.budget.blocked.drain());
        }
        let touched: Vec<u32> = self.touched.drain().collect();
        self.process_streams(&touched);
        self.unsent.extend(touched);
    }

    fn touch_all(&mut self) {
        self.touched.extend(self.conns.keys().copied());
    }

    /// After a bug (a panic) in the endpoint: report every connection closed, so that no
    /// request waits forever, and forget them.
    pub fn abandon(&mut self) {
        self.shutting_down = true;
        self.reap(&[], true);
    }
}

fn bind_socket(bind: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&bind.into())?;
    Ok(UdpSocket::from_std(s.into()))
}

/// quiche's stream buffers are [`Bytes`]: what the application sends is handed to quiche
/// without a copy (`stream_send_zc`), and quiche keeps views of it until the peer has
/// acknowledged it.
#[derive(Debug, Clone, Default)]
struct SharedBufs;

impl quiche::BufFactory for SharedBufs {
    type Buf = Bytes;
    type DgramBuf = Vec<u8>;

    fn buf_from_slice(buf: &[u8]) -> Bytes {
        Bytes::copy_from_slice(buf)
    }

    fn dgram_buf_from_slice(buf: &[u8]) -> Vec<u8> {
        buf.to_vec()
    }
}

type Quic = quiche::Connection<SharedBufs>;

/// Bytes being written to a stream (a frame, or raw bytes in tests), then FIN if `fin`.
struct OutBuf {
    data: Bytes,
    fin: bool,
}

impl OutBuf {
    fn new(bytes: Vec<u8>, fin: bool) -> Self {
        OutBuf {
            data: Bytes::from(bytes),
            fin,
        }
    }

    /// Write as much as quiche takes; `Ok(true)` when everything (and FIN) is written.
    fn write(&mut self, q: &mut Quic, sid: u64) -> Result<bool, quiche::Error> {
        let sent = if self.data.is_empty() {
            if !self.fin {
                return Ok(true);
            }
            q.stream_send(sid, &[], true).map(|_| None)
        } else {
            // quiche drops the buffer when it takes none of it: it gets a second reference.
            q.stream_send_zc(sid, self.data.clone(), self.fin)
                .map(|(_, rest)| rest)
        };
        match sent {
            Ok(None) => {
                self.data = Bytes::new();
                Ok(true)
            }
            Ok(Some(rest)) => {
                self.data = rest;
                Ok(false)
            }
            Err(quiche::Error::Done) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// An inbound stream (the peer's message).
enum InStream {
    Reading {
        dec: FrameDecoder,
        /// The declared length, reserved against the connection's window and the peer's
        /// share once the header is in (0 before).
        declared: usize,
        /// Body bytes received, charged to the shared budgets.
        held: usize,
        fin: bool,
        deadline: Instant,
    },
    /// Handed to the application, waiting for its answer.
    Delivered { declared: usize, held: usize },
    /// Writing our ACK / ERROR.
    Answering(OutBuf),
}

/// An outbound stream (our message and the peer's answer).
struct Request {
    request: u32,
    out: Option<OutBuf>,
    dec: FrameDecoder,
    fin: bool,
    deadline: Instant,
}

struct Waiting {
    request: u32,
    bytes: Vec<u8>,
    fin: bool,
    deadline: Instant,
}

struct Conn {
    id: u32,
    q: Quic,
    inbound: bool,
    peer: SocketAddr,
    cids: Vec<Vec<u8>>,
    created: Instant,
    reported: bool,
    /// Reported closed to the application (quiche may still be draining it).
    gone: bool,
    /// Refused at accept time: closed at once, kept only to send CONNECTION_CLOSE.
    refusing: bool,
    closing_code: Option<(u16, String)>,
    ins: HashMap<u64, InStream>,
    outs: HashMap<u64, Request>,
    /// Streams with bytes left to write.
    writes: HashSet<u64>,
    /// Outbound messages waiting for the handshake or for stream credit.
    waiting: Vec<Waiting>,
    next_stream: u64,
    /// Declared lengths of its messages in progress or with the application.
    declared: usize,
    /// Their bytes received so far.
    held: usize,
    delivered: usize,
    /// The application bound its certificate to a verified gateway record.
    verified: bool,
    /// SHA-256 of the peer's certificate (inbound, once established): its share key.
    cert: Option<[u8; 32]>,
}

impl Conn {
    /// The shares this connection's messages count against: its certificate, and while it is
    /// not verified its IP address.
    fn shares(&self) -> [Option<Share>; 2] {
        [
            self.cert.map(Share::Cert),
            (!self.verified).then_some(Share::Addr(self.peer.ip())),
        ]
    }
}

/// What a peer's share is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Share {
    Cert([u8; 32]),
    Addr(IpAddr),
}

/// The message bytes the endpoint holds, and who holds them (see the module comment).
#[derive(Debug)]
struct Budget {
    max: usize,
    max_unverified: usize,
    per_peer: usize,
    window: usize,
    /// Bytes received and held (all connections), and by unverified connections.
    held: usize,
    held_unverified: usize,
    /// Declared bytes in progress per share.
    shares: HashMap<Share, usize>,
    /// Connections that stopped reading because a shared budget was full: looked at again
    /// when something is released.
    blocked: HashSet<u32>,
    released: bool,
}

impl Budget {
    fn new(l: &Limits) -> Self {
        Budget {
            max: l.max_buffered_bytes,
            max_unverified: l.unverified_buffered_bytes.min(l.max_buffered_bytes),
            per_peer: l.peer_buffered_bytes,
            window: l.connection_window,
            held: 0,
            held_unverified: 0,
            shares: HashMap::new(),
            blocked: HashSet::new(),
            released: false,
        }
    }

    /// Reserve a message's declared length against its connection's window and its peer's
    /// shares; false (nothing reserved) when it must wait. A connection or share holding
    /// nothing takes any one message (a config check keeps them above the largest).
    fn reserve(&mut self, c: &mut Conn, len: usize) -> bool {
        if c.declared > 0 && c.declared + len > self.window {
            return false;
        }
        let keys = c.shares();
        for k in keys.iter().flatten() {
            let have = self.shares.get(k).copied().unwrap_or(0);
            if have > 0 && have + len > self.per_peer {
                return false;
            }
        }
        c.declared += len;
        for k in keys.into_iter().flatten() {
            *self.shares.entry(k).or_insert(0) += len;
        }
        true
    }

    /// Bytes a (verified or not) connection may still receive before a shared budget is full.
    fn room(&self, verified: bool) -> usize {
        let total = self.max.saturating_sub(self.held);
        if verified {
            total
        } else {
            total.min(self.max_unverified.saturating_sub(self.held_unverified))
        }
    }

    /// `n` body bytes of a (verified or not) connection were received; the caller adds them
    /// to the connection's `held`.
    fn charge(&mut self, verified: bool, n: usize) {
        self.held += n;
        if !verified {
            self.held_unverified += n;
        }
    }

    /// A message of `c` is answered or refused: what it declared and held is released.
    fn release(&mut self, c: &mut Conn, declared: usize, held: usize) {
        c.declared -= declared;
        c.held -= held;
        self.held -= held;
        if !c.verified {
            self.held_unverified -= held;
        }
        for k in c.shares().into_iter().flatten() {
            if let Some(v) = self.shares.get_mut(&k) {
                *v -= declared.min(*v);
                if *v == 0 {
                    self.shares.remove(&k);
                }
            }
        }
        if declared > 0 || held > 0 {
            self.released = true;
        }
    }

    /// `c` is verified from now on: its bytes leave the unverified part, its declared bytes
    /// its address's share.
    fn verify(&mut self, c: &mut Conn) {
        if c.verified || !c.inbound {
            return;
        }
        self.held_unverified -= c.held;
        let addr = Share::Addr(c.peer.ip());
        if let Some(v) = self.shares.get_mut(&addr) {
            *v -= c.declared.min(*v);
            if *v == 0 {
                self.shares.remove(&addr);
            }
        }
        c.verified = true;
        self.released = true;
    }
}

pub struct Endpoint {
    socket: UdpSocket,
    local_addr: SocketAddr,
    listen: bool,
    config: quiche::Config,
    limits: Limits,
    secrets: Secrets,
    stats: Arc<Stats>,
    ids: Arc<Ids>,
    conns: HashMap<u32, Conn>,
    /// Connections with something to do at the next settle (a packet, a command, a timer):
    /// settling looks at these only, so idle connections cost nothing per turn.
    touched: HashSet<u32>,
    /// Connections processed since the last settle, whose packets are not sent yet.
    unsent: HashSet<u32>,
    /// A connection left stream data unread because the application queue was full: the
    /// next answer that frees a slot must look at every connection again.
    starved: bool,
    /// Connections reported closed but still draining (not counted as open).
    gone: usize,
    by_cid: HashMap<Vec<u8>, u32>,
    per_address: HashMap<IpAddr, usize>,
    recently_closed: VecDeque<(u32, (u16, String))>,
    inbound_count: usize,
    refusing: usize,
    /// Message bytes held (being received or with the application), and by whom.
    budget: Budget,
    /// Messages with the application, not yet answered.
    queued: usize,
    events: Vec<Event>,
    /// Pages of the small message bodies of `events`.
    pages: Pages,
    buf: Vec<u8>,
    out: Vec<u8>,
    next_sweep: Instant,
    shutting_down: bool,
    /// Packets for unknown connections this sweep may still look at.
    unknown_left: usize,
    /// Send with UDP_SEGMENT (turned off for good at the first refusal).
    gso: bool,
    /// The socket delivers GRO-coalesced reads.
    gro: bool,
}

fn random_cid() -> Vec<u8> {
    let mut v = vec![0u8; tls::CID_LEN];
    getrandom::fill(&mut v).expect("OS random source");
    v
}

impl Endpoint {
    fn publish(&self) {
        let s = &self.stats;
        let open = self.conns.len() - self.refusing - self.gone;
        s.connections_open.store(open as u64, Ordering::Relaxed);
        s.buffered_bytes
            .store(self.budget.held as u64, Ordering::Relaxed);
        s.buffered_bytes_peak
            .fetch_max(self.budget.held as u64, Ordering::Relaxed);
        s.buffered_bytes_unverified
            .store(self.budget.held_unverified as u64, Ordering::Relaxed);
        s.queue_length.store(self.queued as u64, Ordering::Relaxed);
    }

    /// Carry out one command of the application; its effects go out at the next
    /// [`settle`](Self::settle) or [`turn`](Self::turn).
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Connect {
                conn,
                addr,
                server_name,
            } => self.connect(conn, addr, &server_name),
            Command::Send {
                conn,
                request,
                bytes,
                fin,
            } => match self.conns.get_mut(&conn) {
                Some(c) if !c.gone && !c.q.is_closed() && c.closing_code.is_none() => {
                    self.touched.insert(conn);
                    let deadline = Instant::now() + self.limits.stream_timeout;
                    c.waiting.push(Waiting {
                        request,
                        bytes,
                        fin,
                        deadline,
                    });
                }
                other => {
                    // A connection that is closing keeps its reason (e.g. refused, peer
                    // rejected); so does a recently forgotten one, for sends the
                    // application issued before it heard of the close.
                    let (code, reason) = match other {
                        Some(c) => close_reason(c),
                        None => self
                            .recently_closed
                            .iter()
                            .find(|(id, _)| *id == conn)
                            .map(|(_, r)| r.clone())
                            .unwrap_or((code::CLOSED, "no such open connection".into())),
                    };
                    self.events.push(Event::Response {
                        conn,
                        request,
                        outcome: Outcome::Error { code, reason },
                    })
                }
            },
            Command::Reply {
                conn,
                stream,
                answer,
            } => self.reply(conn, stream, answer),
            Command::Verify { conn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if !c.verified && c.inbound {
                        bump(&self.stats.connections_verified);
                    }
                    self.budget.verify(c);
                    self.touched.insert(conn);
                }
            }
            Command::CloseConnection { conn, code, reason } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    close(c, code, &reason);
                    self.touched.insert(conn);
                }
            }
            Command::Shutdown => {
                self.shutting_down = true;
                for c in self.conns.values_mut() {
                    close(c, code::SHUTDOWN, "endpoint shutting down");
                }
                self.touch_all();
            }
        }
    }

    fn connect(&mut self, id: u32, addr: SocketAddr, server_name: &str) {
        let fail = |ep: &mut Endpoint, reason: String| {
            ep.events.push(Event::Closed {
                conn: id,
                inbound: false,
                code: code::CONNECTION_REFUSED,
                reason,
            })
        };
        if self.shutting_down {
            return fail(self, "endpoint shutting down".into());
        }
        if self.conns.len() >= self.limits.max_connections {
            return fail(self, "local connection limit reached".into());
        }
        let scid = random_cid();
        let sni = if server_name.is_empty() || server_name.parse::<IpAddr>().is_ok() {
            None
        } else {
            Some(server_name)
        };
        // Only a server announces a stateless reset token in its transport parameters.
        self.config.set_stateless_reset_token(None);
        let q = match quiche::connect_with_buffer_factory(
            sni,
            &quiche::ConnectionId::from_ref(&scid),
            self.local_addr,
            addr,
            &mut self.config,
        ) {
            Ok(q) => q,
            Err(e) => return fail(self, format!("cannot start the connection: {e}")),
        };
        bump(&self.stats.connections_outbound);
        self.by_cid.insert(scid.clone(), id);
        self.conns.insert(id, new_conn(id, q, false, addr, scid));
        self.touched.insert(id);
    }

    fn reply(&mut self, conn: u32, stream: u64, answer: Answer) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(&InStream::Delivered { declared, held }) = c.ins.get(&stream) else {
            return;
        };
        self.budget.release(c, declared, held);
        c.delivered -= 1;
        self.queued -= 1;
        let frame = match answer {
            Answer::Ack(frame) => {
                bump(&self.stats.acks_sent);
                frame
            }
            Answer::Error(frame) => {
                bump(&self.stats.errors_sent);
                frame
            }
        };
        c.ins
            .insert(stream, InStream::Answering(OutBuf::new(frame, true)));
        c.writes.insert(stream);
        self.touched.insert(conn);
        self.release_starved();
    }

    fn read_socket(&mut self) {
        loop {
            let got = if self.gro {
                udp::recv_gro(&self.socket, &mut self.buf)
            } else {
                self.socket
                    .recv_from(&mut self.buf)
                    .map(|(n, from)| (n, from, None))
            };
            let (len, from, segment) = match got {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors surface here on Linux (e.g. port unreachable): not fatal.
                Err(_) => return,
            };
            // With GRO one read may hold several packets of `segment` bytes (the last shorter).
            let segment = segment.unwrap_or(len).max(1);
            let mut buf = std::mem::take(&mut self.buf);
            let mut off = 0;
            while off < len {
                let end = (off + segment).min(len);
                bump(&self.stats.packets_received);
                self.datagram(&mut buf[off..end], from);
                off = end;
            }
            self.buf = buf;
        }
    }

    fn datagram(&mut self, pkt: &mut [u8], from: SocketAddr) {
        let hdr = match quiche::Header::from_slice(pkt, tls::CID_LEN) {
            Ok(h) => h,
            Err(_) => return bump(&self.stats.packets_dropped),
        };
        let mut id = self.by_cid.get(hdr.dcid.as_ref()).copied();
        if id.is_none() && hdr.ty == quiche::Type::Initial {
            id = self
                .by_cid
                .get(&self.secrets.derive_cid(&hdr.dcid))
                .copied();
        }
        let id = match id {
            Some(id) => id,
            None if hdr.ty == quiche::Type::Short => {
                let dcid = hdr.dcid.to_vec();
                return self.unknown_short_packet(&dcid, pkt, from);
            }
            None => match self.accept(&hdr, pkt, from) {
                Some(id) => id,
                None => return,
            },
        };
        let local = self.local_addr;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.q.recv(pkt, quiche::RecvInfo { from, to: local }).is_err() {
            bump(&self.stats.packets_dropped);
        }
        self.touched.insert(id);
    }

    /// A packet for no known connection: maybe a new inbound connection. Returns its id.
    /// A short-header packet for no connection id this endpoint knows. It may be a stateless
    /// reset from a peer that restarted: its connection id is random, so it is offered to the
    /// outbound connections to that address, and quiche closes the one whose peer's reset token
    /// it carries. Otherwise it is a packet for a connection this endpoint no longer has, and is
    /// answered with a stateless reset. At most [`MAX_UNKNOWN_PER_SWEEP`] such packets per
    /// sweep are looked at.
    fn unknown_short_packet(&mut self, dcid: &[u8], pkt: &[u8], from: SocketAddr) {
        bump(&self.stats.packets_dropped);
        if self.unknown_left == 0 {
            return;
        }
        self.unknown_left -= 1;
        let to = self.local_addr;
        let mut closed = false;
        for c in self.conns.values_mut() {
            if c.inbound || c.peer != from || c.q.is_closed() {
                continue;
            }
            // quiche works on the packet in place: each connection gets a copy.
            let _ = c.q.recv(&mut pkt.to_vec(), quiche::RecvInfo { from, to });
            if c.q.is_closed() {
                closed = true;
                c.closing_code = Some((code::CLOSED, "reset by the peer (it restarted)".into()));
                self.touched.insert(c.id);
            }
        }
        if !closed {
            self.stateless_reset(dcid, pkt.len(), from);
        }
    }

    /// RFC 9000 §10.3: a packet for a connection this endpoint does not know (it was restarted,
    /// or has forgotten the connection) is answered with a stateless reset, which closes the
    /// sender's connection at once instead of at its idle timeout. The token is the one this
    /// endpoint gave for that connection id (see [`Secrets::reset_token`]); a peer that never
    /// had a connection with this gateway key ignores it. Shorter than the packet it answers,
    /// so it amplifies nothing.
    fn stateless_reset(&mut self, dcid: &[u8], len: usize, to: SocketAddr) {
        if len <= MIN_RESET_LEN || dcid.len() != tls::CID_LEN {
            return;
        }
        let n = (len - 1).min(MAX_RESET_LEN);
        let mut reset = [0u8; MAX_RESET_LEN];
        getrandom::fill(&mut reset[..n - 16]).expect("OS random source");
        reset[0] = 0x40 | (reset[0] & 0x3f); // a short header: fixed bit set, long bit clear
        reset[n - 16..n].copy_from_slice(&self.secrets.reset_token(dcid).to_be_bytes());
        if self.socket.send_to(&reset[..n], to).is_ok() {
            bump(&self.stats.packets_sent);
        }
    }

    fn accept(&mut self, hdr: &quiche::Header<'_>, pkt: &[u8], from: SocketAddr) -> Option<u32> {
        if !self.listen || self.shutting_down || hdr.ty != quiche::Type::Initial {
            bump(&self.stats.packets_dropped);
            return None;
        }
        if !quiche::version_is_supported(hdr.version) {
            if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.out) {
                let _ = self.socket.send_to(&self.out[..n], from);
            }
            return None;
        }
        // RFC 9000 §14.1: a client's Initial is padded to at least 1200 bytes.
        if pkt.len() < 1200 {
            bump(&self.stats.packets_dropped);
            return None;
        }
        let refuse_reason = if self.inbound_count >= self.limits.max_connections
            || self.conns.len() >= self.limits.max_connections
        {
            bump(&self.stats.refused_connections_total);
            Some("connection limit reached")
        } else if self.per_address.get(&from.ip()).copied().unwrap_or(0)
            >= self.limits.max_connections_per_address
        {
            bump(&self.stats.refused_connections_per_address);
            Some("connection limit per address reached")
        } else {
            None
        };
        if refuse_reason.is_some() && self.refusing >= MAX_REFUSING {
            bump(&self.stats.packets_dropped);
            return None;
        }
        let token = hdr.token.as_deref().unwrap_or(&[]);
        let mut odcid = None;
        let scid;
        if refuse_reason.is_none() && self.inbound_count >= self.limits.retry_threshold {
            if token.is_empty() {
                let new_scid = self.secrets.derive_cid(&hdr.dcid);
                let token = self.secrets.mint_token(&from, &hdr.dcid);
                if let Ok(n) = quiche::retry(
                    &hdr.scid,
                    &hdr.dcid,
                    &quiche::ConnectionId::from_ref(&new_scid),
                    &token,
                    hdr.version,
                    &mut self.out,
                ) {
                    bump(&self.stats.retries_sent);
                    let _ = self.socket.send_to(&self.out[..n], from);
                }
                return None;
            }
            match self.secrets.validate_token(&from, token) {
                Some(o) => odcid = Some(o),
                None => {
                    bump(&self.stats.packets_dropped);
                    return None;
                }
            }
            scid = hdr.dcid.to_vec();
        } else {
            scid = self.secrets.derive_cid(&hdr.dcid);
        }
        let odcid = odcid.map(quiche::ConnectionId::from_vec);
        self.config
            .set_stateless_reset_token(Some(self.secrets.reset_token(&scid)));
        let q = quiche::accept_with_buf_factory(
            &quiche::ConnectionId::from_ref(&scid),
            odcid.as_ref(),
            self.local_addr,
            from,
            &mut self.config,
        )
        .ok()?;
        let id = self.ids.conn();
        let mut c = new_conn(id, q, true, from, scid.clone());
        if let Some(reason) = refuse_reason {
            c.refusing = true;
            self.refusing += 1;
            // Closed as soon as the Initial is processed (see process_streams).
            c.closing_code = Some((code::CONNECTION_REFUSED, reason.into()));
        } else {
            self.inbound_count += 1;
            *self.per_address.entry(from.ip()).or_insert(0) += 1;
            bump(&self.stats.connections_inbound);
        }
        self.by_cid.insert(scid, id);
        self.conns.insert(id, c);
        Some(id)
    }

    /// Handshake timeouts and stream deadlines (the timers quiche does not run).
    fn sweep(&mut self, now: Instant) {
        self.unknown_left = MAX_UNKNOWN_PER_SWEEP;
        let hs = self.limits.handshake_timeout;
        for c in self.conns.values_mut() {
            if !c.q.is_established() && !c.q.is_closed() && now >= c.created + hs {
                bump(&self.stats.handshake_timeouts);
                close(c, code::HANDSHAKE_TIMEOUT, "handshake timeout");
                continue;
            }
            // Inbound: a message not complete in time.
            let late: Vec<u64> = c
                .ins
                .iter()
                .filter(
                    |(_, s)| matches!(s, InStream::Reading { deadline, .. } if *deadline <= now),
                )
                .map(|(sid, _)| *sid)
                .collect();
            for sid in late {
                bump(&self.stats.refused_timeout);
                refuse(
                    c,
                    &mut self.budget,
                    sid,
                    code::TIMEOUT,
                    "message not received within the stream timeout",
                );
            }
            // Outbound: no answer in time.
            let late: Vec<u64> = c
                .outs
                .iter()
                .filter(|(_, r)| r.deadline <= now)
                .map(|(sid, _)| *sid)
                .collect();
            for sid in late {
                let r = c.outs.remove(&sid).expect("listed");
                c.writes.remove(&sid);
                let _ =
                    c.q.stream_shutdown(sid, quiche::Shutdown::Write, code::TIMEOUT.into());
                let _ =
                    c.q.stream_shutdown(sid, quiche::Shutdown::Read, code::TIMEOUT.into());
                self.events.push(Event::Response {
                    conn: c.id,
                    request: r.request,
                    outcome: Outcome::Error {
                        code: code::TIMEOUT,
                        reason: "no answer within the stream timeout".into(),
                    },
                });
            }
            let id = c.id;
            let events = &mut self.events;
            c.waiting.retain(|w| {
                if w.deadline > now {
                    return true;
                }
                events.push(Event::Response {
                    conn: id,
                    request: w.request,
                    outcome: Outcome::Error {
                        code: code::TIMEOUT,
                        reason: "no stream credit or handshake within the stream timeout".into(),
                    },
                });
                false
            });
        }
    }

    fn process_streams(&mut self, ids: &[u32]) {
        // The map is taken out (process_conn needs the endpoint too) rather than each entry
        // moved out and back: a connection is several kilobytes.
        let mut conns = std::mem::take(&mut self.conns);
        for id in ids {
            if let Some(c) = conns.get_mut(id) {
                self.process_conn(c);
            }
        }
        self.conns = conns;
    }

    /// An answer or a closed connection freed a slot of the application queue: connections
    /// left unread while it was full are looked at again.
    fn release_starved(&mut self) {
        if self.starved && self.queued < self.limits.queue_depth {
            self.starved = false;
            self.touch_all();
        }
    }

    fn process_conn(&mut self, c: &mut Conn) {
        if let Some((code, reason)) = &c.closing_code {
            // A refused connection is closed once its handshake completes: before that, an
            // application close loses its code (RFC 9000 §10.2.3) and quiche cannot send a
            // transport close the client could read (the server's flight is not out yet).
            // The refusing set is capped (MAX_REFUSING) and the handshake timeout applies.
            let waiting_handshake = c.refusing
                && !c.q.is_established()
                && c.created.elapsed() < self.limits.handshake_timeout;
            if !waiting_handshake {
                let _ = c.q.close(true, u64::from(*code), reason.as_bytes());
            }
            return;
        }
        if c.gone || c.q.is_closed() || !c.q.is_established() {
            return;
        }
        if !c.reported {
            c.reported = true;
            if c.inbound {
                c.cert = c.q.peer_cert().map(|der| Sha256::digest(der).into());
            }
            bump(&self.stats.handshakes_completed);
            self.events.push(Event::Connected {
                conn: c.id,
                inbound: c.inbound,
                peer: c.peer,
                peer_cert: c.q.peer_cert().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
        self.open_streams(c);
        let readable: Vec<u64> = c.q.readable().collect();
        for sid in readable {
            if c.outs.contains_key(&sid) {
                self.read_response(c, sid);
            } else if c.inbound && sid % 4 == 0 {
                self.read_message(c, sid);
            } else if let Some(InStream::Reading { .. }) | None = c.ins.get(&sid) {
                // A stream we did not expect (server-initiated, or an answer to a request
                // already given up): discard it.
                let _ =
                    c.q.stream_shutdown(sid, quiche::Shutdown::Read, code::MALFORMED.into());
            }
        }
        let writes: Vec<u64> = c.writes.iter().copied().collect();
        for sid in writes {
            let done = if let Some(InStream::Answering(out)) = c.ins.get_mut(&sid) {
                match out.write(&mut c.q, sid) {
                    Ok(false) => false,
                    Ok(true) | Err(_) => {
                        c.ins.remove(&sid);
                        true
                    }
                }
            } else if let Some(r) = c.outs.get_mut(&sid) {
                match r.out.as_mut().map(|o| o.write(&mut c.q, sid)) {
                    Some(Ok(false)) => false,
                    Some(Ok(true)) | None => {
                        r.out = None;
                        true
                    }
                    // STOP_SENDING from the peer: its ERROR frame may still be readable.
                    Some(Err(_)) => {
                        r.out = None;
                        true
                    }
                }
            } else {
                true
            };
            if done {
                c.writes.remove(&sid);
            }
        }
    }

    /// Start waiting outbound messages on new streams, as far as the peer's stream credit goes.
    fn open_streams(&mut self, c: &mut Conn) {
        if c.waiting.is_empty() {
            return;
        }
        let credit = c.q.peer_streams_left_bidi() as usize;
        let n = credit.min(c.waiting.len());
        for Waiting {
            request,
            bytes,
            fin,
            ..
        } in c.waiting.drain(..n)
        {
            let sid = c.next_stream;
            c.next_stream += 4;
            bump(&self.stats.streams_outbound);
            bump(&self.stats.frames_sent);
            self.stats
                .bytes_sent
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            c.outs.insert(
                sid,
                Request {
                    request,
                    out: Some(OutBuf::new(bytes, fin)),
                    dec: FrameDecoder::new(Expect::Response),
                    fin: false,
                    deadline: Instant::now() + self.limits.stream_timeout,
                },
            );
            c.writes.insert(sid);
        }
    }

    fn read_message(&mut self, c: &mut Conn, sid: u64) {
        let behind = self.queued >= self.limits.queue_depth;
        if !c.ins.contains_key(&sid) {
            bump(&self.stats.streams_inbound);
            if behind {
                bump(&self.stats.refused_busy);
                refuse(c, &mut self.budget, sid, code::BUSY, "receiver busy");
                return;
            }
            c.ins.insert(
                sid,
                InStream::Reading {
                    dec: FrameDecoder::new(Expect::Message {
                        max: self.limits.max_frame_bytes,
                    }),
                    declared: 0,
                    held: 0,
                    fin: false,
                    deadline: Instant::now() + self.limits.stream_timeout,
                },
            );
        }
        let verified = c.verified;
        let Some(InStream::Reading { declared, held, .. }) = c.ins.get_mut(&sid) else {
            // Data after a complete frame was checked before delivery; anything else here is
            // a late packet for a stream being answered.
            let mut sink = [0u8; 512];
            while let Ok((_, false)) = c.q.stream_recv(sid, &mut sink) {}
            return;
        };
        let (mut declared_now, mut held_now) = (*declared, *held);
        if behind {
            // Backpressure: leave the bytes in quiche, extend no credit.
            self.starved = true;
            return;
        }
        let mut paged = None;
        let result: Result<bool, (u16, String)> = loop {
            let Some(InStream::Reading { dec, fin, .. }) = c.ins.get_mut(&sid) else {
                unreachable!("reading");
            };
            let need = dec.need();
            if *fin && matches!(need, Need::Header(_) | Need::Body(_)) {
                break Err((code::MALFORMED, frame::FrameError::Truncated.to_string()));
            }
            let read = match need {
                Need::Header(n) => {
                    let mut h = [0u8; frame::HEADER_LEN];
                    c.q.stream_recv(sid, &mut h[..n])
                        .map(|(k, f)| (k, f, dec.feed(&h[..k]).map(|_| ())))
                }
                Need::Reserve { len, .. } => {
                    // Nothing held yet: a full shared budget answers BUSY now (retry later).
                    if self.budget.room(verified) == 0 {
                        bump(&self.stats.refused_busy);
                        break Err((code::BUSY, "receiver memory budget full".into()));
                    }
                    // Its own connection window or its peer's share: it waits unread (no
                    // credit extended) until one of the peer's messages is answered.
                    if !self.budget.reserve(c, len) {
                        self.budget.blocked.insert(c.id);
                        break Ok(false);
                    }
                    declared_now = len;
                    let Some(InStream::Reading { dec, declared, .. }) = c.ins.get_mut(&sid) else {
                        unreachable!("reading");
                    };
                    *declared = len;
                    let small = len <= self.budget.room(verified);
                    match small
                        .then(|| {
                            read_small_body(&mut self.pages, self.events.len(), &mut c.q, sid, len)
                        })
                        .flatten()
                    {
                        None => {
                            dec.start_body();
                            continue;
                        }
                        Some(Ok(SmallRead::Paged(at))) => {
                            dec.body_read_elsewhere();
                            paged = Some(at);
                            self.budget.charge(verified, len);
                            c.held += len;
                            held_now += len;
                            Ok((len, true, Ok(())))
                        }
                        Some(Ok(SmallRead::Unfinished(bytes))) => {
                            dec.start_body();
                            let fed = dec.feed(&bytes).map(|_| ());
                            let k = bytes.len();
                            self.budget.charge(verified, k);
                            c.held += k;
                            held_now += k;
                            Ok((k, false, fed))
                        }
                        Some(Err(e)) => Err(e),
                    }
                }
                Need::Body(n) => {
                    let room = self.budget.room(verified);
                    if room == 0 {
                        // A shared budget is full: this message keeps what it has and waits.
                        self.budget.blocked.insert(c.id);
                        break Ok(false);
                    }
                    let want = n.min(room);
                    let body = dec.body_for(want).expect("started");
                    let got =
                        c.q.stream_recv_buf(sid, &mut (&mut *body).limit(want))
                            .map(|(k, f)| (k, f, Ok(())));
                    if let Ok((k, _, _)) = got {
                        self.budget.charge(verified, k);
                        c.held += k;
                        held_now += k;
                    }
                    got
                }
                Need::End => {
                    if *fin || c.q.stream_finished(sid) {
                        break Ok(true);
                    }
                    let mut extra = [0u8; 1];
                    c.q.stream_recv(sid, &mut extra).map(|(k, f)| {
                        let r = if k > 0 {
                            Err(frame::FrameError::Trailing)
                        } else {
                            Ok(())
                        };
                        (k, f, r)
                    })
                }
            };
            if let Some(InStream::Reading { held, .. }) = c.ins.get_mut(&sid) {
                *held = held_now;
            }
            match read {
                Ok((k, f, decoded)) => {
                    if let Some(InStream::Reading { fin, .. }) = c.ins.get_mut(&sid) {
                        *fin |= f;
                    }
                    self.stats
                        .bytes_received
                        .fetch_add(k as u64, Ordering::Relaxed);
                    if let Err(e) = decoded {
                        break Err((e.code(), e.to_string()));
                    }
                    if k == 0 && !f {
                        break Ok(false);
                    }
                }
                Err(quiche::Error::Done) => break Ok(false),
                Err(quiche::Error::StreamReset(e)) => {
                    break Err((code::RESET, format!("stream reset by the peer (code {e})")))
                }
                Err(e) => break Err((code::MALFORMED, e.to_string())),
            }
        };
        if let Some(InStream::Reading { declared, held, .. }) = c.ins.get_mut(&sid) {
            *declared = declared_now;
            *held = held_now;
        }
        match result {
            Ok(false) => {}
            Ok(true) => {
                let Some(InStream::Reading {
                    dec,
                    declared,
                    held,
                    ..
                }) = c.ins.remove(&sid)
                else {
                    unreachable!("reading");
                };
                let (_, body) = dec.finish().expect("complete frame");
                let data = paged.unwrap_or(Payload::Owned(body));
                bump(&self.stats.frames_received);
                c.ins.insert(sid, InStream::Delivered { declared, held });
                c.delivered += 1;
                self.queued += 1;
                self.events.push(Event::Message {
                    conn: c.id,
                    stream: sid,
                    data,
                });
            }
            Err((code, reason)) => {
                match code {
                    code::TOO_LARGE => bump(&self.stats.refused_too_large),
                    code::BUSY | code::RESET => {}
                    _ => bump(&self.stats.refused_malformed),
                }
                refuse(c, &mut self.budget, sid, code, &reason);
            }
        }
    }

    fn read_response(&mut self, c: &mut Conn, sid: u64) {
        let r = c.outs.get_mut(&sid).expect("checked");
        let result: Result<bool, (u16, String)> = loop {
            let need = r.dec.need();
            if r.fin && matches!(need, Need::Header(_) | Need::Body(_)) {
                break Err((code::MALFORMED, "truncated answer".into()));
            }
            let want = match need {
                Need::Reserve { .. } => {
                    r.dec.start_body();
                    continue;
                }
                Need::End if r.fin || c.q.stream_finished(sid) => break Ok(true),
                Need::Header(n) | Need::Body(n) => n,
                Need::End => 1,
            };
            let mut tmp = [0u8; 4096];
            let want = want.min(tmp.len());
            match c.q.stream_recv(sid, &mut tmp[..want]) {
                Ok((k, f)) => {
                    r.fin |= f;
                    if let Err(e) = r.dec.feed(&tmp[..k]) {
                        break Err((code::MALFORMED, format!("bad answer: {e}")));
                    }
                    if k == 0 && !f {
                        break Ok(false);
                    }
                }
                Err(quiche::Error::Done) => break Ok(false),
                Err(quiche::Error::StreamReset(e)) => {
                    break Err((code::RESET, format!("stream reset by the peer (code {e})")))
                }
                Err(e) => break Err((code::MALFORMED, e.to_string())),
            }
        };
        let outcome = match result {
            Ok(false) => return,
            Ok(true) => {
                let dec = std::mem::replace(&mut r.dec, FrameDecoder::new(Expect::Response));
                match dec.finish() {
                    Ok((frame::TYPE_ACK, body)) => {
                        bump(&self.stats.acks_received);
                        Outcome::Ack(body)
                    }
                    Ok((_, body)) => {
                        bump(&self.stats.errors_received);
                        match frame::decode_error_body(&body) {
                            Ok((code, reason)) => Outcome::Error { code, reason },
                            Err(e) => Outcome::Error {
                                code: code::MALFORMED,
                                reason: format!("bad answer: {e}"),
                            },
                        }
                    }
                    Err(e) => Outcome::Error {
                        code: code::MALFORMED,
                        reason: format!("bad answer: {e}"),
                    },
                }
            }
            Err((code, reason)) => {
                let _ =
                    c.q.stream_shutdown(sid, quiche::Shutdown::Read, code.into());
                Outcome::Error { code, reason }
            }
        };
        let r = c.outs.remove(&sid).expect("present");
        if r.out.is_some() {
            // Answered before we finished sending (an early ERROR): stop sending.
            let _ =
                c.q.stream_shutdown(sid, quiche::Shutdown::Write, code::REFUSED.into());
            c.writes.remove(&sid);
        }
        self.events.push(Event::Response {
            conn: c.id,
            request: r.request,
            outcome,
        });
    }

    /// Send the pending packets of connections `ids`: with GSO, up to [`udp::MAX_SEGMENTS`]
    /// packets of one connection per system call.
    fn flush(&mut self, ids: &[u32]) {
        let batch = if self.gso { GSO_BATCH } else { 1 };
        for id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            let mut done = false;
            while !done {
                let mut off = 0;
                let mut count = 0;
                let mut segment = 0;
                let mut to = None;
                while count < batch {
                    // One GSO send carries at most one UDP payload's worth (64 KiB).
                    let room = if count == 0 {
                        tls::MAX_DATAGRAM
                    } else {
                        segment
                    };
                    if off + room > GSO_BYTES {
                        break;
                    }
                    let (n, info) = match c.q.send(&mut self.out[off..off + room]) {
                        Ok(v) => v,
                        Err(quiche::Error::Done) => {
                            done = true;
                            break;
                        }
                        Err(_) => {
                            let _ = c.q.close(false, 0x1, b"send failed");
                            done = true;
                            break;
                        }
                    };
                    if count > 0 && (n > segment || to != Some(info.to)) {
                        // Not a valid continuation of this GSO batch: send what came before,
                        // then start a new batch with this packet.
                        self.gso = send_batch(
                            &self.socket,
                            &self.out[..off],
                            segment,
                            to.expect("set"),
                            self.gso,
                            &self.stats,
                        );
                        self.out.copy_within(off..off + n, 0);
                        off = 0;
                        count = 0;
                    }
                    if count == 0 {
                        segment = n;
                        to = Some(info.to);
                    }
                    off += n;
                    count += 1;
                    if n < segment {
                        break; // a short packet ends a batch
                    }
                }
                if let Some(to) = to {
                    self.gso = send_batch(
                        &self.socket,
                        &self.out[..off],
                        segment,
                        to,
                        self.gso,
                        &self.stats,
                    );
                }
            }
        }
    }

    /// Report connections that are closing (closed, draining, or closed by either side) to
    /// the application at once, failing their pending requests; forget them once quiche is
    /// done with them (after the draining period, RFC 9000 §10.2), or now when `all`.
    /// `ids`: the connections to look at (every one when `all`).
    fn reap(&mut self, ids: &[u32], all: bool) {
        let ids: Vec<u32> = if all {
            self.conns.keys().copied().collect()
        } else {
            ids.to_vec()
        };
        let mut freed = false;
        for id in &ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            let ending = all
                || c.q.is_closed()
                || c.q.is_draining()
                || c.q.peer_error().is_some()
                || c.q.local_error().is_some();
            if c.gone || c.refusing || !ending {
                continue;
            }
            c.gone = true;
            self.gone += 1;
            freed |= c.delivered > 0;
            let (declared, held) = (c.declared, c.held);
            self.budget.release(c, declared, held);
            self.queued -= c.delivered;
            c.delivered = 0;
            bump(&self.stats.connections_closed);
            let (code, reason) = close_reason(c);
            let requests = c
                .outs
                .drain()
                .map(|(_, r)| r.request)
                .chain(c.waiting.drain(..).map(|w| w.request));
            for request in requests {
                self.events.push(Event::Response {
                    conn: c.id,
                    request,
                    outcome: Outcome::Error {
                        code,
                        reason: reason.clone(),
                    },
                });
            }
            c.ins.clear();
            c.writes.clear();
            self.events.push(Event::Closed {
                conn: c.id,
                inbound: c.inbound,
                code,
                reason,
            });
        }
        if freed {
            self.release_starved();
        }
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            if !(all || c.q.is_closed()) {
                continue;
            }
            let c = self.conns.remove(&id).expect("present");
            if c.gone && !c.refusing {
                self.gone -= 1;
            }
            if !c.refusing {
                if self.recently_closed.len() >= RECENTLY_CLOSED {
                    self.recently_closed.pop_front();
                }
                self.recently_closed.push_back((id, close_reason(&c)));
            }
            for cid in &c.cids {
                self.by_cid.remove(cid);
            }
            if c.refusing {
                self.refusing -= 1;
            } else if c.inbound {
                self.inbound_count -= 1;
                if let Some(n) = self.per_address.get_mut(&c.peer.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_address.remove(&c.peer.ip());
                    }
                }
            }
        }
    }
}

/// Send packets of `segment` bytes (the last may be shorter) to `to`: one GSO call when `gso`,
/// else one call per packet. Returns whether GSO stays usable. A full kernel buffer loses the
/// packets, which quiche's loss recovery sends again (as quiche-server does).
fn send_batch(
    socket: &UdpSocket,
    buf: &[u8],
    segment: usize,
    to: SocketAddr,
    gso: bool,
    stats: &Stats,
) -> bool {
    let packets = buf.len().div_ceil(segment.max(1)) as u64;
    let mut keep = gso;
    if gso {
        match udp::send_gso(socket, buf, segment, &to) {
            Ok(_) => {
                stats.packets_sent.fetch_add(packets, Ordering::Relaxed);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            // The kernel or the device does not do UDP GSO: per-packet sends from now on.
            Err(e)
                if e.raw_os_error() == Some(libc::EIO)
                    || e.raw_os_error() == Some(libc::EINVAL)
                    || e.kind() == io::ErrorKind::Unsupported =>
            {
                keep = false
            }
            // Anything else (e.g. an unreachable peer): try packet by packet this once.
            Err(_) => {}
        }
    }
    for chunk in buf.chunks(segment.max(1)) {
        match socket.send_to(chunk, to) {
            Ok(_) => bump(&stats.packets_sent),
            Err(_) => break,
        }
    }
    keep
}

fn new_conn(id: u32, q: Quic, inbound: bool, peer: SocketAddr, cid: Vec<u8>) -> Conn {
    Conn {
        id,
        q,
        inbound,
        peer,
        cids: vec![cid],
        created: Instant::now(),
        reported: false,
        gone: false,
        refusing: false,
        closing_code: None,
        ins: HashMap::new(),
        outs: HashMap::new(),
        writes: HashSet::new(),
        waiting: Vec::new(),
        next_stream: 0,
        declared: 0,
        held: 0,
        delivered: 0,
        verified: false,
        cert: None,
    }
}

/// Ask for the connection to be closed with `code` (done in `process_conn`).
fn close(c: &mut Conn, code: u16, reason: &str) {
    if c.closing_code.is_none() && !c.q.is_closed() {
        c.closing_code = Some((code, reason.to_owned()));
    }
}

/// Answer an inbound stream with an ERROR now, stop the peer's sending (STOP_SENDING with the
/// same code) and release the stream's reservation.
/// What [`read_small_body`] read.
enum SmallRead {
    /// The whole body and the stream's FIN, in a shared page.
    Paged(Payload),
    /// The whole body but no FIN yet (it, or bytes that make the stream malformed, may
    /// follow): the bytes, for the stream's own buffer.
    Unfinished(Vec<u8>),
}

/// Read a message body of `len` bytes of stream `sid` into a shared page (see
/// [`super::batch`]) when it is small and quiche holds all of it; `None`, with nothing read,
/// otherwise.
fn read_small_body(
    pages: &mut Pages,
    event: usize,
    q: &mut Quic,
    sid: u64,
    len: usize,
) -> Option<Result<SmallRead, quiche::Error>> {
    if len == 0 || len > SMALL_BODY || q.stream_readable_len(sid, len) < len {
        return None;
    }
    let (page, buf) = pages.room(len, event);
    let off = buf.len();
    let read = q.stream_recv_buf(sid, &mut (&mut *buf).limit(len));
    Some(read.map(|(n, fin)| {
        if n == len && fin {
            SmallRead::Paged(Payload::Paged {
                page,
                off: off as u32,
                len: len as u32,
            })
        } else {
            SmallRead::Unfinished(buf.drain(off..).collect())
        }
    }))
}

fn refuse(c: &mut Conn, budget: &mut Budget, sid: u64, code: u16, reason: &str) {
    if let Some(&InStream::Reading { declared, held, .. }) = c.ins.get(&sid) {
        budget.release(c, declared, held);
    }
    c.ins.insert(
        sid,
        InStream::Answering(OutBuf::new(frame::encode_error(code, reason), true)),
    );
    c.writes.insert(sid);
    let _ =
        c.q.stream_shutdown(sid, quiche::Shutdown::Read, code.into());
}

/// The code and reason reported for a closed connection (and its pending requests).
fn close_reason(c: &Conn) -> (u16, String) {
    if let Some((code, reason)) = &c.closing_code {
        return (*code, reason.clone());
    }
    if let Some(e) = c.q.peer_error() {
        let reason = String::from_utf8_lossy(&e.reason).into_owned();
        let code = match (e.is_app, e.error_code) {
            (true, n) if n <= u64::from(u16::MAX) && n != 0 => n as u16,
            (false, 0x02) => code::CONNECTION_REFUSED,
            _ => code::CLOSED,
        };
        return (code, format!("closed by the peer: {reason}"));
    }
    if c.q.is_timed_out() {
        return (code::TIMEOUT, "idle timeout".into());
    }
    if let Some(e) = c.q.local_error() {
        return (
            code::CLOSED,
            format!("closed locally (error {})", e.error_code),
        );
    }
    (code::CLOSED, "connection closed".into())
}
