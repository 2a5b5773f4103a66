//! The causal temporal autoencoder and the video VAE: golden parity with Open-Sora v1.2.0's own
//! `vae_temporal.py` (`golden/gen_vae_causal3d.py`; the per-frame GroupNorm outputs come from the
//! same upstream modules with each GroupNorm applied frame by frame), config errors naming the
//! field, causality, 1-frame videos and the compression factors.

use burn::tensor::{Distribution, Tensor, backend::Backend};
use burn_store::{ModuleSnapshot, SafetensorsStore};
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests};
use vidgen_vae::ConfigError;
use vidgen_vae::VaeError;
use vidgen_vae::causal3d::*;

/// A dozen stacked 3×3×3 convs and GroupNorms of a tiny random model, run in f32 against a
/// float64 reference: accumulated f32 rounding (about 6e-6 abs at most), well under the block
/// tolerance.
const TEMPORAL_AE: Tolerance = Tolerance::new("TEMPORAL_AE", 1e-4, 1e-3);

fn golden_config(norm: TemporalNorm) -> TemporalAutoencoderConfig {
    TemporalAutoencoderConfig::new()
        .with_filters(4)
        .with_num_res_blocks(1)
        .with_channel_multipliers(vec![1, 1, 2, 2])
        .with_num_groups(2)
        .with_temporal_norm(norm)
}

fn load_golden<B: Backend>(norm: TemporalNorm, device: &B::Device) -> TemporalAutoencoder<B> {
    let mut model = golden_config(norm).init::<B>(device).unwrap();
    let path = vidgen_testing::fixture_path("vae_c3d_temporal.safetensors");
    let mut store = SafetensorsStore::from_file(path)
        .with_key_remapping(r"(norm\d)\.weight$", "$1.gamma")
        .with_key_remapping(r"(norm\d)\.bias$", "$1.beta")
        .allow_partial(true);
    let result = model.load_from(&mut store).unwrap();
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    assert!(result.errors.is_empty(), "errors: {:?}", result.errors);
    let unexpected: Vec<_> = result
        .unused
        .iter()
        .filter(|k| !(k.starts_with("in.") || k.starts_with("out.")))
        .collect();
    assert!(unexpected.is_empty(), "unused weights: {unexpected:?}");
    model
}

fn temporal_ae_matches_open_sora<B: Backend>(device: &B::Device) {
    let g = Golden::open("vae_c3d_temporal.safetensors").unwrap_or_else(|e| panic!("{e}"));
    for (norm, tag) in [
        (TemporalNorm::Clip, "clip"),
        (TemporalNorm::PerFrame, "frame"),
    ] {
        let model = load_golden::<B>(norm, device);
        for case in ["t9", "t6", "t1"] {
            let x: Tensor<B, 5> = g.tensor(&format!("in.{case}"), device);
            let t = x.dims()[2];
            let post = model.encode(x);
            let moments = Tensor::cat(vec![post.mean.clone(), post.logvar.clone()], 1);
            assert_close(
                moments,
                g.tensor(&format!("out.{tag}.{case}.moments"), device),
                TEMPORAL_AE,
            );
            let recon = model.decode(post.mode(), t);
            assert_close(
                recon,
                g.tensor(&format!("out.{tag}.{case}.recon"), device),
                TEMPORAL_AE,
            );
        }
    }
}

fn tiny_temporal(norm: TemporalNorm) -> TemporalAutoencoderConfig {
    TemporalAutoencoderConfig::new()
        .with_filters(4)
        .with_num_res_blocks(1)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_temporal_downsample(vec![true, true])
        .with_num_groups(2)
        .with_temporal_norm(norm)
}

fn causal_per_frame<B: Backend>(device: &B::Device) {
    let model = tiny_temporal(TemporalNorm::PerFrame)
        .init::<B>(device)
        .unwrap();
    let x = Tensor::<B, 5>::random([1, 4, 9, 2, 3], Distribution::Normal(0.0, 1.0), device);
    // Change frames 5.. : latent frames 0 and 1 (frames ≤ 4) and output frames ≤ 4 must not move.
    let later = Tensor::<B, 5>::random([1, 4, 4, 2, 3], Distribution::Normal(0.0, 1.0), device);
    let y = Tensor::cat(vec![x.clone().narrow(2, 0, 5), later], 2);
    let (zx, zy) = (
        model.encode(x.clone()).mode(),
        model.encode(y.clone()).mode(),
    );
    assert_close(
        zx.clone().narrow(2, 0, 2),
        zy.clone().narrow(2, 0, 2),
        Tolerance::EXACT,
    );
    let diff = (zx.clone().narrow(2, 2, 1) - zy.clone().narrow(2, 2, 1))
        .abs()
        .max()
        .into_scalar();
    assert!(
        burn::tensor::ElementConversion::elem::<f64>(diff) > 1e-3,
        "later latent frame must change"
    );
    // Decoder: latent frame k only feeds output frames ≤ 4k (after dropping 3).
    let zmix = Tensor::cat(vec![zx.clone().narrow(2, 0, 2), zy.narrow(2, 2, 1)], 2);
    let (dx, dy) = (model.decode(zx, 9), model.decode(zmix, 9));
    assert_close(dx.narrow(2, 0, 5), dy.narrow(2, 0, 5), Tolerance::EXACT);
}

