//! Text conditioning for the bundled models: a small word-level tokenizer with a fixed vocabulary
//! and a learnt embedding (enough for the synthetic labels of the examples, e.g. "red square moving
//! right"), and loading precomputed text embeddings (e.g. T5 outputs made elsewhere) from a
//! safetensors file.

use crate::error::{ModelError, positive};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use std::path::Path;

/// Id of the padding token; padded positions are masked out of cross-attention.
pub const PAD_ID: usize = 0;
/// Id reserved for words outside the vocabulary (a row of every text embedding). The tokenizer
/// never emits it: [`WordTokenizer::try_encode`] rejects unknown words, the lenient
/// [`WordTokenizer::encode`] drops them.
pub const UNK_ID: usize = 1;

/// A word-level tokenizer over a fixed vocabulary: lower-cases, splits on non-alphanumerics, maps
/// each word to its index (`+ 2`, after `<pad>` and `<unk>`), pads or truncates to `max_len`.
///
/// Words outside the vocabulary are an error in [`try_encode`](Self::try_encode) /
/// [`try_encode_batch`](Self::try_encode_batch) ([`ModelError::UnknownWords`], naming them and
/// the vocabulary). The lenient [`encode`](Self::encode) / [`encode_batch`](Self::encode_batch)
/// drop them; [`encode_lenient`](Self::encode_lenient) says which it dropped, so a caller can warn.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTokenizer {
    vocab: Vec<String>,
    max_len: usize,
}

/// A prompt encoded by [`WordTokenizer::encode_lenient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, padded with [`PAD_ID`] to `max_len`.
    pub ids: Vec<usize>,
    /// Number of real tokens (at most `max_len`).
    pub len: usize,
    /// Words outside the vocabulary, dropped, in prompt order (repeats kept once).
    pub dropped: Vec<String>,
}

impl WordTokenizer {
    /// A tokenizer for `words` (duplicates ignored, order kept).
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Zero`) if `max_len` is 0 or `words` is empty.
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

    /// The words, in id order (word `k` has id `k + 2`).
    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    /// Sequence length of every encoded prompt.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Lenient encoding: the ids of the prompt's known words, padded with [`PAD_ID`] to `max_len`
    /// (truncated after `max_len` known words), and the unknown words it dropped.
    pub fn encode_lenient(&self, prompt: &str) -> Encoded {
        let (mut ids, mut dropped) = (Vec::new(), Vec::<String>::new());
        for word in prompt
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            match self.vocab.iter().position(|v| v == word) {
                Some(i) => ids.push(i + 2),
                None if !dropped.iter().any(|d| d == word) => dropped.push(word.to_owned()),
                None => {}
            }
        }
        ids.truncate(self.max_len);
        let len = ids.len();
        ids.resize(self.max_len, PAD_ID);
        Encoded { ids, len, dropped }
    }

    /// Token ids of one prompt, padded with [`PAD_ID`] to `max_len`, and the number of real tokens.
    ///
    /// # Errors
    /// [`ModelError::UnknownWords`] naming every word outside the vocabulary, and the vocabulary.
    pub fn try_encode(&self, prompt: &str) -> Result<(Vec<usize>, usize), ModelError> {
        let Encoded { ids, len, dropped } = self.encode_lenient(prompt);
        if dropped.is_empty() {
            Ok((ids, len))
        } else {
            Err(ModelError::UnknownWords {
                words: dropped,
                vocab: self.vocab.clone(),
            })
        }
    }

    /// Lenient [`try_encode`](Self::try_encode): words outside the vocabulary are dropped without
    /// a word (use [`encode_lenient`](Self::encode_lenient) to learn which).
    pub fn encode(&self, prompt: &str) -> (Vec<usize>, usize) {
        let Encoded { ids, len, .. } = self.encode_lenient(prompt);
        (ids, len)
    }

    /// Token ids `[N, max_len]` and valid lengths of a batch of prompts.
    ///
    /// # Errors
    /// [`ModelError::UnknownWords`] for the first prompt with words outside the vocabulary.
    pub fn try_encode_batch<B: Backend>(
        &self,
        prompts: &[&str],
        device: &B::Device,
    ) -> Result<(Tensor<B, 2, Int>, Vec<usize>), ModelError> {
        let encoded = prompts
            .iter()
            .map(|p| self.try_encode(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.batch(encoded, device))
    }

    /// Lenient [`try_encode_batch`](Self::try_encode_batch): unknown words are dropped, as in
    /// [`encode`](Self::encode).
    pub fn encode_batch<B: Backend>(
        &self,
        prompts: &[&str],
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Vec<usize>) {
        let encoded = prompts.iter().map(|p| self.encode(p)).collect();
        self.batch(encoded, device)
    }

    fn batch<B: Backend>(
        &self,
        encoded: Vec<(Vec<usize>, usize)>,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Vec<usize>) {
        let n = encoded.len();
        let (mut ids, mut lens) = (Vec::with_capacity(n * self.max_len), Vec::with_capacity(n));
        for (i, l) in encoded {
            ids.extend(i.into_iter().map(|v| v as i64));
            lens.push(l);
        }
        let data = TensorData::new(ids, [n, self.max_len]);
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
    /// [`ModelError::Config`] (`ConfigError::Zero`) naming `vocab_size` or `d_text`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TextEmbedder<B>, ModelError> {
        positive("vocab_size", self.vocab_size)?;
        positive("d_text", self.d_text)?;
        Ok(TextEmbedder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_text).init(device),
            new_tokens: None,
        })
    }
}

/// Learnt token embeddings: ids `[N, L]` → text tokens `[N, L, d_text]` for cross-attention.
///
/// New words (ids after the table, e.g. from [`tokenizer_for`](crate::data::tokenizer_for))
/// get their own rows, [`new_tokens`](Self::new_tokens), added by
/// [`with_new_tokens`](Self::with_new_tokens): a parameter of its own, so fine-tuning can train
/// them with the table frozen (saved with the LoRA adapters, see
/// [`save_lora`](vidgen_nn::save_lora)), and folded into the table by
/// [`merge_new_tokens`](Self::merge_new_tokens).
#[derive(Module, Debug)]
pub struct TextEmbedder<B: Backend> {
    /// `[vocab_size, d_text]`.
    pub embedding: Embedding<B>,
    /// `[new words, d_text]`: the rows of ids `vocab_size..`, if any.
    pub new_tokens: Option<Param<Tensor<B, 2>>>,
}

impl<B: Backend> TextEmbedder<B> {
    /// # Shapes
    /// `ids`: `[N, L]` → `[N, L, d_text]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match &self.new_tokens {
            None => self.embedding.forward(ids),
            Some(_) => burn::tensor::module::embedding(self.table(), ids),
        }
    }

    /// The table with the new-word rows appended: `[vocab_size + new words, d_text]`.
    fn table(&self) -> Tensor<B, 2> {
        let table = self.embedding.weight.val();
        match &self.new_tokens {
            None => table,
            Some(rows) => Tensor::cat(vec![table, rows.val()], 0),
        }
    }

    /// Appends `count` trainable rows (drawn from `N(0, 1)`, as the table's initialisation) for
    /// the ids after the current vocabulary; `count` = 0 returns `self` unchanged.
    pub fn with_new_tokens(mut self, count: usize) -> Self {
        if count == 0 {
            return self;
        }
        let weight = self.embedding.weight.val();
        let [_, d] = weight.dims();
        let fresh = Tensor::random([count, d], Distribution::Normal(0.0, 1.0), &weight.device());
        self.new_tokens = Some(match self.new_tokens.take() {
            None => Param::from_tensor(fresh),
            Some(rows) => Param::from_tensor(Tensor::cat(vec![rows.val(), fresh], 0)),
        });
        self
    }

    /// Folds [`new_tokens`](Self::new_tokens) into the table (for inference): the same
    /// embeddings from one table.
    pub fn merge_new_tokens(mut self) -> Self {
        if self.new_tokens.is_some() {
            self.embedding.weight = Param::from_tensor(self.table());
            self.new_tokens = None;
        }
        self
    }
}

