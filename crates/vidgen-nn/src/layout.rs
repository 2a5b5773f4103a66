//! Contiguous copies of strided tensors, for the layout changes of fast paths (attention head
//! split and merge, SSD chunking, reversed scans).
//!
//! Burn's `flex` backend makes a strided tensor contiguous (before a reshape, or an element-wise
//! operation with a broadcast operand) with a block copy when its axes collapse to at most two,
//! and element by element otherwise — the case of `[B, L, 3, H, Dh] → [B, H, L, Dh]` head splits,
//! `[B, H, L, Dh] → [B, L, H·Dh]` merges and sequences flipped along time. [`contiguous`] copies
//! such f32 tensors one innermost row at a time instead, on `flex` and under `Autodiff<Flex>`
//! (where the backward of the copy hands the gradient through); every other tensor (other
//! backends, other float types, a strided last axis) is returned as it is, for the backend's own
//! operations to handle.

use burn::tensor::{Tensor, backend::Backend};

/// `t` with a contiguous layout on `flex` and `Autodiff<Flex>` (see the module docs); unchanged
/// elsewhere. The values are the same either way: only where they lie in memory changes. Under
/// `Autodiff<Flex>` the copy is one tape operation whose backward hands the gradient through
/// (made contiguous the same way).
pub fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    {
        if t.dtype() == burn::tensor::DType::F32 {
            if flex::is_flex::<B>() {
                return flex::from_flex(flex::contiguous_rows(flex::into_flex(t)));
            }
            return tracked::contiguous(t);
        }
    }
    t
}

/// `t.permute(axes)` with a contiguous layout where [`contiguous`] makes one (the last axis must
/// stay in place); under `Autodiff<Flex>` one tape operation whose backward permutes the gradient
/// back and copies it row-wise too, so that neither direction hands a permuted view to the next
/// reshape. Elsewhere the plain permuted view.
pub fn permute_contiguous<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    axes: [usize; D],
) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    {
        if t.dtype() == burn::tensor::DType::F32 && axes[D - 1] == D - 1 {
            if flex::is_flex::<B>() {
                return contiguous(t.permute(axes));
            }
            return tracked::permute_copy(t, axes).unwrap_or_else(|t| t.permute(axes));
        }
    }
    t.permute(axes)
}

