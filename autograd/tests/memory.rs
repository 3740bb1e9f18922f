//! A 1,000-step training loop must not grow live tensor memory. This test has a binary
//! of its own: the counters are process-wide, and other tests would disturb them.

mod common;

use autograd::{AdamW, AdamWConfig, Var};
use common::{dataset, mse, Mlp};
use tensor::{cpu, Cpu, Rng};

#[test]
fn thousand_steps_do_not_grow_memory() {
    let cpu = Cpu::<f32>::new();
    let mut rng = Rng::seed(3);
    let mlp = Mlp::new(2, 64, 1, &mut rng, &cpu);
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut step = |rng: &mut Rng| {
        let (x, y) = dataset(32, rng, &cpu);
        mlp.params().iter().for_each(|p| p.zero_grad());
        let loss = mse(&mlp.forward(&Var::constant(x)), &y);
        loss.backward();
        opt.step(&mlp.params(), 1e-3, 1.0);
    };
    for _ in 0..10 {
        step(&mut rng);
    }
    let (bytes, buffers) = (cpu::live_bytes(), cpu::live_buffers());
    for _ in 0..1000 {
        step(&mut rng);
    }
    assert_eq!(
        (cpu::live_bytes(), cpu::live_buffers()),
        (bytes, buffers),
        "live tensor memory changed over 1,000 steps"
    );
}
