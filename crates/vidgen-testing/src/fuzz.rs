//! A deterministic mutation fuzzer for file loaders, on stable Rust.
//!
//! [`mutate_safetensors`] and [`mutate_json`] derive malformed variants of a valid file, case by
//! case from a seed: bit flips, truncation, header length / offset / dtype / shape edits,
//! duplicated, missing and renamed keys, huge dimensions, NaN/∞ payloads (safetensors); wrong
//! value types, unknown enum strings, out-of-range numbers, missing and unknown keys, truncated
//! text (JSON). [`run`] feeds every case to a loader closure, catches panics, and reports what
//! happened; a test asserts that nothing panicked. The same seed always gives the same cases, so
//! a failure is reproduced by its case number.
//!
//! ```
//! use vidgen_testing::fuzz;
//!
//! let valid = br#"{"steps": 4, "mode": "linear"}"#;
//! let report = fuzz::run("toy", 200, 7, |i, seed| fuzz::mutate_json(valid, i, seed), |bytes| {
//!     let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
//!     let _: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
//!     Ok(())
//! });
//! assert_eq!(report.cases, 200);
//! assert!(report.panics.is_empty(), "{report}");
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// SplitMix64: a tiny, well-mixed deterministic generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for case `case` of a run seeded with `seed`.
    pub fn new(seed: u64, case: u64) -> Self {
        let mut rng = Self(seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One malformed input and what was done to the valid one.
#[derive(Clone, Debug)]
pub struct Mutant {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The mutation, for failure messages.
    pub what: String,
}

/// Numbers that break size arithmetic: zero, huge, overflowing, negative.
const NASTY_NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "1",
    "4294967296",
    "1099511627776",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "1e300",
    "-0.5",
];

const DTYPES: [&str; 10] = [
    "F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "X9",
];

/// The header of a safetensors file: (JSON text, data section), if the framing is intact.
fn split_safetensors(valid: &[u8]) -> Option<(String, &[u8])> {
    let len = u64::from_le_bytes(valid.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(valid.get(8..8usize.checked_add(len)?)?).ok()?;
    Some((header.to_string(), &valid[8 + len..]))
}

fn join_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Tensor names in a safetensors header (not `__metadata__`).
fn tensor_names(header: &serde_json::Value) -> Vec<String> {
    header
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| k.as_str() != "__metadata__")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Case `case` of the safetensors mutations of `valid` (a well-formed file), for run `seed`.
///
/// # Panics
/// If `valid` is not a well-formed safetensors file.
pub fn mutate_safetensors(valid: &[u8], case: u64, seed: u64) -> Mutant {
    let (header_text, data) = split_safetensors(valid).expect("a well-formed safetensors file");
    let header: serde_json::Value =
        serde_json::from_str(&header_text).expect("a JSON safetensors header");
    let names = tensor_names(&header);
    let mut rng = Rng::new(seed, case);
    let kind = rng.below(14);
    let name = rng.pick(&names).clone();
    let edit_entry = |rng: &mut Rng, f: &mut dyn FnMut(&mut Rng, &mut serde_json::Value)| {
        let mut h = header.clone();
        f(rng, &mut h[&name]);
        join_safetensors(&h.to_string(), data)
    };
    let (bytes, what) = match kind {
        0 => {
            let mut b = valid.to_vec();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (b, format!("{flips} bit flips"))
        }
        1 => {
            let n = rng.below(valid.len());
            (valid[..n].to_vec(), format!("truncated to {n} bytes"))
        }
        2 => {
            let mut b = valid.to_vec();
            let len: u64 = *rng.pick(&[
                0,
                1,
                7,
                header_text.len() as u64 - 1,
                header_text.len() as u64 + 1,
                valid.len() as u64,
                u64::MAX,
                1 << 40,
            ]);
            b[..8].copy_from_slice(&len.to_le_bytes());
            (b, format!("header length field {len}"))
        }
        3 => {
            let dtype = *rng.pick(&DTYPES);
            let b = edit_entry(&mut rng, &mut |_, e| e["dtype"] = dtype.into());
            (b, format!("{name}: dtype {dtype}"))
        }
        4 => {
            let mut desc = String::new();
            let b = edit_entry(&mut rng, &mut |rng, e| {
                let mut shape: Vec<serde_json::Value> =
                    e["shape"].as_array().cloned().unwrap_or_default();
                match rng.below(5) {
                    0 => shape.push(serde_json::json!(1u64 << 40)),
                    1 if !shape.is_empty() => {
                        let i = rng.below(shape.len());
                        shape[i] = serde_json::json!(0);
                    }
                    2 if !shape.is_empty() => {
                        shape.pop();
                    }
                    3 if !shape.is_empty() => {
                        let i = rng.below(shape.len());
                        shape[i] = serde_json::json!(u64::MAX);
                    }
                    _ => shape.push(serde_json::json!(2)),
                }
                desc = serde_json::Value::Array(shape.clone()).to_string();
                e["shape"] = serde_json::Value::Array(shape);
            });
            (b, format!("{name}: shape {desc}"))
        }
        5 => {
            let mut desc = String::new();
            let total = data.len() as u64;
            let b = edit_entry(&mut rng, &mut |rng, e| {
                let offsets = match rng.below(6) {
                    0 => [total, 0],
                    1 => [0, total + 4],
                    2 => [0, u64::MAX],
                    3 => [u64::MAX - 3, u64::MAX],
                    4 => [0, 0],
                    _ => [4, total],
                };
                desc = format!("{offsets:?}");
                e["data_offsets"] = serde_json::json!(offsets);
            });
            (b, format!("{name}: data_offsets {desc}"))
        }
        6 => {
            // A duplicated key, written into the header text (a JSON map cannot hold one).
            let entry = header[&name].to_string();
            let text = format!("{{\"{name}\":{entry},{}", &header_text[1..]);
            (
                join_safetensors(&text, data),
                format!("{name} duplicated in the header"),
            )
        }
        7 => {
            let mut h = header.clone();
            h.as_object_mut().map(|m| m.remove(&name));
            (
                join_safetensors(&h.to_string(), data),
                format!("{name} removed"),
            )
        }
        8 => {
            let mut h = header.clone();
            if let Some(m) = h.as_object_mut()
                && let Some(v) = m.remove(&name)
            {
                m.insert(format!("{name}.renamed"), v);
            }
            (
                join_safetensors(&h.to_string(), data),
                format!("{name} renamed"),
            )
        }
        9 => {
            // NaN / ∞ payload over one f32/f16/bf16 tensor's bytes.
            let mut b = valid.to_vec();
            let start = 8 + header_text.len();
            let entry = &header[&name];
            let offsets = entry["data_offsets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let (lo, hi) = (
                offsets.first().and_then(|v| v.as_u64()).unwrap_or(0) as usize,
                offsets.get(1).and_then(|v| v.as_u64()).unwrap_or(0) as usize,
            );
            let pattern: &[u8] = match entry["dtype"].as_str() {
                Some("F16") => &[0x00, 0x7e],
                Some("BF16") => &[0xc0, 0x7f],
                _ if rng.below(2) == 0 => &[0x00, 0x00, 0xc0, 0x7f],
                _ => &[0x00, 0x00, 0x80, 0x7f],
            };
            let i = lo + rng.below((hi - lo).max(1) / pattern.len()) * pattern.len();
            if start + i + pattern.len() <= b.len() && hi > lo {
                b[start + i..start + i + pattern.len()].copy_from_slice(pattern);
            }
            (b, format!("{name}: non-finite value at byte {i}"))
        }
        10 => {
            let mut h = header.clone();
            let value = rng
                .pick(&[
                    serde_json::json!(1),
                    serde_json::json!(["a"]),
                    serde_json::json!({"a": 1}),
                    serde_json::json!(null),
                ])
                .clone();
            h["__metadata__"] = serde_json::json!({"format": value.clone(), "x": "y"});
            (
                join_safetensors(&h.to_string(), data),
                format!("__metadata__ with a non-string value {value}"),
            )
        }
        11 => {
            let mut b = valid.to_vec();
            let extra = 1 + rng.below(64);
            b.extend(std::iter::repeat_n(0xab, extra));
            (b, format!("{extra} junk bytes appended"))
        }
        12 => {
            let value: serde_json::Value = match rng.below(4) {
                0 => serde_json::json!("F32"),
                1 => serde_json::json!([1, 2]),
                2 => serde_json::json!(null),
                _ => serde_json::json!({"dtype": "F32", "shape": [2], "data_offsets": "x"}),
            };
            let mut h = header.clone();
            h[&name] = value.clone();
            (
                join_safetensors(&h.to_string(), data),
                format!("{name} entry replaced by {value}"),
            )
        }
        _ => {
            // A new tensor with a huge declared shape and no data.
            let mut h = header.clone();
            let dims = rng
                .pick(&[
                    serde_json::json!([1u64 << 32, 1u64 << 32]),
                    serde_json::json!([1u64 << 62]),
                    serde_json::json!([0]),
                ])
                .clone();
            h["extra.huge"] =
                serde_json::json!({"dtype": "F32", "shape": dims, "data_offsets": [0, 4]});
            (
                join_safetensors(&h.to_string(), data),
                format!("extra tensor of shape {dims}"),
            )
        }
    };
    Mutant { bytes, what }
}

/// Replaces one value at a random path of `v` by something of another type or out of range.
fn mutate_value(rng: &mut Rng, v: &mut serde_json::Value, path: &mut String) {
    use serde_json::Value;
    let descend = rng.below(3) != 0;
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            path.push_str(&format!(".{k}"));
            mutate_value(rng, m.get_mut(&k).expect("key"), path);
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.below(a.len());
            path.push_str(&format!("[{i}]"));
            mutate_value(rng, &mut a[i], path);
        }
        _ => {
            let replacement: Value = match rng.below(9) {
                0 => serde_json::from_str(NASTY_NUMBERS[rng.below(NASTY_NUMBERS.len())])
                    .expect("number"),
                1 => Value::String("not_a_known_variant".into()),
                2 => Value::Bool(true),
                3 => Value::Null,
                4 => serde_json::json!([]),
                5 => serde_json::json!({"unexpected": 1}),
                6 => serde_json::json!([1, 2, 3, 4, 5, 6, 7]),
                7 => Value::String("NaN".into()),
                _ => serde_json::json!(-1),
            };
            path.push_str(&format!(" = {replacement}"));
            *v = replacement;
        }
    }
}

