//! Every scheduler config loader on thousands of malformed JSON files (`vidgen_testing::fuzz`):
//! wrong types, unknown enum names, huge, zero and negative numbers, missing and unknown keys,
//! truncation and bit flips. A config that loads is then built into its scheduler for a few step
//! counts. Nothing may panic or abort; bad input is a `SchedulerError`.
//!
//! 2,000 cases per loader by default; `VIDGEN_FUZZ_CASES=100000 cargo test --release -p
//! vidgen-schedulers --test fuzz_configs` is the long run.

use vidgen_schedulers::{
    DdimConfig, DdpmConfig, EdmConfig, EdmEulerConfig, EulerDiscreteConfig, FlowTrainingConfig,
    RectifiedFlowConfig, SchedulerConfig,
};
use vidgen_testing::fuzz;

const SEED: u64 = 0x5eed_cf60;

/// Fuzzes `C::from_json`, then `build` on every config that loads.
fn fuzz_config<C: SchedulerConfig>(
    name: &str,
    build: impl Fn(&C) -> Result<(), vidgen_schedulers::SchedulerError>,
) {
    let valid = C::default().to_json().into_bytes();
    let report = fuzz::run_json(name, fuzz::cases(2000), SEED, &valid, |text| {
        let loaded = C::from_json(text).map_err(|e| e.to_string())?;
        build(&loaded.config).map_err(|e| e.to_string())
    });
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0 && report.accepted > 0, "{report}");
}

const STEPS: [usize; 3] = [1, 7, 50];

#[test]
fn ddpm_config() {
    fuzz_config::<DdpmConfig>("DdpmConfig", |c| {
        STEPS.iter().try_for_each(|&n| c.init(n).map(|_| ()))
    });
}

#[test]
fn ddim_config() {
    fuzz_config::<DdimConfig>("DdimConfig", |c| {
        STEPS.iter().try_for_each(|&n| c.init(n, 0.5).map(|_| ()))
    });
}

#[test]
fn euler_discrete_config() {
    fuzz_config::<EulerDiscreteConfig>("EulerDiscreteConfig", |c| {
        STEPS.iter().try_for_each(|&n| c.init(n).map(|_| ()))
    });
}

#[test]
fn edm_euler_config() {
    fuzz_config::<EdmEulerConfig>("EdmEulerConfig", |c| {
        STEPS.iter().try_for_each(|&n| c.init(n).map(|_| ()))
    });
}

#[test]
fn edm_config() {
    fuzz_config::<EdmConfig>("EdmConfig", |c| c.init().map(|_| ()));
}

#[test]
fn rectified_flow_config() {
    fuzz_config::<RectifiedFlowConfig>("RectifiedFlowConfig", |c| {
        STEPS
            .iter()
            .try_for_each(|&n| c.init(n, Some(0.5)).map(|_| ()))
    });
}

#[test]
fn flow_training_config() {
    fuzz_config::<FlowTrainingConfig>("FlowTrainingConfig", |c| {
        c.transform_ratio(&[1, 4, 5, 8, 8]).map(|_| ())
    });
}
