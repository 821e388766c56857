//! AEAD: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM, 32-byte keys, 12-byte nonces,
//! 16-byte tags appended to the ciphertext.
use super::error::{expect_len, CryptoError, CryptoResult};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;

/// Key size of both AEADs.
pub const KEY_LEN: usize = 32;
/// Nonce size of both AEADs.
pub const NONCE_LEN: usize = 12;
/// Tag size of both AEADs.
pub const TAG_LEN: usize = 16;

/// The supported AEAD algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadAlg {
    /// ChaCha20-Poly1305 (RFC 8439), HPKE AEAD id 0x0003.
    ChaCha20Poly1305,
    /// AES-256-GCM, HPKE AEAD id 0x0002.
    Aes256Gcm,
}

impl AeadAlg {
    /// Parse the JS algorithm name: `chacha20-poly1305` or `aes-256-gcm`.
    pub fn parse(name: &str) -> CryptoResult<Self> {
        match name {
            "chacha20-poly1305" => Ok(AeadAlg::ChaCha20Poly1305),
            "aes-256-gcm" => Ok(AeadAlg::Aes256Gcm),
            _ => Err(CryptoError::param(
                "alg must be 'chacha20-poly1305' or 'aes-256-gcm'",
            )),
        }
    }
}

fn run<C: Aead + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
    seal: bool,
) -> CryptoResult<Vec<u8>> {
    let cipher =
        C::new_from_slice(key).map_err(|_| CryptoError::length("key", "32 bytes", key.len()))?;
    let nonce = nonce
        .try_into()
        .map_err(|_| CryptoError::length("nonce", "12 bytes", nonce.len()))?;
    if seal {
        cipher
            .encrypt(nonce, payload)
            .map_err(|_| CryptoError::param("plaintext or aad too long for the AEAD"))
    } else {
        cipher
            .decrypt(nonce, payload)
            .map_err(|_| CryptoError::Auth("aeadOpen"))
    }
}

fn check(key: &[u8], nonce: &[u8]) -> CryptoResult<()> {
    expect_len("key", key, KEY_LEN)?;
    expect_len("nonce", nonce, NONCE_LEN)
}

/// Encrypt and authenticate; returns `ciphertext || tag`.
pub fn seal(
    alg: AeadAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> CryptoResult<Vec<u8>> {
    check(key, nonce)?;
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    match alg {
        AeadAlg::ChaCha20Poly1305 => run::<ChaCha20Poly1305>(key, nonce, payload, true),
        AeadAlg::Aes256Gcm => run::<Aes256Gcm>(key, nonce, payload, true),
    }
}

/// Verify and decrypt `ciphertext || tag`. Fails with `ERR_CRYPTO_AUTH` on any mismatch.
pub fn open(
    alg: AeadAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> CryptoResult<Vec<u8>> {
    check(key, nonce)?;
    if ciphertext_and_tag.len() < TAG_LEN {
        return Err(CryptoError::length(
            "ciphertextAndTag",
            "at least 16 bytes (the tag)",
            ciphertext_and_tag.len(),
        ));
    }
    let payload = Payload {
        msg: ciphertext_and_tag,
        aad,
    };
    match alg {
        AeadAlg::ChaCha20Poly1305 => run::<ChaCha20Poly1305>(key, nonce, payload, false),
        AeadAlg::Aes256Gcm => run::<Aes256Gcm>(key, nonce, payload, false),
    }
}
