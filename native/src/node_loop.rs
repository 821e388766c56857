//! A QUIC [`Endpoint`] run by Node's own event loop, on the JavaScript thread: no thread of its
//! own and no hand-off between threads.
//!
//! - The loop watches the endpoint's UDP socket; when it is readable, or the endpoint's timer
//!   fires, the endpoint takes a turn and the turn's events go to JavaScript at once, in one
//!   call through `napi_make_callback` (so promise jobs queued by the handler run before the
//!   callback returns).
//! - Commands from JavaScript (connect, send, reply, close) are applied at once. Their packets
//!   go out right after the event callback that issued them returns, or, for commands issued
//!   elsewhere, just before the loop next waits (a libuv prepare hook): every message sent in
//!   one turn of the loop shares packets with the others.
//!
//! Why not a socket thread: a message and its acknowledgement crossed threads six times per
//! round trip (socket thread to JavaScript and back, on both sides), each a wake-up of a
//! sleeping thread; on the JavaScript thread a round trip costs the two wake-ups of any
//! request over TCP. docs/ARCHITECTURE.md has the measurements.
#![allow(unsafe_code)]

use crate::quic::{Batch, Command, Endpoint, Stats};
use crate::uv::{self, Handle, Hooks};
use napi::bindgen_prelude::{Buffer, Function, JsValue, ToNapiValue};
use napi::{sys, Env};
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

/// Events of a one-connection turn handed to JavaScript before its first flush (see
/// `State::run`).
const FIRST_BATCH: usize = 8;
/// Events of a turn of several connections from which it is split (see `State::run`).
const CONVOY: usize = 256;
/// Flushes of one turn triggered by JavaScript's own commands (see `State::run`).
const MAX_ROUNDS: usize = 8;

/// A batch of events made flat for JavaScript (the layout is the caller's, see `napi_quic`):
/// the callback gets `(records, count, pages, texts)`, `records` a Float64Array reused from
/// batch to batch, `pages` and `texts` arrays (undefined when empty). The vectors are kept
/// and reused; `flatten` fills them.
#[derive(Default)]
pub struct Flat {
    pub count: u32,
    pub records: Vec<f64>,
    pub pages: Vec<Buffer>,
    pub texts: Vec<String>,
}

/// Makes a batch flat, into cleared vectors.
pub type Flatten = fn(Batch, &mut Flat);

/// Numbers the reused records array holds at first (it grows as needed).
const RECORDS_AT_FIRST: usize = 8192;

/// The JavaScript side's handle on an endpoint running on its event loop (not `Send`: it
/// stays on that thread).
pub struct NodeEndpoint {
    state: Rc<State>,
}

struct State {
    ep: RefCell<Endpoint>,
    hooks: RefCell<Option<Hooks>>,
    env: sys::napi_env,
    callback: sys::napi_ref,
    context: sys::napi_async_context,
    flatten: Flatten,
    flat: RefCell<Flat>,
    /// The reused records array (null until the first batch), its memory and length.
    records: Cell<(sys::napi_ref, *mut f64, usize)>,
    /// A callback of this endpoint is running.
    delivering: Cell<bool>,
    stats: Arc<Stats>,
    local_addr: SocketAddr,
    /// Commands applied since the endpoint last settled.
    dirty: Cell<bool>,
    /// Closed, failed, or its environment is going away: no more work, calls fail.
    stopped: Cell<bool>,
    /// The callback reference and async context are released (environment teardown).
    released: Cell<bool>,
}

impl NodeEndpoint {
    /// Run `ep` on the event loop of `env`'s thread (the calling one), handing each batch of
    /// events, as `flatten` makes it, to `callback`.
    pub fn start(
        env: &Env,
        ep: Endpoint,
        callback: &Function<'_>,
        flatten: Flatten,
    ) -> Result<Self, String> {
        // SAFETY: `env` is the environment of this call and `callback` a value of it; the
        // returned value is not `Send`, so every later use is on this thread.
        unsafe { Self::start_raw(env.raw(), ep, callback.value().value, flatten) }
    }

