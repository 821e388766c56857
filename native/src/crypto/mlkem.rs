//! ML-KEM-768 (FIPS 203) over libcrux-ml-kem: formally verified, with an AVX2 implementation
//! selected at run time (portable code on CPUs without AVX2).
//!
//! libcrux keeps the decapsulation key in its 2400-byte FIPS 203 encoding (`dk`), which is
//! also our expanded import/export form; the FIPS 203 §7.2/§7.3 input checks (modulus check of
//! `ek`, hash check of `dk`) are done here before a key is accepted.
use super::error::{expect_len, fixed, CryptoError, CryptoResult};
use super::rand::random_secret;
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use sha3::{Digest, Sha3_256};
use zeroize::{Zeroize, Zeroizing};

/// Encapsulation (public) key size.
pub const ENCAPSULATION_KEY_LEN: usize = 1184;
/// Expanded decapsulation key size (FIPS 203 `dk`).
pub const EXPANDED_DECAPSULATION_KEY_LEN: usize = 2400;
/// Seed size: `d || z`.
pub const SEED_LEN: usize = 64;
/// Ciphertext size.
pub const CIPHERTEXT_LEN: usize = 1088;
/// Shared secret size.
pub const SHARED_SECRET_LEN: usize = 32;
/// Encapsulation randomness size (`m`).
pub const M_LEN: usize = 32;

// dk = dk_pke (1152) || ek (1184) || H(ek) (32) || z (32)
const EK_OFFSET: usize = 1152;
const H_OFFSET: usize = EK_OFFSET + ENCAPSULATION_KEY_LEN;

/// Result of an encapsulation: the ciphertext to send and the shared secret to keep.
pub struct Encapsulated {
    /// ML-KEM ciphertext.
    pub ciphertext: Vec<u8>,
    /// The 32-byte shared secret.
    pub shared_secret: Zeroizing<[u8; SHARED_SECRET_LEN]>,
}

/// An ML-KEM-768 decapsulation key: the FIPS 203 `dk` (wiped on drop) and the seed if known.
pub struct MlKem768Secret {
    dk: MlKem768PrivateKey,
    seed: Option<Zeroizing<[u8; SEED_LEN]>>,
}

impl Drop for MlKem768Secret {
    fn drop(&mut self) {
        self.dk[0..].zeroize();
    }
}

/// ML-KEM.KeyGen_internal(d, z): the 2400-byte `dk` and the 1184-byte `ek` (libcrux takes the
/// seed in the FIPS 203 order `d || z`). The key pair's own copy of `dk` is wiped.
pub(crate) fn keygen(seed: &[u8; SEED_LEN]) -> (MlKem768PrivateKey, MlKem768PublicKey) {
    let kp = mlkem768::generate_key_pair(*seed);
    let (sk, pk) = kp.into_parts();
    (sk, pk)
}

impl MlKem768Secret {
    /// A fresh key pair from a random 64-byte seed.
    pub fn generate() -> CryptoResult<Self> {
        let seed = random_secret::<SEED_LEN>()?;
        Ok(Self::from_seed_array(seed))
    }

