//! The plan of a scenario: every variant times `repeat`, interleaved
//! (A B A B ...) so a slow drift of the machine does not masquerade as an
//! effect, or shuffled with a recorded seed.

use crate::scenario::{Order, Scenario};

/// The order of the runs: every (variant index, repeat), interleaved
/// A B A B ... or shuffled with a seed; and how to describe it.
pub(crate) fn plan_runs(scenario: &Scenario) -> (Vec<(usize, u32)>, String) {
    let mut plan: Vec<(usize, u32)> = (1..=scenario.repeat.get())
        .flat_map(|r| (0..scenario.variants.len()).map(move |v| (v, r)))
        .collect();
    match scenario.order {
        Order::Interleaved => (plan, "interleaved".into()),
        Order::Randomized => {
            let seed = scenario.seed.unwrap_or_default();
            fastrand::Rng::with_seed(seed).shuffle(&mut plan);
            (plan, format!("randomized (seed {seed})"))
        }
    }
}
