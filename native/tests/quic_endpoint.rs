//! The QUIC endpoint driven from Rust (no Node): a server and a client on 127.0.0.1 with
//! throw-away certificates, a round trip, a refusal over the frame cap, and a Retry handshake.
use aftersmtp_native::quic::{self, frame::code, EndpointHandle, Event, Limits, Outcome};
use boring::asn1::Asn1Time;
use boring::bn::BigNum;
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::PKey;
use boring::x509::{X509NameBuilder, X509};
use std::sync::mpsc;
use std::time::Duration;

fn self_signed(cn: &str) -> (Vec<u8>, Vec<u8>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

fn start(listen: bool, limits: Limits) -> (EndpointHandle, mpsc::Receiver<Event>, Vec<u8>) {
    let (cert, key) = self_signed(if listen { "server" } else { "client" });
    let (tx, rx) = mpsc::channel();
    let h = quic::spawn(
        "127.0.0.1:0".parse().unwrap(),
        listen,
        &cert,
        &key,
        limits,
        Box::new(tx),
    )
    .unwrap();
    let der = X509::from_pem(&cert).unwrap().to_der().unwrap();
    (h, rx, der)
}

fn next(rx: &mpsc::Receiver<Event>) -> Event {
    rx.recv_timeout(Duration::from_secs(10)).expect("an event")
}

/// Serve: answer every message with `ack:<len>` until `n` messages were answered.
fn serve(server: &EndpointHandle, rx: &mpsc::Receiver<Event>, n: usize) -> Vec<u8> {
    let mut client_cert = Vec::new();
    let mut answered = 0;
    while answered < n {
        match next(rx) {
            Event::Connected { peer_cert, .. } => client_cert = peer_cert,
            Event::Message { conn, stream, data } => {
                server.reply(conn, stream, Ok(format!("ack:{}", data.len()).into_bytes()));
                answered += 1;
            }
            _ => {}
        }
    }
    client_cert
}

fn response(rx: &mpsc::Receiver<Event>) -> (Vec<u8>, Outcome) {
    let mut server_cert = Vec::new();
    loop {
        match next(rx) {
            Event::Connected { peer_cert, .. } => server_cert = peer_cert,
            Event::Response { outcome, .. } => return (server_cert, outcome),
            Event::Closed { reason, .. } => panic!("closed: {reason}"),
            Event::Message { .. } => {}
        }
    }
}

#[test]
fn round_trip_with_mutual_certificates() {
    let (server, srx, server_der) = start(true, Limits::default());
    let (client, crx, client_der) = start(false, Limits::default());
    let conn = client.connect(server.local_addr, "server.test").unwrap();
    client.send(conn, b"hello".to_vec()).unwrap();
    let seen_client = std::thread::scope(|s| {
        let server = &server;
        let t = s.spawn(move || serve(server, &srx, 1));
        let (seen_server, outcome) = response(&crx);
        assert_eq!(outcome, Outcome::Ack(b"ack:5".to_vec()));
        assert_eq!(
            seen_server, server_der,
            "the client sees the server's certificate"
        );
        t.join().unwrap()
    });
    assert_eq!(
        seen_client, client_der,
        "the server sees the client's certificate"
    );
    let s = server.stats.snapshot();
    assert_eq!(
        (s.frames_received, s.acks_sent, s.buffered_bytes),
        (1, 1, 0)
    );
}

#[test]
fn frame_over_the_cap_is_refused() {
    let limits = Limits {
        max_frame_bytes: 1000,
        ..Limits::default()
    };
    let (server, _srx, _) = start(true, limits);
    let (client, crx, _) = start(false, Limits::default());
    let conn = client.connect(server.local_addr, "").unwrap();
    client.send(conn, vec![0u8; 1001]).unwrap();
    let (_, outcome) = response(&crx);
    match outcome {
        Outcome::Error { code: c, .. } => assert_eq!(c, code::TOO_LARGE),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.stats.snapshot().refused_too_large, 1);
}

#[test]
fn retry_validates_the_address() {
    let limits = Limits {
        retry_threshold: 0,
        ..Limits::default()
    };
    let (server, srx, _) = start(true, limits);
    let (client, crx, _) = start(false, Limits::default());
    let conn = client.connect(server.local_addr, "").unwrap();
    client.send(conn, vec![7u8; 3000]).unwrap();
    std::thread::scope(|s| {
        let server = &server;
        let t = s.spawn(move || serve(server, &srx, 1));
        assert_eq!(response(&crx).1, Outcome::Ack(b"ack:3000".to_vec()));
        t.join().unwrap();
    });
    assert!(server.stats.snapshot().retries_sent >= 1);
}