    /// ML-KEM.KeyGen_internal(d, z) from the 64-byte seed `d || z`.
    pub fn from_seed(seed: &[u8]) -> CryptoResult<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", seed)?);
        Ok(Self::from_seed_array(seed))
    }

    fn from_seed_array(seed: Zeroizing<[u8; SEED_LEN]>) -> Self {
        let (dk, _) = keygen(&seed);
        Self {
            dk,
            seed: Some(seed),
        }
    }

    /// Import a 2400-byte expanded decapsulation key, with the FIPS 203 §7.3 input checks:
    /// the embedded encapsulation key passes the modulus check and `H(ek)` matches.
    pub fn from_expanded(dk: &[u8]) -> CryptoResult<Self> {
        expect_len("decapsulationKey", dk, EXPANDED_DECAPSULATION_KEY_LEN)?;
        let ek = &dk[EK_OFFSET..H_OFFSET];
        let ek_ok = parse_encapsulation_key(ek).is_ok();
        let h_ok = Sha3_256::digest(ek)[..] == dk[H_OFFSET..H_OFFSET + 32];
        if !(ek_ok && h_ok) {
            return Err(CryptoError::key(
                "ML-KEM-768 decapsulation key failed the FIPS 203 checks (modulus or hash)",
            ));
        }
        let dk = MlKem768PrivateKey::try_from(dk)
            .map_err(|_| CryptoError::length("decapsulationKey", "2400 bytes", dk.len()))?;
        Ok(Self { dk, seed: None })
    }

    /// The 1184-byte encapsulation key.
    pub fn encapsulation_key(&self) -> Vec<u8> {
        self.encapsulation_key_ref().to_vec()
    }

    /// The 1184-byte encapsulation key, borrowed (no allocation).
    pub fn encapsulation_key_ref(&self) -> &[u8] {
        &self.dk.as_slice()[EK_OFFSET..H_OFFSET]
    }

    /// The 2400-byte expanded decapsulation key.
    pub fn expanded_decapsulation_key(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.dk.as_slice().to_vec())
    }

    /// The 2400-byte expanded decapsulation key, borrowed (no copy to wipe).
    pub fn expanded_decapsulation_key_ref(&self) -> &[u8] {
        self.dk.as_slice()
    }

    /// The 64-byte seed `d || z`; `ERR_CRYPTO_KEY` for a key imported in expanded form.
    pub fn seed(&self) -> CryptoResult<Zeroizing<[u8; SEED_LEN]>> {
        self.seed
            .clone()
            .ok_or_else(|| CryptoError::key("key was imported in expanded form and has no seed"))
    }

    /// ML-KEM.Decaps: the 32-byte shared secret (implicit rejection: a wrong ciphertext yields
    /// a pseudorandom secret, never an error).
    pub fn decapsulate(
        &self,
        ciphertext: &[u8],
    ) -> CryptoResult<Zeroizing<[u8; SHARED_SECRET_LEN]>> {
        let ct = MlKem768Ciphertext::try_from(ciphertext)
            .map_err(|_| CryptoError::length("ciphertext", "1088 bytes", ciphertext.len()))?;
        Ok(decapsulate_with(&self.dk, &ct))
    }
}

/// ML-KEM.Decaps with a `dk` that passed the input checks.
pub(crate) fn decapsulate_with(
    dk: &MlKem768PrivateKey,
    ct: &MlKem768Ciphertext,
) -> Zeroizing<[u8; SHARED_SECRET_LEN]> {
    Zeroizing::new(mlkem768::decapsulate(dk, ct))
}

/// Parse an encapsulation key with the FIPS 203 §7.2 checks (length, modulus).
pub fn parse_encapsulation_key(ek: &[u8]) -> CryptoResult<MlKem768PublicKey> {
    let pk = MlKem768PublicKey::try_from(ek)
        .map_err(|_| CryptoError::length("encapsulationKey", "1184 bytes", ek.len()))?;
    if mlkem768::validate_public_key(&pk) {
        Ok(pk)
    } else {
        Err(CryptoError::key(
            "ML-KEM-768 encapsulation key failed the FIPS 203 modulus check",
        ))
    }
}

/// ML-KEM.Encaps for a parsed (checked) key with explicit randomness `m`.
pub(crate) fn encapsulate_with(
    ek: &MlKem768PublicKey,
    m: &[u8; M_LEN],
) -> (MlKem768Ciphertext, Zeroizing<[u8; SHARED_SECRET_LEN]>) {
    let (ct, ss) = mlkem768::encapsulate(ek, *m);
    (ct, Zeroizing::new(ss))
}

/// ML-KEM.Encaps(ek). `m` given (32 bytes) = deterministic, for known-answer tests only.
pub fn encapsulate(encapsulation_key: &[u8], m: Option<&[u8]>) -> CryptoResult<Encapsulated> {
    let m = match m {
        Some(m) => Zeroizing::new(fixed::<M_LEN>("m", m)?),
        None => random_secret::<M_LEN>()?,
    };
    let ek = parse_encapsulation_key(encapsulation_key)?;
    let (ct, shared_secret) = encapsulate_with(&ek, &m);
    Ok(Encapsulated {
        ciphertext: ct.as_ref().to_vec(),
        shared_secret,
    })
}
