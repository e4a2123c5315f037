//! Token prices and cost arithmetic.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Usage;

/// Prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Pricing {
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_per_mtok + usage.output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens() {
        let p = Pricing {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 2_000,
            estimated: false,
        };
        assert!((p.cost_usd(&u) - 0.033).abs() < 1e-12);
    }
}
