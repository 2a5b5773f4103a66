//! `vidgen_vae::load` on diffusers-format safetensors: the golden state dict loads (and equals the
//! file, linear weights transposed), deprecated attention names load, the same tensors stored as
//! f16 and bf16 load and decode like the f32 file within half-precision error, a checkpoint split
//! into shards (with a hub index) loads, and every error case — missing key, extra key, wrong
//! shape, integer dtype, unreadable or invalid file, key in two shards, missing shard — returns a
//! typed error naming the key or file and leaves the module's parameters exactly as they were.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::ModuleSnapshot;
use std::path::PathBuf;
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, fixture_path};
use vidgen_vae::VaeError;
use vidgen_vae::kl::{AutoencoderKl, AutoencoderKlConfig};
use vidgen_vae::load::{
    AUTOENCODER_KL_KEY_MAP, CheckpointError, load_autoencoder_kl, load_pytorch_safetensors_files,
    read_safetensors_index, to_file_key, to_module_key,
};

const WEIGHTS: &str = "vae_kl_a_weights.safetensors";

/// One tensor to write: name, safetensors dtype, shape, raw little-endian bytes.
struct Raw {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_raw(name: &str, shape: Vec<usize>, values: &[f32]) -> Raw {
    Raw {
        name: name.into(),
        dtype: "F32",
        shape,
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// The golden state dict as raw tensors, in the file's order (sorted).
fn golden_raw() -> Vec<Raw> {
    let g = Golden::open(WEIGHTS).unwrap_or_else(|e| panic!("{e}"));
    g.names()
        .into_iter()
        .map(|name| {
            let data = g.data(name).unwrap();
            f32_raw(name, data.shape.to_vec(), &data.to_vec::<f32>().unwrap())
        })
        .collect()
}

/// Writes a safetensors file (8-byte LE header length, JSON header, data) to a fresh temp path.
fn write_safetensors(tag: &str, tensors: &[Raw]) -> PathBuf {
    let mut entries = Vec::new();
    let mut offset = 0;
    for t in tensors {
        let end = offset + t.bytes.len();
        entries.push(format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{offset},{end}]}}",
            t.name, t.dtype, t.shape
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    tensors
        .iter()
        .for_each(|t| bytes.extend_from_slice(&t.bytes));
    write_bytes(tag, &bytes)
}

fn write_bytes(tag: &str, bytes: &[u8]) -> PathBuf {
    let path = temp_path(tag, "safetensors");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A fresh temp path per process, thread and tag.
fn temp_path(tag: &str, ext: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(['(', ')'], "");
    std::env::temp_dir().join(format!(
        "vidgen_vae_load_{}_{thread}_{tag}.{ext}",
        std::process::id()
    ))
}

fn tiny_vae<B: Backend>(device: &B::Device) -> AutoencoderKl<B> {
    let g = Golden::open("vae_kl_a_io.safetensors").unwrap();
    assert_eq!(g.meta("block_out_channels"), Some("8,16"));
    AutoencoderKlConfig::new()
        .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
        .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2])
        .with_block_out_channels(vec![8, 16])
        .with_norm_num_groups(4)
        .init::<B>(device)
        .unwrap()
}

/// Every parameter's path and values.
fn params<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<f32>)> {
    module
        .collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

/// Loading `tensors` fails; the module is unchanged. Returns the error.
fn fails_unchanged<B: Backend>(tag: &str, tensors: &[Raw], device: &B::Device) -> VaeError {
    fails_unchanged_at::<B>(tag, tensors, device).1
}

/// As [`fails_unchanged`], also returning the (removed) file's path.
fn fails_unchanged_at<B: Backend>(
    tag: &str,
    tensors: &[Raw],
    device: &B::Device,
) -> (PathBuf, VaeError) {
    let mut vae = tiny_vae::<B>(device);
    let before = params(&vae);
    let path = write_safetensors(tag, tensors);
    let err = load_autoencoder_kl(&mut vae, &path).expect_err("load must fail");
    std::fs::remove_file(&path).ok();
    assert!(before == params(&vae), "{tag}: the module changed on error");
    (path, err)
}

fn golden_state_dict_loads<B: Backend>(device: &B::Device) {
    let mut vae = tiny_vae::<B>(device);
    let n = load_autoencoder_kl(&mut vae, fixture_path(WEIGHTS)).unwrap_or_else(|e| panic!("{e}"));
    let raw = golden_raw();
    assert_eq!(n, raw.len());
    let g = Golden::open(WEIGHTS).unwrap();
    // A conv weight is copied as is; a linear weight is transposed; a norm weight lands in gamma.
    let conv = vae.encoder.conv_in.weight.val().into_data();
    assert_eq!(conv, g.data("encoder.conv_in.weight").unwrap().clone());
    let attn = &vae.decoder.mid_block.attentions[0];
    let to_out = attn.to_out.weight.val().transpose().into_data();
    assert_eq!(
        to_out,
        g.data("decoder.mid_block.attentions.0.to_out.0.weight")
            .unwrap()
            .clone()
    );
    let gamma = attn.group_norm.gamma.as_ref().unwrap().val().into_data();
    assert_eq!(
        gamma,
        g.data("decoder.mid_block.attentions.0.group_norm.weight")
            .unwrap()
            .clone()
    );
}

/// A checkpoint with diffusers' deprecated attention names loads to the same parameters.
fn deprecated_attention_names_load<B: Backend>(device: &B::Device) {
    let renamed: Vec<Raw> = golden_raw()
        .into_iter()
        .map(|mut t| {
            for (new, old) in [
                ("to_q", "query"),
                ("to_k", "key"),
                ("to_v", "value"),
                ("to_out.0", "proj_attn"),
            ] {
                t.name = t.name.replace(&format!(".{new}."), &format!(".{old}."));
            }
            t
        })
        .collect();
    assert!(
        renamed
            .iter()
            .any(|t| t.name.ends_with("attentions.0.proj_attn.weight"))
    );
    let path = write_safetensors("deprecated", &renamed);
    let mut old = tiny_vae::<B>(device);
    load_autoencoder_kl(&mut old, &path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&path).ok();
    let mut new = tiny_vae::<B>(device);
    load_autoencoder_kl(&mut new, fixture_path(WEIGHTS)).unwrap();
    assert!(params(&old) == params(&new));
}

fn missing_key_is_named<B: Backend>(device: &B::Device) {
    let gone = "decoder.mid_block.attentions.0.to_out.0.weight";
    let tensors: Vec<Raw> = golden_raw()
        .into_iter()
        .filter(|t| t.name != gone)
        .collect();
    let err = fails_unchanged::<B>("missing", &tensors, device);
    assert!(
        matches!(&err, VaeError::Checkpoint(CheckpointError::MissingKeys { keys, .. }) if keys == &[gone.to_string()]),
        "{err}"
    );
    assert!(err.to_string().contains(gone));
}

fn extra_key_is_named<B: Backend>(device: &B::Device) {
    let mut tensors = golden_raw();
    tensors.push(f32_raw(
        "encoder.down_blocks.0.extra.weight",
        vec![2],
        &[1.0, 2.0],
    ));
    let err = fails_unchanged::<B>("extra", &tensors, device);
    let want = vec!["encoder.down_blocks.0.extra.weight".to_string()];
    assert!(
        matches!(&err, VaeError::Checkpoint(CheckpointError::UnexpectedKeys { keys, .. }) if keys == &want),
        "{err}"
    );
}

fn wrong_shape_is_named<B: Backend>(device: &B::Device) {
    let key = "decoder.mid_block.attentions.0.to_q.weight";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    *t = f32_raw(key, vec![16, 8], &[0.5; 128]);
    let (path, err) = fails_unchanged_at::<B>("shape", &tensors, device);
    let want = VaeError::Checkpoint(CheckpointError::TensorShapeMismatch {
        path: path.display().to_string(),
        key: key.into(),
        expected: vec![16, 16],
        found: vec![16, 8],
    });
    assert_eq!(err, want, "{err}");
    // Linear weights are compared in the file's [out, in] layout, so a transposed file is caught.
    let key = "encoder.conv_out.weight";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    t.shape = vec![8, 16, 1, 9];
    let err = fails_unchanged::<B>("shape4", &tensors, device);
    assert!(
        matches!(&err, VaeError::Checkpoint(CheckpointError::TensorShapeMismatch { key: k, expected, .. }) if k == key && expected == &[8, 16, 3, 3]),
        "{err}"
    );
}

/// An integer tensor where a float parameter is cannot be cast: typed error naming the key.
fn int_dtype_is_named<B: Backend>(device: &B::Device) {
    let key = "encoder.conv_in.bias";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    t.dtype = "I32";
    t.bytes = (0..8i32).flat_map(|v| v.to_le_bytes()).collect();
    let err = fails_unchanged::<B>("dtype", &tensors, device);
    assert!(
        matches!(&err, VaeError::Checkpoint(CheckpointError::UnsupportedDtype { key: k, found: DType::I32, expected: DType::F32, .. }) if k == key),
        "{err}"
    );
    assert!(err.to_string().contains(key), "{err}");
}

fn bad_files_are_typed<B: Backend>(device: &B::Device) {
    let mut vae = tiny_vae::<B>(device);
    let before = params(&vae);
    let err = load_autoencoder_kl(&mut vae, "/nonexistent/vae.safetensors").unwrap_err();
    assert!(
        matches!(
            err,
            VaeError::Checkpoint(CheckpointError::Io {
                kind: std::io::ErrorKind::NotFound,
                ..
            })
        ),
        "{err}"
    );
    let path = write_bytes(
        "garbage",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    );
    let err = load_autoencoder_kl(&mut vae, &path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(
        matches!(err, VaeError::Checkpoint(CheckpointError::Parse { .. })),
        "{err}"
    );
    assert!(before == params(&vae));
}

/// Decoding the fixture's latent with half-precision copies of the weights, against the f32
/// weights. bf16 keeps 8 significant bits (7 stored), so rounding a weight to nearest changes it
/// by at most a relative `u = 2^-8 ≈ 3.9e-3` (2^-9 on average); f16 keeps 11, `u = 2^-11 ≈
/// 4.9e-4`. Each conv output is a sum of rounded products, so its relative error is about `u`
/// (less where independent roundings cancel); over the decoder's ~15 convs, norms and attention
/// the errors add up like a random walk while GroupNorm renormalises each level, leaving a few
/// `u` on outputs of O(1). Measured on flex: max abs 1.07e-2 (2.7 u) for bf16, 1.19e-3 (2.4 u)
/// for f16, ratio 9 ≈ the ratio of the `u`s. Bound: `8 u` absolute.
const BF16_WEIGHTS: Tolerance = Tolerance::new("BF16_WEIGHTS", 8.0 / 256.0, 0.0);
/// See [`BF16_WEIGHTS`]: `8 u` with `u = 2^-11`.
const F16_WEIGHTS: Tolerance = Tolerance::new("F16_WEIGHTS", 8.0 / 2048.0, 0.0);

/// The golden state dict stored as `dtype` (F16 or BF16), rounded to nearest.
fn golden_raw_as(dtype: DType) -> Vec<Raw> {
    let name = match dtype {
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        other => panic!("no safetensors name for {other:?} here"),
    };
    golden_raw()
        .into_iter()
        .map(|t| {
            let values: Vec<f32> = t
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let half = TensorData::new(values, t.shape.clone()).convert_dtype(dtype);
            Raw {
                name: t.name,
                dtype: name,
                shape: t.shape,
                bytes: half.as_bytes().to_vec(),
            }
        })
        .collect()
}

/// F16 and BF16 copies of the f32 state dict load into the f32 module (cast on load) and decode
/// the fixture's latent like the f32 weights, within half-precision rounding.
fn half_precision_files_decode_like_f32<B: Backend>(device: &B::Device) {
    let g = Golden::open("vae_kl_a_io.safetensors").unwrap();
    let mut full = tiny_vae::<B>(device);
    load_autoencoder_kl(&mut full, fixture_path(WEIGHTS)).unwrap();
    let z: Tensor<B, 4> = g.tensor("sample", device);
    let reference = full.decode(z.clone());
    for (dtype, tol) in [(DType::F16, F16_WEIGHTS), (DType::BF16, BF16_WEIGHTS)] {
        let path = write_safetensors(&format!("{dtype:?}"), &golden_raw_as(dtype));
        let mut vae = tiny_vae::<B>(device);
        let n = load_autoencoder_kl(&mut vae, &path).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        std::fs::remove_file(&path).ok();
        assert_eq!(n, golden_raw().len());
        // Parameters keep the module's dtype.
        let conv = vae.encoder.conv_in.weight.val();
        assert_eq!(conv.dtype(), full.encoder.conv_in.weight.val().dtype());
        assert_close(vae.decode(z.clone()), reference.clone(), tol);
    }
}

/// Splits the golden state dict into two shards (alternate tensors) and writes a hub index.
fn write_shards(tag: &str) -> (PathBuf, Vec<PathBuf>) {
    let dir = temp_path(tag, "d");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, t) in golden_raw().into_iter().enumerate() {
        if i % 2 == 0 { a.push(t) } else { b.push(t) }
    }
    let mut map = Vec::new();
    let mut shards = Vec::new();
    for (name, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let tmp = write_safetensors(&format!("{tag}_{name}"), &part);
        let shard = dir.join(name);
        std::fs::rename(&tmp, &shard).unwrap();
        map.extend(part.iter().map(|t| format!("\"{}\": \"{name}\"", t.name)));
        shards.push(shard);
    }
    let index = dir.join("model.safetensors.index.json");
    let json = format!(
        "{{\"metadata\": {{\"total_size\": 0}}, \"weight_map\": {{{}}}}}",
        map.join(", ")
    );
    std::fs::write(&index, json).unwrap();
    (index, shards)
}

/// The shards listed by the index load to the same parameters as the single file.
fn shards_with_index_load<B: Backend>(device: &B::Device) {
    let (index, shards) = write_shards("shards");
    let listed = read_safetensors_index(&index).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, shards);
    let mut sharded = tiny_vae::<B>(device);
    let n = load_pytorch_safetensors_files(&mut sharded, &listed, AUTOENCODER_KL_KEY_MAP)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(index.parent().unwrap()).ok();
    assert_eq!(n, golden_raw().len());
    let mut single = tiny_vae::<B>(device);
    load_autoencoder_kl(&mut single, fixture_path(WEIGHTS)).unwrap();
    assert!(params(&sharded) == params(&single));
}

