//! `vidgen_nn::checkpoint` on a tiny module from in-memory snapshots: key maps match whole
//! components; a prefix selects one layer of a larger state dict (others ignored, unexpected keys
//! under it rejected); F64/F16/BF16 tensors are cast to the parameters' dtype; an integer tensor
//! for a float parameter is rejected by name; every failed load leaves the module unchanged.

use burn::module::{Module, ParamId};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use burn_store::{ModuleSnapshot, TensorSnapshot};
use vidgen_nn::checkpoint::{CheckpointError, load_pytorch_snapshots, to_file_key, to_module_key};
use vidgen_testing::backend_tests;

#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    proj: Linear<B>,
    norm: LayerNorm<B>,
}

fn tiny<B: Backend>(device: &B::Device) -> Tiny<B> {
    Tiny {
        proj: LinearConfig::new(3, 2).init(device),
        norm: LayerNormConfig::new(2).init(device),
    }
}

/// A PyTorch-layout snapshot `key` with `values` in `dtype`.
fn snap(key: &str, shape: Vec<usize>, values: &[f32], dtype: DType) -> TensorSnapshot {
    let data = TensorData::new(values.to_vec(), shape).convert_dtype(dtype);
    TensorSnapshot::from_data(
        data,
        key.split('.').map(str::to_string).collect(),
        vec![],
        ParamId::new(),
    )
}

const W: [f32; 6] = [0.5, -1.0, 0.25, 2.0, 0.125, -0.75]; // [out 2, in 3]

/// The tiny module's tensors as a PyTorch state dict under `prefix`, in `dtype`.
fn state_dict(prefix: &str, dtype: DType) -> Vec<TensorSnapshot> {
    vec![
        snap(&format!("{prefix}proj.weight"), vec![2, 3], &W, dtype),
        snap(&format!("{prefix}proj.bias"), vec![2], &[1.0, -2.0], dtype),
        snap(&format!("{prefix}norm.weight"), vec![2], &[1.5, 0.5], dtype),
        snap(&format!("{prefix}norm.bias"), vec![2], &[0.0, 0.25], dtype),
    ]
}

fn params<B: Backend>(m: &Tiny<B>) -> Vec<(String, Vec<f32>)> {
    m.collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

/// Every float dtype loads (values exactly representable in all of them), cast to f32, with the
/// linear weight transposed and the norm weight in gamma; other layers' tensors are ignored.
fn float_dtypes_load_under_a_prefix<B: Backend>(device: &B::Device) {
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let mut file = state_dict("model.layers.1.", dtype);
        file.push(snap(
            "model.layers.0.proj.bias",
            vec![2],
            &[9.0, 9.0],
            dtype,
        ));
        file.push(snap("model.embed.weight", vec![1], &[9.0], DType::I32));
        let mut m = tiny::<B>(device);
        let n = load_pytorch_snapshots(&mut m, "mem", file, &[], "model.layers.1")
            .unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        assert_eq!(n, 4);
        let w = m.proj.weight.val();
        assert_eq!(w.dtype(), DType::F32);
        let want = TensorData::new(W.to_vec(), [2, 3]);
        assert_eq!(w.transpose().into_data(), want, "{dtype:?}");
        let gamma = m.norm.gamma.val().into_data();
        assert_eq!(gamma, TensorData::new(vec![1.5f32, 0.5], [2]), "{dtype:?}");
    }
}

fn errors_leave_the_module_unchanged<B: Backend>(device: &B::Device) {
    let mut m = tiny::<B>(device);
    let before = params(&m);
    // An integer tensor for a float parameter.
    let mut file = state_dict("", DType::F32);
    file[1] = snap("proj.bias", vec![2], &[1.0, 2.0], DType::I64);
    let err = load_pytorch_snapshots(&mut m, "mem", file, &[], "").unwrap_err();
    let want = CheckpointError::UnsupportedDtype {
        path: "mem".into(),
        key: "proj.bias".into(),
        expected: DType::F32,
        found: DType::I64,
    };
    assert_eq!(err, want, "{err}");
    assert!(before == params(&m));
    // An extra tensor under the prefix.
    let mut file = state_dict("a.", DType::F32);
    file.push(snap("a.extra", vec![1], &[0.0], DType::F32));
    let err = load_pytorch_snapshots(&mut m, "mem", file, &[], "a.").unwrap_err();
    let want = CheckpointError::UnexpectedKeys {
        path: "mem".into(),
        keys: vec!["a.extra".into()],
    };
    assert_eq!(err, want, "{err}");
    assert!(before == params(&m));
    // A wrong shape, named in the file's layout.
    let mut file = state_dict("", DType::BF16);
    file[0] = snap("proj.weight", vec![3, 2], &W, DType::BF16);
    let err = load_pytorch_snapshots(&mut m, "mem", file, &[], "").unwrap_err();
    assert!(
        matches!(&err, CheckpointError::TensorShapeMismatch { key, expected, found, .. } if key == "proj.weight" && expected == &[2, 3] && found == &[3, 2]),
        "{err}"
    );
    assert!(before == params(&m));
}

backend_tests!(
    float_dtypes_load_under_a_prefix,
    errors_leave_the_module_unchanged
);

#[test]
fn key_maps_match_whole_components() {
    let map: &[(&str, &str)] = &[(".A_log.", ".a_log."), (".D.", ".d.")];
    assert_eq!(to_module_key("A_log", map), "a_log");
    assert_eq!(to_module_key("D", map), "d");
    assert_eq!(to_module_key("layers.D.x", map), "layers.d.x");
    assert_eq!(to_module_key("Dt_bias", map), "Dt_bias");
    assert_eq!(to_file_key("d", map), "D");
    assert_eq!(to_file_key("dt_bias", map), "dt_bias");
    assert_eq!(to_file_key("conv1d.weight", map), "conv1d.weight");
    let vae: &[(&str, &str)] = &[(".to_out.0.", ".to_out.")];
    assert_eq!(to_module_key("to_out.0.weight", vae), "to_out.weight");
    assert_eq!(to_file_key("a.to_out.bias", vae), "a.to_out.0.bias");
}
