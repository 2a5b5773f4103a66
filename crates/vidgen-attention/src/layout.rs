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
        if flex::is_flex::<B>() && t.dtype() == burn::tensor::DType::F32 {
            return flex::from_flex(flex::contiguous_rows(flex::into_flex(t)));
        }
    }
    t
}

/// The bridge between generic tensors and `flex`'s own: `B`'s float primitive is checked to be
/// [`FlexTensor`](burn::backend::flex::FlexTensor) by `TypeId`, then moved across by downcast.
#[cfg(feature = "flex")]
pub(crate) mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{Tensor, TensorData, TensorPrimitive, backend::Backend};
    use std::any::{Any, TypeId};

    /// Whether `B`'s float tensors are flex tensors (`Flex` itself; not `Autodiff<Flex>`).
    pub(crate) fn is_flex<B: Backend>() -> bool {
        TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>()
    }

    /// The flex tensor behind `t`.
    ///
    /// # Panics
    /// If not [`is_flex::<B>()`](is_flex).
    pub(crate) fn into_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
        let t: Box<dyn Any> = Box::new(t.into_primitive().tensor());
        *t.downcast::<FlexTensor>()
            .expect("B's float primitive is FlexTensor (is_flex)")
    }

    /// `t` as a tensor of `B`.
    ///
    /// # Panics
    /// If not [`is_flex::<B>()`](is_flex).
    pub(crate) fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
        let t: Box<dyn Any> = Box::new(t);
        let t = t
            .downcast::<B::FloatTensorPrimitive>()
            .expect("B's float primitive is FlexTensor (is_flex)");
        Tensor::from_primitive(TensorPrimitive::Float(*t))
    }

    /// An f32 tensor copied to a contiguous one a row (innermost axis) at a time, if it is
    /// strided with contiguous rows and non-negative strides; returned as it is otherwise.
    pub(crate) fn contiguous_rows(t: FlexTensor) -> FlexTensor {
        let layout = t.layout();
        let strides = layout.strides();
        let shape = layout.shape().to_vec();
        let rank = shape.len();
        if layout.is_contiguous() || strides[rank - 1] != 1 || strides.iter().any(|&s| s < 0) {
            return t;
        }
        let strides: Vec<usize> = strides.iter().map(|&s| s as usize).collect();
        let src = &t.storage::<f32>()[layout.start_offset()..];
        let width = shape[rank - 1];
        let rows: usize = shape[..rank - 1].iter().product();
        let mut dst = Vec::with_capacity(rows * width);
        // An odometer over the leading axes; `start` is the row's first element in `src`.
        let mut index = vec![0usize; rank - 1];
        let mut start = 0usize;
        for _ in 0..rows {
            dst.extend_from_slice(&src[start..start + width]);
            for axis in (0..rank - 1).rev() {
                index[axis] += 1;
                start += strides[axis];
                if index[axis] < shape[axis] {
                    break;
                }
                start -= strides[axis] * shape[axis];
                index[axis] = 0;
            }
        }
        FlexTensor::from_data(TensorData::new(dst, shape))
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
