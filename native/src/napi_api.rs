//! N-API surface: thin wrappers over [`crate::crypto`]. Every thrown error carries a stable
//! JS `code` (`ERR_CRYPTO_LENGTH`, `ERR_CRYPTO_AUTH`, `ERR_CRYPTO_KEY`, `ERR_CRYPTO_PARAM`,
//! `ERR_CRYPTO_RNG`). Secret keys stay inside the Rust objects and are wiped when the JS
//! object is garbage-collected.
use crate::crypto::{
    aead, ed25519, hash, hashcash, hpke, mldsa, mlkem, rand, x25519, xwing, CryptoError,
};
use napi::bindgen_prelude::AsyncTask;
use napi::bindgen_prelude::BufferSlice;
use napi_derive::napi;
use out::Buffer;
use std::sync::Arc;

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

/// Output bytes: copy `bytes` into the JS Buffer that is returned (see [`out`]).
fn buf(bytes: &[u8]) -> Buffer {
    Buffer::copy(bytes)
}

/// A JS number that must be an integer in `0..=max` (else `ERR_CRYPTO_PARAM`).
fn to_int(name: &str, n: f64, max: u64) -> Result<u64, JsError> {
    if n.fract() != 0.0 || !(0.0..=max as f64).contains(&n) {
        return Err(js_err(CryptoError::Param(format!(
            "{name} must be an integer from 0 to {max}, got {n}"
        ))));
    }
    Ok(n as u64)
}

/// Validated arguments of a hashcash search.
fn hashcash_args(
    prefix: &[u8],
    bits: f64,
    start: f64,
    count: f64,
) -> Result<(u32, u64, u64), JsError> {
    let bits = to_int("bits", bits, u64::from(hashcash::MAX_BITS))? as u32;
    let start = to_int("start", start, hashcash::NONCE_LIMIT)?;
    let count = to_int("count", count, hashcash::MAX_COUNT)?;
    hashcash::validate_search(prefix, bits, start, count).map_err(js_err)?;
    Ok((bits, start, count))
}

/// Hashcash proof of work: the first nonce `n` in `[start, start + count)` such that
/// SHA-256(prefix || u64-big-endian(n)) has at least `bits` leading zero bits, or `null`.
/// `prefix` is at most 1024 bytes (`ERR_CRYPTO_LENGTH`); `bits` 1..=64, `count` at most 2^32
/// and `start + count` at most 2^53 (`ERR_CRYPTO_PARAM`). Blocks the calling thread: use
/// `hashcashSearchAsync` for large ranges.
#[napi]
pub fn hashcash_search(
    prefix: BufferSlice<'_>,
    bits: f64,
    start: f64,
    count: f64,
) -> Result<Option<f64>, JsError> {
    let (bits, start, count) = hashcash_args(&prefix, bits, start, count)?;
    let found = hashcash::search(&prefix, bits, start, count).map_err(js_err)?;
    Ok(found.map(|n| n as f64))
}

/// A hashcash search running on the libuv thread pool.
pub struct HashcashSearchTask {
    prefix: Vec<u8>,
    bits: u32,
    start: u64,
    count: u64,
}

impl napi::Task for HashcashSearchTask {
    type Output = Option<u64>;
    type JsValue = Option<f64>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        crate::background::batch_thread();
        hashcash::search(&self.prefix, self.bits, self.start, self.count)
            .map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    fn resolve(&mut self, _env: napi::Env, found: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(found.map(|n| n as f64))
    }
}

/// `hashcashSearch` on the libuv thread pool, so minting does not block the event loop (nor,
/// through `background`, preempt it). The arguments are checked before the task starts: bad
/// ones throw synchronously with the same codes as `hashcashSearch`.
#[napi(ts_return_type = "Promise<number | null>")]
pub fn hashcash_search_async(
    prefix: BufferSlice<'_>,
    bits: f64,
    start: f64,
    count: f64,
) -> Result<AsyncTask<HashcashSearchTask>, JsError> {
    let (bits, start, count) = hashcash_args(&prefix, bits, start, count)?;
    Ok(AsyncTask::new(HashcashSearchTask {
        prefix: prefix.to_vec(),
        bits,
        start,
        count,
    }))
}

