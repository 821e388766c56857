//! Round trips for every primitive, every error path with its code, and interop with the
//! independent `hpke` crate (rozbb/rust-hpke) for both KEMs.
use aftersmtp_native::crypto::error::{
    ERR_CRYPTO_AUTH, ERR_CRYPTO_KEY, ERR_CRYPTO_LENGTH, ERR_CRYPTO_PARAM,
};
use aftersmtp_native::crypto::{
    aead, ed25519, hash, hpke as our_hpke, mldsa, mlkem, rand, x25519, xwing, CryptoError,
};

fn code<T>(r: Result<T, CryptoError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn error_messages_name_parameter_and_size() {
    let e = aead::seal(aead::AeadAlg::Aes256Gcm, &[0; 31], &[0; 12], b"", b"").unwrap_err();
    assert_eq!(e.code(), ERR_CRYPTO_LENGTH);
    assert_eq!(e.to_string(), "key must be 32 bytes (got 31 bytes)");
    let e = mlkem::MlKem768Secret::from_seed(&[0; 63]).err().unwrap();
    assert_eq!(e.to_string(), "seed must be 64 bytes (got 63 bytes)");
}

#[test]
fn hash_and_hkdf() {
    assert_eq!(hash::sha256(b"").len(), 32);
    assert_eq!(hash::hkdf_sha256(b"k", b"", b"", 0).unwrap().len(), 0);
    assert_eq!(
        hash::hkdf_sha256(b"k", b"s", b"i", 8160).unwrap().len(),
        8160
    );
    assert_eq!(
        code(hash::hkdf_sha256(b"k", b"s", b"i", 8161)),
        ERR_CRYPTO_PARAM
    );
}

#[test]
fn random_bytes_bounds() {
    assert_eq!(rand::random_bytes(0).unwrap().len(), 0);
    let a = rand::random_bytes(32).unwrap();
    let b = rand::random_bytes(32).unwrap();
    assert_ne!(a, b);
    assert_eq!(rand::random_bytes(1 << 20).unwrap().len(), 1 << 20);
    assert_eq!(code(rand::random_bytes((1 << 20) + 1)), ERR_CRYPTO_PARAM);
}

#[test]
fn aead_round_trip_and_errors() {
    for alg in [aead::AeadAlg::ChaCha20Poly1305, aead::AeadAlg::Aes256Gcm] {
        let key = [1u8; 32];
        let nonce = [2u8; 12];
        for len in [0usize, 1, 15, 16, 17, 4096] {
            let pt = vec![0x61u8; len];
            let ct = aead::seal(alg, &key, &nonce, b"aad", &pt).unwrap();
            assert_eq!(ct.len(), len + 16);
            assert_eq!(aead::open(alg, &key, &nonce, b"aad", &ct).unwrap(), pt);
            assert_eq!(
                code(aead::open(alg, &key, &nonce, b"aaD", &ct)),
                ERR_CRYPTO_AUTH
            );
            let mut bad = ct.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(
                code(aead::open(alg, &key, &nonce, b"aad", &bad)),
                ERR_CRYPTO_AUTH
            );
            assert_eq!(
                code(aead::open(alg, &[9; 32], &nonce, b"aad", &ct)),
                ERR_CRYPTO_AUTH
            );
        }
        assert_eq!(
            code(aead::seal(alg, &[0; 32], &[0; 11], b"", b"")),
            ERR_CRYPTO_LENGTH
        );
        assert_eq!(
            code(aead::seal(alg, &[0; 33], &[0; 12], b"", b"")),
            ERR_CRYPTO_LENGTH
        );
        assert_eq!(
            code(aead::open(alg, &[0; 32], &[0; 12], b"", &[0; 15])),
            ERR_CRYPTO_LENGTH
        );
    }
    assert_eq!(code(aead::AeadAlg::parse("aes-128-gcm")), ERR_CRYPTO_PARAM);
}

#[test]
fn x25519_round_trip_and_errors() {
    let a = x25519::X25519Secret::generate().unwrap();
    let b = x25519::X25519Secret::generate().unwrap();
    assert_eq!(
        *a.diffie_hellman(&b.public_key()).unwrap(),
        *b.diffie_hellman(&a.public_key()).unwrap()
    );
    let a2 = x25519::X25519Secret::from_bytes(a.to_bytes().as_ref()).unwrap();
    assert_eq!(a2.public_key(), a.public_key());
    assert_eq!(code(a.diffie_hellman(&[0; 32])), ERR_CRYPTO_KEY);
    // u = 1 is a low-order point: the shared secret is all zero.
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(code(a.diffie_hellman(&one)), ERR_CRYPTO_KEY);
    assert_eq!(code(a.diffie_hellman(&[0; 31])), ERR_CRYPTO_LENGTH);
    assert_eq!(
        code(x25519::X25519Secret::from_bytes(&[0; 33])),
        ERR_CRYPTO_LENGTH
    );
}

#[test]
fn ed25519_round_trip_and_malformed() {
    let k = ed25519::Ed25519Secret::generate().unwrap();
    let sig = k.sign(b"msg");
    assert!(ed25519::verify(&k.public_key(), b"msg", &sig));
    assert!(!ed25519::verify(&k.public_key(), b"msh", &sig));
    assert!(!ed25519::verify(&k.public_key()[..31], b"msg", &sig));
    assert!(!ed25519::verify(&k.public_key(), b"msg", &sig[..63]));
    let mut long = sig.to_vec();
    long.push(0);
    assert!(!ed25519::verify(&k.public_key(), b"msg", &long));
    // Non-canonical S: S + L.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s_plus_l[32 + i] as u16 + l[i] as u16 + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert!(!ed25519::verify(&k.public_key(), b"msg", &s_plus_l));
    let k2 = ed25519::Ed25519Secret::from_seed(k.seed().as_ref()).unwrap();
    assert_eq!(k2.public_key(), k.public_key());
    assert_eq!(
        code(ed25519::Ed25519Secret::from_seed(&[0; 31])),
        ERR_CRYPTO_LENGTH
    );
}

#[test]
fn mldsa_round_trip_and_errors() {
    let k = mldsa::MlDsa65Secret::generate().unwrap();
    let pk = k.public_key().to_vec();
    assert_eq!(pk.len(), 1952);
    let sig = k.sign(b"msg", b"ctx", None).unwrap();
    assert_eq!(sig.len(), 3309);
    assert!(mldsa::verify(&pk, b"msg", &sig, b"ctx"));
    assert!(!mldsa::verify(&pk, b"msg", &sig, b"ctX"));
    assert!(!mldsa::verify(&pk, b"msG", &sig, b"ctx"));
    assert!(!mldsa::verify(&pk, b"msg", &sig, &[0u8; 256]));
    assert!(!mldsa::verify(&pk[..1951], b"msg", &sig, b"ctx"));
    assert!(!mldsa::verify(&pk, b"msg", &sig[..3308], b"ctx"));
    // Hedged signatures differ; deterministic ones repeat.
    assert_ne!(
        k.sign(b"m", b"", None).unwrap(),
        k.sign(b"m", b"", None).unwrap()
    );
    assert_eq!(
        k.sign(b"m", b"", Some(&[0; 32])).unwrap(),
        k.sign(b"m", b"", Some(&[0; 32])).unwrap()
    );
    assert!(mldsa::verify(
        &pk,
        b"m",
        &k.sign(b"m", &[7; 255], None).unwrap(),
        &[7; 255]
    ));
    assert_eq!(code(k.sign(b"m", &[0; 256], None)), ERR_CRYPTO_LENGTH);
    assert_eq!(code(k.sign(b"m", b"", Some(&[0; 31]))), ERR_CRYPTO_LENGTH);
    let seed = k.seed().unwrap();
    let k2 = mldsa::MlDsa65Secret::from_seed(seed.as_ref()).unwrap();
    assert_eq!(k2.public_key(), &pk[..]);
    assert_eq!(
        code(mldsa::MlDsa65Secret::from_seed(&[0; 33])),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(mldsa::MlDsa65Secret::from_expanded(&[0; 4031])),
        ERR_CRYPTO_LENGTH
    );
    // All-zero expanded key: coefficients decode in range, but tr does not match.
    assert_eq!(
        code(mldsa::MlDsa65Secret::from_expanded(&[0; 4032])),
        ERR_CRYPTO_KEY
    );
    // Out-of-range s1 nibble.
    assert_eq!(
        code(mldsa::MlDsa65Secret::from_expanded(&[0xff; 4032])),
        ERR_CRYPTO_KEY
    );
}

#[test]
fn mlkem_round_trip_and_errors() {
    let k = mlkem::MlKem768Secret::generate().unwrap();
    let ek = k.encapsulation_key();
    assert_eq!(ek.len(), 1184);
    let e = mlkem::encapsulate(&ek, None).unwrap();
    assert_eq!(e.ciphertext.len(), 1088);
    assert_eq!(*k.decapsulate(&e.ciphertext).unwrap(), *e.shared_secret);
    // Implicit rejection: a modified ciphertext gives a different secret, not an error.
    let mut ct = e.ciphertext.clone();
    ct[0] ^= 1;
    assert_ne!(*k.decapsulate(&ct).unwrap(), *e.shared_secret);
    // Deterministic encapsulation.
    let a = mlkem::encapsulate(&ek, Some(&[5; 32])).unwrap();
    let b = mlkem::encapsulate(&ek, Some(&[5; 32])).unwrap();
    assert_eq!(a.ciphertext, b.ciphertext);
    // Expanded form round trip; no seed afterwards.
    let dk = k.expanded_decapsulation_key();
    assert_eq!(dk.len(), 2400);
    let k2 = mlkem::MlKem768Secret::from_expanded(&dk).unwrap();
    assert_eq!(*k2.decapsulate(&e.ciphertext).unwrap(), *e.shared_secret);
    assert_eq!(code(k2.seed()), ERR_CRYPTO_KEY);
    let mut bad = dk.to_vec();
    bad[1152 + 1184] ^= 1; // inside H(ek)
    assert_eq!(
        code(mlkem::MlKem768Secret::from_expanded(&bad)),
        ERR_CRYPTO_KEY
    );
    let seed = k.seed().unwrap();
    assert_eq!(
        mlkem::MlKem768Secret::from_seed(seed.as_ref())
            .unwrap()
            .encapsulation_key(),
        ek
    );
    // Errors.
    assert_eq!(
        code(mlkem::encapsulate(&[0xff; 1184], None)),
        ERR_CRYPTO_KEY
    );
    assert_eq!(
        code(mlkem::encapsulate(&ek[..1183], None)),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(mlkem::encapsulate(&ek, Some(&[0; 31]))),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(code(k.decapsulate(&ct[..1087])), ERR_CRYPTO_LENGTH);
    assert_eq!(
        code(mlkem::MlKem768Secret::from_seed(&[0; 32])),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(mlkem::MlKem768Secret::from_expanded(&[0; 2399])),
        ERR_CRYPTO_LENGTH
    );
}

#[test]
fn xwing_round_trip_and_errors() {
    let k = xwing::XWingSecret::generate().unwrap();
    let pk = k.public_key().to_vec();
    let e = xwing::encapsulate(&pk, None).unwrap();
    assert_eq!(e.ciphertext.len(), 1120);
    assert_eq!(*k.decapsulate(&e.ciphertext).unwrap(), *e.shared_secret);
    let k2 = xwing::XWingSecret::from_seed(k.seed().as_ref()).unwrap();
    assert_eq!(k2.public_key(), &pk[..]);
    let mut bad_pk = pk.clone();
    bad_pk[..1184].fill(0xff);
    assert_eq!(code(xwing::encapsulate(&bad_pk, None)), ERR_CRYPTO_KEY);
    assert_eq!(
        code(xwing::encapsulate(&pk[..1215], None)),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(xwing::encapsulate(&pk, Some(&[0; 63]))),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(k.decapsulate(&e.ciphertext[..1119])),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(xwing::XWingSecret::from_seed(&[0; 31])),
        ERR_CRYPTO_LENGTH
    );
}

#[test]
fn hpke_round_trip_and_errors() {
    let info = b"suite|msgid|did|kid|expiry";
    let x = x25519::X25519Secret::generate().unwrap();
    let s = our_hpke::seal(
        our_hpke::HpkeKem::DhkemX25519,
        &x.public_key(),
        info,
        b"a",
        b"pt",
        None,
    )
    .unwrap();
    assert_eq!(s.enc.len(), 32);
    assert_eq!(
        our_hpke::open_x25519(&x, &s.enc, info, b"a", &s.ciphertext).unwrap(),
        b"pt"
    );
    assert_eq!(
        code(our_hpke::open_x25519(
            &x,
            &s.enc,
            b"other",
            b"a",
            &s.ciphertext
        )),
        ERR_CRYPTO_AUTH
    );
    assert_eq!(
        code(our_hpke::open_x25519(&x, &s.enc, info, b"b", &s.ciphertext)),
        ERR_CRYPTO_AUTH
    );
    let other = x25519::X25519Secret::generate().unwrap();
    assert_eq!(
        code(our_hpke::open_x25519(
            &other,
            &s.enc,
            info,
            b"a",
            &s.ciphertext
        )),
        ERR_CRYPTO_AUTH
    );
    assert_eq!(
        code(our_hpke::open_x25519(
            &x,
            &[0; 32],
            info,
            b"a",
            &s.ciphertext
        )),
        ERR_CRYPTO_KEY
    );
    assert_eq!(
        code(our_hpke::open_x25519(
            &x,
            &s.enc[..31],
            info,
            b"a",
            &s.ciphertext
        )),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(our_hpke::open_x25519(
            &x,
            &s.enc,
            info,
            b"a",
            &s.ciphertext[..15]
        )),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(our_hpke::open_x25519(
            &x,
            &s.enc,
            &vec![0; 65536],
            b"a",
            &s.ciphertext
        )),
        ERR_CRYPTO_LENGTH
    );
    // Seal-side errors.
    let seal = |kem, pk: &[u8], ikm: Option<&[u8]>| our_hpke::seal(kem, pk, b"", b"", b"", ikm);
    assert_eq!(
        code(seal(our_hpke::HpkeKem::DhkemX25519, &[0; 32], None)),
        ERR_CRYPTO_KEY
    );
    assert_eq!(
        code(seal(our_hpke::HpkeKem::DhkemX25519, &[0; 33], None)),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(seal(
            our_hpke::HpkeKem::DhkemX25519,
            &x.public_key(),
            Some(&[0; 31])
        )),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(seal(
            our_hpke::HpkeKem::DhkemX25519,
            &x.public_key(),
            Some(&[0; 65])
        )),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(seal(our_hpke::HpkeKem::XWing, &x.public_key(), None)),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(our_hpke::HpkeKem::parse("dhkem-p256")),
        ERR_CRYPTO_PARAM
    );

    let w = xwing::XWingSecret::generate().unwrap();
    let s = our_hpke::seal(
        our_hpke::HpkeKem::XWing,
        w.public_key(),
        info,
        b"",
        b"content key",
        None,
    )
    .unwrap();
    assert_eq!(s.enc.len(), 1120);
    assert_eq!(
        our_hpke::open_xwing(&w, &s.enc, info, b"", &s.ciphertext).unwrap(),
        b"content key"
    );
    let mut enc = s.enc.clone();
    enc[5] ^= 1;
    assert_eq!(
        code(our_hpke::open_xwing(&w, &enc, info, b"", &s.ciphertext)),
        ERR_CRYPTO_AUTH
    );
    assert_eq!(
        code(our_hpke::open_xwing(
            &w,
            &s.enc[..1119],
            info,
            b"",
            &s.ciphertext
        )),
        ERR_CRYPTO_LENGTH
    );
    assert_eq!(
        code(seal(
            our_hpke::HpkeKem::XWing,
            w.public_key(),
            Some(&[0; 32])
        )),
        ERR_CRYPTO_LENGTH
    );
}

mod interop {
    //! Cross-check against rozbb/rust-hpke 0.15 (an independent RFC 9180 implementation).
    use super::*;
    use hpke::{
        aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, kem::XWing, Deserializable,
        Kem, OpModeR, OpModeS, Serializable,
    };

    #[test]
    fn x25519_both_directions() {
        let ours = x25519::X25519Secret::generate().unwrap();
        let info = b"interop info";
        // hpke crate -> us
        let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&ours.public_key()).unwrap();
        let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &pk,
            info,
            b"hello ours",
            b"aad",
        )
        .unwrap();
        let pt = our_hpke::open_x25519(&ours, &enc.to_bytes(), info, b"aad", &ct).unwrap();
        assert_eq!(pt, b"hello ours");
        // us -> hpke crate
        let (sk, pk) = X25519HkdfSha256::gen_keypair();
        let s = our_hpke::seal(
            our_hpke::HpkeKem::DhkemX25519,
            &pk.to_bytes(),
            info,
            b"aad",
            b"hello theirs",
            None,
        )
        .unwrap();
        let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&s.enc).unwrap();
        let pt = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk,
            &enc,
            info,
            &s.ciphertext,
            b"aad",
        )
        .unwrap();
        assert_eq!(pt, b"hello theirs");
    }

    #[test]
    fn xwing_both_directions() {
        let ours = xwing::XWingSecret::generate().unwrap();
        let info = b"interop info";
        let pk = <XWing as Kem>::PublicKey::from_bytes(ours.public_key()).unwrap();
        let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, XWing>(
            &OpModeS::Base,
            &pk,
            info,
            b"hello ours",
            b"aad",
        )
        .unwrap();
        let pt = our_hpke::open_xwing(&ours, &enc.to_bytes(), info, b"aad", &ct).unwrap();
        assert_eq!(pt, b"hello ours");

        // Same seed on both sides: the hpke crate's X-Wing private key is the 32-byte seed.
        let sk = <XWing as Kem>::PrivateKey::from_bytes(ours.seed().as_ref()).unwrap();
        assert_eq!(&XWing::sk_to_pk(&sk).to_bytes()[..], ours.public_key());
        let s = our_hpke::seal(
            our_hpke::HpkeKem::XWing,
            ours.public_key(),
            info,
            b"aad",
            b"hello theirs",
            None,
        )
        .unwrap();
        let enc = <XWing as Kem>::EncappedKey::from_bytes(&s.enc).unwrap();
        let pt = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(
            &OpModeR::Base,
            &sk,
            &enc,
            info,
            &s.ciphertext,
            b"aad",
        )
        .unwrap();
        assert_eq!(pt, b"hello theirs");
    }
}
