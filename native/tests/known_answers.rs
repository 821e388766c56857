//! Known-answer tests transcribed from the RFCs (section named at each) and the X-Wing draft's
//! vectors (shared/vectors/xwing/test-vectors.json, dconnolly/draft-connolly-cfrg-xwing-kem).
mod common;
use aftersmtp_native::crypto::{ed25519, hash, hpke, x25519, xwing, CryptoError};
use common::{hex, hx, vector_json};

/// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305,
/// Base mode, sequence number 0.
mod rfc9180_a21 {
    pub const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    pub const IKM_E: &str = "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b";
    pub const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
    pub const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
    pub const IKM_R: &str = "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df";
    pub const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
    pub const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
    pub const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    pub const AAD0: &str = "436f756e742d30";
    pub const CT0: &str =
        "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";
}

#[test]
fn rfc9180_a21_derive_key_pair() {
    use rfc9180_a21::*;
    let e = hpke::derive_x25519_key_pair(&hex(IKM_E));
    assert_eq!(e.public_key().to_vec(), hex(PK_EM));
    assert_eq!(e.to_bytes().to_vec(), hex(SK_EM));
    let r = hpke::derive_x25519_key_pair(&hex(IKM_R));
    assert_eq!(r.public_key().to_vec(), hex(PK_RM));
    assert_eq!(r.to_bytes().to_vec(), hex(SK_RM));
}

#[test]
fn rfc9180_a21_seal_and_open_sequence_0() {
    use rfc9180_a21::*;
    let sealed = hpke::seal(
        hpke::HpkeKem::DhkemX25519,
        &hex(PK_RM),
        &hex(INFO),
        &hex(AAD0),
        &hex(PT),
        Some(&hex(IKM_E)),
    )
    .unwrap();
    assert_eq!(sealed.enc, hex(PK_EM));
    assert_eq!(sealed.ciphertext, hex(CT0));

    let recipient = x25519::X25519Secret::from_bytes(&hex(SK_RM)).unwrap();
    assert_eq!(recipient.public_key().to_vec(), hex(PK_RM));
    let pt = hpke::open_x25519(&recipient, &hex(PK_EM), &hex(INFO), &hex(AAD0), &hex(CT0)).unwrap();
    assert_eq!(pt, hex(PT));

    // Any single-bit change is an authentication failure.
    let mut ct = hex(CT0);
    ct[3] ^= 0x01;
    assert_eq!(
        hpke::open_x25519(&recipient, &hex(PK_EM), &hex(INFO), &hex(AAD0), &ct).unwrap_err(),
        CryptoError::Auth("hpkeOpen")
    );
    let mut info = hex(INFO);
    info[0] ^= 0x80;
    assert!(matches!(
        hpke::open_x25519(&recipient, &hex(PK_EM), &info, &hex(AAD0), &hex(CT0)),
        Err(CryptoError::Auth(_))
    ));
}

#[test]
fn xwing_draft_vectors() {
    let doc = vector_json("xwing/test-vectors.json");
    let vectors = doc.as_array().expect("array");
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let key = xwing::XWingSecret::from_seed(&hx(v, "seed")).unwrap();
        assert_eq!(key.public_key(), &hx(v, "pk")[..]);
        assert_eq!(key.seed().to_vec(), hx(v, "sk"));
        let enc = xwing::encapsulate(&hx(v, "pk"), Some(&hx(v, "eseed"))).unwrap();
        assert_eq!(enc.ciphertext, hx(v, "ct"));
        assert_eq!(enc.shared_secret.to_vec(), hx(v, "ss"));
        assert_eq!(key.decapsulate(&hx(v, "ct")).unwrap().to_vec(), hx(v, "ss"));
    }
}

#[test]
fn xwing_hpke_known_answer_is_stable() {
    // HPKE over the first X-Wing vector: enc is exactly the X-Wing ciphertext for that eseed.
    let doc = vector_json("xwing/test-vectors.json");
    let v = &doc[0];
    let sealed = hpke::seal(
        hpke::HpkeKem::XWing,
        &hx(v, "pk"),
        b"info",
        b"aad",
        b"plaintext",
        Some(&hx(v, "eseed")),
    )
    .unwrap();
    assert_eq!(sealed.enc, hx(v, "ct"));
    let key = xwing::XWingSecret::from_seed(&hx(v, "seed")).unwrap();
    assert_eq!(
        hpke::open_xwing(&key, &sealed.enc, b"info", b"aad", &sealed.ciphertext).unwrap(),
        b"plaintext"
    );
}

/// RFC 5869 Appendix A.1 (test case 1) and A.3 (test case 3, empty salt and info).
#[test]
fn rfc5869_hkdf() {
    let okm = hash::hkdf_sha256(
        &hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        &hex("000102030405060708090a0b0c"),
        &hex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    .unwrap();
    assert_eq!(
        okm,
        hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    );
    let okm = hash::hkdf_sha256(
        &hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        b"",
        b"",
        42,
    )
    .unwrap();
    assert_eq!(
        okm,
        hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    );
}

/// FIPS 180-2 Appendix B.1 / B.2 examples.
#[test]
fn sha256_fips180_examples() {
    assert_eq!(
        hash::sha256(b"abc").to_vec(),
        hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        hash::sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_vec(),
        hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    );
}

/// RFC 7748 §6.1 (Alice and Bob).
#[test]
fn rfc7748_x25519_dh() {
    let alice = x25519::X25519Secret::from_bytes(&hex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ))
    .unwrap();
    let bob = x25519::X25519Secret::from_bytes(&hex(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ))
    .unwrap();
    assert_eq!(
        alice.public_key().to_vec(),
        hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        bob.public_key().to_vec(),
        hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(alice.diffie_hellman(&bob.public_key()).unwrap().to_vec(), k);
    assert_eq!(bob.diffie_hellman(&alice.public_key()).unwrap().to_vec(), k);
}

/// RFC 8032 §7.1 TEST 1 and TEST 3.
#[test]
fn rfc8032_ed25519() {
    let k = ed25519::Ed25519Secret::from_seed(&hex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ))
    .unwrap();
    let pk = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_eq!(k.public_key().to_vec(), pk);
    let sig = hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    assert_eq!(k.sign(b"").to_vec(), sig);
    assert!(ed25519::verify(&pk, b"", &sig));

    let k = ed25519::Ed25519Secret::from_seed(&hex(
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    ))
    .unwrap();
    let pk = hex("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025");
    assert_eq!(k.public_key().to_vec(), pk);
    let sig = hex("6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a");
    assert_eq!(k.sign(&hex("af82")).to_vec(), sig);
    assert!(ed25519::verify(&pk, &hex("af82"), &sig));
    assert!(!ed25519::verify(&pk, &hex("af83"), &sig));
}
