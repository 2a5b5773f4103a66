//! [`blocked_attention`](super::blocked_attention) as one operation of Burn's `Autodiff`
//! backend, whose backward is the tiled recomputation of [`grad`](super::grad): the tape keeps
//! `q`, `k`, `v`, the output and one log-sum-exp per query row (`O(L·D)`), never a score tile.
//!
//! Library code is generic over `B: Backend`, while an autodiff operation is written for
//! `Autodiff<X, C>`; [`try_tracked`] bridges the two by comparing `B`'s type with the
//! `Autodiff` instantiations of the backends this crate was built with (cargo features `flex`,
//! `ndarray`, `cuda`, `wgpu`; both `NoCheckpointing` and `BalancedCheckpointing`) and moving
//! the tensors across through `Any` (no `unsafe`). Any other backend, and calls with an
//! additive bias or a softcap (whose gradients this backward does not produce), keep the
//! differentiable tensor-op kernel, whose tape holds every tile.

use super::dispatch::is_host_backend;
use super::grad;
use super::kernel::{Inputs, attend_threaded, over_head_groups};
use super::plan::BlockPlan;
use crate::mask::AttentionMask;
use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::{Bool, Tensor, TensorPrimitive, backend::Backend};
use std::any::{Any, TypeId};

/// The arguments of one call, handed back unchanged when the backend is not a known
/// `Autodiff` instantiation.
type Call<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>, Inputs<B>);

/// Runs the call as one tracked operation if `B` is `Autodiff<X, C>` for a backend `X` this
/// crate was built with and the inputs have no bias or softcap; otherwise returns the call.
/// `q` is already scaled.
pub(super) fn try_tracked<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    inputs: Inputs<B>,
    plan: BlockPlan,
    threads: usize,
) -> Result<Tensor<B, 4>, Call<B>> {
    let call = (q, k, v, inputs);
    if call.3.bias.is_some() || call.3.softcap.is_some() {
        return Err(call);
    }
    match run_known(call, Blocks { plan, threads }) {
        Ok(untouched) => Err(untouched),
        Err(out) => Ok(out),
    }
}

/// `Err(out)` from the first known `Autodiff` instantiation `B` is, `Ok(call)` if none.
fn run_known<B: Backend>(call: Call<B>, blocks: Blocks) -> Result<Call<B>, Tensor<B, 4>> {
    macro_rules! try_backends {
        ($call:ident; $($backend:ty),* $(,)?) => {$(
            let $call = run_as::<B, $backend, NoCheckpointing>($call, blocks)?;
            let $call = run_as::<B, $backend, BalancedCheckpointing>($call, blocks)?;
        )*};
    }
    #[cfg(feature = "flex")]
    try_backends!(call; burn::backend::Flex);
    #[cfg(feature = "ndarray")]
    try_backends!(call; burn::backend::NdArray);
    #[cfg(feature = "cuda")]
    try_backends!(call; burn::backend::Cuda);
    #[cfg(feature = "wgpu")]
    try_backends!(call; burn::backend::Wgpu);
    Ok(call)
}

/// `Err(out)` (the early return of `?`) if `B` is `Autodiff<X, C>`, else `Ok(call)` unchanged.
fn run_as<B: Backend, X: Backend, C: CheckpointStrategy>(
    call: Call<B>,
    blocks: Blocks,
) -> Result<Call<B>, Tensor<B, 4>> {
    if TypeId::of::<B>() != TypeId::of::<Autodiff<X, C>>() {
        return Ok(call);
    }
    let (q, k, v, inputs) = cast::<Call<B>, Call<Autodiff<X, C>>>(call);
    Err(cast(attention_tracked::<X, C>(q, k, v, inputs, blocks)))
}

/// Moves a value to the type it is known to have (`TypeId` compared by the caller).
fn cast<T: 'static, U: 'static>(value: T) -> U {
    match (Box::new(value) as Box<dyn Any>).downcast::<U>() {
        Ok(value) => *value,
        Err(_) => unreachable!("type ids compared before the cast"),
    }
}

/// Block sizes and threads over heads of one call.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    plan: BlockPlan,
    threads: usize,
}

