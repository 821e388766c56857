//! ML-DSA-65 (FIPS 204), pure ML-DSA with context strings, over libcrux-ml-dsa: formally
//! verified, with an AVX2 implementation selected at run time (portable code otherwise).
//!
//! The RustCrypto `ml-dsa` crate is kept for exactly one path: importing a 4032-byte expanded
//! secret key needs the public key it implies (t = A*s1 + s2 -> t1), and libcrux has no
//! sk -> pk function. Signing and verification always go through libcrux.
use super::error::{expect_len, expect_max, fixed, CryptoError, CryptoResult};
use super::rand::random_secret;
use libcrux_ml_dsa::ml_dsa_65::{
    self, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey,
};
use ml_dsa::{ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa65};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use std::panic::{catch_unwind, AssertUnwindSafe};
use zeroize::{Zeroize, Zeroizing};

/// Seed (`xi`) size.
pub const SEED_LEN: usize = 32;
/// Public key size.
pub const PUBLIC_KEY_LEN: usize = 1952;
/// Expanded secret key size (FIPS 204 skEncode).
pub const EXPANDED_SECRET_KEY_LEN: usize = 4032;
/// Signature size.
pub const SIGNATURE_LEN: usize = 3309;
/// Longest context string.
pub const MAX_CONTEXT_LEN: usize = 255;

// skEncode layout for ML-DSA-65: rho(32) K(32) tr(64) s1(5*128) s2(6*128) t0(6*416).
const TR_RANGE: std::ops::Range<usize> = 64..128;
const S1_S2_RANGE: std::ops::Range<usize> = 128..(128 + 5 * 128 + 6 * 128);
const ETA: u8 = 4;

/// An ML-DSA-65 signing key: the 4032-byte expanded key (wiped on drop), the seed if known,
/// and the encoded public key.
pub struct MlDsa65Secret {
    key: MLDSA65SigningKey,
    seed: Option<Zeroizing<[u8; SEED_LEN]>>,
    public_key: Vec<u8>,
}

impl Drop for MlDsa65Secret {
    fn drop(&mut self) {
        self.key.as_mut_slice().zeroize();
    }
}

impl MlDsa65Secret {
    /// A fresh key from a random 32-byte seed.
    pub fn generate() -> CryptoResult<Self> {
        let seed = random_secret::<SEED_LEN>()?;
        Ok(Self::from_seed_array(seed))
    }

