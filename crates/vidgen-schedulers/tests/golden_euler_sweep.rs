//! `EulerDiscreteScheduler` schedule tables against diffusers 0.42.1
//! (`golden/gen_schedulers_euler_sweep.py`): every beta schedule (linear, scaled_linear,
//! squaredcos_cap_v2) × timestep spacing (linspace, leading with steps_offset 1, trailing) ×
//! `use_karras_sigmas` × steps ∈ {1, 4, 50}, each loaded from diffusers' own `to_json_string()`.
//! Sigmas and timesteps are compared element by element with diffusers' `set_timesteps` run on a
//! float64 ᾱ table and with stock diffusers (float32 ᾱ); ᾱ itself per beta schedule.

use std::collections::BTreeMap;

use burn::tensor::TensorData;
use vidgen_schedulers::betas::{alphas_cumprod, betas};
use vidgen_schedulers::edm::{EulerDiscreteConfig, EulerDiscreteScheduler};
use vidgen_schedulers::{ConfigEnum, SchedulerConfig};
use vidgen_testing::{Golden, REPORT_ENV, Tolerance, compare};

/// Schedule tables: ours in f64, diffusers' `set_timesteps` on a float64 ᾱ table stored as f32;
/// one f32 rounding plus `sqrt`/`ln`/`powf`. The absolute floor only matters for timesteps
/// that are 0 on one side and ~1e-15 (a float64 `ln` round-off in `_sigma_to_t`) on the other.
const TABLE: Tolerance = Tolerance::new("TABLE", 1e-7, 1e-5);
/// Stock diffusers' tables: it builds betas and ᾱ in f32, so `1 − ᾱ` near t = 0 loses ~4 digits
/// and the Karras `σ → t` inversion inherits that error in `ln σ`. Same values as
/// `golden_edm.rs`'s `DIFFUSERS_F32_BETAS`; the f64-ᾱ rerun of the same diffusers code is held
/// to [`TABLE`], which is what proves the schedule logic. The generator measured, stock vs f64
/// rerun over this sweep: σ rel ≤ 2.7e-4, abs ≤ 0.13 (at σ_max ≈ 2·10⁴ of squaredcos_cap_v2);
/// timesteps abs ≤ 3.7e-2 (t ≈ 508 of squaredcos_cap_v2 linspace Karras 50 steps, where f32's
/// error in σ_max shifts the whole Karras ramp and `ln σ` is flat in t: 36% of this allowance
/// there, 2e-3 + 2e-4·508 ≈ 0.10).
const DIFFUSERS_F32_BETAS: Tolerance = Tolerance::new("DIFFUSERS_F32_BETAS", 2e-3, 2e-4);
/// ᾱ tables, as in `golden_ddpm.rs`: diffusers' f32 cumulative product vs ours in f64 (≤ ~1.2e-6
/// relative wherever ᾱ > 5e-6); the 1e-9 absolute floor covers only squaredcos_cap_v2's
/// near-zero tail (last ᾱ ≈ 2.4e-9), where f32's accumulated error reaches 1.3e-5 relative
/// (~3e-14 absolute).
const AC_TABLE: Tolerance = Tolerance::new("AC_TABLE", 1e-9, 1e-5);

const SCHEDULES: [&str; 3] = ["linear", "scaled_linear", "squaredcos_cap_v2"];
const SPACINGS: [&str; 3] = ["linspace", "leading", "trailing"];
const STEPS: [usize; 3] = [1, 4, 50];

fn golden() -> Golden {
    Golden::open("sched_euler_sweep.safetensors").unwrap_or_else(|e| panic!("{e}"))
}

fn host(values: &[f64]) -> TensorData {
    TensorData::new(values.to_vec(), [values.len()])
}

/// Every comparison of the sweep; failures are collected so that one run names all bad cases.
#[derive(Default)]
struct Sweep {
    failures: Vec<String>,
    /// Per (table, tolerance): the worst of each measure and the case where it occurs.
    worst: BTreeMap<(String, &'static str), Worst>,
}

/// Max abs error, max rel error, and the largest fraction of the tolerance's allowance
/// `abs + rel·|expected|` used by one element, each with its case.
#[derive(Default)]
struct Worst {
    abs: (f64, String),
    rel: (f64, String),
    used: (f64, String),
}

/// The largest `|a − e| / (abs + rel·|e|)`: ≤ 1 means the comparison passed.
fn allowance_used(actual: &TensorData, expected: &TensorData, tol: Tolerance) -> f64 {
    let a = actual.clone().convert::<f64>().to_vec::<f64>().unwrap();
    let e = expected.clone().convert::<f64>().to_vec::<f64>().unwrap();
    a.iter()
        .zip(&e)
        .map(|(a, e)| (a - e).abs() / (tol.abs + tol.rel * e.abs()))
        .fold(0.0, f64::max)
}

fn raise(slot: &mut (f64, String), value: f64, case: &str) {
    if value >= slot.0 {
        *slot = (value, case.to_owned());
    }
}

impl Sweep {
    fn check(
        &mut self,
        case: &str,
        what: &str,
        actual: &[f64],
        expected: &TensorData,
        tol: Tolerance,
    ) {
        let actual = host(actual);
        if actual.shape != expected.shape {
            self.failures.push(format!(
                "{case}.{what}: shape {:?}, diffusers has shape {:?}",
                actual.shape, expected.shape
            ));
            return;
        }
        let r = compare(&actual, expected, tol);
        if !r.passed() {
            self.failures
                .push(format!("{case}.{what} under {}: {r}", tol.name));
        }
        let used = allowance_used(&actual, expected, tol);
        let w = self.worst.entry((what.to_owned(), tol.name)).or_default();
        raise(&mut w.abs, r.max_abs, case);
        raise(&mut w.rel, r.max_rel, case);
        raise(&mut w.used, used, case);
    }

