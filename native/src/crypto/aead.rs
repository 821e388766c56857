//! AEAD: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM, 32-byte keys, 12-byte nonces,
//! 16-byte tags appended to the ciphertext.
use super::error::{expect_len, CryptoError, CryptoResult};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
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

fn seal_detached<C: AeadInOut + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> CryptoResult<[u8; TAG_LEN]> {
    let cipher =
        C::new_from_slice(key).map_err(|_| CryptoError::length("key", "32 bytes", key.len()))?;
    let nonce = nonce
        .try_into()
        .map_err(|_| CryptoError::length("nonce", "12 bytes", nonce.len()))?;
    let tag = cipher
        .encrypt_inout_detached(nonce, aad, buf.into())
        .map_err(|_| CryptoError::param("plaintext or aad too long for the AEAD"))?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    Ok(out)
}

fn open_detached<C: AeadInOut + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> CryptoResult<()> {
    let cipher =
        C::new_from_slice(key).map_err(|_| CryptoError::length("key", "32 bytes", key.len()))?;
    let nonce = nonce
        .try_into()
        .map_err(|_| CryptoError::length("nonce", "12 bytes", nonce.len()))?;
    let tag = tag
        .try_into()
        .map_err(|_| CryptoError::length("tag", "16 bytes", tag.len()))?;
    cipher
        .decrypt_inout_detached(nonce, aad, buf.into(), tag)
        .map_err(|_| CryptoError::Auth("aeadOpen"))
}

/// Output size of [`seal_into`] for a plaintext of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: usize) -> usize {
    plaintext_len + TAG_LEN
}

/// [`seal`] writing `ciphertext || tag` into `out`, which must be exactly
/// `plaintext.len() + 16` bytes (no allocation: the N-API layer passes the JS Buffer).
pub fn seal_into(
    alg: AeadAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> CryptoResult<()> {
    check(key, nonce)?;
    expect_len("output", out, sealed_len(plaintext.len()))?;
    let (body, tag_out) = out.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let tag = match alg {
        AeadAlg::ChaCha20Poly1305 => seal_detached::<ChaCha20Poly1305>(key, nonce, aad, body)?,
        AeadAlg::Aes256Gcm => seal_detached::<Aes256Gcm>(key, nonce, aad, body)?,
    };
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Check the inputs of an [`open_into`] and return the plaintext size.
pub fn opened_len(key: &[u8], nonce: &[u8], ciphertext_and_tag: &[u8]) -> CryptoResult<usize> {
    check(key, nonce)?;
    ciphertext_and_tag
        .len()
        .checked_sub(TAG_LEN)
        .ok_or_else(|| {
            CryptoError::length(
                "ciphertextAndTag",
                "at least 16 bytes (the tag)",
                ciphertext_and_tag.len(),
            )
        })
}

/// [`open`] writing the plaintext into `out` (exactly `ciphertext_and_tag.len() - 16` bytes).
/// The tag is verified before anything is decrypted; on failure `out` holds no plaintext.
pub fn open_into(
    alg: AeadAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
    out: &mut [u8],
) -> CryptoResult<()> {
    let n = opened_len(key, nonce, ciphertext_and_tag)?;
    expect_len("output", out, n)?;
    let (body, tag) = ciphertext_and_tag.split_at(n);
    out.copy_from_slice(body);
    let r = match alg {
        AeadAlg::ChaCha20Poly1305 => open_detached::<ChaCha20Poly1305>(key, nonce, aad, out, tag),
        AeadAlg::Aes256Gcm => open_detached::<Aes256Gcm>(key, nonce, aad, out, tag),
    };
    if r.is_err() {
        out.fill(0);
    }
    r
}