    unsafe fn start_raw(
        env: sys::napi_env,
        mut ep: Endpoint,
        callback: sys::napi_value,
        flatten: Flatten,
    ) -> Result<Self, String> {
        let event_loop = uv::event_loop(env)?;
        let fd = ep.socket_fd();
        ep.split_batches_at(FIRST_BATCH);
        let mut callback_ref = ptr::null_mut();
        napi_ok(
            sys::napi_create_reference(env, callback, 1, &mut callback_ref),
            "napi_create_reference",
        )?;
        let mut name = ptr::null_mut();
        let label = "AfterSMTP.QuicEndpoint";
        sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
        let mut resource = ptr::null_mut();
        sys::napi_create_object(env, &mut resource);
        let mut context = ptr::null_mut();
        napi_ok(
            sys::napi_async_init(env, resource, name, &mut context),
            "napi_async_init",
        )?;
        let state = Rc::new(State {
            stats: ep.stats(),
            local_addr: ep.local_addr(),
            ep: RefCell::new(ep),
            hooks: RefCell::new(None),
            env,
            callback: callback_ref,
            context,
            flatten,
            flat: RefCell::new(Flat::default()),
            records: Cell::new((ptr::null_mut(), ptr::null_mut(), 0)),
            delivering: Cell::new(false),
            dirty: Cell::new(false),
            stopped: Cell::new(false),
            released: Cell::new(false),
        });
        let data = Rc::as_ptr(&state) as *mut c_void;
        match Hooks::start(event_loop, fd, data, on_readable, on_timer, on_prepare) {
            Ok(h) => *state.hooks.borrow_mut() = Some(h),
            Err(e) => {
                state.release();
                return Err(e);
            }
        }
        sys::napi_add_env_cleanup_hook(env, Some(on_env_teardown), data);
        Ok(NodeEndpoint { state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Apply commands made by `f`; `None` when the endpoint has stopped.
    pub fn command<R>(&self, f: impl FnOnce(&mut Endpoint) -> R) -> Option<R> {
        let s = &self.state;
        if s.stopped.get() {
            return None;
        }
        s.dirty.set(true);
        Some(f(&mut s.ep.borrow_mut()))
    }

    /// Close every connection (pending requests and connections are reported to the callback
    /// before this returns), then stop watching the socket. Idempotent.
    pub fn close(&self) {
        let s = &self.state;
        if s.stopped.get() {
            return;
        }
        s.run(|ep| {
            ep.apply(Command::Shutdown);
            ep.settle();
        });
        s.stop();
    }
}

impl Drop for NodeEndpoint {
    /// Collected without `close()`: the connections are closed (CONNECTION_CLOSE is sent) but
    /// nothing is reported, since JavaScript must not run from a finalizer.
    fn drop(&mut self) {
        let s = &self.state;
        if s.stopped.get() {
            return;
        }
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut ep = s.ep.borrow_mut();
            ep.apply(Command::Shutdown);
            ep.settle();
        }));
        s.stop();
    }
}

fn napi_ok(status: sys::napi_status, what: &str) -> Result<(), String> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

