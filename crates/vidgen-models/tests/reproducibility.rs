//! Seeded reproducibility of every pipeline: with one model, the same seed gives the same video
//! bit for bit on the same backend, and another seed gives another video. Covered: STDiT
//! text-to-video, Open-Sora 1.2's STDiT3 sampler (with the Open-Sora VAE decoding the latent),
//! LinGen, Snap Video FIT (stochastic churn steps included) and FlashVideo.

use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};
use vidgen_models::GenerateOptions;
use vidgen_models::flashvideo::{FlashVideoConfig, Sampling, generate_video};
use vidgen_models::lingen::LinGenConfig;
use vidgen_models::opensora::{Stdit3Prompt, sample_stdit3};
use vidgen_models::snap_fit::{EdmSolver, SnapFitCond, SnapFitConfig};
use vidgen_models::stdit::{StditConfig, TextToVideo};
use vidgen_models::text::{TextEmbedderConfig, WordTokenizer};
use vidgen_models::{Conditioning, Guidance, TextConditioning, sample};
use vidgen_schedulers::edm::{Churn, EdmConfig, EdmSampler, snap_video_sigma_in};
use vidgen_schedulers::{
    FiniteCheck, NoiseGenerator, OpenSoraRflowConfig, PixelExtent, RectifiedFlowConfig,
};
use vidgen_testing::backend_tests;
use vidgen_vae::opensora::OpenSoraVaeConfig;

const TINY_STDIT3: &str = include_str!("../../../golden/fixtures/opensora_stdit3_tiny/config.json");
const TINY_VAE: &str = include_str!("../../../golden/fixtures/opensora_vae_tiny.json");

