//! HPKE (RFC 9180) Base mode, single shot (sequence number 0), KDF HKDF-SHA256 (0x0001),
//! AEAD ChaCha20-Poly1305 (0x0003), with two KEMs:
//! DHKEM(X25519, HKDF-SHA256) (0x0020) and X-Wing (0x647a, draft-connolly-cfrg-xwing-kem).
//!
//! Own implementation of the RFC 9180 key schedule over `hkdf` (a few dozen lines): the `hpke`
//! crate cannot encapsulate deterministically from a given ikmE / eseed, which the RFC 9180
//! Appendix A and X-Wing known-answer tests need. Interop with the `hpke` crate is tested.
use super::aead::{self, AeadAlg, TAG_LEN};
use super::error::{expect_len, expect_max, fixed, CryptoError, CryptoResult};
use super::rand::random_secret;
use super::x25519::X25519Secret;
use super::xwing::{self, XWingSecret};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use zeroize::Zeroizing;

/// KEM id of DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519: u16 = 0x0020;
/// KEM id of X-Wing.
pub const KEM_XWING: u16 = 0x647a;
/// KDF id of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// AEAD id of ChaCha20-Poly1305.
pub const AEAD_CHACHA20_POLY1305: u16 = 0x0003;
/// Longest `info` accepted (a bound of ours; RFC 9180 allows more).
pub const MAX_INFO_LEN: usize = 65535;

const MODE_BASE: u8 = 0x00;
const NK: usize = 32;
const NN: usize = 12;

/// The KEMs usable with [`seal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpkeKem {
    /// DHKEM(X25519, HKDF-SHA256), id 0x0020.
    DhkemX25519,
    /// X-Wing, id 0x647a.
    XWing,
}

impl HpkeKem {
    /// Parse the JS name: `dhkem-x25519-hkdf-sha256` or `x-wing`.
    pub fn parse(name: &str) -> CryptoResult<Self> {
        match name {
            "dhkem-x25519-hkdf-sha256" => Ok(HpkeKem::DhkemX25519),
            "x-wing" => Ok(HpkeKem::XWing),
            _ => Err(CryptoError::param(
                "kem must be 'dhkem-x25519-hkdf-sha256' or 'x-wing'",
            )),
        }
    }

    /// The IANA KEM id.
    pub fn id(self) -> u16 {
        match self {
            HpkeKem::DhkemX25519 => KEM_X25519,
            HpkeKem::XWing => KEM_XWING,
        }
    }
}

/// Output of [`seal`].
pub struct Sealed {
    /// The encapsulated key (32 bytes for X25519, 1120 for X-Wing).
    pub enc: Vec<u8>,
    /// AEAD ciphertext || tag.
    pub ciphertext: Vec<u8>,
}

/// LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm)
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut ext = HkdfExtract::<Sha256>::new(Some(salt));
    ext.input_ikm(b"HPKE-v1");
    ext.input_ikm(suite_id);
    ext.input_ikm(label);
    ext.input_ikm(ikm);
    let (prk, _) = ext.finalize();
    Zeroizing::new(prk.into())
}

/// LabeledExpand(prk, label, info, L) = HKDF-Expand(prk, I2OSP(L, 2) || "HPKE-v1" ||
/// suite_id || label || info, L). `L` is at most 32 here.
fn labeled_expand<const L: usize>(
    suite_id: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; L]> {
    let mut out = Zeroizing::new([0u8; L]);
    let len = (L as u16).to_be_bytes();
    // A 32-byte PRK is always a valid HMAC-SHA256 key and L <= 255*32: neither can fail.
    if let Ok(hk) = Hkdf::<Sha256>::from_prk(prk) {
        let _ = hk.expand_multi_info(&[&len, b"HPKE-v1", suite_id, label, info], out.as_mut());
    }
    out
}

fn kem_suite_id(kem_id: u16) -> [u8; 5] {
    let id = kem_id.to_be_bytes();
    [b'K', b'E', b'M', id[0], id[1]]
}

