//! AfterSMTP native core: mechanisms only (cryptography, QUIC, buffers), no policy.
//!
//! - [`crypto`]: pure-Rust primitives with typed errors (used by tests and benchmarks).
//! - `napi_api`: the thin N-API layer (JS names are the camelCased Rust names).
//! - [`quic`]: the AMP QUIC endpoint (quiche); `napi_quic` is its N-API class, which runs it on
//!   Node's event loop (`node_loop`, over the libuv calls in `uv`).
//! - `background`: the scheduling class of the CPU-heavy work on libuv's thread pool.
#![deny(unsafe_code)]

mod background;
pub mod crypto;
mod napi_api;
mod napi_quic;
mod node_loop;
pub mod quic;
mod uv;

pub use napi_api::*;
