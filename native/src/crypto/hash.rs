//! SHA-256 and HKDF-SHA256 (RFC 5869).
use super::error::{CryptoError, CryptoResult};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

/// Largest HKDF-SHA256 output: 255 * HashLen (RFC 5869 §2.3).
pub const HKDF_SHA256_MAX_OUTPUT: usize = 255 * 32;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HKDF-SHA256 extract-then-expand (RFC 5869). An empty `salt` means no salt
/// (HashLen zero bytes, which HMAC treats identically).
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], length: usize) -> CryptoResult<Vec<u8>> {
    if length > HKDF_SHA256_MAX_OUTPUT {
        return Err(CryptoError::param(format!(
            "length must be at most {HKDF_SHA256_MAX_OUTPUT} (255 * 32), got {length}"
        )));
    }
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = vec![0u8; length];
    hk.expand(info, &mut okm)
        .map_err(|_| CryptoError::param("HKDF output length"))?;
    Ok(okm)
}