fn clip_norm_is_not_causal<B: Backend>(device: &B::Device) {
    // Documents Open-Sora's behaviour: clip-wide GroupNorm lets frame 0's latent see frame 8.
    let model = tiny_temporal(TemporalNorm::Clip).init::<B>(device).unwrap();
    let x = Tensor::<B, 5>::random([1, 4, 9, 2, 3], Distribution::Normal(0.0, 1.0), device);
    let y = Tensor::cat(
        vec![x.clone().narrow(2, 0, 8), x.clone().narrow(2, 8, 1) * 5.0],
        2,
    );
    let d = (model.encode(x).mode() - model.encode(y).mode())
        .narrow(2, 0, 1)
        .abs()
        .max();
    assert!(burn::tensor::ElementConversion::elem::<f64>(d.into_scalar()) > 1e-4);
}

fn shapes_and_image<B: Backend>(device: &B::Device) {
    let model = tiny_temporal(TemporalNorm::Clip).init::<B>(device).unwrap();
    assert_eq!(model.temporal_factor(), 4);
    for (t, tl) in [(1, 1), (5, 2), (9, 3), (17, 5), (6, 2), (8, 2)] {
        assert_eq!(model.latent_frames(t), tl);
        let x = Tensor::<B, 5>::random([2, 4, t, 2, 2], Distribution::Normal(0.0, 1.0), device);
        let z = model.encode(x).mode();
        assert_eq!(z.dims(), [2, 4, tl, 2, 2]);
        assert_eq!(model.decode(z, t).dims(), [2, 4, t, 2, 2]);
    }
}

fn video_vae_shapes<B: Backend>(device: &B::Device) {
    let spatial = PixelShuffleAutoencoderConfig::new()
        .with_spatial_factor(2)
        .init::<B>(device)
        .unwrap();
    let vae = VideoAutoencoderConfig::new()
        .with_temporal(tiny_temporal(TemporalNorm::PerFrame))
        .with_micro_batch_size(Some(3))
        .init(spatial, device)
        .unwrap();
    assert_eq!(
        (
            vae.temporal_factor(),
            vae.spatial_factor(),
            vae.first_frame_kept()
        ),
        (4, 2, true)
    );
    let x = Tensor::<B, 5>::random([1, 3, 5, 4, 6], Distribution::Normal(0.0, 1.0), device);
    let z = vae.encode(x.clone());
    assert_eq!(z.dims(), [1, 4, 2, 2, 3]);
    assert_eq!(vae.decode(z.clone(), 5).dims(), [1, 3, 5, 4, 6]);
    // Micro-batching the per-frame 2D VAE is exact.
    let mut whole = vae.clone();
    whole.micro_batch_size = None;
    assert_close(whole.encode(x.clone()), z.clone(), Tolerance::SINGLE_OP);
    assert_close(
        whole.decode(z.clone(), 5),
        vae.decode(z.clone(), 5),
        Tolerance::SINGLE_OP,
    );
    // Zero noise: sampling encode == mean encode.
    let sn = Tensor::zeros([1, 4, 5, 2, 3], device);
    let tn = Tensor::zeros([1, 4, 2, 2, 3], device);
    assert_close(
        vae.encode_with_noise(x, sn, tn),
        z.clone(),
        Tolerance::SINGLE_OP,
    );
    // Normalisation round-trips.
    assert_close(
        vae.denormalize(vae.normalize(z.clone())),
        z,
        Tolerance::SINGLE_OP,
    );
}
/// The pixel-shuffle test double with identity convs is a lossless space-to-depth /
/// depth-to-space pair: `encode_mean` puts `x[n, c, y·f + fy, x·f + fx]` at latent channel
/// `c·f² + fy·f + fx`, and `decode(encode_mean(x))` gives `x` back exactly.
fn pixel_shuffle_round_trip<B: Backend>(device: &B::Device) {
    let f = 2;
    let channels = 3 * f * f;
    let mut ae = PixelShuffleAutoencoderConfig::new()
        .with_spatial_factor(f)
        .with_latent_channels(channels)
        .with_decoder_kernel(1)
        .init::<B>(device)
        .unwrap();
    let identity = || {
        burn::module::Param::from_tensor(
            Tensor::<B, 2>::eye(channels, device).reshape([channels, channels, 1, 1]),
        )
    };
    let zero_bias = || {
        Some(burn::module::Param::from_tensor(Tensor::zeros(
            [channels],
            device,
        )))
    };
    ae.encoder.weight = identity();
    ae.encoder.bias = zero_bias();
    ae.decoder.weight = identity();
    ae.decoder.bias = zero_bias();
    let (n, h, w) = (2, 4, 6);
    let x = Tensor::<B, 4>::random([n, 3, h, w], Distribution::Normal(0.0, 1.0), device);
    let z = ae.encode_mean(x.clone());
    assert_eq!(z.dims(), [n, channels, h / f, w / f]);
    let xs: Vec<f32> = x.to_data().convert::<f32>().to_vec().unwrap();
    let zs: Vec<f32> = z.to_data().convert::<f32>().to_vec().unwrap();
    let (hl, wl) = (h / f, w / f);
    for (i, &zv) in zs.iter().enumerate() {
        let (b, ch, y, xl) = (
            i / (channels * hl * wl),
            (i / (hl * wl)) % channels,
            (i / wl) % hl,
            i % wl,
        );
        let (c, fy, fx) = (ch / (f * f), (ch / f) % f, ch % f);
        let xv = xs[((b * 3 + c) * h + y * f + fy) * w + xl * f + fx];
        assert_eq!(zv, xv, "latent [{b}, {ch}, {y}, {xl}]");
    }
    assert_close(ae.decode(z), x, Tolerance::EXACT);
}