fn hpke_suite_id(kem_id: u16) -> [u8; 10] {
    let k = kem_id.to_be_bytes();
    let f = KDF_HKDF_SHA256.to_be_bytes();
    let a = AEAD_CHACHA20_POLY1305.to_be_bytes();
    [b'H', b'P', b'K', b'E', k[0], k[1], f[0], f[1], a[0], a[1]]
}

/// DHKEM DeriveKeyPair(ikm) for X25519 (RFC 9180 §7.1.3).
pub fn derive_x25519_key_pair(ikm: &[u8]) -> X25519Secret {
    let suite = kem_suite_id(KEM_X25519);
    let dkp_prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
    let sk = labeled_expand::<32>(&suite, &dkp_prk, b"sk", b"");
    X25519Secret::from_array(*sk)
}

/// DHKEM ExtractAndExpand(dh, enc || pkRm).
fn dhkem_shared_secret(dh: &[u8; 32], enc: &[u8; 32], pk_r: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let suite = kem_suite_id(KEM_X25519);
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(enc);
    kem_context[32..].copy_from_slice(pk_r);
    labeled_expand::<32>(&suite, &eae_prk, b"shared_secret", &kem_context)
}

/// KeySchedule for mode_base with the default (empty) PSK: returns (key, base_nonce).
fn key_schedule(
    kem_id: u16,
    shared_secret: &[u8; 32],
    info: &[u8],
) -> (Zeroizing<[u8; NK]>, Zeroizing<[u8; NN]>) {
    let suite = hpke_suite_id(kem_id);
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let mut ctx = [0u8; 65];
    ctx[0] = MODE_BASE;
    ctx[1..33].copy_from_slice(psk_id_hash.as_ref());
    ctx[33..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&suite, shared_secret, b"secret", b"");
    let key = labeled_expand::<NK>(&suite, &secret, b"key", &ctx);
    let nonce = labeled_expand::<NN>(&suite, &secret, b"base_nonce", &ctx);
    (key, nonce)
}

/// DHKEM(X25519) Encap with the ephemeral key DeriveKeyPair(ikmE): returns (shared_secret, enc).
fn dhkem_encap(pk_r: &[u8; 32], ikm_e: &[u8]) -> CryptoResult<(Zeroizing<[u8; 32]>, [u8; 32])> {
    let eph = derive_x25519_key_pair(ikm_e);
    let enc = eph.public_key();
    let dh_out = eph.diffie_hellman(pk_r)?;
    Ok((dhkem_shared_secret(&dh_out, &enc, pk_r), enc))
}

/// HPKE SealBase single shot: (enc, ciphertext). `ikm_e` given = deterministic ephemeral
/// (DeriveKeyPair(ikmE) for DHKEM, the 64-byte eseed for X-Wing), for known-answer tests only.
pub fn seal(
    kem: HpkeKem,
    recipient_public_key: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    ikm_e: Option<&[u8]>,
) -> CryptoResult<Sealed> {
    expect_max("info", info, MAX_INFO_LEN)?;
    let (shared_secret, enc) = match kem {
        HpkeKem::DhkemX25519 => {
            let pk_r = fixed::<32>("recipientPublicKey", recipient_public_key)?;
            let ikm = match ikm_e {
                Some(ikm) => {
                    if ikm.len() < 32 || ikm.len() > 64 {
                        return Err(CryptoError::length(
                            "ikmE",
                            "32 to 64 bytes for dhkem-x25519-hkdf-sha256",
                            ikm.len(),
                        ));
                    }
                    Zeroizing::new(ikm.to_vec())
                }
                None => Zeroizing::new(random_secret::<32>()?.to_vec()),
            };
            let (ss, enc) = dhkem_encap(&pk_r, &ikm)?;
            (ss, enc.to_vec())
        }
        HpkeKem::XWing => {
            if let Some(e) = ikm_e {
                expect_len("ikmE", e, xwing::ESEED_LEN)?;
            }
            let out = xwing::encapsulate(recipient_public_key, ikm_e)?;
            (out.shared_secret, out.ciphertext)
        }
    };
    let (key, nonce) = key_schedule(kem.id(), &shared_secret, info);
    let ciphertext = aead::seal(
        AeadAlg::ChaCha20Poly1305,
        key.as_ref(),
        nonce.as_ref(),
        aad,
        plaintext,
    )?;
    Ok(Sealed { enc, ciphertext })
}

