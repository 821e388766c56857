//! Throughput of the native primitives, measured on the same pure-Rust functions the N-API
//! layer wraps. Prints one JSON object `{ "primitive": ops_per_second, ... }` on stdout.
//!
//! Run: `cargo bench --manifest-path native/Cargo.toml --bench primitives`
//! (`BENCH_SECONDS` overrides the ~0.5 s measured per primitive).
use aftersmtp_native::crypto::{aead, ed25519, hash, hashcash, hpke, mldsa, mlkem, x25519, xwing};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn measure(target: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up, then run batches until the target time has elapsed.
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut ops: u64 = 0;
    let mut batch: u64 = 1;
    loop {
        for _ in 0..batch {
            f();
        }
        ops += batch;
        let elapsed = start.elapsed();
        if elapsed >= target {
            return ops as f64 / elapsed.as_secs_f64();
        }
        if elapsed < target / 10 {
            batch = batch.saturating_mul(2);
        }
    }
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let target = Duration::from_secs_f64(secs);
    let mut results: Vec<(&str, f64)> = Vec::new();

    let data_1k = vec![0x5au8; 1024];
    results.push((
        "sha256-1k",
        measure(target, || {
            black_box(hash::sha256(black_box(&data_1k)));
        }),
    ));

    let key = [7u8; 32];
    let nonce = [9u8; 12];
    let msg_4k = vec![0xa5u8; 4096];
    for (name, alg) in [
        ("chacha20-poly1305-seal-4k", aead::AeadAlg::ChaCha20Poly1305),
        ("aes-256-gcm-seal-4k", aead::AeadAlg::Aes256Gcm),
    ] {
        results.push((
            name,
            measure(target, || {
                black_box(aead::seal(alg, &key, &nonce, b"aad", black_box(&msg_4k)).expect("seal"));
            }),
        ));
    }

    let a = x25519::X25519Secret::generate().expect("x25519");
    let b = x25519::X25519Secret::generate().expect("x25519");
    let b_pub = b.public_key();
    results.push((
        "x25519-dh",
        measure(target, || {
            black_box(a.diffie_hellman(black_box(&b_pub)).expect("dh"));
        }),
    ));

    let ed = ed25519::Ed25519Secret::generate().expect("ed25519");
    let ed_pub = ed.public_key();
    let msg = [0x42u8; 256];
    results.push((
        "ed25519-sign",
        measure(target, || {
            black_box(ed.sign(black_box(&msg)));
        }),
    ));
    let ed_sig = ed.sign(&msg);
    results.push((
        "ed25519-verify",
        measure(target, || {
            assert!(ed25519::verify(&ed_pub, black_box(&msg), &ed_sig));
        }),
    ));

    let kem = mlkem::MlKem768Secret::generate().expect("ml-kem");
    let ek = kem.encapsulation_key();
    results.push((
        "ml-kem-768-encaps",
        measure(target, || {
            black_box(mlkem::encapsulate(black_box(&ek), None).expect("encaps"));
        }),
    ));
    let ct = mlkem::encapsulate(&ek, None).expect("encaps").ciphertext;
    results.push((
        "ml-kem-768-decaps",
        measure(target, || {
            black_box(kem.decapsulate(black_box(&ct)).expect("decaps"));
        }),
    ));

    let dsa = mldsa::MlDsa65Secret::generate().expect("ml-dsa");
    let dsa_pub = dsa.public_key().to_vec();
    results.push((
        "ml-dsa-65-sign",
        measure(target, || {
            black_box(dsa.sign(black_box(&msg), b"bench", None).expect("sign"));
        }),
    ));
    let dsa_sig = dsa.sign(&msg, b"bench", None).expect("sign");
    results.push((
        "ml-dsa-65-verify",
        measure(target, || {
            assert!(mldsa::verify(&dsa_pub, black_box(&msg), &dsa_sig, b"bench"));
        }),
    ));

    let xw = xwing::XWingSecret::generate().expect("x-wing");
    let xw_pub = xw.public_key().to_vec();
    results.push((
        "x-wing-encaps",
        measure(target, || {
            black_box(xwing::encapsulate(black_box(&xw_pub), None).expect("encaps"));
        }),
    ));
    let xw_ct = xwing::encapsulate(&xw_pub, None)
        .expect("encaps")
        .ciphertext;
    results.push((
        "x-wing-decaps",
        measure(target, || {
            black_box(xw.decapsulate(black_box(&xw_ct)).expect("decaps"));
        }),
    ));

    let content_key = [0x33u8; 32];
    let info = b"aftersmtp bench info: suite, message id, recipient DID, key id, expiry";
    let hx = x25519::X25519Secret::generate().expect("x25519");
    let hx_pub = hx.public_key();
    results.push((
        "hpke-seal-x25519",
        measure(target, || {
            black_box(
                hpke::seal(
                    hpke::HpkeKem::DhkemX25519,
                    &hx_pub,
                    info,
                    b"",
                    &content_key,
                    None,
                )
                .expect("seal"),
            );
        }),
    ));
    let sealed = hpke::seal(
        hpke::HpkeKem::DhkemX25519,
        &hx_pub,
        info,
        b"",
        &content_key,
        None,
    )
    .expect("seal");
    results.push((
        "hpke-open-x25519",
        measure(target, || {
            black_box(
                hpke::open_x25519(&hx, &sealed.enc, info, b"", &sealed.ciphertext).expect("open"),
            );
        }),
    ));
    results.push((
        "hpke-seal-xwing",
        measure(target, || {
            black_box(
                hpke::seal(hpke::HpkeKem::XWing, &xw_pub, info, b"", &content_key, None)
                    .expect("seal"),
            );
        }),
    ));
    let sealed =
        hpke::seal(hpke::HpkeKem::XWing, &xw_pub, info, b"", &content_key, None).expect("seal");
    results.push((
        "hpke-open-xwing",
        measure(target, || {
            black_box(
                hpke::open_xwing(&xw, &sealed.enc, info, b"", &sealed.ciphertext).expect("open"),
            );
        }),
    ));

    // hashes/s: one search call tries HASHCASH_BATCH nonces at an unreachable difficulty.
    const HASHCASH_BATCH: u64 = 1024;
    let stamp_prefix = b"aftersmtp:v1:alice@example.org:bob@example.net:20250101";
    results.push((
        "hashcash-sha256",
        HASHCASH_BATCH as f64
            * measure(target, || {
                black_box(
                    hashcash::search(black_box(stamp_prefix), 64, 0, HASHCASH_BATCH)
                        .expect("search"),
                );
            }),
    ));

    let body: Vec<String> = results
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {v:.1}"))
        .collect();
    println!("{{\n{}\n}}", body.join(",\n"));
}
