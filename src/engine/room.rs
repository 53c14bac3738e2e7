//! A room as the engine sees it: its recipe, master, workstations and current digests,
//! resolved from the loaded workspace.

use std::sync::Arc;

use crate::domain::procedure::{Current, Facts, ImageFact};
use crate::domain::recipe::Recipe;
use crate::ports::ImageStore;
use crate::ports::steps::Target;
use crate::workspace::Loaded;

use super::EngineError;

/// A room resolved for a run.
#[derive(Clone)]
pub struct Room {
    pub id: String,
    pub recipe: Arc<Recipe>,
    pub master: Target,
    /// In-service workstations, in hostname order.
    pub workstations: Vec<Target>,
    pub current: Current,
}

impl Room {
    pub fn resolve(loaded: &Loaded, id: &str) -> Result<Self, EngineError> {
        let recipe = loaded.room(id)?;
        let ws = &loaded.ws;
        let target = |d: &crate::domain::device::Device| Target {
            hostname: d.hostname.value.clone(),
            mac: d.mac.value.clone(),
            ip: d.ip.clone(),
        };
        let master = ws
            .master_of(recipe)
            .map(target)
            .ok_or_else(|| EngineError::NoMaster { room: id.into() })?;
        let workstations = ws.workstations(id).into_iter().map(target).collect();
        Ok(Room {
            id: recipe.id.value.clone(),
            recipe: Arc::new(recipe.clone()),
            master,
            workstations,
            current: Current::of(recipe),
        })
    }

    pub fn hostnames(&self) -> Vec<String> {
        self.workstations
            .iter()
            .map(|t| t.hostname.clone())
            .collect()
    }

    /// Fails naming the `--hosts` that are not workstations of the room.
    pub fn check_hosts(&self, hosts: &[String]) -> Result<(), EngineError> {
        let known = self.hostnames();
        let unknown: Vec<String> = hosts
            .iter()
            .filter(|h| !known.iter().any(|k| k.eq_ignore_ascii_case(h)))
            .cloned()
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(EngineError::UnknownHosts {
                room: self.id.clone(),
                hosts: unknown,
                known,
            })
        }
    }

    /// The facts the gates read: licence gate, signatures, the room's images in the store.
    pub async fn facts(
        &self,
        loaded: &Loaded,
        images: &dyn ImageStore,
        today: chrono::NaiveDate,
    ) -> Result<Facts, EngineError> {
        let list = images
            .list(Some(&self.id))
            .await
            .map_err(|source| EngineError::Images {
                room: self.id.clone(),
                source,
            })?;
        let images = list
            .into_iter()
            .map(|i| ImageFact {
                id: i.id,
                recipe_digest: i.recipe_digest,
            })
            .collect::<Vec<_>>();
        Ok(Facts::gather(&loaded.ws, &self.recipe, today, images))
    }
}
