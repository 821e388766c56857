//! Pure-Rust cryptography core. The N-API layer (`crate::napi_api`) is a thin wrapper over
//! these functions, and the benchmark binary calls them directly.
//!
//! Every function bounds its inputs and returns a typed [`CryptoError`] instead of panicking.
pub mod aead;
pub mod ed25519;
pub mod error;
pub mod hash;
pub mod hashcash;
pub mod hpke;
pub mod mldsa;
pub mod mlkem;
pub mod rand;
pub mod x25519;
pub mod xwing;

pub use error::{CryptoError, CryptoResult};
