//! A LinGen MATE block against the same block with full self-attention in place of its
//! linear-complexity mixers, at growing token counts: FLOPs (LinGen's count,
//! [`LinGenConfig::flops`] and [`attention_flops`]) and measured CPU latency of one forward.
//! `bench/lingen_scaling.sh` runs it and plots the ratios (`docs/lingen_scaling.png`).
//!
//! ```text
//! cargo run --release --example lingen_scaling -- [--max-tokens 65536]
//! ```
//!
//! Both blocks have width 256 (4 heads of 64), a SwiGLU feed-forward, adaLN and
//! cross-attention to 16 text tokens of width 64, batch 1. The MATE block's mixers: bidirectional
//! Mamba2 (state 64, expand 2, head 64, chunk 64) with review tokens (pool 4×8×8) and Rotary-Major
//! Scan, plus TESA windows 8×4×4. The full block: one self-attention over all tokens
//! ([`MultiHeadAttention`] → `memory_safe_attention`: the fused host kernel on CPU). Token grids
//! `[16, h, w]` from 1024 tokens up. One JSON line per size; the median of 3 runs after a warm-up
//! up to 16384 tokens, 1 run beyond (a full block at 65536 tokens takes tens of seconds).

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor, backend::Backend};
use std::process::ExitCode;
use vidgen::attention::{
    AttentionArgs, MultiHeadAttention, MultiHeadAttentionConfig, WindowPlanCache,
};
use vidgen::cli::time_ms;
use vidgen::models::LinGenConfig;
use vidgen::models::lingen::MateBlock;
use vidgen::models::lingen::block::BlockContext;
use vidgen::nn::{gate, modulate};
use vidgen::ssm::attention_flops;

type B = Flex;

const D_MODEL: usize = 256;
const HEADS: usize = 4;
const D_TEXT: usize = 64;
const TEXT_LEN: usize = 16;
const GRIDS: [[usize; 3]; 5] = [
    [16, 8, 8],
    [16, 16, 16],
    [16, 32, 32],
    [16, 32, 64],
    [16, 64, 64],
];

/// The MATE block with its MA- and TE-branches replaced by one full self-attention.
struct FullAttentionBlock<Bk: Backend> {
    self_attn: MultiHeadAttention<Bk>,
    mate: MateBlock<Bk>,
}

impl<Bk: Backend> FullAttentionBlock<Bk> {
    fn forward(&self, x: Tensor<Bk, 3>, cond: Tensor<Bk, 2>, text: Tensor<Bk, 3>) -> Tensor<Bk, 3> {
        let b = &self.mate;
        let m = b.adaln.forward(cond);
        let h = modulate(b.norm1.forward(x.clone()), m[0].clone(), m[1].clone());
        let x = x + gate(self.self_attn.forward(h), m[2].clone());
        let x = x.clone()
            + b.cross_attn
                .forward_with(x, Some(text), AttentionArgs::default());
        let h = modulate(b.norm2.forward(x.clone()), m[3].clone(), m[4].clone());
        x + gate(b.mlp.forward(h), m[5].clone())
    }
}

fn run(max_tokens: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let config = LinGenConfig::new(4, D_MODEL, 1, HEADS, D_TEXT)
        .with_d_state(64)
        .with_max_grid([16, 64, 64])
        .with_adaln_zero_init(false);
    let dit = config.init::<B>(&device)?;
    let mate = dit.blocks[0].clone();
    let full = FullAttentionBlock {
        self_attn: MultiHeadAttentionConfig::new(D_MODEL, HEADS).init(&device)?,
        mate: mate.clone(),
    };
    let normal = Distribution::Normal(0.0, 1.0);
    let cond = Tensor::<B, 2>::random([1, D_MODEL], normal, &device);
    let text = Tensor::<B, 3>::random([1, TEXT_LEN, D_TEXT], normal, &device);
    for grid in GRIDS {
        let n: usize = grid.iter().product();
        if n > max_tokens {
            break;
        }
        let flops = config.flops(grid, TEXT_LEN);
        let flops_mate = flops.total() - flops.embed;
        let flops_full = flops_mate - flops.mamba - flops.tesa + attention_flops(n, D_MODEL);
        let (warmup, runs) = if n <= 16384 { (1, 3) } else { (0, 1) };
        let x = Tensor::<B, 3>::random([1, n, D_MODEL], normal, &device);
        let plans = vec![(mate.scan_order, mate.scan_order.plan::<B>(grid, &device))];
        let mut windows = WindowPlanCache::new();
        let (ms_mate, _) = time_ms(warmup, runs, || {
            let mut ctx = BlockContext {
                grid,
                plans: &plans,
                windows: &mut windows,
                text_mask: None,
            };
            let y = mate.forward(x.clone(), cond.clone(), text.clone(), &mut ctx);
            drop(y.into_data());
        });
        let (ms_full, _) = time_ms(warmup, runs, || {
            let y = full.forward(x.clone(), cond.clone(), text.clone());
            drop(y.into_data());
        });
        println!(
            "{{\"tokens\": {n}, \"grid\": {grid:?}, \"flops_mate\": {flops_mate:.4e}, \
             \"flops_full\": {flops_full:.4e}, \"ms_mate\": {ms_mate:.1}, \"ms_full\": {ms_full:.1}, \
             \"runs\": {runs}}}"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    const USAGE: &str = "usage: lingen_scaling [--max-tokens N]";
    let mut args = std::env::args().skip(1);
    let max_tokens = match (args.next().as_deref(), args.next()) {
        (None, _) => 65536,
        (Some("--max-tokens"), Some(v)) => match v.parse() {
            Ok(n) => n,
            Err(_) => return vidgen::cli::usage_error(USAGE, format!("--max-tokens {v:?}")),
        },
        (Some(other), _) => {
            return vidgen::cli::usage_error(USAGE, format!("unexpected argument {other:?}"));
        }
    };
    vidgen::cli::report(run(max_tokens))
}
