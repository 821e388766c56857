//! TLS 1.3 and transport configuration of the QUIC endpoint, and Retry tokens.
//!
//! The certificate and key come from the caller as PEM. Peers authenticate each other with
//! their certificates' keys bound to gateway DIDs in the ledger, not with a Web PKI chain: the
//! TLS layer requires a certificate from both sides (the server sends CertificateRequest and
//! fails a handshake without a client certificate) and accepts any well-formed one; the
//! certificate is then handed to the application, which checks it against the peer's DID
//! record and closes the connection if it does not match. 0-RTT (early data) is never
//! enabled, session tickets are not issued to clients that could replay them.
use super::{Limits, ALPN};
use boring::pkey::PKey;
use boring::ssl::{SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
use boring::x509::X509;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A configuration error (bad PEM, key not matching the certificate, quiche refusing a value).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn cfg_err(what: &str) -> impl Fn(String) -> ConfigError + '_ {
    move |e| ConfigError(format!("{what}: {e}"))
}

/// Build the quiche configuration: TLS context from `cert_pem` (leaf first, then any chain)
/// and `key_pem`, ALPN `amp/1`, and flow-control windows derived from `limits`.
pub fn build_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    limits: &Limits,
) -> Result<quiche::Config, ConfigError> {
    let mut ctx =
        SslContextBuilder::new(SslMethod::tls()).map_err(|e| cfg_err("TLS")(e.to_string()))?;
    ctx.set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(|e| cfg_err("TLS version")(e.to_string()))?;
    let mut chain = X509::stack_from_pem(cert_pem)
        .map_err(|e| cfg_err("certificate PEM")(e.to_string()))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| ConfigError("certificate PEM: no certificate".into()))?;
    ctx.set_certificate(&leaf)
        .map_err(|e| cfg_err("certificate")(e.to_string()))?;
    for extra in chain {
        ctx.add_extra_chain_cert(extra)
            .map_err(|e| cfg_err("certificate chain")(e.to_string()))?;
    }
    let key = PKey::private_key_from_pem(key_pem)
        .map_err(|e| cfg_err("private key PEM")(e.to_string()))?;
    ctx.set_private_key(&key)
        .map_err(|e| cfg_err("private key")(e.to_string()))?;
    ctx.check_private_key()
        .map_err(|_| ConfigError("the private key does not match the certificate".into()))?;
    // Require the peer's certificate on both sides; accept any: the DID check is the
    // application's (see the module comment). FAIL_IF_NO_PEER_CERT applies to the server role.
    ctx.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_preverify, _store| true,
    );

    let mut c = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, ctx)
        .map_err(|e| cfg_err("QUIC config")(e.to_string()))?;
    c.set_application_protos(&[ALPN])
        .map_err(|e| cfg_err("ALPN")(e.to_string()))?;
    c.set_max_idle_timeout(limits.idle_timeout.as_millis() as u64);
    // Packets start at 1200..1350 bytes; DPLPMTUD (RFC 8899) probes up to MAX_DATAGRAM, with
    // the socket's DF bit set so an oversized probe is lost, never fragmented (udp.rs).
    c.set_max_recv_udp_payload_size(MAX_DATAGRAM);
    c.set_max_send_udp_payload_size(MAX_DATAGRAM);
    c.discover_pmtu(true);
    let window = limits.connection_window as u64;
    c.set_initial_max_data(window);
    c.set_max_connection_window(window);
    // A stream carries one frame: its window never needs to exceed that frame (nor the
    // connection's window).
    let stream_window =
        ((limits.max_frame_bytes + super::frame::HEADER_LEN) as u64).clamp(64 * 1024, window);
    c.set_initial_max_stream_data_bidi_remote(stream_window);
    c.set_max_stream_window(stream_window);
    // Our own (outbound) streams only ever receive an ACK or ERROR frame.
    c.set_initial_max_stream_data_bidi_local(
        (super::frame::MAX_ACK_BODY + super::frame::HEADER_LEN) as u64,
    );
    c.set_initial_max_stream_data_uni(0);
    c.set_initial_max_streams_bidi(limits.max_streams_per_connection as u64);
    c.set_initial_max_streams_uni(0);
    c.set_disable_active_migration(true);
    Ok(c)
}

/// Length of every connection id this endpoint issues: short-header packets do not carry the
/// length, so the receiver must know it (RFC 9000 §17.3).
pub const CID_LEN: usize = 16;

/// Largest UDP payload sent or accepted once path MTU discovery has confirmed the path carries
/// it (jumbo frames); before that, and on ordinary paths, packets stay at 1200-1350 bytes.
pub const MAX_DATAGRAM: usize = 9000;

/// How long a Retry token stays valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10);
const TOKEN_MAC_LEN: usize = 16;
const TOKEN_PREFIX: &[u8] = b"amp1";

type HmacSha256 = Hmac<Sha256>;

/// Keys of the endpoint's stateless mechanisms: connection-id derivation and Retry tokens
/// (random per process), and stateless reset tokens (derived from the endpoint's private key,
/// so that the same gateway restarted can still reset the connections of its previous run).
pub struct Secrets {
    key: [u8; 32],
    reset: [u8; 32],
}

