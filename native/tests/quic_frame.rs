//! Property tests of the AMP/QUIC frame decoder (untrusted bytes from peers): any chunking of a
//! valid frame decodes to the same frame; arbitrary bytes end in a typed error or a frame, never
//! a panic; a declared length over the maximum is refused from the header alone; truncation and
//! trailing bytes are errors; the decoder never allocates more than the validated length.
use aftersmtp_native::quic::frame::{
    self, decode_all, decode_error_body, encode, encode_error, encode_header, Expect, FrameDecoder,
    FrameError, Need, HEADER_LEN, MAX_ACK_BODY, TYPE_ACK, TYPE_ERROR, TYPE_MESSAGE,
};
use proptest::prelude::*;

/// Feed `data` in chunks of the given sizes, reserving whenever asked, then FIN.
fn decode_chunked(
    expect: Expect,
    data: &[u8],
    sizes: &[usize],
) -> Result<(u8, Vec<u8>), FrameError> {
    let mut d = FrameDecoder::new(expect);
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        i += 1;
        let mut chunk = &rest[..n.min(rest.len())];
        rest = &rest[chunk.len()..];
        while !chunk.is_empty() {
            let used = d.feed(chunk)?;
            chunk = &chunk[used..];
            if let Need::Reserve { len, .. } = d.need() {
                d.start_body();
                assert!(d.body_mut().unwrap().capacity() >= len);
            }
        }
    }
    if let Need::Reserve { .. } = d.need() {
        d.start_body();
    }
    d.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let wire = encode(TYPE_MESSAGE, &body);
        let (ty, got) = decode_chunked(Expect::Message { max: 4096 }, &wire, &sizes).unwrap();
        prop_assert_eq!(ty, TYPE_MESSAGE);
        prop_assert_eq!(got, body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        sizes in proptest::collection::vec(1usize..8, 1..4),
        max in 0usize..32,
    ) {
        for expect in [Expect::Message { max }, Expect::Response] {
            match decode_chunked(expect, &data, &sizes) {
                Ok((ty, body)) => {
                    // Only a complete, exact frame decodes.
                    prop_assert_eq!(data.len(), HEADER_LEN + body.len());
                    prop_assert_eq!(&data[..], &encode(ty, &body)[..]);
                }
                Err(e) => prop_assert!(e.code() == frame::code::MALFORMED || e.code() == frame::code::TOO_LARGE),
            }
        }
    }

    #[test]
    fn over_the_cap_is_refused_from_the_header(max in 0usize..100_000, extra in 1u32..1_000_000) {
        let declared = max as u32 + extra;
        let mut d = FrameDecoder::new(Expect::Message { max });
        let err = d.feed(&encode_header(TYPE_MESSAGE, declared as usize)).unwrap_err();
        prop_assert_eq!(err, FrameError::TooLarge { declared: u64::from(declared), max });
    }

    #[test]
    fn truncated_and_trailing_are_errors(body in proptest::collection::vec(any::<u8>(), 1..512), cut in 1usize..512) {
        let wire = encode(TYPE_MESSAGE, &body);
        let cut = cut.min(wire.len() - 1);
        prop_assert_eq!(
            decode_all(Expect::Message { max: 1024 }, &wire[..wire.len() - cut]),
            Err(FrameError::Truncated)
        );
        let mut longer = wire.clone();
        longer.push(0);
        prop_assert_eq!(decode_all(Expect::Message { max: 1024 }, &longer), Err(FrameError::Trailing));
    }

    #[test]
    fn error_frames_round_trip(code in any::<u16>(), reason in ".{0,300}") {
        let wire = encode_error(code, &reason);
        let (ty, body) = decode_all(Expect::Response, &wire).unwrap();
        prop_assert_eq!(ty, TYPE_ERROR);
        prop_assert_eq!(decode_error_body(&body).unwrap(), (code, reason));
    }
}

#[test]
fn header_layout_is_type_then_big_endian_length() {
    assert_eq!(
        encode_header(TYPE_MESSAGE, 0x0102_0304),
        [0x01, 0x01, 0x02, 0x03, 0x04]
    );
    assert_eq!(encode(TYPE_ACK, b"ok"), [0x02, 0, 0, 0, 2, b'o', b'k']);
    assert_eq!(
        encode_error(0x0002, "big"),
        [0x03, 0, 0, 0, 5, 0x00, 0x02, b'b', b'i', b'g']
    );
}

#[test]
fn direction_rules() {
    // A receiver accepts only MESSAGE; an opener only ACK or ERROR.
    let ack = encode(TYPE_ACK, b"");
    assert_eq!(
        decode_all(Expect::Message { max: 10 }, &ack),
        Err(FrameError::UnknownType(TYPE_ACK))
    );
    let msg = encode(TYPE_MESSAGE, b"");
    assert_eq!(
        decode_all(Expect::Response, &msg),
        Err(FrameError::UnknownType(TYPE_MESSAGE))
    );
    let big_ack = encode_header(TYPE_ACK, MAX_ACK_BODY + 1);
    assert!(matches!(
        decode_all(Expect::Response, &big_ack),
        Err(FrameError::TooLarge { .. })
    ));
    // An ERROR body needs its 2-byte code.
    assert_eq!(decode_error_body(&[1]), Err(FrameError::BadErrorBody));
}

#[test]
fn error_reasons_are_cut_on_a_char_boundary() {
    let long = "é".repeat(1000); // 2000 bytes
    let wire = encode_error(1, &long);
    let (_, body) = decode_all(Expect::Response, &wire).unwrap();
    let (_, reason) = decode_error_body(&body).unwrap();
    assert!(reason.len() <= frame::MAX_ERROR_REASON);
    assert!(reason.chars().all(|c| c == 'é'));
}

/// Regression (issue #12): a declared length is a promise, not memory. A body's buffer starts
/// at INITIAL_BODY_CAPACITY and grows with the bytes that arrive, never past the declared
/// length; a peer that announces 32 MiB and sends 40 bytes costs 64 KiB, not 32 MiB.
#[test]
fn body_memory_follows_the_bytes_that_arrive() {
    let declared = 32 * 1024 * 1024;
    let mut d = FrameDecoder::new(Expect::Message { max: declared });
    d.feed(&encode_header(TYPE_MESSAGE, declared)).unwrap();
    assert_eq!(
        d.need(),
        Need::Reserve {
            ty: TYPE_MESSAGE,
            len: declared
        }
    );
    d.start_body();
    d.feed(&[0x61; 40]).unwrap();
    let cap = d.body_for(0).unwrap().capacity();
    assert!(cap <= frame::INITIAL_BODY_CAPACITY, "capacity {cap}");
    // Growing by arrival: at least doubling, capped at the declared length.
    let body = d.body_for(declared - 40).unwrap();
    assert_eq!(body.capacity(), declared);
    let mut small = FrameDecoder::new(Expect::Message { max: 100 });
    small.feed(&encode_header(TYPE_MESSAGE, 100)).unwrap();
    small.start_body();
    small.feed(&[1; 60]).unwrap();
    assert!(small.body_for(40).unwrap().capacity() <= 100);
}
