//! The AMP gateway-to-gateway transport: a QUIC endpoint (quiche, BoringSSL) on its own thread.
//!
//! - [`frame`]: the stream framing (one MESSAGE per bidirectional stream, answered by one ACK or
//!   ERROR on the same stream), with its bounded incremental decoder.
//! - [`tls`]: TLS 1.3 / transport configuration and stateless Retry tokens.
//! - [`endpoint`]: one endpoint's socket work (recv / process / send / timeout, after quiche's
//!   `apps/src/bin/quiche-server.rs`), server and client roles on one UDP socket, and every
//!   cap (connections in total and per address, streams, frame size, buffered bytes, the
//!   bounded queue to the application, handshake / idle / stream timeouts, Retry under load).
//!   It has no thread: a driver runs it, Node's event loop (`napi_quic`) or [`thread`].
//! - [`thread`]: an endpoint on a thread of its own, for Rust users and tests.
//!
//! The endpoint is mechanism only: it hands the peer's certificate to the application, which
//! decides (DID check) and may close the connection; it hands every complete frame to the
//! application and sends back whatever ACK or ERROR the application answers.
pub mod batch;
pub mod endpoint;
pub mod frame;
pub mod thread;
pub mod tls;
mod udp;

pub use batch::{Batch, Payload};
pub use endpoint::{Answer, Command, Endpoint, Event, Ids, Outcome, Stats, StatsSnapshot};
pub use thread::{spawn, EndpointHandle, EventSink};

use std::time::Duration;

/// The ALPN of AMP over QUIC (docs/PROTOCOL.md).
pub const ALPN: &[u8] = b"amp/1";
/// The default UDP port of AMP over QUIC.
pub const DEFAULT_PORT: u16 = 4434;

/// Hard caps of one endpoint. Defaults match docs/OPERATIONS.md (AFTERSMTP_QUIC_*).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in total (inbound and outbound).
    pub max_connections: usize,
    /// Open inbound connections from one IP address.
    pub max_connections_per_address: usize,
    /// Concurrent bidirectional streams a peer may open on one connection.
    pub max_streams_per_connection: usize,
    /// Largest MESSAGE body accepted.
    pub max_frame_bytes: usize,
    /// Message bytes held by the endpoint in total (bytes of frames received so far plus frames
    /// handed to the application and not yet answered), counted as they arrive.
    pub max_buffered_bytes: usize,
    /// The part of `max_buffered_bytes` that connections not yet verified (see
    /// [`Command::Verify`]) may hold together.
    pub unverified_buffered_bytes: usize,
    /// Declared message bytes one peer may have in progress: per certificate, and for
    /// unverified connections also per IP address. A message that does not fit waits unread.
    pub peer_buffered_bytes: usize,
    /// Message bytes one connection may hold (also its QUIC flow-control window).
    pub connection_window: usize,
    /// Frames handed to the application and not yet answered: the bounded queue.
    pub queue_depth: usize,
    /// Inbound connections above which Retry (address validation) is required; 0: always.
    pub retry_threshold: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// A MESSAGE must arrive completely within this time of its stream's first byte, and an
    /// outbound message must be answered within it.
    pub stream_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_address: 16,
            max_streams_per_connection: 256,
            max_frame_bytes: 32 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            unverified_buffered_bytes: 64 * 1024 * 1024,
            peer_buffered_bytes: 64 * 1024 * 1024,
            connection_window: 64 * 1024 * 1024,
            queue_depth: 1024,
            retry_threshold: 256,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            stream_timeout: Duration::from_secs(30),
        }
    }
}