/// Whether `nonce` is a hashcash stamp for `prefix` with at least `bits` leading zero bits.
/// Bad arguments throw as for `hashcashSearch` (`nonce` must be an integer below 2^53).
#[napi]
pub fn hashcash_check(prefix: BufferSlice<'_>, nonce: f64, bits: f64) -> Result<bool, JsError> {
    let bits = to_int("bits", bits, u64::from(hashcash::MAX_BITS))? as u32;
    let nonce = to_int("nonce", nonce, hashcash::NONCE_LIMIT - 1)?;
    hashcash::check(&prefix, nonce, bits).map_err(js_err)
}

/// SHA-256 of `data` (32 bytes).
#[napi]
pub fn sha256(data: BufferSlice<'_>) -> Buffer {
    buf(&hash::sha256(&data))
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand. An empty `salt` means no salt.
/// `length` must be 0..=8160 (255 * 32), else `ERR_CRYPTO_PARAM`.
#[napi]
pub fn hkdf_sha256(
    ikm: BufferSlice<'_>,
    salt: BufferSlice<'_>,
    info: BufferSlice<'_>,
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
    env: napi::Env,
    #[napi(ts_arg_type = "'chacha20-poly1305' | 'aes-256-gcm'")] alg: out::Name,
    key: BufferSlice<'_>,
    nonce: BufferSlice<'_>,
    aad: BufferSlice<'_>,
    plaintext: BufferSlice<'_>,
) -> Result<Buffer, JsError> {
    let alg = aead::AeadAlg::parse(alg.as_str()).map_err(js_err)?;
    // Written straight into the returned JS Buffer: no Rust allocation, no copy.
    out::fill_new(&env, aead::sealed_len(plaintext.len()), |o| {
        aead::seal_into(alg, &key, &nonce, &aad, &plaintext, o)
    })
}

/// AEAD decryption of `ciphertext || tag`. Throws `ERR_CRYPTO_AUTH` if the tag does not verify
/// (wrong key, nonce, aad or tampered data), `ERR_CRYPTO_LENGTH` for a wrong-size key/nonce or
/// an input shorter than the tag.
#[napi]
pub fn aead_open(
    env: napi::Env,
    #[napi(ts_arg_type = "'chacha20-poly1305' | 'aes-256-gcm'")] alg: out::Name,
    key: BufferSlice<'_>,
    nonce: BufferSlice<'_>,
    aad: BufferSlice<'_>,
    ciphertext_and_tag: BufferSlice<'_>,
) -> Result<Buffer, JsError> {
    let alg = aead::AeadAlg::parse(alg.as_str()).map_err(js_err)?;
    let n = aead::opened_len(&key, &nonce, &ciphertext_and_tag).map_err(js_err)?;
    // Decrypted straight into the returned JS Buffer (wiped if authentication fails).
    out::fill_new(&env, n, |o| {
        aead::open_into(alg, &key, &nonce, &aad, &ciphertext_and_tag, o)
    })
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
pub fn ed25519_verify(
    public_key: BufferSlice<'_>,
    message: BufferSlice<'_>,
    signature: BufferSlice<'_>,
) -> bool {
    ed25519::verify(&public_key, &message, &signature)
}

/// ML-DSA-65 verification (FIPS 204 ML-DSA.Verify, pure mode, with a context string of at most
/// 255 bytes). Never throws: any malformed or wrong-length input returns `false`.
#[napi]
pub fn ml_dsa65_verify(
    public_key: BufferSlice<'_>,
    message: BufferSlice<'_>,
    signature: BufferSlice<'_>,
    context: BufferSlice<'_>,
) -> bool {
    mldsa::verify(&public_key, &message, &signature, &context)
}

/// Result of a KEM encapsulation.
#[napi(object, object_from_js = false)]
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
    encapsulation_key: BufferSlice<'_>,
    m: Option<BufferSlice<'_>>,
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
    public_key: BufferSlice<'_>,
    eseed: Option<BufferSlice<'_>>,
) -> Result<KemEncapsulation, JsError> {
    let out = xwing::encapsulate(&public_key, eseed.as_deref()).map_err(js_err)?;
    Ok(KemEncapsulation {
        ciphertext: Buffer::from(out.ciphertext),
        shared_secret: buf(out.shared_secret.as_ref()),
    })
}

/// Result of `hpkeSeal`.
#[napi(object, object_from_js = false)]
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
    #[napi(ts_arg_type = "'dhkem-x25519-hkdf-sha256' | 'x-wing'")] kem: out::Name,
    recipient_public_key: BufferSlice<'_>,
    info: BufferSlice<'_>,
    aad: BufferSlice<'_>,
    plaintext: BufferSlice<'_>,
    ikm_e: Option<BufferSlice<'_>>,
) -> Result<HpkeSealed, JsError> {
    let kem = hpke::HpkeKem::parse(kem.as_str()).map_err(js_err)?;
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

/// An HPKE seal computed on the libuv thread pool.
pub struct HpkeSealTask {
    kem: hpke::HpkeKem,
    recipient_public_key: Vec<u8>,
    info: Vec<u8>,
    aad: Vec<u8>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    ikm_e: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl napi::Task for HpkeSealTask {
    type Output = hpke::Sealed;
    type JsValue = HpkeSealed;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        crate::background::batch_thread();
        hpke::seal(
            self.kem,
            &self.recipient_public_key,
            &self.info,
            &self.aad,
            &self.plaintext,
            self.ikm_e.as_deref().map(|v| v.as_slice()),
        )
        .map_err(|e| napi::Error::from_reason(format!("{}: {e}", e.code())))
    }

    fn resolve(&mut self, _env: napi::Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(HpkeSealed {
            enc: Buffer::from(out.enc),
            ciphertext: Buffer::from(out.ciphertext),
        })
    }
}

/// `hpkeSeal` on the libuv thread pool, so the key encapsulation (an X25519 key pair and one
/// Diffie-Hellman, about 0.08 ms of CPU; X-Wing more) does not take the event loop's thread
/// (nor, through `background`, preempt it). The KEM name is checked first and throws
/// synchronously; a failure of the seal itself (a wrong-length or low-order recipient key, a bad
/// `ikmE`) rejects with an Error whose message starts with the code `hpkeSeal` would throw.
#[napi(ts_return_type = "Promise<HpkeSealed>")]
pub fn hpke_seal_async(
    #[napi(ts_arg_type = "'dhkem-x25519-hkdf-sha256' | 'x-wing'")] kem: out::Name,
    recipient_public_key: BufferSlice<'_>,
    info: BufferSlice<'_>,
    aad: BufferSlice<'_>,
    plaintext: BufferSlice<'_>,
    ikm_e: Option<BufferSlice<'_>>,
) -> Result<AsyncTask<HpkeSealTask>, JsError> {
    let kem = hpke::HpkeKem::parse(kem.as_str()).map_err(js_err)?;
    Ok(AsyncTask::new(HpkeSealTask {
        kem,
        recipient_public_key: recipient_public_key.to_vec(),
        info: info.to_vec(),
        aad: aad.to_vec(),
        plaintext: zeroize::Zeroizing::new(plaintext.to_vec()),
        ikm_e: ikm_e.map(|v| zeroize::Zeroizing::new(v.to_vec())),
    }))
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
    pub fn from_secret(secret: BufferSlice<'_>) -> Result<Self, JsError> {
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
    pub fn diffie_hellman(&self, peer_public: BufferSlice<'_>) -> Result<Buffer, JsError> {
        let ss = self.inner.diffie_hellman(&peer_public).map_err(js_err)?;
        Ok(buf(ss.as_ref()))
    }

    /// HPKE Base-mode single-shot open with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305. `enc` is 32 bytes. Throws `ERR_CRYPTO_AUTH` when authentication fails.
    #[napi]
    pub fn hpke_open(
        &self,
        enc: BufferSlice<'_>,
        info: BufferSlice<'_>,
        aad: BufferSlice<'_>,
        ciphertext: BufferSlice<'_>,
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
    inner: Arc<ed25519::Ed25519Secret>,
}

/// An Ed25519 signature computed on the libuv thread pool.
pub struct Ed25519SignTask {
    key: Arc<ed25519::Ed25519Secret>,
    message: Vec<u8>,
}

impl napi::Task for Ed25519SignTask {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        crate::background::batch_thread();
        Ok(self.key.sign(&self.message).to_vec())
    }

    fn resolve(&mut self, _env: napi::Env, sig: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(Buffer::from(sig))
    }
}

#[napi]
impl Ed25519Key {
    /// A fresh key from the OS CSPRNG.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: Arc::new(ed25519::Ed25519Secret::generate().map_err(js_err)?),
        })
    }

    /// The key for a 32-byte RFC 8032 seed.
    #[napi(factory)]
    pub fn from_seed(seed: BufferSlice<'_>) -> Result<Self, JsError> {
        Ok(Self {
            inner: Arc::new(ed25519::Ed25519Secret::from_seed(&seed).map_err(js_err)?),
        })
    }

    /// The 32-byte public key.
    #[napi]
    pub fn public_key(&self) -> Buffer {
        buf(&self.inner.public_key())
    }

    /// A 64-byte (deterministic) Ed25519 signature over `message`.
    #[napi]
    pub fn sign(&self, message: BufferSlice<'_>) -> Buffer {
        buf(&self.inner.sign(&message))
    }

    /// `sign` on the libuv thread pool (about 0.03 ms of CPU), so that signing does not take
    /// the event loop's thread (nor, through `background`, preempt it).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn sign_async(&self, message: BufferSlice<'_>) -> AsyncTask<Ed25519SignTask> {
        AsyncTask::new(Ed25519SignTask {
            key: Arc::clone(&self.inner),
            message: message.to_vec(),
        })
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
    // Shared with `signAsync` tasks running on the thread pool.
    inner: Arc<mldsa::MlDsa65Secret>,
}

