//! `Mamba2::load_mamba_ssm` on thousands of malformed mamba_ssm state dicts
//! (`vidgen_testing::fuzz`): safetensors header and payload mutations, and format-blind
//! mutations of the `torch.save` pickle (a zip archive). Nothing may panic or abort, and after
//! every failed load the layer is bit-identical.
//!
//! 2,000 cases per format by default; `VIDGEN_FUZZ_CASES=100000` for the long run.

use vidgen_ssm::mamba2::Mamba2Config;
use vidgen_testing::{Flex, Golden, fixture_path, fuzz};

const PREFIX: &str = "backbone.layers.3.mixer.";

fn fuzz_file(ext: &str, mutate: fn(&[u8], u64, u64) -> fuzz::Mutant) {
    let g = Golden::open("ssm_mamba2_g1.safetensors").unwrap();
    let meta = |k: &str| g.meta(k).unwrap().parse::<usize>().unwrap();
    let layer = Mamba2Config::new(meta("d_model"))
        .with_d_state(meta("d_state"))
        .with_d_conv(meta("d_conv"))
        .with_expand(meta("expand"))
        .with_head_dim(meta("head_dim"))
        .with_n_groups(meta("n_groups"))
        .with_chunk_size(meta("chunk_size"))
        .with_norm_before_gate(g.meta("norm_before_gate") == Some("True"))
        .with_bias(g.meta("bias") == Some("True"))
        .init::<Flex>(&Default::default())
        .unwrap();
    let valid = std::fs::read(fixture_path(&format!("ssm_mamba2_state_dict.{ext}"))).unwrap();
    let report = fuzz::run_module_loader(
        &format!("Mamba2::load_mamba_ssm (.{ext})"),
        fuzz::cases(2000),
        0x55d,
        ext,
        &layer,
        |i, s| mutate(&valid, i, s),
        |layer, path| layer.load_mamba_ssm(path, PREFIX).map(|_| ()),
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

#[test]
fn safetensors_state_dict() {
    fuzz_file("safetensors", fuzz::mutate_safetensors);
}

#[test]
fn pickle_state_dict() {
    fuzz_file("bin", fuzz::mutate_bytes);
}