backend_tests!(
    temporal_ae_matches_open_sora,
    causal_per_frame,
    clip_norm_is_not_causal,
    shapes_and_image,
    video_vae_shapes,
    pixel_shuffle_round_trip
);

type Cpu = vidgen_testing::Flex;

#[test]
fn config_errors_name_the_field() {
    let d = Default::default();
    let err = |c: TemporalAutoencoderConfig| c.init::<Cpu>(&d).unwrap_err();
    assert_eq!(
        err(tiny_temporal(TemporalNorm::Clip).with_filters(0)),
        VaeError::Config(ConfigError::Zero { field: "filters" })
    );
    assert!(matches!(
        err(tiny_temporal(TemporalNorm::Clip).with_num_groups(3)),
        VaeError::Config(ConfigError::NotDivisible {
            field: "filters * channel_multipliers[i]",
            value: 4,
            by: 3,
            ..
        })
    ));
    assert!(matches!(
        err(tiny_temporal(TemporalNorm::Clip).with_temporal_downsample(vec![true])),
        VaeError::Config(ConfigError::ShapeMismatch {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        err(tiny_temporal(TemporalNorm::Clip).with_norm_eps(0.0)),
        VaeError::Config(ConfigError::OutOfDomain {
            field: "norm_eps",
            ..
        })
    ));
    let conv = CausalConv3dConfig::new(2, 2, [3, 2, 3])
        .init::<Cpu>(&d)
        .unwrap_err();
    assert!(matches!(
        conv,
        VaeError::Config(ConfigError::Unsupported {
            field: "kernel_size",
            ..
        })
    ));
    let conv = CausalConv3dConfig::new(2, 2, [1, 3, 3])
        .with_stride(2)
        .init::<Cpu>(&d)
        .unwrap_err();
    assert!(matches!(
        conv,
        VaeError::Config(ConfigError::Unsupported {
            field: "stride",
            ..
        })
    ));
    let spatial = || {
        PixelShuffleAutoencoderConfig::new()
            .with_spatial_factor(2)
            .init::<Cpu>(&d)
            .unwrap()
    };
    let video = || VideoAutoencoderConfig::new().with_temporal(tiny_temporal(TemporalNorm::Clip));
    let e = video()
        .with_scale(vec![1.0, 1.0, -1.0, 1.0])
        .init(spatial(), &d)
        .unwrap_err();
    assert!(matches!(
        e,
        VaeError::Config(ConfigError::OutOfDomain { field: "scale", .. })
    ));
    let e = video()
        .with_shift(vec![0.0; 3])
        .init(spatial(), &d)
        .unwrap_err();
    assert!(
        matches!(
            e,
            VaeError::Config(ConfigError::ShapeMismatch {
                expected: 4,
                got: 3,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("shift"), "{e}");
    let e = video()
        .with_micro_batch_size(Some(0))
        .init(spatial(), &d)
        .unwrap_err();
    assert_eq!(
        e,
        VaeError::Config(ConfigError::Zero {
            field: "micro_batch_size"
        })
    );
    let wide = PixelShuffleAutoencoderConfig::new()
        .with_latent_channels(8)
        .init::<Cpu>(&d)
        .unwrap();
    assert!(matches!(
        video().init(wide, &d).unwrap_err(),
        VaeError::Config(ConfigError::ShapeMismatch {
            expected: 4,
            got: 8,
            ..
        })
    ));
    let e = PixelShuffleAutoencoderConfig::new()
        .with_decoder_kernel(2)
        .init::<Cpu>(&d)
        .unwrap_err();
    assert!(matches!(
        e,
        VaeError::Config(ConfigError::Unsupported {
            field: "decoder_kernel",
            ..
        })
    ));
}

#[test]
fn default_config_is_open_sora_1_2() {
    let c = VideoAutoencoderConfig::new();
    assert_eq!(c.temporal.temporal_factor(), 4);
    assert_eq!(c.temporal.channel_multipliers, vec![1, 2, 2, 4]);
    assert_eq!(c.temporal.temporal_downsample, vec![false, true, true]);
    assert_eq!(
        (
            c.temporal.filters,
            c.temporal.num_res_blocks,
            c.temporal.num_groups
        ),
        (128, 4, 32)
    );
    assert_eq!(c.scale, vec![3.85, 2.32, 2.33, 3.06]);
}