/// [`contiguous`] as an operation of `Autodiff<Flex, C>` (either checkpointing strategy):
/// `B` is compared with those types by `TypeId` and the tensor moved across by downcast.
#[cfg(feature = "flex")]
mod tracked {
    use super::flex::contiguous_rows;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::{
        BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
    };
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Tensor, TensorPrimitive, backend::Backend};
    use std::any::{Any, TypeId};

    /// The identity's backward: the output gradient, made contiguous, is the input's.
    #[derive(Debug)]
    struct ContiguousBackward;

    impl Backward<Flex, 1> for ContiguousBackward {
        type State = ();

        fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let [parent] = ops.parents;
            if let Some(parent) = parent {
                grads.register::<Flex>(parent.id, contiguous_rows(grad));
            }
        }
    }

    /// `t` made contiguous if `B` is `Autodiff<Flex, C>`; unchanged otherwise.
    pub(super) fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
        match copy_as::<B, NoCheckpointing, D>(t) {
            Ok(out) => out,
            Err(t) => copy_as::<B, BalancedCheckpointing, D>(t).unwrap_or_else(|t| t),
        }
    }

    /// `Ok(copy)` if `B` is `Autodiff<Flex, C>`, `Err(t)` unchanged otherwise.
    fn copy_as<B: Backend, C: CheckpointStrategy, const D: usize>(
        t: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if TypeId::of::<B>() != TypeId::of::<Autodiff<Flex, C>>() {
            return Err(t);
        }
        let t: Tensor<Autodiff<Flex, C>, D> = cast(t);
        let p = t.into_primitive().tensor();
        if p.primitive.layout().is_contiguous() {
            return Ok(cast(Tensor::<Autodiff<Flex, C>, D>::from_primitive(
                TensorPrimitive::Float(p),
            )));
        }
        let copy = contiguous_rows(p.primitive.clone());
        let out = ContiguousBackward
            .prepare::<C>([p.node.clone()])
            .compute_bound()
            .stateless(copy);
        Ok(cast(Tensor::<Autodiff<Flex, C>, D>::from_primitive(
            TensorPrimitive::Float(out),
        )))
    }

    /// The backward of a permutation copied to contiguous memory: the gradient permuted back
    /// (the state is the inverse permutation) and copied row-wise.
    #[derive(Debug)]
    struct PermuteCopyBackward<const D: usize>;

    impl<const D: usize> Backward<Flex, 1> for PermuteCopyBackward<D> {
        type State = [usize; D];

        fn backward(self, ops: Ops<[usize; D], 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let [parent] = ops.parents;
            if let Some(parent) = parent {
                let back = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(grad))
                    .permute(ops.state);
                let back = contiguous_rows(back.into_primitive().tensor());
                grads.register::<Flex>(parent.id, back);
            }
        }
    }

    /// `Ok(t.permute(axes) copied)` as one tape operation if `B` is `Autodiff<Flex, C>` for
    /// either checkpointing strategy, `Err(t)` unchanged otherwise.
    pub(super) fn permute_copy<B: Backend, const D: usize>(
        t: Tensor<B, D>,
        axes: [usize; D],
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        match permute_copy_as::<B, NoCheckpointing, D>(t, axes) {
            Ok(out) => Ok(out),
            Err(t) => permute_copy_as::<B, BalancedCheckpointing, D>(t, axes),
        }
    }

    fn permute_copy_as<B: Backend, C: CheckpointStrategy, const D: usize>(
        t: Tensor<B, D>,
        axes: [usize; D],
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if TypeId::of::<B>() != TypeId::of::<Autodiff<Flex, C>>() {
            return Err(t);
        }
        let t: Tensor<Autodiff<Flex, C>, D> = cast(t);
        let p = t.into_primitive().tensor();
        let permuted =
            Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(p.primitive)).permute(axes);
        let copy = contiguous_rows(permuted.into_primitive().tensor());
        let mut inverse = [0; D];
        axes.iter().enumerate().for_each(|(i, &a)| inverse[a] = i);
        let out = match PermuteCopyBackward::<D>
            .prepare::<C>([p.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(inverse, copy),
            OpsKind::UnTracked(prep) => prep.finish(copy),
        };
        Ok(cast(Tensor::<Autodiff<Flex, C>, D>::from_primitive(
            TensorPrimitive::Float(out),
        )))
    }

    /// Moves a value to the type it is known to have (`TypeId` compared by the caller).
    fn cast<T: 'static, U: 'static>(value: T) -> U {
        match (Box::new(value) as Box<dyn Any>).downcast::<U>() {
            Ok(value) => *value,
            Err(_) => unreachable!("type ids compared before the cast"),
        }
    }
}

