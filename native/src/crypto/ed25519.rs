//! Ed25519 (RFC 8032) signing keys and strict verification.
use super::error::{fixed, CryptoResult};
use super::rand::random_secret;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Seed (secret key) size.
pub const SEED_LEN: usize = 32;
/// Public key size.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Signature size.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key (`ed25519_dalek::SigningKey` is `ZeroizeOnDrop`).
pub struct Ed25519Secret {
    key: SigningKey,
}

impl Ed25519Secret {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> CryptoResult<Self> {
        let seed = random_secret::<SEED_LEN>()?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key for a 32-byte RFC 8032 seed.
    pub fn from_seed(seed: &[u8]) -> CryptoResult<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", seed)?);
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// A 64-byte deterministic signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> Zeroizing<[u8; SEED_LEN]> {
        Zeroizing::new(self.key.to_bytes())
    }
}

/// Strict Ed25519 verification: rejects wrong lengths, non-canonical S, and small-order
/// R or A (ed25519-dalek `verify_strict`), as Project Wycheproof expects. Never fails: any
/// malformed input is `false`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(pk) = <[u8; PUBLIC_KEY_LEN]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig) = <[u8; SIGNATURE_LEN]>::try_from(signature) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    // Reject non-canonical encodings of A (y >= p): decompression accepts them, the
    // re-encoding does not round-trip.
    if vk.to_edwards().compress().to_bytes() != pk {
        return false;
    }
    let sig = Signature::from_bytes(&sig);
    vk.verify_strict(message, &sig).is_ok()
}
