//! Deterministic test inputs shared by the test suites.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

/// A deterministic tensor with values uniform in `[-2, 2)`: an LCG (Knuth's MMIX constants)
/// seeded by `seed`, the top 24 bits of each state as the mantissa. The same `(shape, seed)`
/// gives the same values on every backend and platform.
pub fn det<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    device: &B::Device,
) -> Tensor<B, D> {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 1442695040888963407;
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(MUL).wrapping_add(INC);
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(MUL).wrapping_add(INC);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// The values of a bool tensor, on every backend: GPU backends store bools as `u32`, which
/// `TensorData::to_vec::<bool>` rejects, so the flags are read through an int tensor.
pub fn flags<B: Backend, const D: usize>(mask: Tensor<B, D, Bool>) -> Vec<bool> {
    let ints = mask.int().into_data().convert::<i64>();
    ints.to_vec::<i64>()
        .expect("an int tensor converted to i64")
        .into_iter()
        .map(|v| v != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flex;

    #[test]
    fn det_is_deterministic_and_in_range() {
        let device = Default::default();
        let a = det::<Flex, 2>([3, 5], 7, &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let b = det::<Flex, 2>([3, 5], 7, &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let c = det::<Flex, 2>([3, 5], 8, &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (-2.0..2.0).contains(v)));
    }
}