/// Case `case` of the JSON mutations of `valid` (a JSON object), for run `seed`.
pub fn mutate_json(valid: &[u8], case: u64, seed: u64) -> Mutant {
    let mut rng = Rng::new(seed, case);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(valid).ok();
    let kind = if parsed.is_some() { rng.below(6) } else { 0 };
    let (bytes, what) = match (kind, parsed) {
        (1, Some(mut v)) => {
            let mut path = String::from("$");
            mutate_value(&mut rng, &mut v, &mut path);
            (v.to_string().into_bytes(), format!("value {path}"))
        }
        (2, Some(mut v)) => {
            let keys: Vec<String> = v
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let what = if keys.is_empty() {
                "nothing to remove".to_string()
            } else {
                let k = rng.pick(&keys).clone();
                v.as_object_mut().map(|m| m.remove(&k));
                format!("key {k} removed")
            };
            (v.to_string().into_bytes(), what)
        }
        (3, Some(mut v)) => {
            if let Some(m) = v.as_object_mut() {
                m.insert("unknown_key_from_fuzzer".into(), serde_json::json!(1));
            }
            (v.to_string().into_bytes(), "unknown key added".to_string())
        }
        (4, Some(_)) => {
            let n = rng.below(valid.len());
            (valid[..n].to_vec(), format!("truncated to {n} bytes"))
        }
        (5, Some(v)) => {
            let value = rng
                .pick(&[
                    serde_json::json!([]),
                    serde_json::json!("text"),
                    serde_json::json!(3),
                    serde_json::json!(null),
                ])
                .clone();
            let _ = v;
            (
                value.to_string().into_bytes(),
                format!("document replaced by {value}"),
            )
        }
        _ => {
            let mut b = valid.to_vec();
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (b, format!("{flips} bit flips"))
        }
    };
    Mutant { bytes, what }
}