/// The bridge between generic tensors and `flex`'s own: `B`'s float primitive is checked to be
/// [`FlexTensor`](burn::backend::flex::FlexTensor) by `TypeId`, then moved across by downcast.
#[cfg(feature = "flex")]
pub mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{Tensor, TensorData, TensorPrimitive, backend::Backend};
    use std::any::{Any, TypeId};

    /// Whether `B`'s float tensors are flex tensors (`Flex` itself; not `Autodiff<Flex>`).
    pub fn is_flex<B: Backend>() -> bool {
        TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>()
    }

    /// The flex tensor behind `t`.
    ///
    /// # Panics
    /// If not [`is_flex::<B>()`](is_flex).
    pub fn into_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
        let t: Box<dyn Any> = Box::new(t.into_primitive().tensor());
        *t.downcast::<FlexTensor>()
            .expect("B's float primitive is FlexTensor (is_flex)")
    }

    /// `t` as a tensor of `B`.
    ///
    /// # Panics
    /// If not [`is_flex::<B>()`](is_flex).
    pub fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
        let t: Box<dyn Any> = Box::new(t);
        let t = t
            .downcast::<B::FloatTensorPrimitive>()
            .expect("B's float primitive is FlexTensor (is_flex)");
        Tensor::from_primitive(TensorPrimitive::Float(*t))
    }

    /// An f32 tensor copied to a contiguous one a row (innermost axis) at a time, if it is
    /// strided with contiguous rows (leading axes may have any stride, negative ones included:
    /// flipped views); returned as it is otherwise.
    pub fn contiguous_rows(t: FlexTensor) -> FlexTensor {
        let layout = t.layout();
        let strides = layout.strides().to_vec();
        let shape = layout.shape().to_vec();
        let rank = shape.len();
        if layout.is_contiguous() || strides[rank - 1] != 1 || shape.contains(&0) {
            return t;
        }
        let src = t.storage::<f32>();
        let width = shape[rank - 1];
        let (shape_outer, strides) = (&shape[..rank - 1], &strides[..rank - 1]);
        let rows: usize = shape_outer.iter().product();
        let mut dst = Vec::with_capacity(rows * width);
        // An odometer over the leading axes; `start` is the row's first element in `src`.
        let mut index = vec![0usize; rank - 1];
        let mut start = layout.start_offset() as isize;
        for _ in 0..rows {
            let first = start as usize;
            dst.extend_from_slice(&src[first..first + width]);
            for axis in (0..rank - 1).rev() {
                index[axis] += 1;
                start += strides[axis];
                if index[axis] < shape_outer[axis] {
                    break;
                }
                start -= strides[axis] * shape_outer[axis] as isize;
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
            x.clone().flip([1]),
            x.clone().narrow(1, 1, 3),
            x.clone().narrow(3, 1, 2).flip([0]),
            x.clone()
                .permute([0, 2, 1, 3, 4])
                .flip([0, 2])
                .narrow(3, 1, 2),
        ];
        for (i, view) in views.into_iter().enumerate() {
            let expected: TensorData = view.to_data();
            let copied = contiguous(view);
            assert_eq!(copied.to_data(), expected, "view {i}");
        }
    }

    type A = burn::backend::Autodiff<Flex>;

    /// The loss `Σ (reshaped(view(x)) · w)²` and its gradient in `x`, where `view` maps `x`
    /// `[2, 3, 4, 5]` to a tensor of 120 elements; with `check_contiguous`, asserts that the
    /// view is laid out contiguously.
    fn loss_and_grad(
        view: impl Fn(Tensor<A, 4>) -> Tensor<A, 4>,
        check_contiguous: bool,
    ) -> (TensorData, TensorData) {
        let device = Default::default();
        let x0 = Tensor::<Flex, 1, Int>::arange(0..2 * 3 * 4 * 5, &device)
            .float()
            .reshape([2, 3, 4, 5])
            / 17.0;
        let w = Tensor::<A, 4>::from_data(x0.clone().sin().into_data(), &device);
        let x = Tensor::<A, 4>::from_data(x0.into_data(), &device).require_grad();
        let y = view(x.clone());
        if check_contiguous {
            let inner = y.clone().into_primitive().tensor().primitive;
            assert!(inner.layout().is_contiguous(), "the copy is contiguous");
        }
        let [a, b, c, d] = y.dims();
        let loss = (y
            .reshape([a * b, c * d])
            .swap_dims(0, 1)
            .reshape([2, 3, 4, 5])
            * w)
            .square()
            .sum();
        let grads = loss.backward();
        let grad = x.grad(&grads).expect("x has a gradient").into_data();
        (loss.into_data(), grad)
    }

    /// Under `Autodiff<Flex>` the copy has the identity's gradient: a loss through `contiguous`
    /// of a permuted, flipped view gives the loss and gradients of the view itself.
    #[test]
    fn contiguous_is_the_identity_under_autodiff() {
        let view = |x: Tensor<A, 4>| x.permute([0, 2, 1, 3]).flip([1]);
        assert_eq!(
            loss_and_grad(|x| contiguous(view(x)), true),
            loss_and_grad(view, false)
        );
    }

    /// `permute_contiguous` equals the permuted view, with the same gradients, on flex and
    /// under `Autodiff<Flex>`.
    #[test]
    fn permute_contiguous_is_the_permutation() {
        let device = Default::default();
        let x = Tensor::<Flex, 1, Int>::arange(0..120, &device)
            .float()
            .reshape([2, 3, 4, 5]);
        let axes = [2, 0, 1, 3];
        assert_eq!(
            permute_contiguous(x.clone(), axes).to_data(),
            x.permute(axes).to_data()
        );
        assert_eq!(
            loss_and_grad(|x| permute_contiguous(x.flip([1]), axes), true),
            loss_and_grad(|x| x.flip([1]).permute(axes), false)
        );
    }
}
