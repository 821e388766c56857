//! X-Wing hybrid KEM (ML-KEM-768 + X25519), draft-connolly-cfrg-xwing-kem, checked against
//! the draft's test vectors (shared/vectors/xwing).
//!
//! Own composition over libcrux ML-KEM-768 (see mlkem.rs) + `x25519-dalek` + SHA3: the
//! `x-wing` crate (0.1.1) re-derives ML-KEM and X25519 keys from the seed on every
//! decapsulation; this keeps the expanded keys, and gives us the deterministic encapsulation
//! (eseed) the vectors need.
use super::error::{fixed, CryptoError, CryptoResult};
use super::mlkem::{
    decapsulate_with, encapsulate_with, keygen, parse_encapsulation_key, ENCAPSULATION_KEY_LEN,
};
use super::rand::random_secret;
use libcrux_ml_kem::mlkem768::{MlKem768Ciphertext, MlKem768PrivateKey};
use sha3::{Digest, Sha3_256};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Seed (decapsulation key) size.
pub const SEED_LEN: usize = 32;
/// Public (encapsulation) key size: ML-KEM-768 ek (1184) || X25519 pk (32).
pub const PUBLIC_KEY_LEN: usize = 1216;
/// Ciphertext size: ML-KEM-768 ct (1088) || X25519 ephemeral pk (32).
pub const CIPHERTEXT_LEN: usize = 1120;
/// Shared secret size.
pub const SHARED_SECRET_LEN: usize = 32;
/// Encapsulation randomness size.
pub const ESEED_LEN: usize = 64;

const ML_KEM_CT_LEN: usize = 1088;
const LABEL: &[u8; 6] = br"\.//^\";

/// An X-Wing decapsulation key: the seed plus its expanded ML-KEM and X25519 parts,
/// all wiped on drop.
pub struct XWingSecret {
    seed: Zeroizing<[u8; SEED_LEN]>,
    dk_m: MlKem768PrivateKey,
    sk_x: StaticSecret,
    pk_x: [u8; 32],
    public_key: Vec<u8>,
}

impl Drop for XWingSecret {
    fn drop(&mut self) {
        // seed is Zeroizing and StaticSecret zeroizes itself; the libcrux dk is plain bytes.
        self.dk_m[0..].zeroize();
    }
}

/// Result of an encapsulation.
pub struct Encapsulated {
    /// The 1120-byte ciphertext.
    pub ciphertext: Vec<u8>,
    /// The 32-byte shared secret.
    pub shared_secret: Zeroizing<[u8; SHARED_SECRET_LEN]>,
}

fn combiner(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8; 32], pk_x: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha3_256::new();
    Digest::update(&mut h, ss_m);
    Digest::update(&mut h, ss_x);
    Digest::update(&mut h, ct_x);
    Digest::update(&mut h, pk_x);
    Digest::update(&mut h, LABEL);
    Zeroizing::new(h.finalize().into())
}

impl XWingSecret {
    /// A fresh key from a random 32-byte seed.
    pub fn generate() -> CryptoResult<Self> {
        let seed = random_secret::<SEED_LEN>()?;
        Ok(Self::from_seed_array(seed))
    }