/// The tape entry: the parents' node ids (their values are kept by the checkpointer), the
/// output, the log-sum-exp rows, the masks and the blocks.
#[derive(Debug, Clone)]
struct State<X: Backend> {
    q: NodeId,
    k: NodeId,
    v: NodeId,
    out: Tensor<X, 4>,
    lse: Tensor<X, 4>,
    inputs: Inputs<X>,
    blocks: Blocks,
}

/// Backward of tiled attention (FlashAttention-2, [`grad::backward`]).
#[derive(Debug)]
struct TiledAttentionBackward;

impl<X: Backend> Backward<X, 3> for TiledAttentionBackward {
    type State = State<X>;

    fn backward(
        self,
        ops: Ops<State<X>, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_out = float::<X>(grads.consume::<X>(&ops.node));
        let state = ops.state;
        let mut input = |id| float::<X>(checkpointer.retrieve_node_output(id));
        let (q, k, v) = (input(state.q), input(state.k), input(state.v));
        let Blocks { plan, threads } = state.blocks;
        let tensors = [q, k, v, state.out, state.lse, d_out];
        let [dq, dk, dv] = over_head_groups(tensors, &state.inputs, threads, |t, group| {
            let [q, k, v, out, lse, d_out] = t;
            let (dq, dk, dv) = grad::backward(q, k, v, out, lse, d_out, &group, plan);
            [dq, dk, dv]
        });
        for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<X>(node.id, g.into_primitive().tensor());
            }
        }
    }
}

/// A float tensor of `X` from its primitive.
fn float<X: Backend>(primitive: X::FloatTensorPrimitive) -> Tensor<X, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// A bool tensor of `Autodiff<X, C>` as the `X` tensor it wraps.
fn inner_bool<X: Backend, C: CheckpointStrategy, const D: usize>(
    t: Tensor<Autodiff<X, C>, D, Bool>,
) -> Tensor<X, D, Bool> {
    Tensor::from_primitive(t.into_primitive())
}

/// Tiled attention on `Autodiff<X, C>` as one tracked operation (module docs).
fn attention_tracked<X: Backend, C: CheckpointStrategy>(
    q: Tensor<Autodiff<X, C>, 4>,
    k: Tensor<Autodiff<X, C>, 4>,
    v: Tensor<Autodiff<X, C>, 4>,
    inputs: Inputs<Autodiff<X, C>>,
    blocks: Blocks,
) -> Tensor<Autodiff<X, C>, 4> {
    let (q, k, v) = (
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    );
    let inner = Inputs::<X> {
        mask: inputs.mask.map(|m| match m {
            AttentionMask::Full(m) => AttentionMask::Full(inner_bool(m)),
            AttentionMask::KeyPadding(m) => AttentionMask::KeyPadding(inner_bool(m)),
        }),
        bias: None,
        softcap: None,
        causal_offset: inputs.causal_offset,
    };
    let values = || {
        (
            float::<X>(q.primitive.clone()),
            float::<X>(k.primitive.clone()),
            float::<X>(v.primitive.clone()),
        )
    };
    // Threads split the heads on the host backends only. On CubeCL backends a GPU gains
    // nothing from host threads, and tensors handed between threads inside the backward pass
    // gave wrong gradients on wgpu (lavapipe): one thread there.
    let host = is_host_backend::<X>(&X::float_device(&q.primitive));
    let blocks = Blocks {
        threads: if host { blocks.threads } else { 1 },
        ..blocks
    };
    let out = match TiledAttentionBackward
        .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let (q_id, k_id, v_id) = (
                prep.checkpoint(&q),
                prep.checkpoint(&k),
                prep.checkpoint(&v),
            );
            let (qx, kx, vx) = values();
            let [out, lse] = over_head_groups([qx, kx, vx], &inner, blocks.threads, |t, g| {
                let [q, k, v] = t;
                let (out, lse) = grad::forward_with_lse(q, k, v, &g, blocks.plan);
                [out, lse]
            });
            let state = State {
                q: q_id,
                k: k_id,
                v: v_id,
                out: out.clone(),
                lse,
                inputs: inner,
                blocks,
            };
            prep.finish(state, out.into_primitive().tensor())
        }
        OpsKind::UnTracked(prep) => {
            let (qx, kx, vx) = values();
            let out = attend_threaded(qx, kx, vx, &inner, blocks.plan, blocks.threads);
            prep.finish(out.into_primitive().tensor())
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
