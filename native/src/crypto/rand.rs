//! OS CSPRNG access (getrandom).
use super::error::{CryptoError, CryptoResult};
use zeroize::Zeroizing;

/// Largest request accepted by [`random_bytes`]: 1 MiB.
pub const MAX_RANDOM_BYTES: usize = 1 << 20;

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill(buf: &mut [u8]) -> CryptoResult<()> {
    getrandom::fill(buf).map_err(|_| CryptoError::Rng)
}

/// `n` random bytes from the OS CSPRNG, `n <= 1 MiB`.
pub fn random_bytes(n: usize) -> CryptoResult<Vec<u8>> {
    if n > MAX_RANDOM_BYTES {
        return Err(CryptoError::param(format!(
            "n must be at most {MAX_RANDOM_BYTES} (1 MiB), got {n}"
        )));
    }
    let mut out = vec![0u8; n];
    fill(&mut out)?;
    Ok(out)
}

/// A fixed-size random secret, wiped on drop.
pub fn random_secret<const N: usize>() -> CryptoResult<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    fill(out.as_mut())?;
    Ok(out)
}
