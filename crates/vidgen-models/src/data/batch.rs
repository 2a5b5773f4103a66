//! Batches of moving-shapes items for burn-train: videos, token ids, lengths, seeds.

use super::{dataset::*, labels::*};
use crate::text::WordTokenizer;
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// A batch of [`MovingShapeItem`]s on a device.
#[derive(Debug, Clone)]
pub struct VideoBatch<B: Backend> {
    /// Videos `[N, 3, T, H, W]` in `[-1, 1]`.
    pub videos: Tensor<B, 5>,
    /// Label token ids `[N, L]`.
    pub ids: Tensor<B, 2, Int>,
    /// Valid token counts, `N` values.
    pub lens: Vec<usize>,
    /// The items' seeds, `N` values.
    pub seeds: Vec<u64>,
}

/// Batches [`MovingShapeItem`]s: stacks the videos, tokenizes the labels.
#[derive(Debug, Clone)]
pub struct MovingShapesBatcher {
    /// Label → ids.
    pub tokenizer: WordTokenizer,
}

impl Default for MovingShapesBatcher {
    fn default() -> Self {
        Self {
            tokenizer: tokenizer(),
        }
    }
}

impl<B: Backend> Batcher<B, MovingShapeItem, VideoBatch<B>> for MovingShapesBatcher {
    /// # Panics
    /// If `items` is empty or the items differ in shape.
    fn batch(&self, items: Vec<MovingShapeItem>, device: &B::Device) -> VideoBatch<B> {
        let [c, t, h, w] = items.first().expect("a non-empty batch").shape;
        let mut values = Vec::with_capacity(items.len() * c * t * h * w);
        for item in &items {
            assert_eq!(item.shape, [c, t, h, w], "items of different shapes");
            values.extend_from_slice(&item.video);
        }
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        let (ids, lens) = self.tokenizer.encode_batch::<B>(&labels, device);
        VideoBatch {
            videos: Tensor::from_data(TensorData::new(values, [items.len(), c, t, h, w]), device),
            ids,
            lens,
            seeds: items.iter().map(|i| i.seed).collect(),
        }
    }
}
