//! Golden fixtures: `.safetensors` files written by the Python generators in `golden/`.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors while reading a golden fixture.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GoldenError {
    /// The file could not be read.
    #[error(
        "cannot read fixture {path}: {source} (regenerate with `python golden/generate_all.py`)"
    )]
    Io {
        /// Fixture path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("cannot parse fixture {path}: {source}")]
    Parse {
        /// Fixture path.
        path: PathBuf,
        /// Underlying error.
        source: SafeTensorError,
    },
    /// A tensor has a dtype the loader does not handle.
    #[error("tensor `{name}` in {path} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// Fixture path.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// The dtype found, as safetensors spells it.
        dtype: String,
    },
    /// The fixture has no tensor of that name.
    #[error("fixture {path} has no tensor `{name}`; it has {available:?}")]
    MissingTensor {
        /// Fixture path.
        path: PathBuf,
        /// Requested name.
        name: String,
        /// Names present.
        available: Vec<String>,
    },
    /// The tensor's rank differs from the one requested.
    #[error("tensor `{name}` has shape {shape:?}, not rank {expected}")]
    RankMismatch {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Requested rank.
        expected: usize,
    },
}

/// Path of a fixture file under the workspace's `golden/fixtures/`.
pub fn fixture_path(file_name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../golden/fixtures")
        .join(file_name)
}

/// The tensors and metadata of one golden fixture, held on the host.
#[derive(Debug, Clone)]
pub struct Golden {
    path: PathBuf,
    tensors: BTreeMap<String, TensorData>,
    metadata: HashMap<String, String>,
}

fn le_chunks<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

/// Opens `golden/fixtures/<file_name>` for a test.
///
/// # Panics
/// With the [`GoldenError`] message (path and reason) if the fixture cannot be read.
pub fn golden(file_name: &str) -> Golden {
    Golden::open(file_name).unwrap_or_else(|e| panic!("{e}"))
}

impl Golden {
    /// Opens `golden/fixtures/<file_name>`.
    ///
    /// # Errors
    /// [`GoldenError::Io`], [`GoldenError::Parse`] or [`GoldenError::UnsupportedDtype`].
    pub fn open(file_name: &str) -> Result<Self, GoldenError> {
        Self::from_path(fixture_path(file_name))
    }

