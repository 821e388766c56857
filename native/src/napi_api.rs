//! N-API surface: thin wrappers over [`crate::crypto`]. Every thrown error carries a stable
//! JS `code` (`ERR_CRYPTO_LENGTH`, `ERR_CRYPTO_AUTH`, `ERR_CRYPTO_KEY`, `ERR_CRYPTO_PARAM`,
//! `ERR_CRYPTO_RNG`). Secret keys stay inside the Rust objects and are wiped when the JS
//! object is garbage-collected.
use crate::crypto::{aead, ed25519, hash, hpke, mldsa, mlkem, rand, x25519, xwing, CryptoError};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

/// Custom N-API status: its string becomes the JS error's `code` property.
#[derive(Debug, Clone, Copy)]
pub struct CryptoCode(&'static str);

impl AsRef<str> for CryptoCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// The error type of every fallible export (its status string is the JS `code`).
type JsError = napi::Error<CryptoCode>;

fn js_err(e: CryptoError) -> JsError {
    napi::Error::new(CryptoCode(e.code()), e.to_string())
}

fn to_usize(name: &str, n: i64, max: usize) -> Result<usize, JsError> {
    if n < 0 || n as u64 > max as u64 {
        return Err(js_err(CryptoError::Param(format!(
            "{name} must be an integer from 0 to {max}, got {n}"
        ))));
    }
    Ok(n as usize)
}

fn buf(bytes: &[u8]) -> Buffer {
    Buffer::from(bytes.to_vec())
}

/// SHA-256 of `data` (32 bytes).
#[napi]
pub fn sha256(data: Buffer) -> Buffer {
    buf(&hash::sha256(&data))
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand. An empty `salt` means no salt.
/// `length` must be 0..=8160 (255 * 32), else `ERR_CRYPTO_PARAM`.
#[napi]
pub fn hkdf_sha256(
    ikm: Buffer,
    salt: Buffer,
    info: Buffer,
    length: i64,
) -> Result<Buffer, JsError> {
    let length = to_usize("length", length, hash::HKDF_SHA256_MAX_OUTPUT)?;
    hash::hkdf_sha256(&ikm, &salt, &info, length)
        .map(Buffer::from)
        .map_err(js_err)
}

/// AEAD encryption: returns `ciphertext || tag` (16-byte tag).
/// `key` is 32 bytes and `nonce` 12 bytes (`ERR_CRYPTO_LENGTH` otherwise); an unknown `alg`
/// is `ERR_CRYPTO_PARAM`. Never reuse a nonce with the same key.
#[napi]
pub fn aead_seal(
    #[napi(ts_arg_type = "'chacha20-poly1305' | 'aes-256-gcm'")] alg: String,
    key: Buffer,
    nonce: Buffer,
    aad: Buffer,
    plaintext: Buffer,
) -> Result<Buffer, JsError> {
    let alg = aead::AeadAlg::parse(&alg).map_err(js_err)?;
    aead::seal(alg, &key, &nonce, &aad, &plaintext)
        .map(Buffer::from)
        .map_err(js_err)
}

/// AEAD decryption of `ciphertext || tag`. Throws `ERR_CRYPTO_AUTH` if the tag does not verify
/// (wrong key, nonce, aad or tampered data), `ERR_CRYPTO_LENGTH` for a wrong-size key/nonce or
/// an input shorter than the tag.
#[napi]
pub fn aead_open(
    #[napi(ts_arg_type = "'chacha20-poly1305' | 'aes-256-gcm'")] alg: String,
    key: Buffer,
    nonce: Buffer,
    aad: Buffer,
    ciphertext_and_tag: Buffer,
) -> Result<Buffer, JsError> {
    let alg = aead::AeadAlg::parse(&alg).map_err(js_err)?;
    aead::open(alg, &key, &nonce, &aad, &ciphertext_and_tag)
        .map(Buffer::from)
        .map_err(js_err)
}

/// `n` bytes from the operating system's CSPRNG; `n` must be 0..=1048576 (1 MiB), else
/// `ERR_CRYPTO_PARAM`.
#[napi]
pub fn random_bytes(n: i64) -> Result<Buffer, JsError> {
    let n = to_usize("n", n, rand::MAX_RANDOM_BYTES)?;
    rand::random_bytes(n).map(Buffer::from).map_err(js_err)
}

/// Strict Ed25519 verification (RFC 8032 with the checks Project Wycheproof expects:
/// canonical S, canonical and non-small-order A and R). Never throws: any malformed or
/// wrong-length input returns `false`.
#[napi]
pub fn ed25519_verify(public_key: Buffer, message: Buffer, signature: Buffer) -> bool {
    ed25519::verify(&public_key, &message, &signature)
}

/// ML-DSA-65 verification (FIPS 204 ML-DSA.Verify, pure mode, with a context string of at most
/// 255 bytes). Never throws: any malformed or wrong-length input returns `false`.
#[napi]
pub fn ml_dsa65_verify(
    public_key: Buffer,
    message: Buffer,
    signature: Buffer,
    context: Buffer,
) -> bool {
    mldsa::verify(&public_key, &message, &signature, &context)
}

/// Result of a KEM encapsulation.
#[napi(object)]
pub struct KemEncapsulation {
    /// The ciphertext to send to the key holder.
    pub ciphertext: Buffer,
    /// The 32-byte shared secret to keep.
    pub shared_secret: Buffer,
}

/// ML-KEM-768 encapsulation (FIPS 203 ML-KEM.Encaps) to a 1184-byte encapsulation key.
/// The key gets the FIPS 203 input checks (modulus check: `ERR_CRYPTO_KEY`). `m` (32 bytes)
/// makes it deterministic: for known-answer tests only, never in production.
#[napi]
pub fn ml_kem768_encapsulate(
    encapsulation_key: Buffer,
    m: Option<Buffer>,
) -> Result<KemEncapsulation, JsError> {
    let out = mlkem::encapsulate(&encapsulation_key, m.as_deref()).map_err(js_err)?;
    Ok(KemEncapsulation {
        ciphertext: Buffer::from(out.ciphertext),
        shared_secret: buf(out.shared_secret.as_ref()),
    })
}

/// X-Wing encapsulation (draft-connolly-cfrg-xwing-kem) to a 1216-byte public key: a 1120-byte
/// ciphertext and a 32-byte shared secret. `eseed` (64 bytes) makes it deterministic: for
/// known-answer tests only.
#[napi]
pub fn xwing_encapsulate(
    public_key: Buffer,
    eseed: Option<Buffer>,
) -> Result<KemEncapsulation, JsError> {
    let out = xwing::encapsulate(&public_key, eseed.as_deref()).map_err(js_err)?;
    Ok(KemEncapsulation {
        ciphertext: Buffer::from(out.ciphertext),
        shared_secret: buf(out.shared_secret.as_ref()),
    })
}

/// Result of `hpkeSeal`.
#[napi(object)]
pub struct HpkeSealed {
    /// The encapsulated key: 32 bytes (DHKEM X25519) or 1120 bytes (X-Wing).
    pub enc: Buffer,
    /// The AEAD ciphertext with its 16-byte tag.
    pub ciphertext: Buffer,
}

/// HPKE (RFC 9180) Base mode, single-shot seal (sequence number 0), KDF HKDF-SHA256, AEAD
/// ChaCha20-Poly1305, KEM DHKEM(X25519, HKDF-SHA256) (0x0020, 32-byte key) or X-Wing
/// (0x647a, 1216-byte key). `info` is at most 65535 bytes. `ikmE` makes the ephemeral key
/// deterministic (DHKEM: DeriveKeyPair(ikmE), 32..=64 bytes; X-Wing: the 64-byte eseed) — for
/// known-answer tests only. An all-zero X25519 result is `ERR_CRYPTO_KEY`.
#[napi]
pub fn hpke_seal(
    #[napi(ts_arg_type = "'dhkem-x25519-hkdf-sha256' | 'x-wing'")] kem: String,
    recipient_public_key: Buffer,
    info: Buffer,
    aad: Buffer,
    plaintext: Buffer,
    ikm_e: Option<Buffer>,
) -> Result<HpkeSealed, JsError> {
    let kem = hpke::HpkeKem::parse(&kem).map_err(js_err)?;
    let out = hpke::seal(
        kem,
        &recipient_public_key,
        &info,
        &aad,
        &plaintext,
        ikm_e.as_deref(),
    )
    .map_err(js_err)?;
    Ok(HpkeSealed {
        enc: Buffer::from(out.enc),
        ciphertext: Buffer::from(out.ciphertext),
    })
}

/// An X25519 (RFC 7748) secret key held in native memory, wiped when collected.
#[napi]
pub struct X25519Key {
    inner: x25519::X25519Secret,
}

#[napi]
impl X25519Key {
    /// A fresh key from the OS CSPRNG.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: x25519::X25519Secret::generate().map_err(js_err)?,
        })
    }

    /// The key for a 32-byte secret.
    #[napi(factory)]
    pub fn from_secret(secret: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: x25519::X25519Secret::from_bytes(&secret).map_err(js_err)?,
        })
    }

    /// The 32-byte public key.
    #[napi]
    pub fn public_key(&self) -> Buffer {
        buf(&self.inner.public_key())
    }

    /// X25519 with a 32-byte peer public key. Throws `ERR_CRYPTO_KEY` if the result is all zero
    /// (low-order peer key). The raw output is not a key: feed it to a KDF.
    #[napi]
    pub fn diffie_hellman(&self, peer_public: Buffer) -> Result<Buffer, JsError> {
        let ss = self.inner.diffie_hellman(&peer_public).map_err(js_err)?;
        Ok(buf(ss.as_ref()))
    }

    /// HPKE Base-mode single-shot open with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305. `enc` is 32 bytes. Throws `ERR_CRYPTO_AUTH` when authentication fails.
    #[napi]
    pub fn hpke_open(
        &self,
        enc: Buffer,
        info: Buffer,
        aad: Buffer,
        ciphertext: Buffer,
    ) -> Result<Buffer, JsError> {
        hpke::open_x25519(&self.inner, &enc, &info, &aad, &ciphertext)
            .map(Buffer::from)
            .map_err(js_err)
    }

    /// The 32-byte secret (for an encrypted key file). Handle with care.
    #[napi]
    pub fn export_secret(&self) -> Buffer {
        buf(self.inner.to_bytes().as_ref())
    }
}

