//! What the gates need to know besides the history: the licence gate, the teachers'
//! signatures and the images in the store. Built from the workspace, a date and the store's
//! list, all passed in.

use chrono::NaiveDate;

use crate::domain::finding::Severity;
use crate::domain::recipe::{OsFamily, Recipe};
use crate::domain::validate::licence_gate;
use crate::domain::workspace::Workspace;

/// One image of the room in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFact {
    pub id: String,
    /// The recipe digest its manifest records.
    pub recipe_digest: String,
}

/// The outside facts the gates read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Error findings of the licence gate (same rules as `parc check`), as `file:line:col: msg`.
    pub licence_errors: Vec<String>,
    /// Products installed under the head's written authorisation despite the licence gate.
    pub licence_overrides: Vec<String>,
    /// Software-list digests the teachers signed.
    pub signed: Vec<String>,
    /// The room's images in the store.
    pub images: Vec<ImageFact>,
    /// Whether the recipe has technical tests.
    pub has_tests: bool,
    /// The room's OS family (Windows steps that need a running Windows are gated).
    pub os_family: OsFamily,
}

impl Facts {
    pub fn gather(
        ws: &Workspace,
        recipe: &Recipe,
        today: NaiveDate,
        images: Vec<ImageFact>,
    ) -> Self {
        let mut licence_errors = Vec::new();
        let mut licence_overrides = Vec::new();
        for f in licence_gate(ws, recipe, today) {
            if f.severity == Severity::Error {
                licence_errors.push(format!("{}: {}", f.location, f.message));
            } else if f.rule == "licence-authorised" {
                licence_overrides.push(f.message);
            }
        }
        Self {
            licence_errors,
            licence_overrides,
            signed: recipe
                .signoffs
                .iter()
                .map(|s| s.digest.value.clone())
                .collect(),
            images,
            has_tests: !recipe.tests.is_empty(),
            os_family: recipe.os_family,
        }
    }
}
