//! ML-KEM-768 (FIPS 203) over the RustCrypto `ml-kem` crate.
use super::error::{expect_len, fixed, CryptoError, CryptoResult};
use super::rand::random_secret;
use ml_kem::array::Array;
#[allow(deprecated)] // the expanded form is needed for Wycheproof's semi-expanded vectors
use ml_kem::ml_kem_768::ExpandedDecapsulationKey;
use ml_kem::ml_kem_768::{Ciphertext, DecapsulationKey, EncapsulationKey};
use ml_kem::{Decapsulate, KeyExport, Seed, B32};
use zeroize::Zeroizing;

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

/// Result of an encapsulation: the ciphertext to send and the shared secret to keep.
pub struct Encapsulated {
    /// ML-KEM ciphertext.
    pub ciphertext: Vec<u8>,
    /// The 32-byte shared secret.
    pub shared_secret: Zeroizing<[u8; SHARED_SECRET_LEN]>,
}

/// An ML-KEM-768 decapsulation key (the `ml-kem` key type is `ZeroizeOnDrop`).
pub struct MlKem768Secret {
    dk: DecapsulationKey,
}

impl MlKem768Secret {
    /// A fresh key pair from a random 64-byte seed.
    pub fn generate() -> CryptoResult<Self> {
        let seed = random_secret::<SEED_LEN>()?;
        Ok(Self::from_seed_array(&seed))
    }

    /// ML-KEM.KeyGen_internal(d, z) from the 64-byte seed `d || z`.
    pub fn from_seed(seed: &[u8]) -> CryptoResult<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", seed)?);
        Ok(Self::from_seed_array(&seed))
    }

    fn from_seed_array(seed: &[u8; SEED_LEN]) -> Self {
        let mut s = Seed::from(*seed);
        let dk = DecapsulationKey::from_seed(s);
        zeroize::Zeroize::zeroize(s.as_mut_slice());
        Self { dk }
    }

    /// Import a 2400-byte expanded decapsulation key, with the FIPS 203 §7.3 input checks:
    /// the embedded encapsulation key passes the modulus check and `H(ek)` matches.
    pub fn from_expanded(dk: &[u8]) -> CryptoResult<Self> {
        expect_len("decapsulationKey", dk, EXPANDED_DECAPSULATION_KEY_LEN)?;
        #[allow(deprecated)]
        let arr: Zeroizing<ExpandedDecapsulationKey> = Zeroizing::new(
            Array::try_from(dk)
                .map_err(|_| CryptoError::length("decapsulationKey", "2400 bytes", dk.len()))?,
        );
        #[allow(deprecated)] // the expanded form is needed for Wycheproof's semi-expanded vectors
        let dk = DecapsulationKey::from_expanded(&arr).map_err(|_| {
            CryptoError::key(
                "ML-KEM-768 decapsulation key failed the FIPS 203 checks (modulus or hash)",
            )
        })?;
        Ok(Self { dk })
    }

    /// The 1184-byte encapsulation key.
    pub fn encapsulation_key(&self) -> Vec<u8> {
        self.dk.encapsulation_key().to_bytes().to_vec()
    }

    /// The 2400-byte expanded decapsulation key.
    pub fn expanded_decapsulation_key(&self) -> Zeroizing<Vec<u8>> {
        #[allow(deprecated)] // interop export of the legacy form
        let mut bytes = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&self.dk);
        let out = Zeroizing::new(bytes.to_vec());
        zeroize::Zeroize::zeroize(bytes.as_mut_slice());
        out
    }

    /// The 64-byte seed `d || z`; `ERR_CRYPTO_KEY` for a key imported in expanded form.
    pub fn seed(&self) -> CryptoResult<Zeroizing<[u8; SEED_LEN]>> {
        let mut seed = self
            .dk
            .to_seed()
            .ok_or_else(|| CryptoError::key("key was imported in expanded form and has no seed"))?;
        let mut out = Zeroizing::new([0u8; SEED_LEN]);
        out.copy_from_slice(&seed);
        zeroize::Zeroize::zeroize(seed.as_mut_slice());
        Ok(out)
    }

    /// ML-KEM.Decaps: the 32-byte shared secret (implicit rejection: a wrong ciphertext yields
    /// a pseudorandom secret, never an error).
    pub fn decapsulate(
        &self,
        ciphertext: &[u8],
    ) -> CryptoResult<Zeroizing<[u8; SHARED_SECRET_LEN]>> {
        let ct: Ciphertext = Array::try_from(ciphertext)
            .map_err(|_| CryptoError::length("ciphertext", "1088 bytes", ciphertext.len()))?;
        let mut ss = self.dk.decapsulate(&ct);
        let out = Zeroizing::new(<[u8; SHARED_SECRET_LEN]>::from(ss));
        zeroize::Zeroize::zeroize(ss.as_mut_slice());
        Ok(out)
    }
}

/// Parse an encapsulation key with the FIPS 203 §7.2 checks (length, modulus).
pub fn parse_encapsulation_key(ek: &[u8]) -> CryptoResult<EncapsulationKey> {
    let arr = Array::try_from(ek)
        .map_err(|_| CryptoError::length("encapsulationKey", "1184 bytes", ek.len()))?;
    EncapsulationKey::new(&arr).map_err(|_| {
        CryptoError::key("ML-KEM-768 encapsulation key failed the FIPS 203 modulus check")
    })
}

/// ML-KEM.Encaps for a parsed key with explicit randomness `m`.
pub(crate) fn encapsulate_with(
    ek: &EncapsulationKey,
    m: &[u8; M_LEN],
) -> (Ciphertext, Zeroizing<[u8; 32]>) {
    let mut m_arr = B32::from(*m);
    let (ct, mut ss) = ek.encapsulate_deterministic(&m_arr);
    zeroize::Zeroize::zeroize(m_arr.as_mut_slice());
    let out = Zeroizing::new(<[u8; 32]>::from(ss));
    zeroize::Zeroize::zeroize(ss.as_mut_slice());
    (ct, out)
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
        ciphertext: ct.to_vec(),
        shared_secret,
    })
}