/// An Ed25519 (RFC 8032) signing key held in native memory, wiped when collected.
#[napi]
pub struct Ed25519Key {
    inner: ed25519::Ed25519Secret,
}

#[napi]
impl Ed25519Key {
    /// A fresh key from the OS CSPRNG.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: ed25519::Ed25519Secret::generate().map_err(js_err)?,
        })
    }

    /// The key for a 32-byte RFC 8032 seed.
    #[napi(factory)]
    pub fn from_seed(seed: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: ed25519::Ed25519Secret::from_seed(&seed).map_err(js_err)?,
        })
    }

    /// The 32-byte public key.
    #[napi]
    pub fn public_key(&self) -> Buffer {
        buf(&self.inner.public_key())
    }

    /// A 64-byte (deterministic) Ed25519 signature over `message`.
    #[napi]
    pub fn sign(&self, message: Buffer) -> Buffer {
        buf(&self.inner.sign(&message))
    }

    /// The 32-byte seed (for an encrypted key file). Handle with care.
    #[napi]
    pub fn export_seed(&self) -> Buffer {
        buf(self.inner.seed().as_ref())
    }
}

/// An ML-DSA-65 (FIPS 204) signing key held in native memory, wiped when collected.
#[napi]
pub struct MlDsa65Key {
    inner: mldsa::MlDsa65Secret,
}

