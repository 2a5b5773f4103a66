//! Chunk-by-chunk encode/decode of the causal video VAE with an explicit causal-conv cache, and
//! spatially tiled decode with linear blending.
//!
//! # Streaming
//! Every [`CausalConv3d`](crate::causal3d::CausalConv3d) keeps in its [`ConvSlot`] the input
//! frames its next output window still needs (the last `k_t − stride` frames when chunks respect
//! the stride, more when they do not). Feeding a clip in chunks of *any* sizes therefore emits
//! exactly the frames of the whole-clip pass: stride-2 encoder convs simply hold a frame back
//! until its pair arrives, so a chunk may yield no latent frame (`None`).
//!
//! Requirements, checked with typed errors:
//! - the model must use [`TemporalNorm::PerFrame`]; Open-Sora's clip-wide `GroupNorm`
//!   ([`TemporalNorm::Clip`]) lets frame 0 depend on frame `T − 1`, so no exact streaming exists
//!   ([`VaeError::Config`] (`ConfigError::Unsupported`) from [`TemporalAutoencoder::encode_cache`] / `decode_cache`);
//! - the stream assumes Open-Sora's "first frame kept" padding (`f − 1` zero frames in front),
//!   which is what the whole-clip pass does when `T ≡ 1 (mod f)`. [`TemporalAutoencoder::encode_finish`]
//!   returns [`VaeError::Config`] (`ConfigError::NotDivisible`) when the frames fed do not satisfy it (the held-back frames
//!   would need the padding of a different `T`).
//!
//! # Tiling
//! [`TiledDecode`] decodes overlapping latent tiles and blends them in pixel space with linear
//! ramps over the overlap ([`blend_v`], [`blend_h`], after diffusers).

mod tiling;

pub use tiling::{TiledDecode, TiledDecodeConfig, blend_h, blend_v};

use crate::causal3d::{
    ConvRun, ConvSlot, SpatialAutoencoder, TemporalAutoencoder, TemporalNorm, TemporalPosterior,
    VideoAutoencoder,
};
use crate::error::ConfigError;
use crate::error::VaeError;
use burn::tensor::{Tensor, backend::Backend};

/// Which half of the autoencoder a [`CausalCache`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRole {
    /// Encoder convs then `quant_conv`.
    Encode,
    /// `post_quant_conv` then decoder convs.
    Decode,
}

/// The state carried between chunks: one [`ConvSlot`] per causal conv, in traversal order, plus
/// frame counters.
#[derive(Debug, Clone)]
pub struct CausalCache<B: Backend> {
    /// Encoder or decoder.
    pub role: CacheRole,
    /// One slot per causal conv.
    pub slots: Vec<ConvSlot<B>>,
    /// Frames fed so far (video frames for encode, latent frames for decode).
    pub frames_in: usize,
    /// Frames emitted so far.
    pub frames_out: usize,
}

impl<B: Backend> CausalCache<B> {
    fn new(role: CacheRole, n: usize) -> Self {
        Self {
            role,
            slots: (0..n).map(|_| ConvSlot::default()).collect(),
            frames_in: 0,
            frames_out: 0,
        }
    }

    fn check(&self, role: CacheRole) {
        assert_eq!(
            self.role, role,
            "a {:?} cache passed to a {role:?} step",
            self.role
        );
    }
}

fn streamable(norm: TemporalNorm) -> Result<(), VaeError> {
    match norm {
        TemporalNorm::PerFrame => Ok(()),
        TemporalNorm::Clip => Err(VaeError::Config(ConfigError::Unsupported {
            field: "temporal_norm",
            value: "Clip".into(),
            reason: "clip-wide GroupNorm statistics depend on future frames; use PerFrame to stream",
        })),
    }
}