    /// ML-DSA.KeyGen_internal(xi) from a 32-byte seed.
    pub fn from_seed(xi: &[u8]) -> CryptoResult<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", xi)?);
        Ok(Self::from_seed_array(seed))
    }

    fn from_seed_array(seed: Zeroizing<[u8; SEED_LEN]>) -> Self {
        // ML-DSA.KeyGen_internal(xi) (FIPS 204 Algorithm 6).
        let kp = ml_dsa_65::generate_key_pair(*seed);
        Self {
            key: kp.signing_key,
            seed: Some(seed),
            public_key: kp.verification_key.as_slice().to_vec(),
        }
    }

    /// Import a 4032-byte expanded secret key (FIPS 204 skDecode). Checks that every s1/s2
    /// coefficient is in [-eta, eta] and that `tr` = H(pk) for the public key it implies;
    /// `ERR_CRYPTO_KEY` otherwise.
    pub fn from_expanded(sk: &[u8]) -> CryptoResult<Self> {
        expect_len("secretKey", sk, EXPANDED_SECRET_KEY_LEN)?;
        // skDecode maps 4-bit values 0..=8 to eta - v; 9..=15 are not valid encodings.
        if sk[S1_S2_RANGE]
            .iter()
            .any(|b| (b & 0x0f) > 2 * ETA || (b >> 4) > 2 * ETA)
        {
            return Err(CryptoError::key(
                "ML-DSA-65 secret key has an s1/s2 coefficient out of range",
            ));
        }
        let bytes: Zeroizing<ExpandedSigningKeyBytes<MlDsa65>> = Zeroizing::new(
            sk.try_into()
                .map_err(|_| CryptoError::length("secretKey", "4032 bytes", sk.len()))?,
        );
        // RustCrypto derives the implied public key (libcrux cannot). The crate documents that
        // malformed expanded keys may panic: contain it.
        #[allow(deprecated)] // the expanded form is needed for Wycheproof's sign_noseed vectors
        let rc_key = catch_unwind(AssertUnwindSafe(|| {
            ExpandedSigningKey::<MlDsa65>::from_expanded(&bytes)
        }))
        .map_err(|_| CryptoError::key("malformed ML-DSA-65 secret key"))?;
        let public_key = catch_unwind(AssertUnwindSafe(|| {
            rc_key.verifying_key().encode().to_vec()
        }))
        .map_err(|_| CryptoError::key("malformed ML-DSA-65 secret key"))?;
        drop(rc_key); // ZeroizeOnDrop
        let mut arr = Zeroizing::new([0u8; EXPANDED_SECRET_KEY_LEN]);
        arr.copy_from_slice(sk);
        let key = MLDSA65SigningKey::new(*arr);
        let mut tr = [0u8; 64];
        let mut h = Shake256::default();
        h.update(&public_key);
        h.finalize_xof().read(&mut tr);
        if tr[..] != sk[TR_RANGE] {
            return Err(CryptoError::key(
                "ML-DSA-65 secret key: tr does not match the public key",
            ));
        }
        let imported = Self {
            key,
            seed: None,
            public_key,
        };
        // Pairwise consistency test: t0 is not covered by the tr check above, and a key whose
        // signatures do not verify must not be accepted.
        let probe = imported.sign(b"AfterSMTP ML-DSA-65 import check", b"", Some(&[0u8; 32]));
        match probe {
            Ok(sig)
                if verify(
                    &imported.public_key,
                    b"AfterSMTP ML-DSA-65 import check",
                    &sig,
                    b"",
                ) =>
            {
                Ok(imported)
            }
            _ => Err(CryptoError::key(
                "ML-DSA-65 secret key failed the pairwise consistency test",
            )),
        }
    }

    /// The 1952-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The 32-byte seed; `ERR_CRYPTO_KEY` for a key imported in expanded form.
    pub fn seed(&self) -> CryptoResult<Zeroizing<[u8; SEED_LEN]>> {
        self.seed
            .clone()
            .ok_or_else(|| CryptoError::key("key was imported in expanded form and has no seed"))
    }

    /// ML-DSA.Sign(sk, message, ctx) (FIPS 204 Algorithm 2). `rnd` absent = hedged with fresh
    /// randomness; `rnd` = 32 zero bytes = the deterministic variant. For a key imported in
    /// expanded form the signature is verified before it is returned (`ERR_CRYPTO_KEY` if not).
    pub fn sign(
        &self,
        message: &[u8],
        context: &[u8],
        rnd: Option<&[u8]>,
    ) -> CryptoResult<Vec<u8>> {
        expect_max("context", context, MAX_CONTEXT_LEN)?;
        let rnd = match rnd {
            Some(r) => Zeroizing::new(fixed::<32>("rnd", r)?),
            None => random_secret::<32>()?,
        };
        // ML-DSA.Sign (FIPS 204 Algorithm 2): M' = 0 || |ctx| || ctx || M, done by libcrux.
        let sig = catch_unwind(AssertUnwindSafe(|| {
            ml_dsa_65::sign(&self.key, message, context, *rnd)
        }))
        .map_err(|_| CryptoError::key("ML-DSA-65 signing failed (malformed secret key)"))?
        .map_err(|e| CryptoError::key(format!("ML-DSA-65 signing failed ({e:?})")))?;
        let sig = sig.as_slice().to_vec();
        // An imported expanded key is not consistent by construction (its t0 is not checked
        // at import): never hand out a signature from it that does not verify.
        if self.seed.is_none() && !verify(&self.public_key, message, &sig, context) {
            return Err(CryptoError::key(
                "ML-DSA-65 imported secret key produced an invalid signature (inconsistent t0)",
            ));
        }
        Ok(sig)
    }
}

/// ML-DSA.Verify(pk, message, signature, ctx). Never fails: any malformed or wrong-length
/// input (including a context longer than 255 bytes) is `false`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8], context: &[u8]) -> bool {
    if context.len() > MAX_CONTEXT_LEN {
        return false;
    }
    let Ok(pk) = <&[u8; PUBLIC_KEY_LEN]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig) = <&[u8; SIGNATURE_LEN]>::try_from(signature) else {
        return false;
    };
    let pk = MLDSA65VerificationKey::new(*pk);
    let sig = MLDSA65Signature::new(*sig);
    ml_dsa_65::verify(&pk, message, context, &sig).is_ok()
}
