//! X25519 (RFC 7748) static keys. The secret scalar lives in an `x25519_dalek::StaticSecret`,
//! which is wiped on drop (`zeroize` feature).
use super::error::{fixed, CryptoError, CryptoResult};
use super::rand::random_secret;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Size of X25519 secrets, public keys and shared secrets.
pub const KEY_LEN: usize = 32;

/// An X25519 secret key with its cached public key.
pub struct X25519Secret {
    secret: StaticSecret,
    public: [u8; KEY_LEN],
}

impl X25519Secret {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> CryptoResult<Self> {
        let bytes = random_secret::<KEY_LEN>()?;
        Ok(Self::from_array(*bytes))
    }

    /// The key for a given 32-byte secret (clamping happens inside the scalar multiplication).
    pub fn from_bytes(secret: &[u8]) -> CryptoResult<Self> {
        let bytes = Zeroizing::new(fixed::<KEY_LEN>("secret", secret)?);
        Ok(Self::from_array(*bytes))
    }

    pub(crate) fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// The public key (u-coordinate, 32 bytes).
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// The secret key bytes (as given; unclamped).
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519(secret, peer). Fails with `ERR_CRYPTO_KEY` when the result is all zero
    /// (a low-order peer point, RFC 7748 §6.1).
    pub fn diffie_hellman(&self, peer_public: &[u8]) -> CryptoResult<Zeroizing<[u8; KEY_LEN]>> {
        let peer = PublicKey::from(fixed::<KEY_LEN>("peerPublic", peer_public)?);
        dh(&self.secret, &peer)
    }
}

/// Diffie-Hellman with the all-zero output check (constant time).
pub(crate) fn dh(
    secret: &StaticSecret,
    peer: &PublicKey,
) -> CryptoResult<Zeroizing<[u8; KEY_LEN]>> {
    let shared = secret.diffie_hellman(peer);
    if !shared.was_contributory() {
        return Err(CryptoError::key(
            "X25519 result is all zero (low-order public key)",
        ));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}