/// Case `case` of format-blind mutations of `valid` (any binary file, e.g. a zip-based torch
/// pickle), for run `seed`: bit flips, truncation, a run of `0x00` / `0xff` bytes, or a block
/// duplicated or removed.
pub fn mutate_bytes(valid: &[u8], case: u64, seed: u64) -> Mutant {
    let mut rng = Rng::new(seed, case);
    let mut b = valid.to_vec();
    let len = b.len().max(1);
    let what = match rng.below(5) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let i = rng.below(len);
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            format!("{flips} bit flips")
        }
        1 => {
            let n = rng.below(len);
            b.truncate(n);
            format!("truncated to {n} bytes")
        }
        2 => {
            let (at, n) = (rng.below(len), 1 + rng.below(64));
            let byte = if rng.below(2) == 0 { 0x00 } else { 0xff };
            for x in b.iter_mut().skip(at).take(n) {
                *x = byte;
            }
            format!("{n} bytes from {at} set to {byte:#04x}")
        }
        3 => {
            let (at, n) = (rng.below(len), 1 + rng.below(256));
            let block: Vec<u8> = b.iter().skip(at).take(n).copied().collect();
            let at2 = rng.below(len);
            b.splice(at2.min(b.len())..at2.min(b.len()), block);
            format!("{n} bytes from {at} duplicated at {at2}")
        }
        _ => {
            let at = rng.below(len).min(b.len());
            let n = (1 + rng.below(256)).min(b.len() - at);
            b.drain(at..at + n);
            format!("{n} bytes removed at {at}")
        }
    };
    Mutant { bytes: b, what }
}

