//! An [`Endpoint`] on a thread of its own, for Rust users and the Rust tests; Node runs the
//! endpoint on its own event loop instead (`napi_quic`).
//!
//! The thread waits (mio) for the socket, a command from the application or the endpoint's
//! next timer; applies the commands, takes a [`Endpoint::turn`], settles, and hands the events
//! to an [`EventSink`] in one batch.
use super::batch::Batch;
use super::endpoint::{Answer, Command, Endpoint, Event, Ids, Stats};
use super::frame;
use super::Limits;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Where events go (the Rust tests: a channel).
pub trait EventSink: Send + 'static {
    fn deliver(&mut self, batch: Batch);
}

/// Each event on its own, every message body in a buffer of its own.
impl EventSink for mpsc::Sender<Event> {
    fn deliver(&mut self, batch: Batch) {
        for e in batch.into_owned() {
            let _ = self.send(e);
        }
    }
}

/// The application's handle on a running endpoint. Dropping it shuts the endpoint down.
pub struct EndpointHandle {
    tx: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
    ids: Arc<Ids>,
    pub stats: Arc<Stats>,
    pub local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl EndpointHandle {
    /// Queue a command; false when the endpoint thread is gone (closed, or stopped by a bug).
    fn command(&self, c: Command) -> bool {
        // The waker (an eventfd write) is rung once per batch of commands, not once per
        // command: the loop clears `wake_pending` before it drains the channel.
        if self.tx.send(c).is_err() {
            return false;
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        true
    }

    /// Open a connection to `addr` (TLS SNI `server_name`); returns its id at once, or `None`
    /// when the endpoint has stopped. A `Connected` or `Closed` event follows.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Option<u32> {
        let conn = self.ids.conn();
        self.command(Command::Connect {
            conn,
            addr,
            server_name: server_name.to_owned(),
        })
        .then_some(conn)
    }

    /// Send one message on a new stream of `conn`; returns the request id that its
    /// `Response` event carries (`None`: the endpoint has stopped). Messages sent before the
    /// handshake completes wait for it.
    pub fn send(&self, conn: u32, data: Vec<u8>) -> Option<u32> {
        self.send_bytes(conn, frame::encode(frame::TYPE_MESSAGE, &data), true)
    }

    /// Like [`send`](Self::send) but `data` is written as is (no frame header), with FIN only
    /// if `fin`: for robustness tests and diagnostics (malformed and never-finished streams).
    pub fn send_raw(&self, conn: u32, data: Vec<u8>, fin: bool) -> Option<u32> {
        self.send_bytes(conn, data, fin)
    }

    fn send_bytes(&self, conn: u32, bytes: Vec<u8>, fin: bool) -> Option<u32> {
        let request = self.ids.request();
        self.command(Command::Send {
            conn,
            request,
            bytes,
            fin,
        })
        .then_some(request)
    }

    pub fn reply(&self, conn: u32, stream: u64, answer: Result<Vec<u8>, (u16, String)>) {
        // Ignored once the endpoint has stopped: the connection is gone with it.
        let answer = match answer {
            Ok(receipt) => Answer::ack(&receipt),
            Err((code, reason)) => Answer::error(code, &reason),
        };
        let _ = self.command(Command::Reply {
            conn,
            stream,
            answer,
        });
    }

    pub fn close_connection(&self, conn: u32, code: u16, reason: &str) {
        let _ = self.command(Command::CloseConnection {
            conn,
            code,
            reason: reason.to_owned(),
        });
    }

    /// Close every connection and stop the thread (idempotent; waits for the thread).
    pub fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.command(Command::Shutdown);
            let _ = t.join();
        }
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Bind `bind`, start the endpoint thread and return its handle. `listen`: accept inbound
/// connections (else only outbound ones are made).
pub fn spawn(
    bind: SocketAddr,
    listen: bool,
    cert_pem: &[u8],
    key_pem: &[u8],
    limits: Limits,
    mut sink: Box<dyn EventSink>,
) -> Result<EndpointHandle, String> {
    let mut ep = Endpoint::bind(bind, listen, cert_pem, key_pem, limits)?;
    let poll = Poll::new().map_err(|e| e.to_string())?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?);
    poll.registry()
        .register(&mut SourceFd(&ep.socket_fd()), SOCKET, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let wake_pending = Arc::new(AtomicBool::new(false));
    let (stats, ids, local_addr) = (ep.stats(), ep.ids().clone(), ep.local_addr());
    let pending = wake_pending.clone();
    let thread = std::thread::Builder::new()
        .name("amp-quic".into())
        .spawn(move || {
            // A bug must not leave the application waiting forever: if the loop panics, every
            // connection is reported closed (pending sends fail with CLOSED) and the thread
            // ends, after which the handle's calls report the endpoint as stopped.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&mut ep, poll, &rx, &pending, sink.as_mut())
            }));
            if run.is_err() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    ep.abandon();
                    sink.deliver(ep.take_events());
                }));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(EndpointHandle {
        tx,
        waker,
        wake_pending,
        ids,
        stats,
        local_addr,
        thread: Some(thread),
    })
}

fn run(
    ep: &mut Endpoint,
    mut poll: Poll,
    rx: &mpsc::Receiver<Command>,
    wake_pending: &AtomicBool,
    sink: &mut dyn EventSink,
) {
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, ep.timeout()) {
            if e.kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        wake_pending.store(false, Ordering::Release);
        while let Ok(cmd) = rx.try_recv() {
            ep.apply(cmd);
        }
        ep.turn();
        ep.settle();
        let batch = ep.take_events();
        if !batch.is_empty() {
            sink.deliver(batch);
        }
        if ep.is_shut_down() {
            break;
        }
    }
}
