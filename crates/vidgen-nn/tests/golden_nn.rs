//! Every vidgen-nn layer against fixtures written by PyTorch (`golden/gen_nn.py`): diffusers'
//! functions and modules where they exist (timestep embeddings, adaLN-Zero / adaLN-single inside
//! `BasicTransformerBlock`, `FeedForward`, patch embeddings, sin-cos and rotary tables), torch's
//! `nn.RMSNorm`, and otherwise small torch code written as the model code writes it (factorized
//! position tables, unpatchify reshapes, the adaLN-single chunk split). Whole tensors are compared
//! element by element.

use burn::tensor::{Tensor, backend::Backend};
use vidgen_nn::*;
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, golden};

/// Sinusoids of timesteps up to 999 in f32: the argument `t·f` carries an f32 rounding of up to
/// 6e-5 (one ulp at 1000), which both sides make independently.
const TIMESTEP_F32: Tolerance = Tolerance::new("TIMESTEP_F32", 2e-4, 1e-4);

fn timestep_embedding_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("nn_timestep_embedding.safetensors");
    let t: Tensor<B, 1> = g.tensor("timesteps", device);
    let a = SinusoidalEmbeddingConfig::new(32).init().unwrap();
    assert_close(
        a.forward(t.clone()),
        g.tensor("emb_a", device),
        TIMESTEP_F32,
    );
    let b = SinusoidalEmbeddingConfig::new(33)
        .with_flip_sin_to_cos(true)
        .with_downscale_freq_shift(0.0)
        .with_scale(2.0)
        .with_max_period(1000.0)
        .init()
        .unwrap();
    assert_close(b.forward(t), g.tensor("emb_b", device), TIMESTEP_F32);
}

fn timestep_embedder_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("nn_timestep_embedder.safetensors");
    let mut emb = TimestepEmbedderConfig::new(32)
        .with_frequency_dim(64)
        .init::<B>(device)
        .unwrap();
    g.load_linear(&mut emb.linear_1, "linear_1", device);
    g.load_linear(&mut emb.linear_2, "linear_2", device);
    let out = emb.forward(g.tensor("timesteps", device));
    assert_close(out, g.tensor("out", device), TIMESTEP_F32);
}

fn stacked<B: Backend>(chunks: Vec<Tensor<B, 2>>) -> Tensor<B, 3> {
    Tensor::stack(chunks, 0)
}

/// `modulate` and `gate` as one diffusers `BasicTransformerBlock` applies them around its attention
/// and feed-forward branches (`prefix` `zero` or `single`): the block's normalised input, the
/// branch outputs and the residual stream after each branch are read off the block by hooks.
fn check_block_modulation<B: Backend>(
    g: &Golden,
    prefix: &str,
    chunks: &[Tensor<B, 2>],
    device: &B::Device,
) {
    let t = |name: &str| g.tensor::<B, 3>(&format!("{prefix}.{name}"), device);
    let modulated = modulate(t("normed"), chunks[0].clone(), chunks[1].clone());
    assert_close(modulated, t("modulated"), Tolerance::SINGLE_OP);
    let x: Tensor<B, 3> = g.tensor("x", device);
    let residual = x + gate(t("attn_out"), chunks[2].clone());
    assert_close(residual.clone(), t("residual"), Tolerance::SINGLE_OP);
    let modulated = modulate(t("normed_mlp"), chunks[3].clone(), chunks[4].clone());
    assert_close(modulated, t("modulated_mlp"), Tolerance::SINGLE_OP);
    let output = residual + gate(t("ff_out"), chunks[5].clone());
    assert_close(output, t("output"), Tolerance::SINGLE_OP);
}

/// adaLN-Zero: diffusers' `AdaLayerNormZero` inside DiT's `BasicTransformerBlock`
/// (`norm_type="ada_norm_zero"`).
fn adaln_zero_matches_dit<B: Backend>(device: &B::Device) {
    let g = golden("nn_adaln.safetensors");
    let mut ada = AdaLnModulationConfig::new(8, 8).init::<B>(device).unwrap();
    g.load_linear(&mut ada.linear, "zero.linear", device);
    let chunks = ada.forward(g.tensor("cond", device));
    assert_close(
        stacked(chunks.clone()),
        g.tensor("zero.chunks", device),
        Tolerance::SINGLE_OP,
    );
    check_block_modulation(&g, "zero", &chunks, device);
}

