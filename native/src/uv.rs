//! The few libuv calls that let native work run on Node's own event loop: watch a socket,
//! keep a timer, and run a hook each time before the loop waits for I/O.
//!
//! Node exports libuv's API to addons, but the Rust tests link this crate into executables
//! without Node: the functions are therefore looked up at run time in the host process
//! (`dlsym(RTLD_DEFAULT)`), once, and a missing one is an error, not a link failure.
//! Handles are allocated with `uv_handle_size` (no struct layout is assumed beyond libuv's
//! documented first field, `void *data`) and freed by their close callback.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// libuv's `uv_handle_type` values (uv.h, stable since libuv 1.0).
const UV_POLL: c_int = 8;
const UV_PREPARE: c_int = 9;
const UV_TIMER: c_int = 13;
/// `uv_poll_event`.
pub const UV_READABLE: c_int = 1;

pub type Loop = c_void;
pub type Handle = c_void;
pub type PollCb = unsafe extern "C" fn(*mut Handle, c_int, c_int);
pub type HandleCb = unsafe extern "C" fn(*mut Handle);

struct Api {
    poll_init: unsafe extern "C" fn(*mut Loop, *mut Handle, c_int) -> c_int,
    poll_start: unsafe extern "C" fn(*mut Handle, c_int, PollCb) -> c_int,
    timer_init: unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int,
    timer_start: unsafe extern "C" fn(*mut Handle, HandleCb, u64, u64) -> c_int,
    timer_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    prepare_init: unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int,
    prepare_start: unsafe extern "C" fn(*mut Handle, HandleCb) -> c_int,
    close: unsafe extern "C" fn(*mut Handle, HandleCb),
    unref: unsafe extern "C" fn(*mut Handle),
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
    /// One allocation size for the three handle kinds used here (the largest).
    handle_layout: Layout,
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        fn sym<T: Copy>(name: &CStr) -> Result<T, String> {
            // SAFETY: dlsym with a NUL-terminated name; the pointer is only transmuted to the
            // function type libuv declares for that name (uv.h).
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if p.is_null() {
                return Err(format!(
                    "libuv function {} not found: not running inside Node.js",
                    name.to_string_lossy()
                ));
            }
            Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
        }
        let handle_size: unsafe extern "C" fn(c_int) -> usize = sym(c"uv_handle_size")?;
        // SAFETY: uv_handle_size only reads its argument.
        let bytes = [UV_POLL, UV_TIMER, UV_PREPARE]
            .map(|k| unsafe { handle_size(k) })
            .into_iter()
            .max()
            .unwrap_or(0);
        Ok(Api {
            poll_init: sym(c"uv_poll_init")?,
            poll_start: sym(c"uv_poll_start")?,
            timer_init: sym(c"uv_timer_init")?,
            timer_start: sym(c"uv_timer_start")?,
            timer_stop: sym(c"uv_timer_stop")?,
            prepare_init: sym(c"uv_prepare_init")?,
            prepare_start: sym(c"uv_prepare_start")?,
            close: sym(c"uv_close")?,
            unref: sym(c"uv_unref")?,
            strerror: sym(c"uv_strerror")?,
            handle_layout: Layout::from_size_align(bytes.max(64), 16).map_err(|e| e.to_string())?,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn check(a: &Api, rc: c_int, what: &str) -> Result<(), String> {
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: uv_strerror returns a static NUL-terminated string for any code.
    let msg = unsafe { CStr::from_ptr((a.strerror)(rc)) };
    Err(format!("{what}: {}", msg.to_string_lossy()))
}

/// Zeroed memory for one handle, with its `data` set.
unsafe fn alloc_handle(a: &Api, data: *mut c_void) -> *mut Handle {
    let h = std::alloc::alloc_zeroed(a.handle_layout);
    if h.is_null() {
        std::alloc::handle_alloc_error(a.handle_layout);
    }
    // libuv: `void* data` is the first member of every handle, for the user.
    *h.cast::<*mut c_void>() = data;
    h.cast()
}

/// The close callback: the only place handle memory is released.
unsafe extern "C" fn free_handle(h: *mut Handle) {
    if let Ok(a) = api() {
        std::alloc::dealloc(h.cast(), a.handle_layout);
    }
}

/// A socket watcher, a timer and a before-wait hook on one loop; their callbacks receive the
/// `data` given to [`start`](Self::start) as the handle's first field. The owner must
/// [`close`](Self::close) them (on the loop's thread).
pub struct Hooks {
    api: &'static Api,
    poll: *mut Handle,
    timer: *mut Handle,
    prepare: *mut Handle,
    on_timer: HandleCb,
    open: bool,
}

/// The `data` pointer given to [`Hooks::start`], read in a callback.
///
/// # Safety
/// `h` is a handle made by [`Hooks::start`], in one of its callbacks.
pub unsafe fn handle_data(h: *mut Handle) -> *mut c_void {
    *h.cast::<*mut c_void>()
}

impl Hooks {
    /// Watch `fd` for reading (`on_readable`), run `on_prepare` each time before the loop
    /// waits, and create the timer (`on_timer`, armed with [`set_timer`](Self::set_timer)).
    /// Only the socket watcher keeps the loop (the process) alive.
    ///
    /// # Safety
    /// `event_loop` is the running loop of the calling thread; every later call on these hooks
    /// happens on that thread; `data` stays valid until [`close`](Self::close).
    pub unsafe fn start(
        event_loop: *mut Loop,
        fd: c_int,
        data: *mut c_void,
        on_readable: PollCb,
        on_timer: HandleCb,
        on_prepare: HandleCb,
    ) -> Result<Hooks, String> {
        let a = api()?;
        let poll = alloc_handle(a, data);
        let timer = alloc_handle(a, data);
        let prepare = alloc_handle(a, data);
        let init = check(a, (a.poll_init)(event_loop, poll, fd), "uv_poll_init");
        if let Err(e) = init {
            // Nothing is registered with the loop yet: plain frees.
            for h in [poll, timer, prepare] {
                free_handle(h);
            }
            return Err(e);
        }
        // uv_timer_init and uv_prepare_init cannot fail (libuv: they only initialise fields).
        (a.timer_init)(event_loop, timer);
        (a.prepare_init)(event_loop, prepare);
        let mut hooks = Hooks {
            api: a,
            poll,
            timer,
            prepare,
            on_timer,
            open: true,
        };
        let started = check(
            a,
            (a.poll_start)(poll, UV_READABLE, on_readable),
            "uv_poll_start",
        )
        .and_then(|()| {
            check(
                a,
                (a.prepare_start)(prepare, on_prepare),
                "uv_prepare_start",
            )
        });
        if let Err(e) = started {
            hooks.close();
            return Err(e);
        }
        (a.unref)(prepare);
        (a.unref)(timer);
        Ok(hooks)
    }

    /// Fire the timer callback once after `ms` milliseconds (replacing any earlier setting), or
    /// never (`None`).
    pub fn set_timer(&self, ms: Option<u64>) {
        if !self.open {
            return;
        }
        // SAFETY: the handle is open and this is its loop's thread (see `start`).
        unsafe {
            match ms {
                Some(ms) => (self.api.timer_start)(self.timer, self.on_timer, ms, 0),
                None => (self.api.timer_stop)(self.timer),
            };
        }
    }

    /// Stop every callback and release the handles (their memory once libuv is done with
    /// them). Idempotent.
    pub fn close(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        // SAFETY: the handles are open and this is their loop's thread (see `start`). After
        // uv_close no callback but the close callback (which frees the memory) runs.
        unsafe {
            for h in [self.poll, self.timer, self.prepare] {
                (self.api.close)(h, free_handle);
            }
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.close();
    }
}

/// The calling thread's libuv loop, as N-API gives it.
///
/// # Safety
/// `env` is the current N-API environment.
pub unsafe fn event_loop(env: napi::sys::napi_env) -> Result<*mut Loop, String> {
    let mut l: *mut napi::sys::uv_loop_s = std::ptr::null_mut();
    let status = napi::sys::napi_get_uv_event_loop(env, &mut l);
    if status != napi::sys::Status::napi_ok || l.is_null() {
        return Err(format!("napi_get_uv_event_loop failed ({status})"));
    }
    Ok(l.cast())
}
