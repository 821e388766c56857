//! Property tests: every function that parses untrusted bytes, fed random, truncated,
//! oversized and mutated inputs, never panics and returns either a result or a typed error.
use aftersmtp_native::crypto::error::{
    ERR_CRYPTO_AUTH, ERR_CRYPTO_KEY, ERR_CRYPTO_LENGTH, ERR_CRYPTO_PARAM,
};
use aftersmtp_native::crypto::{aead, ed25519, hpke, mldsa, mlkem, x25519, xwing, CryptoError};
use proptest::prelude::*;
use std::sync::OnceLock;

struct Fixtures {
    x: x25519::X25519Secret,
    x_sealed: hpke::Sealed,
    w: xwing::XWingSecret,
    w_sealed: hpke::Sealed,
    kem: mlkem::MlKem768Secret,
    kem_ct: Vec<u8>,
    kem_dk: Vec<u8>,
    ed_pk: [u8; 32],
    ed_sig: [u8; 64],
    dsa_pk: Vec<u8>,
    dsa_sig: Vec<u8>,
    dsa_sk: Vec<u8>,
}

// A fixed ML-DSA-65 expanded key from the Wycheproof sign_noseed file, for mutation tests.
fn dsa_expanded() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/wycheproof/mldsa_65_sign_noseed_test.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
    let h = doc["testGroups"][0]["privateKey"]
        .as_str()
        .expect("privateKey");
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

fn fx() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let x = x25519::X25519Secret::generate().unwrap();
        let x_sealed = hpke::seal(
            hpke::HpkeKem::DhkemX25519,
            &x.public_key(),
            b"info",
            b"aad",
            b"pt",
            None,
        )
        .unwrap();
        let w = xwing::XWingSecret::generate().unwrap();
        let w_sealed = hpke::seal(
            hpke::HpkeKem::XWing,
            w.public_key(),
            b"info",
            b"aad",
            b"pt",
            None,
        )
        .unwrap();
        let kem = mlkem::MlKem768Secret::generate().unwrap();
        let kem_ct = mlkem::encapsulate(&kem.encapsulation_key(), None)
            .unwrap()
            .ciphertext;
        let kem_dk = kem.expanded_decapsulation_key().to_vec();
        let ed = ed25519::Ed25519Secret::generate().unwrap();
        let dsa = mldsa::MlDsa65Secret::generate().unwrap();
        Fixtures {
            ed_pk: ed.public_key(),
            ed_sig: ed.sign(b"msg"),
            dsa_pk: dsa.public_key().to_vec(),
            dsa_sig: dsa.sign(b"msg", b"ctx", None).unwrap(),
            dsa_sk: dsa_expanded(),
            x,
            x_sealed,
            w,
            w_sealed,
            kem,
            kem_ct,
            kem_dk,
        }
    })
}

/// Only the documented codes may appear.
fn typed<T>(r: &Result<T, CryptoError>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => [
            ERR_CRYPTO_AUTH,
            ERR_CRYPTO_KEY,
            ERR_CRYPTO_LENGTH,
            ERR_CRYPTO_PARAM,
        ]
        .contains(&e.code()),
    }
}

/// `base` with a few bytes changed, truncated, or extended.
fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(i, x) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] ^= x;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (base.len() + 1));
    }
    v.extend_from_slice(extra);
    v
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), 1u8..=255), 0..4)
}