    /// Opens a fixture at an explicit path.
    ///
    /// # Errors
    /// As [`Golden::open`].
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, GoldenError> {
        let path = path.into();
        let bytes = std::fs::read(&path).map_err(|source| GoldenError::Io {
            path: path.clone(),
            source,
        })?;
        let parse = |source| GoldenError::Parse {
            path: path.clone(),
            source,
        };
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(parse)?;
        let st = SafeTensors::deserialize(&bytes).map_err(parse)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => TensorData::new(le_chunks(raw, f32::from_le_bytes), shape),
                Dtype::F64 => TensorData::new(le_chunks(raw, f64::from_le_bytes), shape),
                Dtype::I64 => TensorData::new(le_chunks(raw, i64::from_le_bytes), shape),
                Dtype::I32 => TensorData::new(le_chunks(raw, i32::from_le_bytes), shape),
                Dtype::BOOL => TensorData::new(raw.iter().map(|&b| b != 0).collect(), shape),
                other => {
                    return Err(GoldenError::UnsupportedDtype {
                        path,
                        name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            tensors.insert(name, data);
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Self {
            path,
            tensors,
            metadata,
        })
    }

    /// The fixture's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of all tensors in the fixture, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// A metadata value written by the generator (package versions, seed, case parameters).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// A metadata value parsed as a number.
    ///
    /// # Panics
    /// If the key is absent or not a number.
    #[track_caller]
    pub fn meta_f64(&self, key: &str) -> f64 {
        let raw = self
            .meta(key)
            .unwrap_or_else(|| panic!("fixture {} has no metadata `{key}`", self.path.display()));
        raw.parse()
            .unwrap_or_else(|_| panic!("metadata `{key}` = {raw:?} is not a number"))
    }

    /// Host data of a tensor.
    ///
    /// # Errors
    /// [`GoldenError::MissingTensor`].
    pub fn data(&self, name: &str) -> Result<&TensorData, GoldenError> {
        self.tensors
            .get(name)
            .ok_or_else(|| GoldenError::MissingTensor {
                path: self.path.clone(),
                name: name.to_owned(),
                available: self.tensors.keys().cloned().collect(),
            })
    }

    /// A float tensor on `device`, converted to f32.
    ///
    /// # Errors
    /// [`GoldenError::MissingTensor`] or [`GoldenError::RankMismatch`].
    pub fn try_tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D>, GoldenError> {
        let data = self.data(name)?;
        if data.shape.len() != D {
            return Err(GoldenError::RankMismatch {
                name: name.to_owned(),
                shape: data.shape.to_vec(),
                expected: D,
            });
        }
        Ok(Tensor::from_data(data.clone().convert::<f32>(), device))
    }

    /// A float tensor on `device`.
    ///
    /// # Panics
    /// With the [`GoldenError`] message if the tensor is missing or of another rank.
    #[track_caller]
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D> {
        self.try_tensor(name, device)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// An integer tensor on `device`.
    ///
    /// # Panics
    /// If the tensor is missing or of another rank.
    #[track_caller]
    pub fn int_tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D, Int> {
        let data = self.data(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.shape.len(), D, "tensor `{name}` is not rank {D}");
        Tensor::from_data(data.clone().convert::<i64>(), device)
    }

    /// The elements of a tensor as f64 on the host, in row-major order.
    ///
    /// # Panics
    /// If the tensor is missing.
    #[track_caller]
    pub fn values(&self, name: &str) -> Vec<f64> {
        let data = self.data(name).unwrap_or_else(|e| panic!("{e}"));
        data.iter::<f64>().collect()
    }

    /// A tensor wrapped as a module parameter.
    ///
    /// # Panics
    /// As [`Golden::tensor`].
    #[track_caller]
    pub fn param<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Param<Tensor<B, D>> {
        Param::from_tensor(self.tensor(name, device))
    }

    /// Copies a PyTorch `nn.Linear` (`{prefix}.weight` of shape `[out, in]`, optional
    /// `{prefix}.bias`) into a Burn [`Linear`], whose weight is `[in, out]`.
    ///
    /// # Panics
    /// If the weight is missing, or the fixture has a bias and the layer has none (or the reverse).
    #[track_caller]
    pub fn load_linear<B: Backend>(
        &self,
        linear: &mut Linear<B>,
        prefix: &str,
        device: &B::Device,
    ) {
        let weight: Tensor<B, 2> = self.tensor(&format!("{prefix}.weight"), device);
        linear.weight = Param::from_tensor(weight.transpose());
        let bias_name = format!("{prefix}.bias");
        match (self.tensors.contains_key(&bias_name), linear.bias.is_some()) {
            (true, true) => linear.bias = Some(self.param(&bias_name, device)),
            (false, false) => {}
            (has, _) => panic!(
                "`{bias_name}` present in fixture: {has}; layer has bias: {}",
                !has
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flex;

    fn write_fixture(dir: &Path) -> PathBuf {
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b: Vec<u8> = [0.5f32, -0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = vec![
            (
                "lin.weight",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 3], &w).unwrap(),
            ),
            (
                "lin.bias",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &b).unwrap(),
            ),
        ];
        let meta = HashMap::from([("seed".to_owned(), "7".to_owned())]);
        let path = dir.join("golden_selftest.safetensors");
        safetensors::serialize_to_file(views, Some(meta), &path).unwrap();
        path
    }

    #[test]
    fn loads_tensors_metadata_and_linear() {
        let dir = std::env::temp_dir().join(format!("vidgen-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = Golden::from_path(write_fixture(&dir)).unwrap();
        assert_eq!(g.meta_f64("seed"), 7.0);
        assert_eq!(g.names(), vec!["lin.bias", "lin.weight"]);
        let device = Default::default();
        let mut lin = burn::nn::LinearConfig::new(3, 2).init::<Flex>(&device);
        g.load_linear(&mut lin, "lin", &device);
        let y = lin.forward(Tensor::<Flex, 2>::from_floats([[1.0, 0.0, -1.0]], &device));
        // torch: x @ W.T + b = [1 - 3, 4 - 6] + [0.5, -0.5]
        crate::assert_close(
            y,
            Tensor::from_floats([[-1.5, -2.5]], &device),
            crate::Tolerance::SINGLE_OP,
        );
        assert!(matches!(
            g.try_tensor::<Flex, 1>("missing", &device),
            Err(GoldenError::MissingTensor { .. })
        ));
        assert!(matches!(
            g.try_tensor::<Flex, 1>("lin.weight", &device),
            Err(GoldenError::RankMismatch { expected: 1, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_an_io_error() {
        assert!(matches!(
            Golden::open("no_such_fixture.safetensors"),
            Err(GoldenError::Io { .. })
        ));
    }
}