fn open_with(
    kem_id: u16,
    shared_secret: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> CryptoResult<Vec<u8>> {
    let (key, nonce) = key_schedule(kem_id, shared_secret, info);
    aead::open(
        AeadAlg::ChaCha20Poly1305,
        key.as_ref(),
        nonce.as_ref(),
        aad,
        ciphertext,
    )
    .map_err(|e| match e {
        CryptoError::Auth(_) => CryptoError::Auth("hpkeOpen"),
        other => other,
    })
}

fn check_open_inputs(info: &[u8], ciphertext: &[u8]) -> CryptoResult<()> {
    expect_max("info", info, MAX_INFO_LEN)?;
    if ciphertext.len() < TAG_LEN {
        return Err(CryptoError::length(
            "ciphertext",
            "at least 16 bytes (the tag)",
            ciphertext.len(),
        ));
    }
    Ok(())
}

/// HPKE OpenBase single shot with DHKEM(X25519). A low-order `enc` is `ERR_CRYPTO_KEY`,
/// any authentication failure `ERR_CRYPTO_AUTH`.
pub fn open_x25519(
    recipient: &X25519Secret,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> CryptoResult<Vec<u8>> {
    let enc = fixed::<32>("enc", enc)?;
    check_open_inputs(info, ciphertext)?;
    let dh_out = recipient.diffie_hellman(&enc)?;
    let ss = dhkem_shared_secret(&dh_out, &enc, &recipient.public_key());
    open_with(KEM_X25519, &ss, info, aad, ciphertext)
}

/// HPKE OpenBase single shot with X-Wing.
pub fn open_xwing(
    recipient: &XWingSecret,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> CryptoResult<Vec<u8>> {
    expect_len("enc", enc, xwing::CIPHERTEXT_LEN)?;
    check_open_inputs(info, ciphertext)?;
    let ss = recipient.decapsulate(enc)?;
    open_with(KEM_XWING, &ss, info, aad, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_ids_are_rfc9180_encodings() {
        assert_eq!(&kem_suite_id(KEM_X25519), b"KEM\x00\x20");
        assert_eq!(&hpke_suite_id(KEM_X25519), b"HPKE\x00\x20\x00\x01\x00\x03");
        assert_eq!(&hpke_suite_id(KEM_XWING), b"HPKE\x64\x7a\x00\x01\x00\x03");
    }

    #[test]
    fn kem_names_parse() {
        assert_eq!(HpkeKem::parse("x-wing").unwrap().id(), 0x647a);
        assert_eq!(
            HpkeKem::parse("dhkem-x25519-hkdf-sha256").unwrap().id(),
            0x0020
        );
        assert_eq!(
            HpkeKem::parse("X-Wing").unwrap_err().code(),
            "ERR_CRYPTO_PARAM"
        );
    }

    #[test]
    fn labeled_expand_binds_length_and_label() {
        let prk = [7u8; 32];
        let a = labeled_expand::<32>(b"S", &prk, b"key", b"");
        let b = labeled_expand::<32>(b"S", &prk, b"kez", b"");
        let c = labeled_expand::<12>(b"S", &prk, b"key", b"");
        assert_ne!(*a, *b);
        // L is part of the info, so a 12-byte output is not a prefix of the 32-byte one.
        assert_ne!(&a[..12], &c[..]);
    }
}