/// adaLN-single: diffusers' `AdaLayerNormSingle` (PixArt's shared `t_block`) feeding a
/// `BasicTransformerBlock` with `norm_type="ada_norm_single"` and its `scale_shift_table`.
fn adaln_single_matches_pixart<B: Backend>(device: &B::Device) {
    let g = golden("nn_adaln.safetensors");
    let mut t_block = AdaLnModulationConfig::new(8, 8)
        .with_zero_init(false)
        .init::<B>(device)
        .unwrap();
    g.load_linear(&mut t_block.linear, "single.t_block", device);
    let mut table = ScaleShiftTableConfig::new(8).init::<B>(device).unwrap();
    table.scale_shift_table = g.param("single.scale_shift_table", device);
    let packed = t_block.forward_packed(g.tensor("t", device));
    assert_close(
        packed.clone(),
        g.tensor("single.packed", device),
        Tolerance::SINGLE_OP,
    );
    let chunks = table.forward(packed);
    assert_close(
        stacked(chunks.clone()),
        g.tensor("single.chunks", device),
        Tolerance::SINGLE_OP,
    );
    check_block_modulation(&g, "single", &chunks, device);
}

/// diffusers `FeedForward(activation_fn="gelu-approximate")`, i.e. timm's `Mlp` with GELU(tanh).
fn mlp_matches_timm_gelu_tanh<B: Backend>(device: &B::Device) {
    let g = golden("nn_mlp.safetensors");
    let mut mlp = MlpConfig::new(16, 40).init::<B>(device).unwrap();
    g.load_linear(&mut mlp.fc1, "fc1", device);
    g.load_linear(&mut mlp.fc2, "fc2", device);
    let out = mlp.forward(g.tensor::<B, 3>("x", device));
    assert_close(out, g.tensor("mlp_out", device), Tolerance::SINGLE_OP);
}

/// diffusers `FeedForward(activation_fn="swiglu", bias=False)`, i.e. LLaMA's
/// `w2(silu(w1 x) * w3 x)` with `proj = [w3; w1]`.
fn swiglu_matches_llama<B: Backend>(device: &B::Device) {
    let g = golden("nn_mlp.safetensors");
    let mut ff = SwiGluMlpConfig::new(16, 40).init::<B>(device).unwrap();
    g.load_linear(&mut ff.swiglu.linear_inner, "w1", device);
    g.load_linear(&mut ff.swiglu.linear_outer, "w3", device);
    g.load_linear(&mut ff.linear_down, "w2", device);
    let out = ff.forward(g.tensor::<B, 3>("x", device));
    assert_close(out, g.tensor("swiglu_out", device), Tolerance::SINGLE_OP);
}

fn patch_embed_2d_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("nn_patch.safetensors");
    let mut embed = PatchEmbed2dConfig::new(4, 16).init::<B>(device).unwrap();
    embed.proj.weight = g.param("proj2d.weight", device);
    embed.proj.bias = Some(g.param("proj2d.bias", device));
    let out = embed.forward(g.tensor("img", device));
    assert_close(out, g.tensor("out2d", device), Tolerance::SINGLE_OP);
}

/// Open-Sora's `PatchEmbed3D` as diffusers ships it (`HunyuanVideoPatchEmbed`).
fn patch_embed_3d_matches_open_sora<B: Backend>(device: &B::Device) {
    let g = golden("nn_patch.safetensors");
    let mut embed = PatchEmbed3dConfig::new(4, 16).init::<B>(device).unwrap();
    embed.proj.weight = g.param("proj3d.weight", device);
    embed.proj.bias = Some(g.param("proj3d.bias", device));
    let out = embed.forward(g.tensor("vid", device));
    assert_close(out, g.tensor("out3d", device), Tolerance::SINGLE_OP);
}

fn unpatchify_matches_dit_and_open_sora<B: Backend>(device: &B::Device) {
    let g = golden("nn_patch.safetensors");
    let img = unpatchify_2d::<B>(g.tensor("tok2d", device), [4, 3], [2, 2]);
    assert_close(img, g.tensor("unpatch2d", device), Tolerance::EXACT);
    let tok3d: Tensor<B, 3> = g.tensor("tok3d", device);
    let vid = unpatchify_3d(tok3d.clone(), [2, 3, 2], [2, 2, 1]);
    assert_close(vid.clone(), g.tensor("unpatch3d", device), Tolerance::EXACT);
    // patchify_3d is its exact inverse.
    assert_close(
        patchify_3d(vid, [2, 2, 1]).unwrap(),
        tok3d,
        Tolerance::EXACT,
    );
}