    /// The key for a 32-byte seed (X-Wing `expandDecapsulationKey`).
    pub fn from_seed(seed: &[u8]) -> CryptoResult<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", seed)?);
        Ok(Self::from_seed_array(seed))
    }

    fn from_seed_array(seed: Zeroizing<[u8; SEED_LEN]>) -> Self {
        // expanded = SHAKE256(sk, 96): ML-KEM seed d || z (64), X25519 secret (32)
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut h = Shake256::default();
        h.update(seed.as_ref());
        h.finalize_xof().read(expanded.as_mut());
        let mut m_seed = Zeroizing::new([0u8; 64]);
        m_seed.copy_from_slice(&expanded[..64]);
        let (dk_m, ek_m) = keygen(&m_seed);
        let mut x = [0u8; 32];
        x.copy_from_slice(&expanded[64..]);
        let sk_x = StaticSecret::from(x);
        x.zeroize();
        let pk_x = PublicKey::from(&sk_x).to_bytes();
        let mut public_key = Vec::with_capacity(PUBLIC_KEY_LEN);
        public_key.extend_from_slice(ek_m.as_ref());
        public_key.extend_from_slice(&pk_x);
        Self {
            seed,
            dk_m,
            sk_x,
            pk_x,
            public_key,
        }
    }

    /// The 1216-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> Zeroizing<[u8; SEED_LEN]> {
        self.seed.clone()
    }

    /// X-Wing Decapsulate: the 32-byte shared secret. Like ML-KEM it never fails on a
    /// well-sized ciphertext (implicit rejection).
    pub fn decapsulate(
        &self,
        ciphertext: &[u8],
    ) -> CryptoResult<Zeroizing<[u8; SHARED_SECRET_LEN]>> {
        let ct = fixed_ct(ciphertext)?;
        let ct_m = MlKem768Ciphertext::try_from(&ct[..ML_KEM_CT_LEN])
            .map_err(|_| CryptoError::length("ciphertext", "1120 bytes", ciphertext.len()))?;
        let mut ct_x = [0u8; 32];
        ct_x.copy_from_slice(&ct[ML_KEM_CT_LEN..]);
        let ss_m = decapsulate_with(&self.dk_m, &ct_m);
        let ss_x = self.sk_x.diffie_hellman(&PublicKey::from(ct_x));
        Ok(combiner(ss_m.as_ref(), ss_x.as_bytes(), &ct_x, &self.pk_x))
    }
}

fn fixed_ct(ciphertext: &[u8]) -> CryptoResult<&[u8]> {
    if ciphertext.len() == CIPHERTEXT_LEN {
        Ok(ciphertext)
    } else {
        Err(CryptoError::length(
            "ciphertext",
            "1120 bytes",
            ciphertext.len(),
        ))
    }
}

/// X-Wing Encapsulate(pk). `eseed` given (64 bytes) = deterministic, for known-answer tests
/// only. The ML-KEM half of the key gets the FIPS 203 modulus check (`ERR_CRYPTO_KEY`).
pub fn encapsulate(public_key: &[u8], eseed: Option<&[u8]>) -> CryptoResult<Encapsulated> {
    if public_key.len() != PUBLIC_KEY_LEN {
        return Err(CryptoError::length(
            "publicKey",
            "1216 bytes",
            public_key.len(),
        ));
    }
    let eseed = match eseed {
        Some(e) => Zeroizing::new(fixed::<ESEED_LEN>("eseed", e)?),
        None => random_secret::<ESEED_LEN>()?,
    };
    let ek_m = parse_encapsulation_key(&public_key[..ENCAPSULATION_KEY_LEN])?;
    let mut pk_x = [0u8; 32];
    pk_x.copy_from_slice(&public_key[ENCAPSULATION_KEY_LEN..]);

    let mut m = [0u8; 32];
    m.copy_from_slice(&eseed[..32]);
    let (ct_m, ss_m) = encapsulate_with(&ek_m, &m);
    m.zeroize();
    let mut x = [0u8; 32];
    x.copy_from_slice(&eseed[32..]);
    let ek_x = StaticSecret::from(x);
    x.zeroize();
    let ct_x = PublicKey::from(&ek_x).to_bytes();
    let ss_x = ek_x.diffie_hellman(&PublicKey::from(pk_x));
    let shared_secret = combiner(ss_m.as_ref(), ss_x.as_bytes(), &ct_x, &pk_x);

    let mut ciphertext = Vec::with_capacity(CIPHERTEXT_LEN);
    ciphertext.extend_from_slice(ct_m.as_ref());
    ciphertext.extend_from_slice(&ct_x);
    Ok(Encapsulated {
        ciphertext,
        shared_secret,
    })
}
