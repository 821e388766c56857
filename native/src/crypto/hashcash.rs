//! Hashcash-style proof of work over SHA-256: a nonce `n` is a stamp for `prefix` at `bits`
//! when SHA-256(prefix || u64-big-endian(n)) starts with at least `bits` zero bits.
//!
//! The search absorbs the prefix once and clones that hash state per attempt, so each attempt
//! only hashes the last block(s): the buffered tail of the prefix, the 8-byte nonce, padding.
use super::error::{expect_max, CryptoError, CryptoResult};
use sha2::{Digest, Sha256};

/// Longest accepted prefix.
pub const MAX_PREFIX_LEN: usize = 1024;
/// Most difficulty bits (the first 64 bits of the digest are compared).
pub const MAX_BITS: u32 = 64;
/// Most nonces one search call may try (2^32).
pub const MAX_COUNT: u64 = 1 << 32;
/// Nonces stay below 2^53 so that every nonce is exact as a JavaScript number.
pub const NONCE_LIMIT: u64 = 1 << 53;

fn check_params(prefix: &[u8], bits: u32) -> CryptoResult<()> {
    expect_max("prefix", prefix, MAX_PREFIX_LEN)?;
    if !(1..=MAX_BITS).contains(&bits) {
        return Err(CryptoError::param(format!(
            "bits must be an integer from 1 to {MAX_BITS}, got {bits}"
        )));
    }
    Ok(())
}

/// Number of leading zero bits of `digest`, capped at 64 (all that a stamp can ask for).
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head).leading_zeros()
}

#[inline]
fn meets(state: &Sha256, nonce: u64, bits: u32) -> bool {
    let mut h = state.clone();
    h.update(nonce.to_be_bytes());
    let digest: [u8; 32] = h.finalize().into();
    leading_zero_bits(&digest) >= bits
}

/// Check the bounds of a [`search`] (without running it); returns the end of the range.
pub fn validate_search(prefix: &[u8], bits: u32, start: u64, count: u64) -> CryptoResult<u64> {
    check_params(prefix, bits)?;
    if count > MAX_COUNT {
        return Err(CryptoError::param(format!(
            "count must be at most 2^32, got {count}"
        )));
    }
    start
        .checked_add(count)
        .filter(|&e| e <= NONCE_LIMIT)
        .ok_or_else(|| CryptoError::param("start + count must be at most 2^53"))
}

/// The first nonce `n` in `[start, start + count)` whose stamp has at least `bits` leading zero
/// bits, or `None`. `prefix` is at most 1 KiB (`ERR_CRYPTO_LENGTH`); `bits` is 1..=64, `count`
/// at most 2^32 and `start + count` at most 2^53 (`ERR_CRYPTO_PARAM`).
pub fn search(prefix: &[u8], bits: u32, start: u64, count: u64) -> CryptoResult<Option<u64>> {
    let end = validate_search(prefix, bits, start, count)?;
    let mut state = Sha256::new();
    state.update(prefix);
    Ok((start..end).find(|&n| meets(&state, n, bits)))
}

/// Whether `nonce` is a stamp for `prefix` with at least `bits` leading zero bits. Same bounds
/// as [`search`]; `nonce` must be below 2^53 (`ERR_CRYPTO_PARAM`).
pub fn check(prefix: &[u8], nonce: u64, bits: u32) -> CryptoResult<bool> {
    check_params(prefix, bits)?;
    if nonce >= NONCE_LIMIT {
        return Err(CryptoError::param("nonce must be below 2^53"));
    }
    let mut state = Sha256::new();
    state.update(prefix);
    Ok(meets(&state, nonce, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: hash the whole message from scratch and count bits one by one.
    fn naive_bits(prefix: &[u8], n: u64) -> u32 {
        let mut msg = prefix.to_vec();
        msg.extend_from_slice(&n.to_be_bytes());
        let d = Sha256::digest(&msg);
        let mut bits = 0;
        for byte in d.iter() {
            for i in (0..8).rev() {
                if byte >> i & 1 == 0 {
                    bits += 1;
                } else {
                    return bits.min(64);
                }
            }
        }
        bits.min(64)
    }

    fn naive_search(prefix: &[u8], bits: u32, start: u64, count: u64) -> Option<u64> {
        (start..start + count).find(|&n| naive_bits(prefix, n) >= bits)
    }

    #[test]
    fn matches_naive_search() {
        for prefix in [
            &b""[..],
            b"aftersmtp",
            &[0xabu8; 63],
            &[7u8; 64],
            &[1u8; 1024],
        ] {
            for bits in [1, 4, 8, 12] {
                let want = naive_search(prefix, bits, 0, 20_000);
                assert_eq!(search(prefix, bits, 0, 20_000).unwrap(), want);
                let n = want.expect("a 12-bit stamp within 20000 tries");
                assert!(check(prefix, n, bits).unwrap());
                // The first hit is the first: nothing before it, and a later start skips it.
                assert_eq!(search(prefix, bits, 0, n).unwrap(), None);
                let next = search(prefix, bits, n + 1, 50_000).unwrap();
                assert_eq!(next, naive_search(prefix, bits, n + 1, 50_000));
            }
        }
    }

    #[test]
    fn known_small_cases() {
        // First stamps computed independently with Node's createHash('sha256') in a naive loop.
        let cases: [(&[u8], u32, u64); 4] = [
            (b"abc", 8, 17),
            (b"abc", 16, 21701),
            (b"aftersmtp:v1:alice@example.org", 12, 1020),
            (b"aftersmtp:v1:alice@example.org", 20, 625_834),
        ];
        for (prefix, bits, first) in cases {
            assert_eq!(search(prefix, bits, 0, 1 << 20).unwrap(), Some(first));
            assert!(check(prefix, first, bits).unwrap());
            assert!(naive_bits(prefix, first) >= bits);
        }
        let want = naive_search(b"abc", 8, 0, 10_000).unwrap();
        assert_eq!(want, 17);
        assert_eq!(search(b"abc", 8, 0, 10_000).unwrap(), Some(want));
        assert_eq!(
            search(b"abc", 8, want, 1).unwrap(),
            Some(want),
            "range is inclusive of start"
        );
        assert!(!check(b"abc", want, 64).unwrap());
        assert_eq!(search(b"abc", 64, 0, 1000).unwrap(), None);
        assert_eq!(search(b"abc", 1, 5, 0).unwrap(), None, "empty range");
    }

    #[test]
    fn bounds() {
        let code = |r: CryptoResult<Option<u64>>| r.unwrap_err().code();
        assert_eq!(code(search(&[0; 1025], 8, 0, 1)), "ERR_CRYPTO_LENGTH");
        assert_eq!(code(search(b"x", 0, 0, 1)), "ERR_CRYPTO_PARAM");
        assert_eq!(code(search(b"x", 65, 0, 1)), "ERR_CRYPTO_PARAM");
        assert_eq!(code(search(b"x", 8, 0, MAX_COUNT + 1)), "ERR_CRYPTO_PARAM");
        assert_eq!(code(search(b"x", 8, NONCE_LIMIT, 1)), "ERR_CRYPTO_PARAM");
        assert_eq!(code(search(b"x", 8, u64::MAX, 2)), "ERR_CRYPTO_PARAM");
        assert!(search(b"x", 64, NONCE_LIMIT - 1, 1).is_ok());
        assert_eq!(
            check(b"x", NONCE_LIMIT, 8).unwrap_err().code(),
            "ERR_CRYPTO_PARAM"
        );
        assert_eq!(check(b"x", 0, 0).unwrap_err().code(), "ERR_CRYPTO_PARAM");
    }
}
