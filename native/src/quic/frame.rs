//! AMP/QUIC stream framing (docs/PROTOCOL.md, "QUIC framing"): one frame per direction of a
//! bidirectional stream, `type: u8 || length: u32 big-endian || body[length]`, then FIN.
//!
//! Guarantees: a length is checked against the configured maximum before a single body byte is
//! buffered (so the caller can reserve memory first), a decoder's body grows with the bytes it
//! is given (from [`INITIAL_BODY_CAPACITY`], doubling) and never beyond the declared,
//! already-validated length, and every way a stream can be malformed (unknown type, too long,
//! truncated by FIN, bytes after the frame) is a [`FrameError`] with a wire code.

/// `MESSAGE`: the request, sent by the stream's opener (the sending gateway).
pub const TYPE_MESSAGE: u8 = 0x01;
/// `ACK`: the receiver accepted the message; the body is an optional receipt.
pub const TYPE_ACK: u8 = 0x02;
/// `ERROR`: the receiver refused the message; the body is `code: u16 || reason (UTF-8)`.
pub const TYPE_ERROR: u8 = 0x03;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 5;
/// A body's first allocation: a declared length is only a promise, so memory follows the
/// bytes that actually arrive.
pub const INITIAL_BODY_CAPACITY: usize = 64 * 1024;
/// Largest ACK body (a receipt), fixed by the protocol.
pub const MAX_ACK_BODY: usize = 64 * 1024;
/// Largest ERROR reason, fixed by the protocol (the body is 2 bytes longer).
pub const MAX_ERROR_REASON: usize = 1024;

/// Stream error codes: the `code` of an ERROR frame, and the application error code of the
/// RESET_STREAM / STOP_SENDING frames the endpoint sends (RFC 9000 §19.4, §19.5).
pub mod code {
    /// The receiver is behind (its queue or memory budget is full): retry later.
    pub const BUSY: u16 = 0x0001;
    /// The declared frame length is over the receiver's maximum.
    pub const TOO_LARGE: u16 = 0x0002;
    /// Not a well-formed single frame (unknown type, truncated, trailing bytes).
    pub const MALFORMED: u16 = 0x0003;
    /// The application refused the message (policy), see the reason.
    pub const REFUSED: u16 = 0x0004;
    /// The receiver failed temporarily; retry later.
    pub const INTERNAL: u16 = 0x0005;
    /// The frame did not arrive (or was not answered) within the stream timeout.
    pub const TIMEOUT: u16 = 0x0006;
    /// The endpoint is shutting down.
    pub const SHUTDOWN: u16 = 0x0007;
    /// The peer's certificate does not match its gateway DID keys (connection close code).
    pub const PEER_REJECTED: u16 = 0x0010;
    /// Connection refused: a connection cap is reached (connection close code).
    pub const CONNECTION_REFUSED: u16 = 0x0011;
    /// The connection's handshake did not finish within the handshake timeout.
    pub const HANDSHAKE_TIMEOUT: u16 = 0x0012;
    /// Local only (never on the wire): the peer reset the stream without an ERROR frame.
    pub const RESET: u16 = 0x0100;
    /// Local only: the connection closed before the answer arrived.
    pub const CLOSED: u16 = 0x0101;
}

/// Why a stream's bytes are not one valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame type this side does not accept here.
    UnknownType(u8),
    /// The declared length is over the maximum.
    TooLarge { declared: u64, max: usize },
    /// FIN arrived before the frame was complete.
    Truncated,
    /// Bytes followed the frame.
    Trailing,
    /// An ERROR body shorter than its 2-byte code.
    BadErrorBody,
}

impl FrameError {
    /// The wire code sent back for this error.
    pub fn code(&self) -> u16 {
        match self {
            FrameError::TooLarge { .. } => code::TOO_LARGE,
            _ => code::MALFORMED,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            FrameError::TooLarge { declared, max } => {
                write!(f, "frame of {declared} bytes is over the maximum of {max}")
            }
            FrameError::Truncated => f.write_str("stream ended inside the frame"),
            FrameError::Trailing => f.write_str("bytes after the frame"),
            FrameError::BadErrorBody => f.write_str("ERROR frame body shorter than 2 bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The header of a frame: `type || u32 length`.
pub fn encode_header(ty: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = u32::try_from(len)
        .expect("frame length fits in u32")
        .to_be_bytes();
    [ty, l[0], l[1], l[2], l[3]]
}

/// A complete frame (header and body) as one buffer: used for the small ACK / ERROR frames.
pub fn encode(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&encode_header(ty, body.len()));
    out.extend_from_slice(body);
    out
}

/// An ERROR frame: `code` and a reason cut to [`MAX_ERROR_REASON`] bytes (on a char boundary).
pub fn encode_error(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_ERROR_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut body = Vec::with_capacity(2 + end);
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(&reason.as_bytes()[..end]);
    encode(TYPE_ERROR, &body)
}

/// Split an ERROR body into its code and reason (invalid UTF-8 is replaced, never rejected).
pub fn decode_error_body(body: &[u8]) -> Result<(u16, String), FrameError> {
    if body.len() < 2 {
        return Err(FrameError::BadErrorBody);
    }
    Ok((
        u16::from_be_bytes([body[0], body[1]]),
        String::from_utf8_lossy(&body[2..]).into_owned(),
    ))
}

/// Which frame types a decoder accepts and their maximum body length.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// The receiving side of a stream: MESSAGE up to `max` bytes.
    Message { max: usize },
    /// The opening side: ACK (up to [`MAX_ACK_BODY`]) or ERROR.
    Response,
}

impl Expect {
    fn check(self, ty: u8, len: u32) -> Result<(), FrameError> {
        let max = match (self, ty) {
            (Expect::Message { max }, TYPE_MESSAGE) => max,
            (Expect::Response, TYPE_ACK) => MAX_ACK_BODY,
            (Expect::Response, TYPE_ERROR) => MAX_ERROR_REASON + 2,
            _ => return Err(FrameError::UnknownType(ty)),
        };
        if len as usize > max {
            return Err(FrameError::TooLarge {
                declared: u64::from(len),
                max,
            });
        }
        Ok(())
    }
}

/// What the decoder needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// This many more header bytes (feed them with [`FrameDecoder::feed`]).
    Header(usize),
    /// The header is valid: the body is `len` bytes. The caller reserves them, then calls
    /// [`FrameDecoder::start_body`].
    Reserve { ty: u8, len: usize },
    /// This many more body bytes (write them into [`FrameDecoder::body_mut`] or `feed`).
    Body(usize),
    /// The frame is complete: only FIN may follow.
    End,
}

/// Incremental decoder of one frame on one stream.
#[derive(Debug)]
pub struct FrameDecoder {
    expect: Expect,
    header: [u8; HEADER_LEN],
    have: usize,
    ty: u8,
    len: usize,
    body: Option<Vec<u8>>,
    /// The body was read in one piece into memory the caller owns.
    body_elsewhere: bool,
}

impl FrameDecoder {
    pub fn new(expect: Expect) -> Self {
        FrameDecoder {
            expect,
            header: [0; HEADER_LEN],
            have: 0,
            ty: 0,
            len: 0,
            body: None,
            body_elsewhere: false,
        }
    }