impl State {
    /// Do `work` on the endpoint, hand its events to JavaScript, send at once what JavaScript
    /// did meanwhile (answers, new messages), and re-arm the timer.
    ///
    /// A turn's events may be handed over in two parts, what JavaScript answers to the first
    /// leaving before the second is handed over: the peer starts on those answers while this
    /// end handles the rest, so both ends work at the same time instead of in turns. A turn
    /// of one connection is split after [`FIRST_BATCH`] events; a turn of several connections
    /// only when it holds [`CONVOY`] events or more (the work in flight arrived all at once),
    /// about in half (at `FIRST_BATCH` times a power of two, where the endpoint's pages of
    /// small messages allow it). Each split costs the connections of the first part a packet.
    ///
    /// ACKs: a turn of one connection sends its ACKs at once, before JavaScript sees the
    /// events (one packet); a turn of several connections leaves them to the packets that
    /// carry the answers, since acknowledging at once would cost a packet per connection.
    ///
    /// Measured with 1 KiB messages, both ends on one 2-CPU machine (docs/ARCHITECTURE.md):
    /// one connection, 16 in flight: split at 8 rather than 4 keeps two groups of 8 in flight
    /// with half the packets; without the immediate ACK both ends take turns (1.1 CPUs busy,
    /// 140k instead of 250k msg/s). Sixteen connections, 256 in flight: unsplit, all 256
    /// messages travel as one convoy, each end idle while the other works (215k msg/s); split
    /// whenever it holds 16 events or more, 255k; from 256 on, 285k, with a third fewer
    /// packets.
    fn run(&self, work: impl FnOnce(&mut Endpoint)) {
        if self.stopped.get() {
            return;
        }
        self.dirty.set(false);
        let Some(mut events) = self.work(work) else {
            return;
        };
        let single = events.single_connection();
        if single && self.ep.borrow().needs_settle() {
            let Some(more) = self.work(Endpoint::settle) else {
                return;
            };
            events.append(more);
        }
        let count = events.events.len();
        let mut rest = if single {
            events.split_off(FIRST_BATCH)
        } else if count >= CONVOY {
            events.split_off(about_half(count))
        } else {
            Batch::default()
        };
        let mut rounds = 0;
        loop {
            self.deliver(events);
            events = std::mem::take(&mut rest);
            if self.stopped.get() {
                break;
            }
            // What JavaScript did, and the ACKs of what arrived, leave now: once for what the
            // work left unsent (a turn leaves its packets), then while JavaScript keeps issuing
            // commands.
            // A handler that keeps causing events (say, sends on a closed connection) gets them
            // a few rounds at a time, the prepare hook settling the remainder on the next turn
            // of the loop.
            let unsent = rounds == 0 && self.ep.borrow().needs_settle();
            if unsent || (self.dirty.get() && rounds < MAX_ROUNDS) {
                rounds += 1;
                self.dirty.set(false);
                let Some(more) = self.work(Endpoint::settle) else {
                    return;
                };
                events.append(more);
            }
            if events.is_empty() {
                break;
            }
        }
        self.rearm();
    }

    /// Do `work` on the endpoint and take its events; `None` after a fault (see `fail`).
    fn work(&self, work: impl FnOnce(&mut Endpoint)) -> Option<Batch> {
        let done = catch_unwind(AssertUnwindSafe(|| {
            let mut ep = self.ep.borrow_mut();
            work(&mut ep);
            ep.take_events()
        }));
        match done {
            Ok(events) => Some(events),
            Err(_) => {
                self.fail();
                None
            }
        }
    }

    /// A bug (a panic) in the endpoint: report every connection closed so that no request
    /// waits forever, and stop; later calls report the endpoint as stopped.
    fn fail(&self) {
        let events = catch_unwind(AssertUnwindSafe(|| {
            let mut ep = self.ep.borrow_mut();
            ep.abandon();
            ep.take_events()
        }));
        self.stop();
        if let Ok(events) = events {
            self.deliver(events);
        }
    }

    fn rearm(&self) {
        if self.stopped.get() {
            return;
        }
        let timeout = self.ep.borrow().timeout();
        if let Some(h) = self.hooks.borrow().as_ref() {
            h.set_timer(timeout.map(|d| d.as_nanos().div_ceil(1_000_000) as u64));
        }
    }

    /// Stop watching the socket and the timer; events can still be delivered.
    fn stop(&self) {
        self.stopped.set(true);
        if let Some(mut h) = self.hooks.borrow_mut().take() {
            h.close();
        }
    }