impl<B: Backend> TemporalAutoencoder<B> {
    /// A fresh cache for [`Self::encode_chunk`].
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Unsupported`) naming `temporal_norm` unless it is [`TemporalNorm::PerFrame`].
    pub fn encode_cache(&self) -> Result<CausalCache<B>, VaeError> {
        streamable(self.temporal_norm)?;
        Ok(CausalCache::new(
            CacheRole::Encode,
            self.encoder.n_convs() + 1,
        ))
    }

    /// A fresh cache for [`Self::decode_chunk`].
    ///
    /// # Errors
    /// As [`Self::encode_cache`].
    pub fn decode_cache(&self) -> Result<CausalCache<B>, VaeError> {
        streamable(self.temporal_norm)?;
        Ok(CausalCache::new(
            CacheRole::Decode,
            self.decoder.n_convs() + 1,
        ))
    }

    /// Encodes the next `n ≥ 1` frames; returns the posterior of the latent frames completed by
    /// them (`None` if none). Concatenated over a clip with `T ≡ 1 (mod f)`, equals
    /// [`Self::encode`] of the clip.
    ///
    /// # Shapes
    /// `x`: `[B, in_out_channels, n, H, W]` → `[B, embed_dim, n', H, W]`
    ///
    /// # Panics
    /// If `cache` is a decode cache.
    pub fn encode_chunk(
        &self,
        x: Tensor<B, 5>,
        cache: &mut CausalCache<B>,
    ) -> Option<TemporalPosterior<B>> {
        cache.check(CacheRole::Encode);
        let [b, c, n, h, w] = x.dims();
        let x = if cache.frames_in == 0 && self.temporal_factor > 1 {
            let pad = Tensor::zeros([b, c, self.temporal_factor - 1, h, w], &x.device());
            Tensor::cat(vec![pad, x], 2)
        } else {
            x
        };
        cache.frames_in += n;
        let (enc, quant) = cache.slots.split_at_mut(self.encoder.n_convs());
        let moments = self.encoder.run(x, &mut ConvRun::Stream(enc, 0))?;
        let moments = self.quant_conv.forward_cached(moments, &mut quant[0])?;
        cache.frames_out += moments.dims()[2];
        Some(TemporalPosterior::from_moments(moments))
    }

    /// Checks that the frames fed form a clip the stream encodes exactly (`T ≡ 1 (mod f)`), i.e.
    /// that no frame is held back.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::NotDivisible`) naming `frames_in - 1` and the factor.
    pub fn encode_finish(&self, cache: &CausalCache<B>) -> Result<(), VaeError> {
        cache.check(CacheRole::Encode);
        crate::error::positive("frames_in", cache.frames_in)?;
        Ok(crate::error::divisible(
            "frames_in - 1",
            cache.frames_in - 1,
            self.temporal_factor,
            Some("temporal_factor"),
        )?)
    }

    /// Decodes the next `n ≥ 1` latent frames to `f·n` frames (the first `f − 1` frames of the
    /// stream are dropped, as [`Self::decode`] does for `T ≡ 1 (mod f)`).
    ///
    /// # Shapes
    /// `z`: `[B, embed_dim, n, H, W]` → `[B, in_out_channels, f·n (− f + 1 on the first chunk), H, W]`
    ///
    /// # Panics
    /// If `cache` is an encode cache.
    pub fn decode_chunk(&self, z: Tensor<B, 5>, cache: &mut CausalCache<B>) -> Tensor<B, 5> {
        cache.check(CacheRole::Decode);
        cache.frames_in += z.dims()[2];
        let (post, dec) = cache.slots.split_at_mut(1);
        let z = self
            .post_quant_conv
            .forward_cached(z, &mut post[0])
            .expect("1×1×1 conv emits every frame");
        let x = self
            .decoder
            .run(z, &mut ConvRun::Stream(dec, 0))
            .expect("stride-1 decoder convs emit every frame");
        let produced = x.dims()[2];
        let to_drop = (self.temporal_factor - 1)
            .saturating_sub(cache.frames_out)
            .min(produced);
        cache.frames_out += produced;
        x.narrow(2, to_drop, produced - to_drop)
    }
}

impl<B: Backend, S: SpatialAutoencoder<B>> VideoAutoencoder<B, S> {
    /// Streaming twin of [`VideoAutoencoder::encode`]: 2D-encodes the chunk's frames, then streams
    /// them through the temporal encoder.
    ///
    /// # Shapes
    /// `x`: `[B, 3, n, H, W]` → `[B, E, n', H/f, W/f]` or `None`
    pub fn encode_chunk(
        &self,
        x: Tensor<B, 5>,
        cache: &mut CausalCache<B>,
    ) -> Option<Tensor<B, 5>> {
        let post = self.temporal.encode_chunk(self.spatial_encode(x), cache)?;
        Some(self.normalize(post.mode()))
    }

    /// Streaming twin of [`VideoAutoencoder::decode`]; with `tiling`, each frame is decoded in
    /// spatial tiles.
    ///
    /// # Shapes
    /// `z`: `[B, E, n, h, w]` → `[B, 3, 4n (− 3 on the first chunk), h·f, w·f]`
    pub fn decode_chunk(
        &self,
        z: Tensor<B, 5>,
        cache: &mut CausalCache<B>,
        tiling: Option<&TiledDecode>,
    ) -> Tensor<B, 5> {
        let x_z = self.temporal.decode_chunk(self.denormalize(z), cache);
        match tiling {
            Some(t) => self.spatial_decode_tiled(x_z, t),
            None => self.spatial_decode(x_z),
        }
    }

    /// [`VideoAutoencoder::spatial_decode`] with every frame decoded tile by tile.
    ///
    /// # Shapes
    /// `z`: `[B, C, T, h, w]` → `[B, 3, T, h·f, w·f]`
    pub fn spatial_decode_tiled(&self, z: Tensor<B, 5>, tiling: &TiledDecode) -> Tensor<B, 5> {
        let [b, c, t, h, w] = z.dims();
        let frames = z.swap_dims(1, 2).reshape([b * t, c, h, w]) / self.spatial_scaling_factor;
        let f = self.spatial_factor();
        let x = tiling.decode(frames, f, |tile| self.spatial.decode(tile));
        let [_, co, ho, wo] = x.dims();
        x.reshape([b, t, co, ho, wo]).swap_dims(1, 2)
    }

    /// [`VideoAutoencoder::decode`] (temporal decode in `micro_frame_size` pieces) with spatially
    /// tiled 2D decoding.
    ///
    /// # Shapes
    /// `z`: `[B, E, T', h, w]` → `[B, 3, num_frames, h·f, w·f]`
    pub fn decode_tiled(
        &self,
        z: Tensor<B, 5>,
        num_frames: usize,
        tiling: &TiledDecode,
    ) -> Tensor<B, 5> {
        let x_z = self.temporal_decode(self.denormalize(z), num_frames);
        self.spatial_decode_tiled(x_z, tiling)
    }
}