    /// What is needed next (see [`Need`]).
    pub fn need(&self) -> Need {
        if self.have < HEADER_LEN {
            return Need::Header(HEADER_LEN - self.have);
        }
        if self.body_elsewhere {
            return Need::End;
        }
        match &self.body {
            None => Need::Reserve {
                ty: self.ty,
                len: self.len,
            },
            Some(b) if b.len() < self.len => Need::Body(self.len - b.len()),
            Some(_) => Need::End,
        }
    }

    /// Consume bytes: header bytes (validated as soon as all 5 are in) and, once the body has
    /// been started, body bytes. Returns how many bytes of `data` were used: fewer than
    /// `data.len()` when the decoder stopped at `Reserve`, or `Err(Trailing)` when bytes
    /// follow the end of the frame.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<usize, FrameError> {
        let mut used = 0;
        while !data.is_empty() {
            match self.need() {
                Need::Header(n) => {
                    let k = n.min(data.len());
                    self.header[self.have..self.have + k].copy_from_slice(&data[..k]);
                    self.have += k;
                    used += k;
                    data = &data[k..];
                    if self.have == HEADER_LEN {
                        let len = u32::from_be_bytes([
                            self.header[1],
                            self.header[2],
                            self.header[3],
                            self.header[4],
                        ]);
                        self.expect.check(self.header[0], len)?;
                        self.ty = self.header[0];
                        self.len = len as usize;
                    }
                }
                Need::Reserve { .. } => return Ok(used),
                Need::Body(n) => {
                    let k = n.min(data.len());
                    self.body_for(k)
                        .expect("body started")
                        .extend_from_slice(&data[..k]);
                    used += k;
                    data = &data[k..];
                }
                Need::End => return Err(FrameError::Trailing),
            }
        }
        Ok(used)
    }

    /// Start the body after the caller reserved it: its memory grows as bytes arrive (see
    /// [`body_for`](Self::body_for)).
    pub fn start_body(&mut self) {
        debug_assert!(matches!(self.need(), Need::Reserve { .. }));
        self.body = Some(Vec::with_capacity(self.len.min(INITIAL_BODY_CAPACITY)));
    }

    /// The body being filled, with room for `more` bytes: its capacity at least doubles when
    /// it grows, and never exceeds the declared length. `None` before the body started.
    pub fn body_for(&mut self, more: usize) -> Option<&mut Vec<u8>> {
        let len = self.len;
        let body = self.body.as_mut()?;
        let need = body.len() + more;
        if need > body.capacity() {
            let target = need.max(body.capacity() * 2).min(len).max(need);
            body.reserve_exact(target - body.len());
        }
        Some(body)
    }

    /// The caller reserved the body and read all of it into memory of its own (at `Reserve`):
    /// the frame is complete, and [`finish`](Self::finish) returns an empty body.
    pub fn body_read_elsewhere(&mut self) {
        debug_assert!(matches!(self.need(), Need::Reserve { .. }));
        self.body_elsewhere = true;
    }

    /// The body being filled (for reading straight from the transport into it), if started.
    pub fn body_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.body.as_mut()
    }

    /// The declared body length (valid once the header is complete).
    pub fn declared_len(&self) -> usize {
        self.len
    }

    /// FIN arrived: the frame `(type, body)` if it is complete, else `Truncated`.
    pub fn finish(self) -> Result<(u8, Vec<u8>), FrameError> {
        match self.need() {
            Need::End => Ok((self.ty, self.body.unwrap_or_default())),
            _ => Err(FrameError::Truncated),
        }
    }
}

/// Decode a whole stream's bytes as one frame (tests and fuzzing): feed everything, then FIN.
pub fn decode_all(expect: Expect, data: &[u8]) -> Result<(u8, Vec<u8>), FrameError> {
    let mut d = FrameDecoder::new(expect);
    let used = d.feed(data)?;
    if let Need::Reserve { .. } = d.need() {
        d.start_body();
        d.feed(&data[used..])?;
    }
    d.finish()
}