fn blob(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn hpke_open_x25519_untrusted(e in edits(), cut in proptest::option::of(any::<usize>()),
                                  extra in blob(40), which in 0u8..4, info in blob(64)) {
        let f = fx();
        let (mut enc, mut ct, mut inf) = (f.x_sealed.enc.clone(), f.x_sealed.ciphertext.clone(), b"info".to_vec());
        match which {
            0 => enc = mutate(&enc, &e, cut, &extra),
            1 => ct = mutate(&ct, &e, cut, &extra),
            2 => inf = info,
            _ => { enc = mutate(&enc, &e, None, &[]); ct = mutate(&ct, &e, cut, &extra); }
        }
        let r = hpke::open_x25519(&f.x, &enc, &inf, b"aad", &ct);
        prop_assert!(typed(&r));
        if r.is_ok() { prop_assert_eq!(r.unwrap(), b"pt".to_vec()); }
    }

    #[test]
    fn hpke_open_xwing_untrusted(e in edits(), cut in proptest::option::of(any::<usize>()),
                                 extra in blob(40), which in 0u8..3) {
        let f = fx();
        let (mut enc, mut ct) = (f.w_sealed.enc.clone(), f.w_sealed.ciphertext.clone());
        match which {
            0 => enc = mutate(&enc, &e, cut, &extra),
            1 => ct = mutate(&ct, &e, cut, &extra),
            _ => { enc = mutate(&enc, &e, None, &[]); ct = mutate(&ct, &e, None, &[]); }
        }
        let r = hpke::open_xwing(&f.w, &enc, b"info", b"aad", &ct);
        prop_assert!(typed(&r));
        if r.is_ok() { prop_assert_eq!(r.unwrap(), b"pt".to_vec()); }
    }

    #[test]
    fn hpke_seal_untrusted_keys(pk in blob(1300), ikm in proptest::option::of(blob(80)), xw in any::<bool>()) {
        let kem = if xw { hpke::HpkeKem::XWing } else { hpke::HpkeKem::DhkemX25519 };
        prop_assert!(typed(&hpke::seal(kem, &pk, b"i", b"a", b"p", ikm.as_deref())));
    }

    #[test]
    fn decapsulate_untrusted(e in edits(), cut in proptest::option::of(any::<usize>()), extra in blob(8)) {
        let f = fx();
        let ct = mutate(&f.kem_ct, &e, cut, &extra);
        let r = f.kem.decapsulate(&ct);
        prop_assert!(typed(&r));
        prop_assert_eq!(r.is_ok(), ct.len() == mlkem::CIPHERTEXT_LEN);
        let ct = mutate(&f.w_sealed.enc, &e, cut, &extra);
        let r = f.w.decapsulate(&ct);
        prop_assert!(typed(&r));
        prop_assert_eq!(r.is_ok(), ct.len() == xwing::CIPHERTEXT_LEN);
    }

    #[test]
    fn encapsulate_untrusted_keys(e in edits(), cut in proptest::option::of(any::<usize>()), extra in blob(8),
                                  random in blob(1300)) {
        let f = fx();
        let ek = mutate(&f.kem.encapsulation_key(), &e, cut, &extra);
        prop_assert!(typed(&mlkem::encapsulate(&ek, None)));
        prop_assert!(typed(&mlkem::encapsulate(&random, Some(&[1; 32]))));
        let pk = mutate(f.w.public_key(), &e, cut, &extra);
        prop_assert!(typed(&xwing::encapsulate(&pk, None)));
        prop_assert!(typed(&xwing::encapsulate(&random, None)));
    }

    #[test]
    fn verify_untrusted(e in edits(), cut in proptest::option::of(any::<usize>()), extra in blob(8),
                        which in 0u8..3, ctx in blob(300)) {
        let f = fx();
        let (mut pk, mut sig, mut msg) = (f.ed_pk.to_vec(), f.ed_sig.to_vec(), b"msg".to_vec());
        match which {
            0 => pk = mutate(&pk, &e, cut, &extra),
            1 => sig = mutate(&sig, &e, cut, &extra),
            _ => msg = mutate(&msg, &e, cut, &extra),
        }
        let changed = pk != f.ed_pk || sig != f.ed_sig || msg != b"msg";
        prop_assert_eq!(ed25519::verify(&pk, &msg, &sig), !changed);

        let (mut pk, mut sig, mut msg) = (f.dsa_pk.clone(), f.dsa_sig.clone(), b"msg".to_vec());
        match which {
            0 => pk = mutate(&pk, &e, cut, &extra),
            1 => sig = mutate(&sig, &e, cut, &extra),
            _ => msg = mutate(&msg, &e, cut, &extra),
        }
        let changed = pk != f.dsa_pk || sig != f.dsa_sig || msg != b"msg";
        prop_assert_eq!(mldsa::verify(&pk, &msg, &sig, b"ctx"), !changed);
        prop_assert!(!mldsa::verify(&f.dsa_pk, b"msg", &f.dsa_sig, &ctx) || ctx == b"ctx");
    }

    #[test]
    fn aead_open_untrusted(key in blob(40), nonce in blob(16), ct in blob(64), aes in any::<bool>()) {
        let alg = if aes { aead::AeadAlg::Aes256Gcm } else { aead::AeadAlg::ChaCha20Poly1305 };
        let r = aead::open(alg, &key, &nonce, b"", &ct);
        prop_assert!(typed(&r));
        prop_assert!(r.is_err());
    }

    #[test]
    fn key_factories_untrusted(bytes in blob(100), e in edits(), cut in proptest::option::of(any::<usize>()),
                               extra in blob(4)) {
        let f = fx();
        prop_assert!(typed(&x25519::X25519Secret::from_bytes(&bytes)));
        prop_assert!(typed(&ed25519::Ed25519Secret::from_seed(&bytes)));
        prop_assert!(typed(&mldsa::MlDsa65Secret::from_seed(&bytes)));
        prop_assert!(typed(&mlkem::MlKem768Secret::from_seed(&bytes)));
        prop_assert!(typed(&xwing::XWingSecret::from_seed(&bytes)));
        let dk = mutate(&f.kem_dk, &e, cut, &extra);
        let r = mlkem::MlKem768Secret::from_expanded(&dk);
        prop_assert!(typed(&r));
        if dk == f.kem_dk { prop_assert!(r.is_ok()); }
    }

    #[test]
    fn mldsa_from_expanded_untrusted(e in edits(), cut in proptest::option::of(any::<usize>()), extra in blob(4)) {
        let f = fx();
        let sk = mutate(&f.dsa_sk, &e, cut, &extra);
        let r = mldsa::MlDsa65Secret::from_expanded(&sk);
        prop_assert!(typed(&r));
        if let Ok(k) = r {
            // Whatever an accepted key signs verifies; an inconsistent one is a typed error.
            for i in 0..4u8 {
                match k.sign(&[i], b"", None) {
                    Ok(sig) => prop_assert!(mldsa::verify(k.public_key(), &[i], &sig, b"")),
                    Err(e) => prop_assert_eq!(e.code(), ERR_CRYPTO_KEY),
                }
            }
        }
    }
}

#[test]
fn mldsa_from_expanded_rejects_corrupted_t0() {
    // t0 is not covered by the tr check; the pairwise consistency test must catch it.
    let mut sk = dsa_expanded();
    for b in &mut sk[4032 - 2496..] {
        *b ^= 0x5a;
    }
    let r = mldsa::MlDsa65Secret::from_expanded(&sk);
    assert!(matches!(r, Err(CryptoError::Key(_))), "{:?}", r.err());
}
