//! Invalid configurations and inputs fail with an error naming the field and the value.

use burn::tensor::Tensor;
use vidgen_nn::ConfigError;
use vidgen_nn::*;
use vidgen_testing::Flex;

type B = Flex;

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

/// The error's message, which users see.
fn message<T: std::fmt::Debug>(r: Result<T, NnError>) -> (NnError, String) {
    let e = r.expect_err("configuration should be rejected");
    let m = e.to_string();
    (e, m)
}

#[test]
fn qk_norm_d_model_not_divisible_by_n_heads() {
    let (e, m) = message(QkNormConfig::new(30, 4).init::<B>(&device()));
    assert_eq!(
        e,
        NnError::Config(ConfigError::NotDivisible {
            field: "d_model",
            value: 30,
            by: 4,
            by_field: Some("n_heads")
        })
    );
    assert!(
        m.contains("`d_model` = 30") && m.contains("`n_heads`"),
        "{m}"
    );
    let (_, m) = message(QkNormConfig::new(32, 0).init::<B>(&device()));
    assert!(m.contains("`n_heads` must be greater than 0"), "{m}");
    let (_, m) = message(QkNormConfig::new(32, 4).with_eps(0.0).init::<B>(&device()));
    assert!(m.contains("`eps` = 0"), "{m}");
}

#[test]
fn patch_size_that_does_not_divide_the_input() {
    let embed = PatchEmbed3dConfig::new(4, 8)
        .with_patch_size([1, 2, 2])
        .init::<B>(&device())
        .unwrap();
    let x = Tensor::<B, 5>::zeros([1, 4, 3, 5, 4], &device());
    let (e, m) = message(embed.try_forward(x));
    assert_eq!(
        e,
        NnError::PatchMismatch {
            axis: "H",
            size: 5,
            patch: 2
        }
    );
    assert!(m.contains("H = 5") && m.contains("patch_size"), "{m}");
    let embed2d = PatchEmbed2dConfig::new(4, 8)
        .with_patch_size([2, 3])
        .init::<B>(&device())
        .unwrap();
    let (e, _) = message(embed2d.try_forward(Tensor::zeros([1, 4, 4, 8], &device())));
    assert_eq!(
        e,
        NnError::PatchMismatch {
            axis: "W",
            size: 8,
            patch: 3
        }
    );
    let (e, m) = message(embed2d.try_forward(Tensor::zeros([1, 3, 4, 9], &device())));
    assert!(
        matches!(
            e,
            NnError::InputMismatch {
                got: 3,
                expected: 4,
                ..
            }
        ),
        "{m}"
    );
    let (_, m) = message(
        PatchEmbed3dConfig::new(4, 8)
            .with_patch_size([1, 0, 2])
            .init::<B>(&device()),
    );
    assert!(m.contains("`patch_size` must be greater than 0"), "{m}");
    let (e, _) = message(patchify_3d(
        Tensor::<B, 5>::zeros([1, 2, 3, 4, 4], &device()),
        [2, 2, 2],
    ));
    assert_eq!(
        e,
        NnError::PatchMismatch {
            axis: "T",
            size: 3,
            patch: 2
        }
    );
}

#[test]
#[should_panic(expected = "input H = 5 is not divisible by `patch_size` 2")]
fn patch_forward_panics_with_the_same_message() {
    let embed = PatchEmbed3dConfig::new(4, 8).init::<B>(&device()).unwrap();
    embed.forward(Tensor::zeros([1, 4, 3, 5, 4], &device()));
}

#[test]
fn sinusoidal_embedding_domain() {
    let (_, m) = message(SinusoidalEmbeddingConfig::new(1).init());
    assert!(m.contains("`dim` = 1"), "{m}");
    // half = 4 with shift 4: zero denominator.
    let (_, m) = message(
        SinusoidalEmbeddingConfig::new(8)
            .with_downscale_freq_shift(4.0)
            .init(),
    );
    assert!(m.contains("`downscale_freq_shift` = 4"), "{m}");
    let (_, m) = message(
        SinusoidalEmbeddingConfig::new(8)
            .with_max_period(-1.0)
            .init(),
    );
    assert!(m.contains("`max_period` = -1"), "{m}");
    let (_, m) = message(
        TimestepEmbedderConfig::new(32)
            .with_frequency_dim(1)
            .init::<B>(&device()),
    );
    assert!(m.contains("`frequency_dim` = 1"), "{m}");
    let (_, m) = message(TimestepEmbedderConfig::new(0).init::<B>(&device()));
    assert!(m.contains("`d_model` must be greater than 0"), "{m}");
}