/// A key in two shards is an error naming both files; the module is unchanged.
fn key_in_two_shards_is_named<B: Backend>(device: &B::Device) {
    let (index, shards) = write_shards("dup");
    let extra = write_safetensors("dup_extra", &golden_raw()[..1]);
    let mut vae = tiny_vae::<B>(device);
    let before = params(&vae);
    let files = [shards[0].as_path(), shards[1].as_path(), extra.as_path()];
    let err = load_pytorch_safetensors_files(&mut vae, &files, AUTOENCODER_KL_KEY_MAP).unwrap_err();
    // One shard alone lacks the other's keys.
    let partial = load_pytorch_safetensors_files(&mut vae, &files[..1], AUTOENCODER_KL_KEY_MAP);
    std::fs::remove_dir_all(index.parent().unwrap()).ok();
    std::fs::remove_file(&extra).ok();
    let want = CheckpointError::DuplicateKey {
        path: shards[0].display().to_string(),
        other_path: extra.display().to_string(),
        key: golden_raw()[0].name.clone(),
    };
    assert_eq!(err, want, "{err}");
    assert!(
        matches!(&partial, Err(CheckpointError::MissingKeys { path, keys }) if path == &files[0].display().to_string() && keys.len() == golden_raw().len() / 2),
        "{partial:?}"
    );
    assert!(before == params(&vae));
}

