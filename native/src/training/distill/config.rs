//! The `[training.distill]` table: which teacher, and the weight of each distillation term.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Distillation from a trained teacher: the student's loss is
/// `label_weight` × (its own objectives) + `scores_weight` × τ² · KL(teacher ‖ student) over
/// each token's candidate set + `align_weight` × (1 − cos) between the teacher's hidden state
/// and a learned projection of the student's. A weight of 0 switches its term off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher's weight file (relative to the working directory, like `run.out`); any
    /// trained foundation model over the same catalog, with a window at least the student's.
    pub teacher: PathBuf,
    /// τ: both score lists are divided by it before the softmax (the KL term is scaled by τ²,
    /// so its gradients keep their size as τ changes).
    pub temperature: f64,
    /// Weight of the KL term between the teacher's and the student's scores.
    pub scores_weight: f64,
    /// Weight of the alignment of the student's hidden state (projected to the teacher's width
    /// by a learned linear map, dropped at export) to the teacher's.
    pub align_weight: f64,
    /// Weight of the student's own objectives (next item, multi-token, auxiliary heads).
    pub label_weight: f64,
    /// The teacher's highest-scored items per token added to the candidate set (sampled
    /// softmax; with full softmax the candidate set is the whole catalog already). 0: none.
    pub top_k: usize,
    /// Leave the items earlier in the same training window (the member's history the token
    /// sees) out of that token's top k.
    pub top_k_skips_history: bool,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            teacher: PathBuf::new(),
            temperature: 1.0,
            scores_weight: 1.0,
            align_weight: 0.1,
            label_weight: 1.0,
            top_k: 16,
            top_k_skips_history: true,
        }
    }
}

impl DistillConfig {
    /// Checks the weights and the temperature; names the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.teacher.as_os_str().is_empty() {
            return Err("training.distill.teacher: no teacher weight file given".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "training.distill.temperature must be positive, not {}",
                self.temperature
            ));
        }
        for (name, w) in [
            ("scores_weight", self.scores_weight),
            ("align_weight", self.align_weight),
            ("label_weight", self.label_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!(
                    "training.distill.{name} must be 0 or positive, not {w}"
                ));
            }
        }
        if self.scores_weight + self.align_weight + self.label_weight == 0.0 {
            return Err("training.distill: every weight is 0, nothing to learn".into());
        }
        if self.top_k > 1024 {
            return Err(format!(
                "training.distill.top_k is {}, at most 1024",
                self.top_k
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_weights_and_temperatures_are_refused_by_name() {
        let good = DistillConfig {
            teacher: "t.encore".into(),
            ..Default::default()
        };
        good.validate().unwrap();
        let cases = [
            (
                DistillConfig {
                    teacher: PathBuf::new(),
                    ..good.clone()
                },
                "no teacher weight file",
            ),
            (
                DistillConfig {
                    temperature: 0.0,
                    ..good.clone()
                },
                "temperature must be positive, not 0",
            ),
            (
                DistillConfig {
                    align_weight: -1.0,
                    ..good.clone()
                },
                "align_weight must be 0 or positive, not -1",
            ),
            (
                DistillConfig {
                    scores_weight: f64::NAN,
                    ..good.clone()
                },
                "scores_weight",
            ),
            (
                DistillConfig {
                    scores_weight: 0.0,
                    align_weight: 0.0,
                    label_weight: 0.0,
                    ..good.clone()
                },
                "every weight is 0",
            ),
            (
                DistillConfig {
                    top_k: 5000,
                    ..good.clone()
                },
                "top_k is 5000, at most 1024",
            ),
        ];
        for (cfg, says) in cases {
            let e = cfg.validate().unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let parsed: DistillConfig =
            toml::from_str("teacher = \"runs/x/model.encore\"\ntop_k = 8\n").unwrap();
        assert_eq!((parsed.top_k, parsed.temperature), (8, 1.0));
        assert!(toml::from_str::<DistillConfig>("teachr = \"x\"\n").is_err());
    }
}