/// Runs `generate(seed)` for seeds 1, 1 and 2: the first two must agree bit for bit, the third
/// must differ.
fn check_seeds<B: Backend, const D: usize>(
    what: &str,
    mut generate: impl FnMut(u64) -> Tensor<B, D>,
) {
    let bits = |t: Tensor<B, D>| -> Vec<u32> {
        t.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let (a, b, c) = (bits(generate(1)), bits(generate(1)), bits(generate(2)));
    assert!(!a.is_empty(), "{what}: empty output");
    assert_eq!(a, b, "{what}: the same seed gave different outputs");
    assert_ne!(a, c, "{what}: another seed gave the same output");
}

fn stdit_text_to_video<B: Backend>(device: &B::Device) {
    let tokenizer = WordTokenizer::new(&["red", "square", "moving", "right"], 5).unwrap();
    let embedder = TextEmbedderConfig::new(tokenizer.vocab_size(), 8)
        .init::<B>(device)
        .unwrap();
    let model = StditConfig::new(16, 2, 1, 8)
        .with_frequency_dim(16)
        .with_max_frames(4)
        .with_text_max_len(6)
        .with_zero_init_temporal(false)
        .init::<B>(device)
        .unwrap();
    let pipe = TextToVideo::new(model, tokenizer, embedder).unwrap();
    check_seeds("STDiT text-to-video", |seed| {
        let options = GenerateOptions {
            latent_size: [4, 2, 4, 4],
            num_steps: 3,
            seed,
            ..Default::default()
        };
        pipe.generate(&["red square moving right"], &options, device)
            .unwrap()
    });
}

fn open_sora_stdit3_and_vae<B: Backend>(device: &B::Device) {
    let (config, _) = StditConfig::from_upstream_config(TINY_STDIT3).unwrap();
    let model = config.init::<B>(device).unwrap();
    let vae = OpenSoraVaeConfig::from_json_str(TINY_VAE, "tiny VAE")
        .and_then(|c| c.init::<B>(device))
        .unwrap();
    let sampler = OpenSoraRflowConfig {
        num_sampling_steps: 3,
        ..Default::default()
    }
    .init()
    .unwrap();
    let y = Tensor::random(
        [1, config.text_max_len, config.d_text],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let prompt = Stdit3Prompt {
        y,
        mask: None,
        fps: Tensor::full([1], 24.0, device),
        extent: PixelExtent::uniform(1, 16, 16, 1),
    };
    check_seeds("Open-Sora STDiT3 + VAE", |seed| {
        let z = NoiseGenerator::seed_from_u64(seed)
            .normal::<B, 5>([1, config.in_channels, 1, 2, 2], device);
        let z =
            sample_stdit3(&model, &sampler, z, &prompt, |_| {}, FiniteCheck::EveryStep).unwrap();
        vae.decode(z, 1)
    });
}

fn lingen<B: Backend>(device: &B::Device) {
    let model = LinGenConfig::new(3, 16, 3, 2, 8)
        .with_max_grid([4, 8, 8])
        .with_d_state(4)
        .with_mamba_head_dim(8)
        .with_chunk_size(3)
        .with_tesa_window([2, 2, 2])
        .with_adaln_zero_init(false)
        .init::<B>(device)
        .unwrap();
    // A stochastic flow schedule, so that per-step noise comes from the seed too.
    let flow = RectifiedFlowConfig {
        stochastic_sampling: true,
        ..Default::default()
    }
    .init(3, None)
    .unwrap();
    let text = TextConditioning::new(Tensor::random(
        [1, 4, 8],
        Distribution::Normal(0.0, 1.0),
        device,
    ));
    let null = TextConditioning::new(Tensor::zeros([1, 4, 8], device));
    let cond = Conditioning::guided(text, Guidance::new(3.0, 0.0, null).unwrap());
    check_seeds("LinGen", |seed| {
        let mut rng = NoiseGenerator::seed_from_u64(seed);
        let noise = rng.normal::<B, 5>([1, 3, 2, 4, 4], device);
        sample(
            &flow,
            &model,
            &cond,
            noise,
            &mut rng,
            FiniteCheck::EveryStep,
            |_| {},
        )
        .unwrap()
    });
}

fn snap_fit<B: Backend>(device: &B::Device) {
    let model = SnapFitConfig::new(2, 16, 16, 3, 2, 4, 5)
        .with_group_size([2, 2])
        .with_n_latent_layers(1)
        .with_frequency_dim(16)
        .with_mlp_ratio(2.0)
        .with_self_cond_zero_init(false)
        .init::<B>(device)
        .unwrap();
    let cond = SnapFitCond {
        text: TextConditioning::new(Tensor::random(
            [1, 3, 5],
            Distribution::Normal(0.0, 1.0),
            device,
        )),
        fps: Tensor::from_data(TensorData::new(vec![8.0f32], [1]), device),
        resolution: Tensor::from_data(TensorData::new(vec![8.0f32, 8.0], [1, 2]), device),
    };
    let edm = EdmConfig::snap_video(snap_video_sigma_in(1.0, 2))
        .init()
        .unwrap();
    // Churn: every step adds fresh noise from the seeded source.
    let sampler = EdmSampler {
        churn: Churn {
            s_churn: 1.0,
            ..Churn::NONE
        },
        ..EdmSampler::new(edm, EdmSolver::Heun, 3).unwrap()
    };
    check_seeds("Snap Video FIT", |seed| {
        let mut rng = NoiseGenerator::seed_from_u64(seed);
        let noise = rng.normal::<B, 5>([1, 2, 2, 8, 8], device);
        model
            .sample(&sampler, noise, &cond, &mut rng, FiniteCheck::EveryStep)
            .unwrap()
    });
}

fn flashvideo<B: Backend>(device: &B::Device) {
    let config = FlashVideoConfig::new(11, 7, 16, 2, 2, [3, 4], 5).with_key_frame_stride(2);
    let key_model = config.init::<B>(device).unwrap();
    let interp_model = config.init::<B>(device).unwrap();
    check_seeds("FlashVideo", |seed| {
        let sampling = Sampling::Seeded {
            seed,
            temperature: 1.0,
        };
        let video =
            generate_video(&key_model, &interp_model, &[3, 1], sampling, seed, device).unwrap();
        let codes: Vec<f32> = video.frames.iter().flatten().map(|&c| c as f32).collect();
        let n = codes.len();
        Tensor::<B, 1>::from_data(TensorData::new(codes, [n]), device)
    });
}

backend_tests!(
    stdit_text_to_video,
    open_sora_stdit3_and_vae,
    lingen,
    snap_fit,
    flashvideo
);