impl Secrets {
    /// Fresh keys, the reset key derived from `key_pem` (the endpoint's TLS private key).
    pub fn new(key_pem: &[u8]) -> Result<Self, ConfigError> {
        let der = PKey::private_key_from_pem(key_pem)
            .and_then(|k| k.private_key_to_der())
            .map_err(|e| cfg_err("private key")(e.to_string()))?;
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"aftersmtp/quic/stateless-reset/v1")
            .expect("any key length");
        m.update(&der);
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("OS random source");
        Ok(Secrets {
            key,
            reset: m.finalize().into_bytes().into(),
        })
    }

    /// The stateless reset token of one of this endpoint's connection ids (RFC 9000 §10.3.2:
    /// HMAC of the id under a static key).
    pub fn reset_token(&self, cid: &[u8]) -> u128 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.reset).expect("any key length");
        m.update(cid);
        let mac: [u8; 32] = m.finalize().into_bytes().into();
        u128::from_be_bytes(mac[..16].try_into().expect("16 bytes"))
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key length");
        m.update(label);
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// The server's connection id for a client's first Destination Connection ID: derived, so
    /// that every Initial packet of one handshake finds the same connection (quiche-server).
    pub fn derive_cid(&self, client_dcid: &[u8]) -> Vec<u8> {
        self.mac(b"cid", &[client_dcid])[..CID_LEN].to_vec()
    }

    /// A Retry token (RFC 9000 §8.1.2): `"amp1" || unix seconds (u64) || odcid length (u8) ||
    /// odcid || HMAC-SHA256(key, address, seconds, odcid)[..16]`.
    pub fn mint_token(&self, peer: &SocketAddr, odcid: &[u8]) -> Vec<u8> {
        let secs = unix_secs();
        let mut t = Vec::with_capacity(TOKEN_PREFIX.len() + 9 + odcid.len() + TOKEN_MAC_LEN);
        t.extend_from_slice(TOKEN_PREFIX);
        t.extend_from_slice(&secs.to_be_bytes());
        t.push(odcid.len() as u8);
        t.extend_from_slice(odcid);
        let mac = self.mac(b"retry", &[&addr_bytes(peer), &secs.to_be_bytes(), odcid]);
        t.extend_from_slice(&mac[..TOKEN_MAC_LEN]);
        t
    }

    /// The original destination connection id inside a valid, fresh token from `peer`.
    pub fn validate_token(&self, peer: &SocketAddr, token: &[u8]) -> Option<Vec<u8>> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        if rest.len() < 9 + TOKEN_MAC_LEN {
            return None;
        }
        let secs = u64::from_be_bytes(rest[..8].try_into().ok()?);
        let n = rest[8] as usize;
        if n > quiche::MAX_CONN_ID_LEN || rest.len() != 9 + n + TOKEN_MAC_LEN {
            return None;
        }
        let odcid = &rest[9..9 + n];
        let mac = self.mac(b"retry", &[&addr_bytes(peer), &secs.to_be_bytes(), odcid]);
        if !constant_time_eq(&mac[..TOKEN_MAC_LEN], &rest[9 + n..]) {
            return None;
        }
        let now = unix_secs();
        if secs > now + 1 || now - secs > TOKEN_LIFETIME.as_secs() {
            return None;
        }
        Some(odcid.to_vec())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn addr_bytes(a: &SocketAddr) -> Vec<u8> {
    let mut v = match a.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&a.port().to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pem() -> Vec<u8> {
        let group =
            boring::ec::EcGroup::from_curve_name(boring::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = boring::ec::EcKey::generate(&group).unwrap();
        PKey::from_ec_key(key)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap()
    }

    #[test]
    fn reset_tokens_survive_a_restart_with_the_same_key_only() {
        let pem = key_pem();
        let (a, b) = (Secrets::new(&pem).unwrap(), Secrets::new(&pem).unwrap());
        assert_eq!(a.reset_token(b"cid-1"), b.reset_token(b"cid-1"));
        assert_ne!(a.reset_token(b"cid-1"), a.reset_token(b"cid-2"));
        let other = Secrets::new(&key_pem()).unwrap();
        assert_ne!(a.reset_token(b"cid-1"), other.reset_token(b"cid-1"));
        assert_ne!(
            a.derive_cid(b"x"),
            b.derive_cid(b"x"),
            "the other keys are per process"
        );
    }

    #[test]
    fn token_round_trip_and_binding() {
        let s = Secrets::new(&key_pem()).unwrap();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let t = s.mint_token(&a, b"odcid-123");
        assert_eq!(s.validate_token(&a, &t).as_deref(), Some(&b"odcid-123"[..]));
        assert_eq!(s.validate_token(&b, &t), None, "bound to the address");
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(s.validate_token(&a, &bad), None);
        assert_eq!(
            Secrets::new(&key_pem()).unwrap().validate_token(&a, &t),
            None,
            "bound to the key"
        );
        assert_eq!(s.validate_token(&a, b"amp1"), None);
    }
}