    fn finish(self, cases: usize) {
        if std::env::var_os(REPORT_ENV).is_some() {
            for ((what, tol), w) in &self.worst {
                eprintln!(
                    "[{REPORT_ENV}] {what} under {tol} over {cases} cases: max abs {:e} ({}), \
                     max rel {:e} ({}), allowance used {:.3} ({})",
                    w.abs.0, w.abs.1, w.rel.0, w.rel.1, w.used.0, w.used.1
                );
            }
        }
        assert!(
            self.failures.is_empty(),
            "{} comparisons failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// The case keys the generator writes, in its order.
fn grid() -> Vec<String> {
    let mut keys = Vec::new();
    for schedule in SCHEDULES {
        for spacing in SPACINGS {
            for karras in ["plain", "karras"] {
                for steps in STEPS {
                    keys.push(format!("{schedule}.{spacing}.{karras}.{steps}"));
                }
            }
        }
    }
    keys
}

/// diffusers' JSON for a case, loaded strictly, checked against the case key.
fn case_config(g: &Golden, key: &str) -> EulerDiscreteConfig {
    let text = g.meta(&format!("{key}.config")).expect("case config");
    let c = EulerDiscreteConfig::from_json(text)
        .and_then(|l| l.strict())
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    let parts: Vec<&str> = key.split('.').collect();
    assert_eq!(c.beta_schedule.name(), parts[0], "{key}");
    assert_eq!(c.timestep_spacing.name(), parts[1], "{key}");
    assert_eq!(c.use_karras_sigmas, parts[2] == "karras", "{key}");
    assert_eq!(c.steps_offset, usize::from(parts[1] == "leading"), "{key}");
    assert_eq!(c.num_train_timesteps, 1000, "{key}");
    c
}

#[test]
fn fixture_covers_the_whole_grid() {
    let g = golden();
    let cases: Vec<String> = serde_json::from_str(g.meta("cases").unwrap()).unwrap();
    assert_eq!(cases, grid());
    assert_eq!(cases.len(), 54);
}

#[test]
fn sigmas_and_timesteps_match_diffusers() {
    let g = golden();
    let cases = grid();
    let mut sweep = Sweep::default();
    for key in &cases {
        let steps = g.meta_f64(&format!("{key}.steps")) as usize;
        assert_eq!(key.rsplit('.').next(), Some(steps.to_string().as_str()));
        let s: EulerDiscreteScheduler = case_config(&g, key)
            .init(steps)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(s.sigmas().len(), steps + 1, "{key}");
        assert_eq!(s.timesteps().len(), steps, "{key}");
        let t = |name: &str| g.data(&format!("{key}.{name}")).unwrap();
        sweep.check(key, "sigmas", s.sigmas(), t("sigmas64"), TABLE);
        sweep.check(key, "timesteps", s.timesteps(), t("timesteps64"), TABLE);
        sweep.check(key, "sigmas", s.sigmas(), t("sigmas"), DIFFUSERS_F32_BETAS);
        sweep.check(
            key,
            "timesteps",
            s.timesteps(),
            t("timesteps"),
            DIFFUSERS_F32_BETAS,
        );
    }
    sweep.finish(cases.len());
}

#[test]
fn alphas_cumprod_match_diffusers() {
    let g = golden();
    let mut sweep = Sweep::default();
    for schedule in SCHEDULES {
        let c = case_config(&g, &format!("{schedule}.linspace.plain.1"));
        let b = betas(
            c.beta_schedule,
            c.num_train_timesteps,
            c.beta_start,
            c.beta_end,
            c.trained_betas.as_deref(),
        )
        .unwrap();
        let ours = alphas_cumprod(&b);
        assert_eq!(c.alphas_cumprod().unwrap(), ours, "{schedule}");
        let expected = g.data(&format!("ac.{schedule}")).unwrap();
        sweep.check(schedule, "alphas_cumprod", &ours, expected, AC_TABLE);
    }
    sweep.finish(SCHEDULES.len());
}