/// Reads precomputed text embeddings `[N, L, C]` (f32) named `name` from a safetensors file.
///
/// # Errors
/// [`ModelError::Io`] if the file cannot be read, [`ModelError::Parse`] if it is not valid
/// safetensors, [`ModelError::MissingTensor`], [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the tensor is not
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
    fn tokenizes_and_pads() {
        let tok = WordTokenizer::new(&["red", "square", "moving", "right"], 5).unwrap();
        assert_eq!(tok.vocab_size(), 6);
        assert_eq!(
            tok.try_encode("Red square, moving RIGHT").unwrap(),
            (vec![2, 3, 4, 5, 0], 4)
        );
        assert_eq!(
            tok.encode("Red square, moving RIGHT"),
            (vec![2, 3, 4, 5, 0], 4)
        );
        assert_eq!(tok.try_encode("red red red red red red").unwrap().1, 5);
        assert_eq!(tok.try_encode("").unwrap(), (vec![0; 5], 0));
        let (ids, lens) = tok
            .try_encode_batch::<Flex>(&["red", "square right"], &Default::default())
            .unwrap();
        assert_eq!(ids.dims(), [2, 5]);
        assert_eq!(lens, vec![1, 2]);
        assert!(matches!(
            WordTokenizer::new::<&str>(&[], 4),
            Err(ModelError::Config(crate::ConfigError::Zero {
                field: "vocab"
            }))
        ));
    }

    #[test]
    fn unknown_words_are_an_error_naming_them_and_the_vocabulary() {
        let tok = WordTokenizer::new(&["red", "square", "moving", "right"], 4).unwrap();
        let err = tok
            .try_encode("Purple square moving sideways, purple")
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::UnknownWords {
                words: vec!["purple".into(), "sideways".into()],
                vocab: tok.vocab().to_vec(),
            }
        );
        assert_eq!(
            err.to_string(),
            "2 word(s) outside the vocabulary: \"purple\", \"sideways\"; \
             known words: red, square, moving, right"
        );
        let batch = tok.try_encode_batch::<Flex>(&["red", "blue square"], &Default::default());
        assert!(
            matches!(batch, Err(ModelError::UnknownWords { ref words, .. }) if words == &["blue"])
        );
    }

    #[test]
    fn lenient_encoding_drops_and_reports_unknown_words() {
        let tok = WordTokenizer::new(&["red", "square", "moving", "right"], 4).unwrap();
        assert_eq!(
            tok.encode_lenient("blue square, blue circle moving right red"),
            Encoded {
                ids: vec![3, 4, 5, 2],
                len: 4,
                dropped: vec!["blue".into(), "circle".into()],
            }
        );
        assert_eq!(tok.encode("blue square"), (vec![3, 0, 0, 0], 1));
        let (ids, lens) = tok.encode_batch::<Flex>(&["red", "blue"], &Default::default());
        assert_eq!(ids.dims(), [2, 4]);
        assert_eq!(lens, vec![1, 0]);
        let none = tok.encode_lenient("red square");
        assert!(none.dropped.is_empty());
        assert_eq!((none.ids, none.len), tok.try_encode("red square").unwrap());
    }
}
