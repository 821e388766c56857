//! Typed errors of the crypto core. Each variant maps to one stable JS `code`.
use std::fmt;

/// Stable error codes surfaced to JavaScript as `err.code`.
pub const ERR_CRYPTO_LENGTH: &str = "ERR_CRYPTO_LENGTH";
/// AEAD or HPKE open failed (wrong key, tampered ciphertext, wrong aad/info).
pub const ERR_CRYPTO_AUTH: &str = "ERR_CRYPTO_AUTH";
/// A malformed or invalid key (or key-derived value such as an all-zero DH output).
pub const ERR_CRYPTO_KEY: &str = "ERR_CRYPTO_KEY";
/// Any other bad parameter (unknown algorithm name, out-of-range number, ...).
pub const ERR_CRYPTO_PARAM: &str = "ERR_CRYPTO_PARAM";
/// The operating system's random number generator failed (should never happen).
pub const ERR_CRYPTO_RNG: &str = "ERR_CRYPTO_RNG";

/// Error of every fallible function of the crypto core. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// An input has the wrong size: names the parameter and the expected size.
    Length {
        /// Name of the parameter as seen from JavaScript.
        param: &'static str,
        /// Human description of the accepted size, e.g. "32 bytes".
        expected: String,
        /// The size that was given.
        got: usize,
    },
    /// Authentication failed (AEAD tag or HPKE open).
    Auth(&'static str),
    /// Malformed or invalid key.
    Key(String),
    /// Other bad parameter.
    Param(String),
    /// The OS CSPRNG failed.
    Rng,
}

impl CryptoError {
    /// The stable code string for JavaScript (`err.code`).
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::Length { .. } => ERR_CRYPTO_LENGTH,
            CryptoError::Auth(_) => ERR_CRYPTO_AUTH,
            CryptoError::Key(_) => ERR_CRYPTO_KEY,
            CryptoError::Param(_) => ERR_CRYPTO_PARAM,
            CryptoError::Rng => ERR_CRYPTO_RNG,
        }
    }

    pub(crate) fn length(param: &'static str, expected: impl Into<String>, got: usize) -> Self {
        CryptoError::Length {
            param,
            expected: expected.into(),
            got,
        }
    }

    pub(crate) fn key(msg: impl Into<String>) -> Self {
        CryptoError::Key(msg.into())
    }

    pub(crate) fn param(msg: impl Into<String>) -> Self {
        CryptoError::Param(msg.into())
    }
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::Length {
                param,
                expected,
                got,
            } => write!(f, "{param} must be {expected} (got {got} bytes)"),
            CryptoError::Auth(what) => write!(f, "{what}: authentication failed"),
            CryptoError::Key(msg) => write!(f, "invalid key: {msg}"),
            CryptoError::Param(msg) => write!(f, "invalid parameter: {msg}"),
            CryptoError::Rng => write!(f, "the operating system random number generator failed"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// Result type of the crypto core.
pub type CryptoResult<T> = Result<T, CryptoError>;

/// Copy `data` into a fixed-size array, or fail with a length error naming `param`.
pub(crate) fn fixed<const N: usize>(param: &'static str, data: &[u8]) -> CryptoResult<[u8; N]> {
    <[u8; N]>::try_from(data)
        .map_err(|_| CryptoError::length(param, format!("{N} bytes"), data.len()))
}

/// Fail with a length error unless `data` is exactly `n` bytes.
pub(crate) fn expect_len(param: &'static str, data: &[u8], n: usize) -> CryptoResult<()> {
    if data.len() == n {
        Ok(())
    } else {
        Err(CryptoError::length(param, format!("{n} bytes"), data.len()))
    }
}

/// Fail with a length error if `data` is longer than `max` bytes.
pub(crate) fn expect_max(param: &'static str, data: &[u8], max: usize) -> CryptoResult<()> {
    if data.len() <= max {
        Ok(())
    } else {
        Err(CryptoError::length(
            param,
            format!("at most {max} bytes"),
            data.len(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            CryptoError::length("key", "32 bytes", 3).code(),
            "ERR_CRYPTO_LENGTH"
        );
        assert_eq!(CryptoError::Auth("x").code(), "ERR_CRYPTO_AUTH");
        assert_eq!(CryptoError::key("x").code(), "ERR_CRYPTO_KEY");
        assert_eq!(CryptoError::param("x").code(), "ERR_CRYPTO_PARAM");
        assert_eq!(CryptoError::Rng.code(), "ERR_CRYPTO_RNG");
    }

    #[test]
    fn length_helpers() {
        assert_eq!(fixed::<2>("p", &[1, 2]).unwrap(), [1, 2]);
        assert_eq!(
            fixed::<2>("p", &[1]).unwrap_err().to_string(),
            "p must be 2 bytes (got 1 bytes)"
        );
        assert!(expect_len("p", &[0; 3], 3).is_ok());
        assert!(expect_max("p", &[0; 3], 2).is_err());
        assert!(expect_max("p", &[0; 2], 2).is_ok());
    }
}
