//! AfterSMTP native core: mechanisms only (cryptography, QUIC, buffers), no policy.
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use sha2::Digest;

/// SHA-256 of `data`.
#[napi]
pub fn sha256(data: Buffer) -> Buffer {
    sha2::Sha256::digest(&data).to_vec().into()
}
