//! [`LinGenDit`] as a [`Denoiser`]: text-to-video sampling runs through the generic
//! [`crate::denoise::sample`] loop — for Open-Sora 1.2's RFlow sampler (report sec. 4.2), a
//! [`RectifiedFlow`](vidgen_schedulers::RectifiedFlow) schedule (diffusers' convention
//! `v = ε − x₀`, model time `σ·1000`) with classifier-free guidance against a null text
//! ([`Guidance`](crate::denoise::Guidance): `v = v_u + w·(v_c − v_u)`, both passes as one batch).

use super::LinGenDit;
use crate::denoise::{Denoiser, TextConditioning};
use crate::error::ModelError;
use burn::tensor::{Tensor, backend::Backend};

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