#[test]
fn rope_configs() {
    let (_, m) = message(Rope1dConfig::new(15, 8).init::<B>(&device()));
    assert!(m.contains("`head_dim` = 15 must be divisible by 2"), "{m}");
    let (_, m) = message(
        Rope1dConfig::new(16, 8)
            .with_theta(0.0)
            .init::<B>(&device()),
    );
    assert!(m.contains("`theta` = 0"), "{m}");
    let (e, m) = message(Rope3dConfig::new(16).with_axes_dims(Some([4, 4, 4])).init());
    assert_eq!(
        e,
        NnError::SplitMismatch {
            field: "axes_dims",
            parts: vec![4, 4, 4],
            sum: 12,
            total_field: "head_dim",
            total: 16
        }
    );
    assert!(m.contains("sums to 12"), "{m}");
    let (_, m) = message(Rope3dConfig::new(16).with_axes_dims(Some([3, 7, 6])).init());
    assert!(m.contains("`axes_dims` = 3 must be divisible by 2"), "{m}");
    // The default split needs head_dim % 8 == 0.
    let (_, m) = message(Rope3dConfig::new(12).init());
    assert!(m.contains("`head_dim` = 12 must be divisible by 8"), "{m}");
    let (_, m) = message(RopeTables::<B>::new_1d(
        &[0.0],
        7,
        1e4,
        RopeLayout::HalfSplit,
        &device(),
    ));
    assert!(m.contains("`head_dim` = 7"), "{m}");
}

#[test]
fn positional_tables() {
    let (_, m) = message(sincos_2d::<B>(18, [2, 2], 2.0, 1.0, &device()));
    assert!(m.contains("`dim` = 18 must be divisible by 4"), "{m}");
    let (_, m) = message(sincos_3d::<B>(40, [2, 2, 2], 1.0, 1.0, &device()));
    assert!(m.contains("`dim` = 40 must be divisible by 16"), "{m}");
    let (_, m) = message(sincos_2d::<B>(16, [2, 2], 2.0, 0.0, &device()));
    assert!(m.contains("`interpolation_scale` = 0"), "{m}");
    let (_, m) = message(sincos_1d::<B>(5, &[0.0], &device()));
    assert!(m.contains("`dim` = 5"), "{m}");
    let embed = FactorizedPosEmbedConfig::new(8, [4, 4, 4])
        .init::<B>(&device())
        .unwrap();
    let (e, m) = message(embed.try_forward([2, 5, 4]));
    assert_eq!(
        e,
        NnError::GridTooLarge {
            axis: "h",
            size: 5,
            field: "max_grid",
            max: 4
        }
    );
    assert!(m.contains("grid h = 5 exceeds `max_grid` = 4"), "{m}");
}

#[test]
fn layer_widths() {
    let (_, m) = message(MlpConfig::new(16, 0).init::<B>(&device()));
    assert!(m.contains("`hidden_dim` must be greater than 0"), "{m}");
    let (_, m) = message(
        SwiGluMlpConfig::new(16, 32)
            .with_d_out(Some(0))
            .init::<B>(&device()),
    );
    assert!(m.contains("`d_out` must be greater than 0"), "{m}");
    let (_, m) = message(
        AdaLnModulationConfig::new(8, 8)
            .with_n_chunks(0)
            .init::<B>(&device()),
    );
    assert!(m.contains("`n_chunks` must be greater than 0"), "{m}");
    let (_, m) = message(ScaleShiftTableConfig::new(0).init::<B>(&device()));
    assert!(m.contains("`d_model` must be greater than 0"), "{m}");
}

#[test]
fn adaln_zero_starts_as_identity() {
    // Zero-initialised modulation: shift = scale = gate = 0, so modulate(x) = x and the gated
    // residual branch vanishes.
    let ada = AdaLnModulationConfig::new(8, 8)
        .init::<B>(&device())
        .unwrap();
    let chunks = ada.forward(Tensor::ones([2, 8], &device()));
    for c in &chunks {
        assert_eq!(c.clone().abs().max().into_scalar(), 0.0);
    }
    let x = Tensor::<B, 3>::ones([2, 3, 8], &device());
    let y = modulate(x.clone(), chunks[0].clone(), chunks[1].clone());
    vidgen_testing::assert_close(y, x, vidgen_testing::Tolerance::EXACT);
}
