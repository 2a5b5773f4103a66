//! [`LinGenDit`] as a [`Denoiser`]: text-to-video sampling runs through the generic
//! [`crate::denoise::sample`] loop — for Open-Sora 1.2's RFlow sampler (report sec. 4.2), a
//! [`RectifiedFlow`](vidgen_schedulers::RectifiedFlow) schedule (diffusers' convention
//! `v = ε − x₀`, model time `σ·1000`) with classifier-free guidance against a null text
//! ([`Guidance`](crate::denoise::Guidance): `v = v_u + w·(v_c − v_u)`, both passes as one batch).

use super::LinGenDit;
use crate::denoise::{Conditioning, Denoiser, TextConditioning, sample};
use crate::error::ModelError;
use crate::generate::{GenerateOptions, zero_text};
use burn::tensor::{Tensor, backend::Backend};

impl<B: Backend> LinGenDit<B> {
    /// Generates one latent video per prompt of `text` (`[N, L, d_text]` with its padding):
    /// rectified-flow Euler steps of [`GenerateOptions::flow`] from noise seeded with
    /// `options.seed`, guided against a zero text with the prompt's padding (LinGen has no
    /// learnt null caption) unless `options.guidance_scale` is 1. The generic
    /// [`sample`] loop runs other schedules, texts or progress callbacks.
    ///
    /// # Shapes
    /// → `[N, C, T, H, W]` with `[C, T, H, W] = options.latent_size`
    ///
    /// # Errors
    /// Those of [`GenerateOptions::validate`]; the input errors of [`forward`](Self::forward)
    /// (latent size, text width) at the first step; [`ModelError::NonFinite`] from the guard.
    pub fn generate(
        &self,
        text: &TextConditioning<B>,
        options: &GenerateOptions,
    ) -> Result<Tensor<B, 5>, ModelError> {
        options.validate()?;
        let flow = options.rectified_flow()?;
        let cond = Conditioning {
            text: text.clone(),
            guidance: options.guidance(|| Ok(zero_text(text)))?,
        };
        let (mut rng, initial) = options.initial_noise(text.batch(), &text.tokens.device());
        sample(
            &flow,
            self,
            &cond,
            initial,
            &mut rng,
            options.finite_check,
            |_| {},
        )
    }
}

impl<B: Backend> Denoiser<B> for LinGenDit<B> {
    fn denoise(
        &self,
        x: Tensor<B, 5>,
        time: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        self.forward(x, time, text)
    }
}
