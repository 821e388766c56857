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
    /// When a turn's events are all of one connection, the first [`FIRST_BATCH`] go to
    /// JavaScript on their own and their answers leave before the rest is handed over: the
    /// peer starts on them while this end handles the rest, so both ends work at the same time
    /// instead of in turns. A turn of several connections is not split: the peer has the
    /// other connections' work meanwhile, and a split would only cost each of them a packet
    /// more. (1 KiB messages, 16 in flight: 4 split every turn at 4 and stayed there; 8,
    /// and no split across connections, keeps both ends busy with packets half as many.)
    fn run(&self, work: impl FnOnce(&mut Endpoint)) {
        if self.stopped.get() {
            return;
        }
        self.dirty.set(false);
        let Some(mut events) = self.work(work) else {
            return;
        };
        let mut rest = if events.single_connection() {
            events.split_off(FIRST_BATCH)
        } else {
            Batch::default()
        };
        let mut rounds = 0;
        while !events.is_empty() && !self.stopped.get() {
            self.deliver(events);
            events = std::mem::take(&mut rest);
            // What JavaScript did leaves now; a handler that keeps causing events (say, sends on
            // a closed connection) gets them a few rounds at a time, the prepare hook settling
            // the remainder on the next turn of the loop.
            if self.dirty.get() && !self.stopped.get() && rounds < MAX_ROUNDS {
                rounds += 1;
                self.dirty.set(false);
                let Some(more) = self.work(Endpoint::settle) else {
                    return;
                };
                events.append(more);
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