fn sincos_tables_match_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("nn_sincos.safetensors");
    let pos = g.values("pos1d");
    assert_close(
        sincos_1d::<B>(12, &pos, device).unwrap(),
        g.tensor("emb1d", device),
        Tolerance::SINGLE_OP,
    );
    let emb2d = sincos_2d::<B>(16, [4, 6], 8.0, 2.0, device).unwrap();
    assert_close(emb2d, g.tensor("emb2d", device), Tolerance::SINGLE_OP);
    let emb3d = sincos_3d::<B>(32, [4, 3, 5], 1.5, 2.0, device).unwrap();
    assert_close(emb3d, g.tensor("emb3d", device), Tolerance::SINGLE_OP);
}

fn factorized_pos_embed_matches_torch<B: Backend>(device: &B::Device) {
    let g = golden("nn_factorized_pos.safetensors");
    let mut embed = FactorizedPosEmbedConfig::new(8, [5, 6, 7])
        .init::<B>(device)
        .unwrap();
    embed.pos_t = g.param("pos_t", device);
    embed.pos_h = g.param("pos_h", device);
    embed.pos_w = g.param("pos_w", device);
    assert_close(
        embed.forward([3, 4, 7]),
        g.tensor("out", device),
        Tolerance::SINGLE_OP,
    );
}

fn rope_1d_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("nn_rope.safetensors");
    let x: Tensor<B, 4> = g.tensor("x1", device);
    let rope = Rope1dConfig::new(16, 32).init::<B>(device).unwrap();
    assert_close(
        rope.forward(x.clone()),
        g.tensor("interleaved", device),
        Tolerance::SINGLE_OP,
    );
    assert_close(
        rope.apply(x.clone(), 5),
        g.tensor("interleaved_offset5", device),
        Tolerance::SINGLE_OP,
    );
    // The contiguous fast path equals Burn's own rotation (its reference twin), 3D input too.
    for start in [0, 5, 23] {
        assert_close(
            rope.apply(x.clone(), start),
            rope.apply_reference(x.clone(), start),
            Tolerance::SINGLE_OP,
        );
    }
    let [b, h, l, d] = x.dims();
    let flat: Tensor<B, 3> = x.clone().reshape([b * h, l, d]);
    assert_close(
        rope.apply(flat.clone(), 3),
        rope.apply_reference(flat, 3),
        Tolerance::SINGLE_OP,
    );
    // Our own tables give the same interleaved rotation as Burn's encoding.
    let positions: Vec<f64> = (0..9).map(f64::from).collect();
    let tables =
        RopeTables::<B>::new_1d(&positions, 16, 1e4, RopeLayout::Interleaved, device).unwrap();
    assert_close(
        tables.apply(x.clone()),
        g.tensor("interleaved", device),
        Tolerance::SINGLE_OP,
    );
    let frac = g.values("frac_pos");
    let half = RopeTables::<B>::new_1d(&frac, 16, 1e4, RopeLayout::HalfSplit, device).unwrap();
    assert_close(
        half.apply(x),
        g.tensor("half_split", device),
        Tolerance::SINGLE_OP,
    );
}

fn rope_3d_matches_diffusers_cogvideox<B: Backend>(device: &B::Device) {
    let g = golden("nn_rope.safetensors");
    let rope = Rope3dConfig::new(16).init().unwrap();
    assert_eq!(rope.axes_dims, [4, 6, 6]);
    let tables = rope.tables::<B>([2, 3, 4], [0, 0, 0], device);
    let out = tables.apply(g.tensor("x3", device));
    assert_close(out, g.tensor("rope3d", device), Tolerance::SINGLE_OP);
}

fn qk_norm_matches_torch_rmsnorm<B: Backend>(device: &B::Device) {
    let g = golden("nn_qk_norm.safetensors");
    let mut norm = QkNormConfig::new(16, 2).init::<B>(device).unwrap();
    norm.q_norm.gamma = g.param("q_norm.weight", device);
    norm.k_norm.gamma = g.param("k_norm.weight", device);
    let (q, k) = norm.forward(g.tensor("q", device), g.tensor("k", device));
    assert_close(q, g.tensor("q_out", device), Tolerance::SINGLE_OP);
    assert_close(k, g.tensor("k_out", device), Tolerance::SINGLE_OP);
}

backend_tests!(
    timestep_embedding_matches_diffusers,
    timestep_embedder_matches_diffusers,
    adaln_zero_matches_dit,
    adaln_single_matches_pixart,
    mlp_matches_timm_gelu_tanh,
    swiglu_matches_llama,
    patch_embed_2d_matches_diffusers,
    patch_embed_3d_matches_open_sora,
    unpatchify_matches_dit_and_open_sora,
    sincos_tables_match_diffusers,
    factorized_pos_embed_matches_torch,
    rope_1d_matches_diffusers,
    rope_3d_matches_diffusers_cogvideox,
    qk_norm_matches_torch_rmsnorm,
);