#[napi]
impl MlDsa65Key {
    /// A fresh key from a random 32-byte seed.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: mldsa::MlDsa65Secret::generate().map_err(js_err)?,
        })
    }

    /// ML-DSA.KeyGen_internal from a 32-byte seed `xi`.
    #[napi(factory)]
    pub fn from_seed(xi: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: mldsa::MlDsa65Secret::from_seed(&xi).map_err(js_err)?,
        })
    }

    /// Import a 4032-byte expanded secret key (for Wycheproof sign_noseed vectors and legacy
    /// interop). Coefficients out of range or a `tr` that does not match the implied public key
    /// throw `ERR_CRYPTO_KEY`. Such a key has no seed to export.
    #[napi(factory)]
    pub fn from_expanded(secret_key: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: mldsa::MlDsa65Secret::from_expanded(&secret_key).map_err(js_err)?,
        })
    }

    /// The 1952-byte public key.
    #[napi]
    pub fn public_key(&self) -> Buffer {
        buf(self.inner.public_key())
    }

    /// ML-DSA.Sign (FIPS 204, pure mode) with a context string of at most 255 bytes: a
    /// 3309-byte signature. `rnd` absent = hedged with fresh randomness (recommended);
    /// `rnd` of 32 zero bytes = the deterministic variant; other 32-byte values for tests.
    #[napi]
    pub fn sign(
        &self,
        message: Buffer,
        context: Buffer,
        rnd: Option<Buffer>,
    ) -> Result<Buffer, JsError> {
        self.inner
            .sign(&message, &context, rnd.as_deref())
            .map(Buffer::from)
            .map_err(js_err)
    }

    /// The 32-byte seed. Throws `ERR_CRYPTO_KEY` for a key built with `fromExpanded`.
    #[napi]
    pub fn export_seed(&self) -> Result<Buffer, JsError> {
        let seed = self.inner.seed().map_err(js_err)?;
        Ok(buf(seed.as_ref()))
    }
}

