//! What each step's result depends on. A step's result is recorded with a key; when the
//! recipe changes so that the key changes, the result is stale and the step must run again.
//!
//! - collect, install, capture: the recipe digest (OS, model, every product's source,
//!   installer digest, version). A new software version changes it, so the installed list,
//!   the tests, the sign-off's match and the image all become stale.
//! - format: the base digest (OS family, base image, model): a new software version does not
//!   require reformatting the master, a new base image does.
//! - test: the recipe digest and the tests themselves.
//! - deploy, join, verify: the image being deployed.

use crate::domain::digest::{recipe_digest, sha256_tagged, software_digest};
use crate::domain::recipe::Recipe;

use super::step::Step;

/// The digests of the recipe as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub room: String,
    /// `digest::recipe_digest` of the recipe.
    pub recipe: String,
    /// `digest::software_digest` of its software list (what teachers sign).
    pub software: String,
    /// OS family, base image and model.
    pub base: String,
    /// The recipe digest and the technical tests.
    pub tests: String,
}

impl Current {
    pub fn of(recipe: &Recipe) -> Self {
        let base = sha256_tagged(&format!(
            "parc-base/1\nmodel\t{}\nos\t{}\t{}\n",
            recipe.model.value,
            recipe.os_family.as_str(),
            recipe.base_image.value
        ));
        let digest = recipe_digest(recipe);
        let mut tests = format!("parc-tests/1\nrecipe\t{digest}\n");
        for t in &recipe.tests {
            tests.push_str(&format!(
                "test\t{}\t{}\t{}\t{}\t{}\n",
                t.name.value,
                t.command.value,
                t.expect_exit,
                t.expect_output.as_deref().unwrap_or(""),
                t.timeout_secs
            ));
        }
        Self {
            room: recipe.id.value.clone(),
            recipe: digest,
            software: software_digest(&recipe.software),
            base,
            tests: sha256_tagged(&tests),
        }
    }

    /// The key a result of `step` must carry to be current. `image` is the image the per-host
    /// steps deploy (none before a capture).
    pub fn key(&self, step: Step, image: Option<&str>) -> String {
        match step {
            Step::Collect | Step::Install | Step::Capture => self.recipe.clone(),
            Step::Format => self.base.clone(),
            Step::Test => self.tests.clone(),
            Step::Deploy | Step::Join | Step::Verify => format!("image:{}", image.unwrap_or("")),
        }
    }
}
