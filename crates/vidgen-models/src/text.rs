//! Text conditioning for the bundled models: a small word-level tokenizer with a fixed vocabulary
//! and a learnt embedding (enough for the synthetic labels of the examples, e.g. "red square moving
//! right"), and loading precomputed text embeddings (e.g. T5 outputs made elsewhere) from a
//! safetensors file.

use crate::error::{ModelError, positive};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use std::path::Path;

/// Id of the padding token; padded positions are masked out of cross-attention.
pub const PAD_ID: usize = 0;
/// Id of words outside the vocabulary.
pub const UNK_ID: usize = 1;

/// A word-level tokenizer over a fixed vocabulary: lower-cases, splits on non-alphanumerics, maps
/// each word to its index (`+ 2`, after `<pad>` and `<unk>`), pads or truncates to `max_len`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTokenizer {
    vocab: Vec<String>,
    max_len: usize,
}

impl WordTokenizer {
    /// A tokenizer for `words` (duplicates ignored, order kept).
    ///
    /// # Errors
    /// [`ModelError::Zero`] if `max_len` is 0 or `words` is empty.
    pub fn new<S: AsRef<str>>(words: &[S], max_len: usize) -> Result<Self, ModelError> {
        positive("max_len", max_len)?;
        positive("vocab", words.len())?;
        let mut vocab: Vec<String> = Vec::new();
        for w in words {
            let w = w.as_ref().to_lowercase();
            if !vocab.contains(&w) {
                vocab.push(w);
            }
        }
        Ok(Self { vocab, max_len })
    }

    /// Vocabulary size including `<pad>` and `<unk>`.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len() + 2
    }

    /// Sequence length of every encoded prompt.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one prompt, padded with [`PAD_ID`] to `max_len`, and the number of real tokens.
    pub fn encode(&self, prompt: &str) -> (Vec<usize>, usize) {
        let mut ids: Vec<usize> = prompt
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                self.vocab
                    .iter()
                    .position(|v| v == w)
                    .map_or(UNK_ID, |i| i + 2)
            })
            .take(self.max_len)
            .collect();
        let len = ids.len();
        ids.resize(self.max_len, PAD_ID);
        (ids, len)
    }

    /// Token ids `[N, max_len]` and valid lengths of a batch of prompts.
    pub fn encode_batch<B: Backend>(
        &self,
        prompts: &[&str],
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Vec<usize>) {
        let (mut ids, mut lens) = (Vec::new(), Vec::new());
        for p in prompts {
            let (i, l) = self.encode(p);
            ids.extend(i.into_iter().map(|v| v as i64));
            lens.push(l);
        }
        let data = TensorData::new(ids, [prompts.len(), self.max_len]);
        (Tensor::from_data(data, device), lens)
    }
}

/// Configuration of [`TextEmbedder`].
#[derive(Config, Debug)]
pub struct TextEmbedderConfig {
    /// Vocabulary size (see [`WordTokenizer::vocab_size`]).
    pub vocab_size: usize,
    /// Embedding width (the models' `d_context`).
    pub d_text: usize,
}

impl TextEmbedderConfig {
    /// Builds the embedding table.
    ///
    /// # Errors
    /// [`ModelError::Zero`] naming `vocab_size` or `d_text`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TextEmbedder<B>, ModelError> {
        positive("vocab_size", self.vocab_size)?;
        positive("d_text", self.d_text)?;
        Ok(TextEmbedder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_text).init(device),
        })
    }
}

/// Learnt token embeddings: ids `[N, L]` → text tokens `[N, L, d_text]` for cross-attention.
#[derive(Module, Debug)]
pub struct TextEmbedder<B: Backend> {
    /// `[vocab_size, d_text]`.
    pub embedding: Embedding<B>,
}

impl<B: Backend> TextEmbedder<B> {
    /// # Shapes
    /// `ids`: `[N, L]` → `[N, L, d_text]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embedding.forward(ids)
    }
}

/// Reads precomputed text embeddings `[N, L, C]` (f32) named `name` from a safetensors file.
///
/// # Errors
/// [`ModelError::Io`] if the file cannot be read, [`ModelError::Parse`] if it is not valid
/// safetensors, [`ModelError::MissingTensor`], [`ModelError::ShapeMismatch`] if the tensor is not
/// rank 3, [`ModelError::DtypeMismatch`] if it is not f32.
pub fn load_text_embeddings<B: Backend>(
    path: impl AsRef<Path>,
    name: &str,
    device: &B::Device,
) -> Result<Tensor<B, 3>, ModelError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let file = path.display().to_string();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Parse {
        path: file.clone(),
        message: e.to_string(),
    })?;
    let view = st.tensor(name).map_err(|_| ModelError::MissingTensor {
        path: file.clone(),
        name: name.to_owned(),
    })?;
    let shape = view.shape().to_vec();
    crate::error::same_size("text embedding rank", 3, shape.len())?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(ModelError::DtypeMismatch {
            path: file,
            name: name.to_owned(),
            found: format!("{:?}", view.dtype()),
            expected: "F32",
        });
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidgen_testing::Flex;

    #[test]
    fn tokenizes_pads_and_maps_unknown_words() {
        let tok = WordTokenizer::new(&["red", "square", "moving", "right"], 5).unwrap();
        assert_eq!(tok.vocab_size(), 6);
        assert_eq!(
            tok.encode("Red square, moving RIGHT"),
            (vec![2, 3, 4, 5, 0], 4)
        );
        assert_eq!(tok.encode("blue square"), (vec![1, 3, 0, 0, 0], 2));
        assert_eq!(tok.encode("red red red red red red").1, 5);
        let (ids, lens) = tok.encode_batch::<Flex>(&["red", "square right"], &Default::default());
        assert_eq!(ids.dims(), [2, 5]);
        assert_eq!(lens, vec![1, 2]);
        assert!(matches!(
            WordTokenizer::new::<&str>(&[], 4),
            Err(ModelError::Zero { field: "vocab" })
        ));
    }
}
