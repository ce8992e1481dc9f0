//! The plan of a scenario: every variant times `repeat`, interleaved
//! (A B A B ...) so a slow drift of the machine does not masquerade as an
//! effect, or shuffled with a recorded seed; and each variant resolved
//! once into what its runs start.

use crate::error::{Error, Result};
use crate::scenario::{ClientSpec, Order, Scenario, ServerSpec, Variant};

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

/// One variant resolved once for all its runs: its `set` applied to the
/// server and the client (a YAML round trip, done here and nowhere else at
/// run time), so each step reads typed values.
pub(crate) struct VariantPlan<'s> {
    pub(crate) variant: &'s Variant,
    pub(crate) server: ServerSpec,
    pub(crate) client: ClientSpec,
}

impl<'s> VariantPlan<'s> {
    /// Every variant of the scenario, in its order. A `set` that does not
    /// apply is bad input (validation has already said so).
    pub(crate) fn resolve_all(scenario: &'s Scenario) -> Result<Vec<VariantPlan<'s>>> {
        scenario
            .variants
            .iter()
            .map(|variant| {
                let (server, client) = scenario.effective(variant).map_err(Error::invalid)?;
                Ok(VariantPlan {
                    variant,
                    server,
                    client,
                })
            })
            .collect()
    }

    /// The load's duration in seconds (`set` may change it).
    pub(crate) fn load_secs(&self) -> f64 {
        self.client.duration.0.as_secs_f64()
    }
}