    /// Hand `events` to the JavaScript callback (nothing when empty). An exception the callback
    /// throws becomes an uncaught exception of the process, as from any event handler.
    fn deliver(&self, batch: Batch) {
        if batch.is_empty() || self.released.get() {
            return;
        }
        let env = self.env;
        // SAFETY: on the environment's thread (see `start`), inside a handle scope; the
        // reference and the async context are live until `release`.
        unsafe {
            let mut scope = ptr::null_mut();
            if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
                return;
            }
            let nested = self.delivering.get();
            if let Some(args) = self.arguments(batch, nested) {
                let mut func = ptr::null_mut();
                let mut recv = ptr::null_mut();
                let mut result = ptr::null_mut();
                sys::napi_get_reference_value(env, self.callback, &mut func);
                // napi_make_callback wants an object as `this`: the global one.
                sys::napi_get_global(env, &mut recv);
                self.delivering.set(true);
                let status = sys::napi_make_callback(
                    env,
                    self.context,
                    recv,
                    func,
                    args.len(),
                    args.as_ptr(),
                    &mut result,
                );
                self.delivering.set(nested);
                if status == sys::Status::napi_pending_exception {
                    let mut exc = ptr::null_mut();
                    sys::napi_get_and_clear_last_exception(env, &mut exc);
                    sys::napi_fatal_exception(env, exc);
                }
            }
            sys::napi_close_handle_scope(env, scope);
        }
    }

    /// The callback's arguments for `batch`: `(records, count, pages, texts)`. `nested`: a
    /// callback is running (JavaScript closed the endpoint from a handler) and reads the reused
    /// records array, so this batch gets one of its own.
    ///
    /// # Safety
    /// On the environment's thread, inside a handle scope.
    unsafe fn arguments(&self, batch: Batch, nested: bool) -> Option<[sys::napi_value; 4]> {
        let env = self.env;
        let mut flat = self.flat.borrow_mut();
        flat.records.clear();
        flat.pages.clear();
        flat.texts.clear();
        (self.flatten)(batch, &mut flat);
        let len = flat.records.len();
        let (array, data) = if nested {
            new_float64_array(env, len)?
        } else {
            self.reused_records(len)?
        };
        // SAFETY: `data` is the memory of a live array of at least `len` numbers (V8 does not
        // move ArrayBuffer memory), and JavaScript is not running.
        std::slice::from_raw_parts_mut(data, len).copy_from_slice(&flat.records);
        let count = u32::to_napi_value(env, flat.count).ok()?;
        let pages = optional_array(env, std::mem::take(&mut flat.pages))?;
        let texts = optional_array(env, std::mem::take(&mut flat.texts))?;
        Some([array, count, pages, texts])
    }

    /// The reused records array, grown when it holds fewer than `len` numbers.
    unsafe fn reused_records(&self, len: usize) -> Option<(sys::napi_value, *mut f64)> {
        let env = self.env;
        let (mut reference, mut data, capacity) = self.records.get();
        if reference.is_null() || len > capacity {
            let capacity = len.max(2 * capacity).max(RECORDS_AT_FIRST);
            let (array, memory) = new_float64_array(env, capacity)?;
            let mut new_reference = ptr::null_mut();
            napi_ok(
                sys::napi_create_reference(env, array, 1, &mut new_reference),
                "napi_create_reference",
            )
            .ok()?;
            if !reference.is_null() {
                sys::napi_delete_reference(env, reference);
            }
            (reference, data) = (new_reference, memory);
            self.records.set((reference, data, capacity));
        }
        let mut array = ptr::null_mut();
        napi_ok(
            sys::napi_get_reference_value(env, reference, &mut array),
            "napi_get_reference_value",
        )
        .ok()?;
        Some((array, data))
    }

    /// Release what N-API holds for this endpoint (once).
    fn release(&self) {
        if self.released.replace(true) {
            return;
        }
        // SAFETY: on the environment's thread, with the environment still alive (called from
        // `drop` or from its teardown hook, which runs first).
        unsafe {
            sys::napi_remove_env_cleanup_hook(
                self.env,
                Some(on_env_teardown),
                self as *const State as *mut c_void,
            );
            sys::napi_delete_reference(self.env, self.callback);
            let (records, _, _) = self.records.replace((ptr::null_mut(), ptr::null_mut(), 0));
            if !records.is_null() {
                sys::napi_delete_reference(self.env, records);
            }
            sys::napi_async_destroy(self.env, self.context);
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.stop();
        self.release();
    }
}