/// An ML-DSA-65 signature computed on the libuv thread pool.
pub struct MlDsa65SignTask {
    key: Arc<mldsa::MlDsa65Secret>,
    message: Vec<u8>,
    context: Vec<u8>,
    rnd: zeroize::Zeroizing<[u8; 32]>,
}

impl napi::Task for MlDsa65SignTask {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        crate::background::batch_thread();
        self.key
            .sign(&self.message, &self.context, Some(self.rnd.as_ref()))
            .map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    fn resolve(&mut self, _env: napi::Env, sig: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(Buffer::from(sig))
    }
}

#[napi]
impl MlDsa65Key {
    /// A fresh key from a random 32-byte seed.
    #[napi(factory)]
    pub fn generate() -> Result<Self, JsError> {
        Ok(Self {
            inner: Arc::new(mldsa::MlDsa65Secret::generate().map_err(js_err)?),
        })
    }

    /// ML-DSA.KeyGen_internal from a 32-byte seed `xi`.
    #[napi(factory)]
    pub fn from_seed(xi: BufferSlice<'_>) -> Result<Self, JsError> {
        Ok(Self {
            inner: Arc::new(mldsa::MlDsa65Secret::from_seed(&xi).map_err(js_err)?),
        })
    }

    /// Import a 4032-byte expanded secret key (for Wycheproof sign_noseed vectors and legacy
    /// interop). Coefficients out of range or a `tr` that does not match the implied public key
    /// throw `ERR_CRYPTO_KEY`. Such a key has no seed to export.
    #[napi(factory)]
    pub fn from_expanded(secret_key: BufferSlice<'_>) -> Result<Self, JsError> {
        Ok(Self {
            inner: Arc::new(mldsa::MlDsa65Secret::from_expanded(&secret_key).map_err(js_err)?),
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
        message: BufferSlice<'_>,
        context: BufferSlice<'_>,
        rnd: Option<BufferSlice<'_>>,
    ) -> Result<Buffer, JsError> {
        self.inner
            .sign(&message, &context, rnd.as_deref())
            .map(Buffer::from)
            .map_err(js_err)
    }

    /// `sign` on the libuv thread pool (about 0.2-1 ms of CPU per signature), so signing does
    /// not block the event loop; the pool thread does not preempt it either (`background`).
    /// Arguments are checked first: bad ones throw synchronously with the same codes as `sign`.
    /// Absent `rnd` is drawn from the OS CSPRNG before the task runs.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn sign_async(
        &self,
        message: BufferSlice<'_>,
        context: BufferSlice<'_>,
        rnd: Option<BufferSlice<'_>>,
    ) -> Result<AsyncTask<MlDsa65SignTask>, JsError> {
        if context.len() > mldsa::MAX_CONTEXT_LEN {
            return Err(js_err(CryptoError::Length {
                param: "context",
                expected: format!("at most {} bytes", mldsa::MAX_CONTEXT_LEN),
                got: context.len(),
            }));
        }
        let rnd = match rnd.as_deref() {
            Some(r) => zeroize::Zeroizing::new(<[u8; 32]>::try_from(r).map_err(|_| {
                js_err(CryptoError::Length {
                    param: "rnd",
                    expected: "32 bytes".into(),
                    got: r.len(),
                })
            })?),
            None => rand::random_secret::<32>().map_err(js_err)?,
        };
        Ok(AsyncTask::new(MlDsa65SignTask {
            key: Arc::clone(&self.inner),
            message: message.to_vec(),
            context: context.to_vec(),
            rnd,
        }))
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
    pub fn from_seed(dz: BufferSlice<'_>) -> Result<Self, JsError> {
        Ok(Self {
            inner: mlkem::MlKem768Secret::from_seed(&dz).map_err(js_err)?,
        })
    }

    /// Import a 2400-byte expanded decapsulation key, with the FIPS 203 decapsulation-key
    /// checks (embedded `ek` modulus check and hash check; `ERR_CRYPTO_KEY` on failure).
    /// Such a key has no seed to export.
    #[napi(factory)]
    pub fn from_expanded(decapsulation_key: BufferSlice<'_>) -> Result<Self, JsError> {
        Ok(Self {
            inner: mlkem::MlKem768Secret::from_expanded(&decapsulation_key).map_err(js_err)?,
        })
    }

    /// The 1184-byte encapsulation key.
    #[napi]
    pub fn encapsulation_key(&self) -> Buffer {
        buf(self.inner.encapsulation_key_ref())
    }

    /// The 2400-byte expanded decapsulation key (legacy interop form). Handle with care.
    #[napi]
    pub fn expanded_decapsulation_key(&self) -> Buffer {
        buf(self.inner.expanded_decapsulation_key_ref())
    }

    /// ML-KEM.Decaps of a 1088-byte ciphertext: the 32-byte shared secret. A forged ciphertext
    /// yields an unrelated pseudorandom secret (implicit rejection), not an error.
    #[napi]
    pub fn decapsulate(&self, ciphertext: BufferSlice<'_>) -> Result<Buffer, JsError> {
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
    pub fn from_seed(seed: BufferSlice<'_>) -> Result<Self, JsError> {
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
    pub fn decapsulate(&self, ciphertext: BufferSlice<'_>) -> Result<Buffer, JsError> {
        let ss = self.inner.decapsulate(&ciphertext).map_err(js_err)?;
        Ok(buf(ss.as_ref()))
    }

    /// HPKE Base-mode single-shot open with KEM X-Wing (0x647a), HKDF-SHA256,
    /// ChaCha20-Poly1305. `enc` is 1120 bytes. Throws `ERR_CRYPTO_AUTH` when authentication
    /// fails.
    #[napi]
    pub fn hpke_open(
        &self,
        enc: BufferSlice<'_>,
        info: BufferSlice<'_>,
        aad: BufferSlice<'_>,
        ciphertext: BufferSlice<'_>,
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

/// How bytes cross the N-API boundary: the one place that decides it.
///
/// **Inputs** are [`BufferSlice`] parameters: one `napi_get_buffer_info` call and a borrowed
/// `&[u8]` into the caller's Buffer (or any `Uint8Array`) for the duration of the synchronous
/// call. Nothing is copied and no `napi_ref` is created (napi-rs's `Buffer` parameter type
/// creates and later deletes a reference per argument, which is what an async task needs and
/// a synchronous call does not).
///
/// **Outputs** are this module's [`Buffer`], named like napi-rs's so that the generated
/// `index.d.ts` still says `Buffer` (napi-rs maps types by name). Three ways, by size and origin:
/// - AEAD seal/open: **no copy at all**. [`fill_new`] creates the JS Buffer with
///   `napi_create_buffer` at the exact output size and the cipher writes into it in place.
/// - Other outputs under [`EXTERNAL_MIN`] (64 KiB: every key, signature, KEM ciphertext, hash,
///   shared secret, HPKE output, HKDF output): **one copy** into a fresh JS-owned Buffer with
///   `napi_create_buffer_copy`. Measured: an external Buffer (napi-rs `Buffer::from(Vec)`)
///   costs a boxed owner, a finalizer and a weak callback per call, about 0.5 µs more than a
///   copy of a few KiB. Outputs up to 64 bytes are built inline (no heap); secret outputs
///   (seeds, shared secrets, exported keys) are wiped on the Rust side once copied.
/// - [`EXTERNAL_MIN`] bytes and more (only `randomBytes` can produce such a `Vec` today):
///   **zero copy**, the `Vec` is handed to V8 as an external Buffer and freed by its finalizer,
///   because at that size the copy would cost more than the finalizer.
///
/// Short algorithm names (`'aes-256-gcm'`, `'x-wing'`) are read as [`Name`]: one N-API call
/// into a stack buffer, no `String` allocation.
#[allow(unsafe_code)] // the N-API calls below; each is documented at its use
pub(crate) mod out {
    use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValueType};
    use napi::{check_status, sys};
    use std::ptr;
    use zeroize::{Zeroize, Zeroizing};

    /// Outputs of at least this many bytes are handed to JS without a copy (external Buffer).
    pub const EXTERNAL_MIN: usize = 64 * 1024;
    /// Outputs up to this many bytes are built inline, without a heap allocation.
    const INLINE_MAX: usize = 64;

    enum Bytes {
        /// A JS Buffer already created (and filled) by [`fill_new`].
        Js(sys::napi_value),
        Inline {
            len: u8,
            data: [u8; INLINE_MAX],
        },
        Owned(Vec<u8>),
        Secret(Zeroizing<Vec<u8>>),
    }

    /// Bytes returned to JavaScript as a Node.js `Buffer` (see the module comment).
    pub struct Buffer(Bytes);

    impl Buffer {
        /// A copy of `bytes` (inline when short); the Rust-side copy is wiped after conversion.
        pub fn copy(bytes: &[u8]) -> Self {
            if bytes.len() <= INLINE_MAX {
                let mut data = [0u8; INLINE_MAX];
                data[..bytes.len()].copy_from_slice(bytes);
                Buffer(Bytes::Inline {
                    len: bytes.len() as u8,
                    data,
                })
            } else {
                Buffer(Bytes::Secret(Zeroizing::new(bytes.to_vec())))
            }
        }

        fn as_slice(&self) -> &[u8] {
            match &self.0 {
                Bytes::Js(_) => &[],
                Bytes::Inline { len, data } => &data[..*len as usize],
                Bytes::Owned(v) => v,
                Bytes::Secret(v) => v,
            }
        }
    }

    /// A short algorithm-name argument (`'aes-256-gcm'`, `'x-wing'`, ...), read with one
    /// `napi_get_value_string_latin1` call into a stack buffer instead of a heap `String`.
    /// Longer or non-Latin-1 strings come out as names that match no algorithm, so the caller
    /// still throws its usual `ERR_CRYPTO_PARAM`.
    pub struct Name {
        len: usize,
        data: [u8; 64],
    }

    impl Name {
        /// The name, or `""` when it was too long or not ASCII.
        pub fn as_str(&self) -> &str {
            std::str::from_utf8(&self.data[..self.len]).unwrap_or("")
        }
    }

    impl TypeName for Name {
        fn type_name() -> &'static str {
            "String"
        }

        fn value_type() -> ValueType {
            ValueType::String
        }
    }

    impl FromNapiValue for Name {
        unsafe fn from_napi_value(
            env: sys::napi_env,
            napi_val: sys::napi_value,
        ) -> napi::Result<Self> {
            let mut name = Name {
                len: 0,
                data: [0u8; 64],
            };
            let mut copied = 0usize;
            // SAFETY: N-API writes at most `data.len()` bytes (NUL included) into `data`.
            check_status!(
                unsafe {
                    sys::napi_get_value_string_latin1(
                        env,
                        napi_val,
                        name.data.as_mut_ptr().cast(),
                        name.data.len(),
                        &mut copied,
                    )
                },
                "Expected a string"
            )?;
            // A string that filled the buffer may have been cut: leave it empty (no match).
            name.len = if copied >= name.data.len() - 1 {
                0
            } else {
                copied
            };
            Ok(name)
        }
    }

    /// Create a JS Buffer of `len` bytes with `napi_create_buffer` and let `fill` write its
    /// contents in place: the output never exists on the Rust side, so there is nothing to
    /// copy or free. If `fill` fails the half-written Buffer is left to the GC (`fill` must not
    /// leave secrets in it).
    pub fn fill_new(
        env: &napi::Env,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> crate::crypto::CryptoResult<()>,
    ) -> Result<Buffer, super::JsError> {
        let mut result = ptr::null_mut();
        let mut data = ptr::null_mut();
        // SAFETY: N-API allocates `len` bytes owned by the new Buffer and returns their address.
        let status = unsafe { sys::napi_create_buffer(env.raw(), len, &mut data, &mut result) };
        if status != sys::Status::napi_ok {
            return Err(super::js_err(crate::crypto::CryptoError::param(
                "could not allocate the output Buffer",
            )));
        }
        let slice: &mut [u8] = if len == 0 || data.is_null() {
            &mut []
        } else {
            // SAFETY: `data` points at `len` writable bytes that nothing else references yet
            // (the Buffer was just created and has not been handed to JS).
            unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) }
        };
        fill(slice).map_err(super::js_err)?;
        Ok(Buffer(Bytes::Js(result)))
    }

    impl From<Vec<u8>> for Buffer {
        fn from(v: Vec<u8>) -> Self {
            Buffer(Bytes::Owned(v))
        }
    }

    impl From<Zeroizing<Vec<u8>>> for Buffer {
        fn from(v: Zeroizing<Vec<u8>>) -> Self {
            Buffer(Bytes::Secret(v))
        }
    }

    impl Drop for Buffer {
        fn drop(&mut self) {
            if let Bytes::Inline { data, .. } = &mut self.0 {
                data.zeroize();
            }
        }
    }

    impl TypeName for Buffer {
        fn type_name() -> &'static str {
            "Buffer"
        }

        fn value_type() -> ValueType {
            ValueType::Object
        }
    }

    impl ToNapiValue for Buffer {
        unsafe fn to_napi_value(
            env: sys::napi_env,
            mut val: Self,
        ) -> napi::Result<sys::napi_value> {
            if let Bytes::Js(v) = val.0 {
                return Ok(v);
            }
            if let Bytes::Owned(v) = &mut val.0 {
                if v.len() >= EXTERNAL_MIN {
                    // Zero copy: napi-rs's Buffer hands the allocation to V8 with a finalizer.
                    let v = std::mem::take(v);
                    // SAFETY: called with the env napi-rs gave us, on the JS thread.
                    return unsafe {
                        napi::bindgen_prelude::Buffer::to_napi_value(
                            env,
                            napi::bindgen_prelude::Buffer::from(v),
                        )
                    };
                }
            }
            let bytes = val.as_slice();
            let mut result = ptr::null_mut();
            let mut data = ptr::null_mut();
            // SAFETY: `bytes` is valid for `bytes.len()` reads for the duration of the call;
            // N-API copies them into memory owned by the new Buffer (length 0 is allowed).
            check_status!(
                unsafe {
                    sys::napi_create_buffer_copy(
                        env,
                        bytes.len(),
                        bytes.as_ptr().cast(),
                        &mut data,
                        &mut result,
                    )
                },
                "Failed to create a Buffer"
            )?;
            Ok(result)
        }
    }
}

/// One thread's arrival at a `PoolBatch` meeting, run on libuv's pool.
pub struct PoolBatchArrival {
    meeting: Arc<crate::background::Rendezvous>,
}

impl napi::Task for PoolBatchArrival {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(self.meeting.arrive())
    }

    fn resolve(&mut self, _env: napi::Env, all: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(all)
    }
}

/// Puts every thread of libuv's pool in SCHED_BATCH (see `background`): call `arrive` once per
/// pool thread, all at once; each promise says whether every thread arrived within the wait.
#[napi]
pub struct PoolBatch {
    meeting: Arc<crate::background::Rendezvous>,
}

#[napi]
impl PoolBatch {
    #[napi(constructor)]
    pub fn new(threads: u32, wait_ms: u32) -> Self {
        PoolBatch {
            meeting: Arc::new(crate::background::Rendezvous::new(
                threads as usize,
                std::time::Duration::from_millis(u64::from(wait_ms)),
            )),
        }
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn arrive(&self) -> AsyncTask<PoolBatchArrival> {
        AsyncTask::new(PoolBatchArrival {
            meeting: Arc::clone(&self.meeting),
        })
    }
}
