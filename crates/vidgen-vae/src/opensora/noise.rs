//! Seeded standard-normal noise on the host: SplitMix64 (Steele et al. 2014) and the Box–Muller
//! transform, so a seed gives the same noise on every backend.

/// `n` standard-normal draws from the SplitMix64 stream seeded by `seed` (Box–Muller, both
/// outputs of each pair used).
pub fn normal_noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    let mut next_unit = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits in (0, 1]: never 0, so the logarithm below is finite.
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (next_unit(), next_unit());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::normal_noise;

    #[test]
    fn seeded_and_standard() {
        let a = normal_noise(3, 20_001);
        assert_eq!(a, normal_noise(3, 20_001));
        assert_ne!(a[..8], normal_noise(4, 8)[..]);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