/// The split point nearest to half of `count` events among `FIRST_BATCH` times a power of two
/// (below `count`).
fn about_half(count: usize) -> usize {
    let half = count / 2;
    let mut at = FIRST_BATCH;
    while at * 2 < count && half.abs_diff(at * 2) < half.abs_diff(at) {
        at *= 2;
    }
    at
}

/// A new Float64Array of `len` numbers (not initialised: its memory comes from V8), and its
/// memory.
///
/// # Safety
/// On the environment's thread, inside a handle scope.
unsafe fn new_float64_array(env: sys::napi_env, len: usize) -> Option<(sys::napi_value, *mut f64)> {
    let mut data = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    let mut array = ptr::null_mut();
    napi_ok(
        sys::napi_create_arraybuffer(env, len * 8, &mut data, &mut buffer),
        "napi_create_arraybuffer",
    )
    .ok()?;
    napi_ok(
        sys::napi_create_typedarray(
            env,
            sys::TypedarrayType::float64_array,
            len,
            buffer,
            0,
            &mut array,
        ),
        "napi_create_typedarray",
    )
    .ok()?;
    Some((array, data.cast()))
}

/// `items` as a JavaScript array, or undefined when there are none.
///
/// # Safety
/// On the environment's thread, inside a handle scope.
unsafe fn optional_array<T: ToNapiValue>(
    env: sys::napi_env,
    items: Vec<T>,
) -> Option<sys::napi_value> {
    if items.is_empty() {
        let mut undefined = ptr::null_mut();
        sys::napi_get_undefined(env, &mut undefined);
        return Some(undefined);
    }
    Vec::to_napi_value(env, items).ok()
}

/// The state behind a handle, kept alive for the length of a callback (the JavaScript object
/// owning it may be collected meanwhile).
///
/// # Safety
/// `h` is one of the hooks of a live `State` (hooks are closed before a `State` is dropped,
/// and libuv runs no callback of a closed handle).
unsafe fn state_of(h: *mut Handle) -> Rc<State> {
    let p = uv::handle_data(h) as *const State;
    Rc::increment_strong_count(p);
    Rc::from_raw(p)
}

unsafe extern "C" fn on_readable(h: *mut Handle, _status: c_int, _events: c_int) {
    state_of(h).run(Endpoint::turn);
}

unsafe extern "C" fn on_timer(h: *mut Handle) {
    state_of(h).run(Endpoint::turn);
}

unsafe extern "C" fn on_prepare(h: *mut Handle) {
    let s = state_of(h);
    if s.dirty.get() {
        s.run(Endpoint::settle);
    }
}

/// The environment is going away (a worker thread ending, the process exiting): stop and
/// release everything while N-API still works.
unsafe extern "C" fn on_env_teardown(data: *mut c_void) {
    let s = &*(data as *const State);
    s.stop();
    s.release();
}

#[cfg(test)]
mod tests {
    use super::{about_half, FIRST_BATCH};

    #[test]
    fn turns_split_about_in_half_at_the_pages_split_points() {
        assert_eq!(FIRST_BATCH, 8);
        let cases = [
            (16, 8),
            (24, 8),
            (32, 16),
            (40, 16),
            (64, 32),
            (140, 64),
            (250, 128),
        ];
        for (count, at) in cases {
            assert_eq!(about_half(count), at, "{count} events");
        }
    }
}