/// A panic in one case.
#[derive(Clone, Debug)]
pub struct PanicCase {
    /// Case number (rerun it with the same seed).
    pub case: u64,
    /// The mutation.
    pub what: String,
    /// The panic message.
    pub message: String,
}

/// What a fuzz run saw.
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    /// Loader name.
    pub name: String,
    /// Cases run.
    pub cases: u64,
    /// Cases the loader accepted.
    pub accepted: u64,
    /// Cases the loader rejected with an error.
    pub rejected: u64,
    /// Cases that panicked.
    pub panics: Vec<PanicCase>,
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} cases, {} accepted, {} rejected, {} panicked",
            self.name,
            self.cases,
            self.accepted,
            self.rejected,
            self.panics.len()
        )?;
        for p in self.panics.iter().take(10) {
            write!(f, "\n  case {} ({}): {}", p.case, p.what, p.message)?;
        }
        Ok(())
    }
}

/// Number of cases per loader: `VIDGEN_FUZZ_CASES` if set (the long run), else `default`.
pub fn cases(default: u64) -> u64 {
    std::env::var("VIDGEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `cases` cases: `mutate(case, seed)` makes each input, `load(bytes)` tries it; panics are
/// caught and recorded (the default panic message is silenced during the run).
pub fn run(
    name: &str,
    cases: u64,
    seed: u64,
    mut mutate: impl FnMut(u64, u64) -> Mutant,
    mut load: impl FnMut(&[u8]) -> Result<(), String>,
) -> FuzzReport {
    let mut report = FuzzReport {
        name: name.to_string(),
        ..Default::default()
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..cases {
        let mutant = mutate(case, seed);
        match catch_unwind(AssertUnwindSafe(|| load(&mutant.bytes))) {
            Ok(Ok(())) => report.accepted += 1,
            Ok(Err(_)) => report.rejected += 1,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                report.panics.push(PanicCase {
                    case,
                    what: mutant.what,
                    message,
                });
            }
        }
        report.cases += 1;
    }
    std::panic::set_hook(hook);
    report
}

/// [`run`] over [`mutate_json`] cases of `valid`, handing `load` the text (a case that is not
/// UTF-8 counts as rejected without calling it): the fuzz loop of a JSON config reader.
pub fn run_json(
    name: &str,
    cases: u64,
    seed: u64,
    valid: &[u8],
    mut load: impl FnMut(&str) -> Result<(), String>,
) -> FuzzReport {
    run(
        name,
        cases,
        seed,
        |i, s| mutate_json(valid, i, s),
        |bytes| load(std::str::from_utf8(bytes).map_err(|e| e.to_string())?),
    )
}

/// Every float parameter of `module`, in visiting order, as raw bytes (for bit-identity checks).
pub fn param_bytes<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    module: &M,
) -> Vec<Vec<u8>> {
    struct Collect(Vec<Vec<u8>>);
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
        ) {
            self.0.push(param.val().into_data().as_bytes().to_vec());
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// Fuzzes a file loader of a module: each case's bytes are written to `dir/<name>.<case>.<ext>`,
/// `load(&mut module, path)` runs on a fresh clone of `module`, and a case that returns `Err`
/// must leave the clone's parameters bit-identical (a failed load changes nothing); a changed
/// module after an error counts as a failure of the case, reported like a panic.
#[allow(clippy::too_many_arguments)]
pub fn run_module_loader<B, M, E>(
    name: &str,
    cases: u64,
    seed: u64,
    ext: &str,
    module: &M,
    mut mutate: impl FnMut(u64, u64) -> Mutant,
    mut load: impl FnMut(&mut M, &std::path::Path) -> Result<(), E>,
) -> FuzzReport
where
    B: burn::tensor::backend::Backend,
    M: burn::module::Module<B> + Clone,
    E: fmt::Display,
{
    let before = param_bytes::<B, M>(module);
    let path =
        std::env::temp_dir().join(format!("vidgen-fuzz-{}-{name}.{ext}", std::process::id()));
    let mut changed: Vec<PanicCase> = Vec::new();
    let mut case = 0u64;
    let mut report = run(name, cases, seed, &mut mutate, |bytes| {
        case += 1;
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let mut candidate = module.clone();
        match load(&mut candidate, &path) {
            Ok(()) => Ok(()),
            Err(e) => {
                if param_bytes::<B, M>(&candidate) != before {
                    changed.push(PanicCase {
                        case: case - 1,
                        what: "see the case number".into(),
                        message: format!("module changed by a failed load: {e}"),
                    });
                }
                Err(e.to_string())
            }
        }
    });
    let _ = std::fs::remove_file(&path);
    report.panics.extend(changed);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_file() -> Vec<u8> {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let views = vec![
            (
                "a.weight",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![2, 2],
                    &data[..16],
                )
                .unwrap(),
            ),
            (
                "a.bias",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data[16..])
                    .unwrap(),
            ),
        ];
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn mutations_are_deterministic_and_varied() {
        let valid = tiny_file();
        let a: Vec<_> = (0..200).map(|i| mutate_safetensors(&valid, i, 3)).collect();
        let b: Vec<_> = (0..200).map(|i| mutate_safetensors(&valid, i, 3)).collect();
        assert!(a.iter().zip(&b).all(|(x, y)| x.bytes == y.bytes));
        let changed = a.iter().filter(|m| m.bytes != valid).count();
        assert!(changed > 180, "{changed} of 200 changed the file");
        let kinds: std::collections::BTreeSet<_> = a
            .iter()
            .map(|m| {
                m.what
                    .split([':', ' '])
                    .next_back()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert!(kinds.len() > 10, "{kinds:?}");
    }

    #[test]
    fn the_safetensors_parser_rejects_without_panicking() {
        let valid = tiny_file();
        let report = run(
            "safetensors::SafeTensors::deserialize",
            2000,
            11,
            |i, s| mutate_safetensors(&valid, i, s),
            |bytes| {
                safetensors::SafeTensors::deserialize(bytes)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        );
        assert!(report.panics.is_empty(), "{report}");
        assert!(report.rejected > 1000, "{report}");
    }

    #[test]
    fn panics_are_caught_and_named() {
        let report = run(
            "panicky",
            10,
            0,
            |i, s| mutate_json(br#"{"a": 1}"#, i, s),
            |bytes| {
                if bytes.len() % 2 == 0 {
                    panic!("even length {}", bytes.len());
                }
                Err("odd".into())
            },
        );
        assert_eq!(report.cases, 10);
        assert_eq!(report.panics.len() as u64 + report.rejected, 10);
        assert!(
            report
                .panics
                .iter()
                .all(|p| p.message.starts_with("even length"))
        );
    }
}