/// An ML-KEM-768 (FIPS 203) decapsulation key held in native memory, wiped when collected.
#[napi]
pub struct MlKem768Key {
    inner: mlkem::MlKem768Secret,
}

#[napi]
impl MlKem768Key {
    /// A fresh key pair from a random 64-byte seed.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: mlkem::MlKem768Secret::generate().map_err(js_err)?,
        })
    }

    /// ML-KEM.KeyGen_internal(d, z) from the 64-byte seed `d || z`.
    #[napi(factory)]
    pub fn from_seed(dz: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: mlkem::MlKem768Secret::from_seed(&dz).map_err(js_err)?,
        })
    }

    /// Import a 2400-byte expanded decapsulation key, with the FIPS 203 decapsulation-key
    /// checks (embedded `ek` modulus check and hash check; `ERR_CRYPTO_KEY` on failure).
    /// Such a key has no seed to export.
    #[napi(factory)]
    pub fn from_expanded(decapsulation_key: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: mlkem::MlKem768Secret::from_expanded(&decapsulation_key).map_err(js_err)?,
        })
    }

    /// The 1184-byte encapsulation key.
    #[napi]
    pub fn encapsulation_key(&self) -> Buffer {
        Buffer::from(self.inner.encapsulation_key())
    }

    /// The 2400-byte expanded decapsulation key (legacy interop form). Handle with care.
    #[napi]
    pub fn expanded_decapsulation_key(&self) -> Buffer {
        buf(&self.inner.expanded_decapsulation_key())
    }

    /// ML-KEM.Decaps of a 1088-byte ciphertext: the 32-byte shared secret. A forged ciphertext
    /// yields an unrelated pseudorandom secret (implicit rejection), not an error.
    #[napi]
    pub fn decapsulate(&self, ciphertext: Buffer) -> Result<Buffer, JsError> {
        let ss = self.inner.decapsulate(&ciphertext).map_err(js_err)?;
        Ok(buf(ss.as_ref()))
    }

    /// The 64-byte seed `d || z`. Throws `ERR_CRYPTO_KEY` for a key built with `fromExpanded`.
    #[napi]
    pub fn export_seed(&self) -> Result<Buffer, JsError> {
        let seed = self.inner.seed().map_err(js_err)?;
        Ok(buf(seed.as_ref()))
    }
}

/// An X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem) decapsulation key held in
/// native memory, wiped when collected.
#[napi]
pub struct XWingKey {
    inner: xwing::XWingSecret,
}

#[napi]
impl XWingKey {
    /// A fresh key from a random 32-byte seed.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: xwing::XWingSecret::generate().map_err(js_err)?,
        })
    }

    /// The key for a 32-byte seed (the X-Wing decapsulation key).
    #[napi(factory)]
    pub fn from_seed(seed: Buffer) -> Result<Self, JsError> {
        Ok(Self {
            inner: xwing::XWingSecret::from_seed(&seed).map_err(js_err)?,
        })
    }

    /// The 1216-byte public key.
    #[napi]
    pub fn public_key(&self) -> Buffer {
        buf(self.inner.public_key())
    }

    /// X-Wing decapsulation of a 1120-byte ciphertext: the 32-byte shared secret.
    #[napi]
    pub fn decapsulate(&self, ciphertext: Buffer) -> Result<Buffer, JsError> {
        let ss = self.inner.decapsulate(&ciphertext).map_err(js_err)?;
        Ok(buf(ss.as_ref()))
    }

    /// HPKE Base-mode single-shot open with KEM X-Wing (0x647a), HKDF-SHA256,
    /// ChaCha20-Poly1305. `enc` is 1120 bytes. Throws `ERR_CRYPTO_AUTH` when authentication
    /// fails.
    #[napi]
    pub fn hpke_open(
        &self,
        enc: Buffer,
        info: Buffer,
        aad: Buffer,
        ciphertext: Buffer,
    ) -> Result<Buffer, JsError> {
        hpke::open_xwing(&self.inner, &enc, &info, &aad, &ciphertext)
            .map(Buffer::from)
            .map_err(js_err)
    }

    /// The 32-byte seed (for an encrypted key file). Handle with care.
    #[napi]
    pub fn export_seed(&self) -> Buffer {
        buf(self.inner.seed().as_ref())
    }
}
