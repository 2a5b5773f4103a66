//! Classifier-free guidance against diffusers 0.42.1: plain CFG `u + w·(c − u)` followed by
//! `rescale_noise_cfg` (Lin et al. 2023, sec. 3.4) for `guidance_rescale` 0, 0.7 and 1. Fixture:
//! `golden/gen_schedulers_flow.py` (`sched_guidance.safetensors`).

use burn::tensor::backend::Backend;
use vidgen_schedulers::ClassifierFreeGuidance;
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests};

/// A few f32 ops per element plus two per-sample standard deviations over 60 elements each:
/// measured on flex, max abs error 1.9e-7 on values of O(1).
const GUIDANCE: Tolerance = Tolerance::new("GUIDANCE", 1e-6, 1e-6);

fn guidance_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = Golden::open("sched_guidance.safetensors").unwrap();
    let cond = g.tensor::<B, 4>("cond", device);
    let uncond = g.tensor::<B, 4>("uncond", device);
    let scale = g.meta_f64("guidance_scale");
    for (rescale, key) in [
        (0.0, "rescale_0.0"),
        (0.7, "rescale_0.7"),
        (1.0, "rescale_1.0"),
    ] {
        let cfg = ClassifierFreeGuidance::new(scale, rescale).unwrap();
        let out = cfg.combine(cond.clone(), uncond.clone());
        assert_close(out, g.tensor::<B, 4>(key, device), GUIDANCE);
    }
}

backend_tests!(guidance_matches_diffusers);
