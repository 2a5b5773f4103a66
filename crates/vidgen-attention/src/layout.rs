//! Contiguous copies of strided tensors at the head split and merge of attention.
//!
//! Burn's `flex` backend makes a strided tensor contiguous (before a reshape that needs it) with
//! a block copy when its axes collapse to at most two, and element by element otherwise — the
//! case of `[B, L, 3, H, Dh] → [B, H, L, Dh]` head splits and `[B, H, L, Dh] → [B, L, H·Dh]`
//! merges. [`contiguous`] copies such f32 tensors one innermost row at a time instead; every
//! other tensor (other backends, `Autodiff`, other float types, a strided last axis) is returned
//! as it is, for the backend's own reshape to handle.

use burn::tensor::{Tensor, backend::Backend};

/// `t` with a contiguous layout on `flex` (see the module docs); unchanged elsewhere. The values
/// are the same either way: only where they lie in memory changes.
pub(crate) fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    {
        flex::contiguous(t)
    }
    #[cfg(not(feature = "flex"))]
    {
        t
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive, backend::Backend};
    use std::any::{Any, TypeId};

    pub(super) fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
        if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>()
            || t.dtype() != DType::F32
            || D < 2
        {
            return t;
        }
        let primitive: Box<dyn Any> = Box::new(t.into_primitive().tensor());
        let flex = *primitive
            .downcast::<FlexTensor>()
            .expect("B's float primitive is FlexTensor (checked above)");
        let layout = flex.layout();
        let strides = layout.strides().to_vec();
        let shape = layout.shape().to_vec();
        let rows_contiguous = strides[D - 1] == 1 && strides.iter().all(|&s| s >= 0);
        let out = if layout.is_contiguous() || !rows_contiguous {
            flex
        } else {
            let src = &flex.storage::<f32>()[layout.start_offset()..];
            let width = shape[D - 1];
            let rows: usize = shape[..D - 1].iter().product();
            let mut dst = Vec::with_capacity(rows * width);
            // An odometer over the leading axes; `start` is the row's first element in `src`.
            let mut index = vec![0usize; D - 1];
            let mut start = 0usize;
            for _ in 0..rows {
                dst.extend_from_slice(&src[start..start + width]);
                for axis in (0..D - 1).rev() {
                    index[axis] += 1;
                    start += strides[axis] as usize;
                    if index[axis] < shape[axis] {
                        break;
                    }
                    start -= strides[axis] as usize * shape[axis];
                    index[axis] = 0;
                }
            }
            FlexTensor::from_data(TensorData::new(dst, shape))
        };
        let out: Box<dyn Any> = Box::new(out);
        let out = out
            .downcast::<B::FloatTensorPrimitive>()
            .expect("B's float primitive is FlexTensor (checked above)");
        Tensor::from_primitive(TensorPrimitive::Float(*out))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Int, TensorData};
    use vidgen_testing::Flex;

    /// Permuted, sliced and broadcast views copy to the values the backend's own copy gives.
    #[test]
    fn contiguous_copies_strided_views_exactly() {
        let device = Default::default();
        let x = Tensor::<Flex, 1, Int>::arange(0..2 * 5 * 3 * 4 * 6, &device)
            .float()
            .reshape([2, 5, 3, 4, 6]);
        let views: Vec<Tensor<Flex, 5>> = vec![
            x.clone().permute([2, 0, 3, 1, 4]),
            x.clone().narrow(2, 1, 1).swap_dims(1, 3),
            x.clone().narrow(4, 2, 3).permute([1, 0, 2, 3, 4]),
            x.clone().narrow(0, 1, 1).expand([4, 5, 3, 4, 6]),
            x.clone().swap_dims(3, 4),
        ];
        for (i, view) in views.into_iter().enumerate() {
            let expected: TensorData = view.to_data();
            let copied = contiguous(view);
            assert_eq!(copied.to_data(), expected, "view {i}");
        }
    }
}
