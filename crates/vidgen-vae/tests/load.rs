//! `vidgen_vae::load` on diffusers-format safetensors: the golden state dict loads (and equals the
//! file, linear weights transposed), deprecated attention names load, and every error case —
//! missing key, extra key, wrong shape, wrong dtype, unreadable or invalid file — returns a typed
//! error naming the key and leaves the module's parameters exactly as they were.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;
use std::path::PathBuf;
use vidgen_testing::{Golden, backend_tests, fixture_path};
use vidgen_vae::VaeError;
use vidgen_vae::kl::{AutoencoderKl, AutoencoderKlConfig};
use vidgen_vae::load::{AUTOENCODER_KL_KEY_MAP, load_autoencoder_kl, to_file_key, to_module_key};

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
    let path = std::env::temp_dir().join(format!(
        "vidgen_vae_load_{}_{tag}_{:?}.safetensors",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
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
    let mut vae = tiny_vae::<B>(device);
    let before = params(&vae);
    let path = write_safetensors(tag, tensors);
    let err = load_autoencoder_kl(&mut vae, &path).expect_err("load must fail");
    std::fs::remove_file(&path).ok();
    assert!(before == params(&vae), "{tag}: the module changed on error");
    err
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
        matches!(&err, VaeError::MissingKeys { keys, .. } if keys == &[gone.to_string()]),
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
        matches!(&err, VaeError::UnexpectedKeys { keys, .. } if keys == &want),
        "{err}"
    );
}

fn wrong_shape_is_named<B: Backend>(device: &B::Device) {
    let key = "decoder.mid_block.attentions.0.to_q.weight";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    *t = f32_raw(key, vec![16, 8], &[0.5; 128]);
    let err = fails_unchanged::<B>("shape", &tensors, device);
    let want = VaeError::TensorShapeMismatch {
        key: key.into(),
        expected: vec![16, 16],
        found: vec![16, 8],
    };
    assert_eq!(err, want, "{err}");
    // Linear weights are compared in the file's [out, in] layout, so a transposed file is caught.
    let key = "encoder.conv_out.weight";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    t.shape = vec![8, 16, 1, 9];
    let err = fails_unchanged::<B>("shape4", &tensors, device);
    assert!(
        matches!(&err, VaeError::TensorShapeMismatch { key: k, expected, .. } if k == key && expected == &[8, 16, 3, 3]),
        "{err}"
    );
}

fn wrong_dtype_is_named<B: Backend>(device: &B::Device) {
    let key = "encoder.conv_in.bias";
    let mut tensors = golden_raw();
    let t = tensors.iter_mut().find(|t| t.name == key).unwrap();
    t.dtype = "F16";
    t.bytes = vec![0; 2 * 8];
    let err = fails_unchanged::<B>("dtype", &tensors, device);
    assert!(
        matches!(&err, VaeError::DtypeMismatch { key: k, found: burn::tensor::DType::F16, .. } if k == key),
        "{err}"
    );
}

fn bad_files_are_typed<B: Backend>(device: &B::Device) {
    let mut vae = tiny_vae::<B>(device);
    let before = params(&vae);
    let err = load_autoencoder_kl(&mut vae, "/nonexistent/vae.safetensors").unwrap_err();
    assert!(
        matches!(
            err,
            VaeError::Io {
                kind: std::io::ErrorKind::NotFound,
                ..
            }
        ),
        "{err}"
    );
    let path = write_bytes(
        "garbage",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    );
    let err = load_autoencoder_kl(&mut vae, &path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(matches!(err, VaeError::Parse { .. }), "{err}");
    assert!(before == params(&vae));
}

backend_tests!(
    golden_state_dict_loads,
    deprecated_attention_names_load,
    missing_key_is_named,
    extra_key_is_named,
    wrong_shape_is_named,
    wrong_dtype_is_named,
    bad_files_are_typed,
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
