//! Distillation losses (survey eqs. 16–17) against PyTorch (`golden/gen_quant.py`): values and
//! gradients w.r.t. the student logits, gradient signs, and config errors.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, activation::softmax};
use vidgen_quant::ConfigError;
use vidgen_quant::QuantError;
use vidgen_quant::distill::*;
use vidgen_testing::{Golden, Tolerance, assert_close, autodiff_backend_tests};

/// Losses and gradients of 5×7 logits vs torch: a softmax, a log and a 35-term sum in f32 on
/// both sides (different summation order); measured on flex, max abs error 1.9e-6 on losses of
/// ~10 (relative 2e-7).
const LOSS_F32: Tolerance = Tolerance::new("LOSS_F32", 4e-6, 4e-7);

type Loss<B> = fn(&Distill, Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1, Int>) -> Tensor<B, 1>;

fn distill_matches_torch<B: AutodiffBackend>(device: &B::Device) {
    let g = Golden::open("quant_distill.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let (tau, lam) = (g.meta_f64("temperature"), g.meta_f64("lam"));
    let teacher: Tensor<B, 2> = g.tensor("teacher", device);
    let labels: Tensor<B, 1, Int> = g.tensor::<B, 1>("labels", device).int();
    let batch = DistillConfig::new()
        .with_temperature(tau)
        .with_lambda(lam)
        .init()
        .unwrap();
    let deit = DistillConfig::new()
        .with_temperature(tau)
        .with_lambda(lam)
        .with_reduction(KlReduction::ElementMean)
        .init()
        .unwrap();
    let cases: [(&str, &Distill, Loss<B>); 5] = [
        ("ce", &batch, |_, s, _, y| cross_entropy(s, y)),
        ("soft", &batch, |d, s, t, _| d.soft_loss(s, t)),
        ("soft_deit", &deit, |d, s, t, _| d.soft_loss(s, t)),
        ("global", &batch, |d, s, t, y| d.global_loss(s, t, y)),
        ("hard", &batch, |d, s, t, y| d.hard_loss(s, t, y)),
    ];
    for (name, d, loss) in cases {
        let student = g.tensor::<B, 2>("student", device).require_grad();
        let teacher = teacher.clone().require_grad();
        let value = loss(d, student.clone(), teacher.clone(), labels.clone());
        let grads = value.clone().backward();
        println!("{name}");
        assert_close(
            value.inner(),
            g.tensor(&format!("{name}.loss"), device),
            LOSS_F32,
        );
        let grad = student.grad(&grads).unwrap();
        assert_close(grad, g.tensor(&format!("{name}.grad"), device), LOSS_F32);
        // The teacher is detached: no gradient reaches it.
        assert!(
            teacher.grad(&grads).is_none(),
            "{name}: teacher received a gradient"
        );
    }
}

/// `∂(τ²·KL)/∂z_s = τ·(p_s − p_t)/B`: negative where the teacher puts more mass than the student.
/// Cross-entropy: negative at the label, positive elsewhere.
fn gradient_signs<B: AutodiffBackend>(device: &B::Device) {
    let g = Golden::open("quant_distill.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let tau = g.meta_f64("temperature");
    let teacher: Tensor<B, 2> = g.tensor("teacher", device);
    let d = DistillConfig::new().with_temperature(tau).init().unwrap();
    let student = g.tensor::<B, 2>("student", device).require_grad();
    let grads = d.soft_loss(student.clone(), teacher.clone()).backward();
    let grad = host(student.grad(&grads).unwrap());
    let ps = host(softmax(student.clone().inner() / tau, 1));
    let pt = host(softmax(teacher.inner() / tau, 1));
    for i in 0..grad.len() {
        let diff = ps[i] - pt[i];
        if diff.abs() > 1e-6 {
            assert_eq!(
                grad[i] > 0.0,
                diff > 0.0,
                "element {i}: grad {}, p_s − p_t {diff}",
                grad[i]
            );
        }
    }
    let labels = g.values("labels");
    let student = g.tensor::<B, 2>("student", device).require_grad();
    let y: Tensor<B, 1, Int> = g.tensor::<B, 1>("labels", device).int();
    let grads = cross_entropy(student.clone(), y).backward();
    let grad = host(student.grad(&grads).unwrap());
    let c = grad.len() / labels.len();
    for (i, gi) in grad.iter().enumerate() {
        let is_label = labels[i / c] as usize == i % c;
        assert_eq!(*gi < 0.0, is_label, "element {i}: grad {gi}");
    }
}

fn host<B: burn::tensor::backend::Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

autodiff_backend_tests!(distill_matches_torch, gradient_signs);

#[test]
fn errors_name_fields() {
    let err = DistillConfig::new()
        .with_temperature(0.0)
        .init()
        .unwrap_err();
    assert_eq!(
        err,
        QuantError::Config(ConfigError::OutOfDomain {
            field: "temperature",
            value: 0.0,
            requirement: "> 0"
        })
    );
    let err = DistillConfig::new().with_lambda(1.5).init().unwrap_err();
    assert!(err.to_string().contains("`lambda` = 1.5"), "{err}");
}