/// An index naming a shard that does not exist: error naming the index and the shard file.
fn missing_shard_is_named<B: Backend>(_device: &B::Device) {
    let (index, shards) = write_shards("missing");
    std::fs::remove_file(&shards[1]).unwrap();
    let err = read_safetensors_index(&index).unwrap_err();
    std::fs::remove_dir_all(index.parent().unwrap()).ok();
    let want = CheckpointError::MissingShard {
        path: index.display().to_string(),
        shard: shards[1].display().to_string(),
    };
    assert_eq!(err, want, "{err}");
    assert!(err.to_string().contains("model-00002-of-00002.safetensors"));
}

backend_tests!(
    golden_state_dict_loads,
    deprecated_attention_names_load,
    missing_key_is_named,
    extra_key_is_named,
    wrong_shape_is_named,
    int_dtype_is_named,
    bad_files_are_typed,
    half_precision_files_decode_like_f32,
    shards_with_index_load,
    key_in_two_shards_is_named,
    missing_shard_is_named,
);

#[test]
fn key_table_round_trips() {
    let file = "decoder.mid_block.attentions.0.to_out.0.bias";
    let ours = to_module_key(file, AUTOENCODER_KL_KEY_MAP);
    assert_eq!(ours, "decoder.mid_block.attentions.0.to_out.bias");
    assert_eq!(to_file_key(&ours, AUTOENCODER_KL_KEY_MAP), file);
    let old = "encoder.mid_block.attentions.0.query.weight";
    assert_eq!(
        to_module_key(old, AUTOENCODER_KL_KEY_MAP),
        "encoder.mid_block.attentions.0.to_q.weight"
    );
    let plain = "encoder.down_blocks.1.resnets.0.conv_shortcut.weight";
    assert_eq!(to_module_key(plain, AUTOENCODER_KL_KEY_MAP), plain);
}
