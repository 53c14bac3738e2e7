//! `models.toml`: the hardware models the site knows, with what they can do.

use super::finding::{Finding, Source};
use super::toml_read::{Ctx, Sp, TableReader};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FormFactor {
    Desktop,
    Laptop,
    AllInOne,
}

impl FormFactor {
    /// The warranty the Région's purchases carry: 5 years for desktops, 3 for laptops.
    pub fn default_warranty_years(self) -> u32 {
        match self {
            FormFactor::Laptop => 3,
            FormFactor::Desktop | FormFactor::AllInOne => 5,
        }
    }

    pub fn french(self) -> &'static str {
        match self {
            FormFactor::Desktop => "poste fixe",
            FormFactor::Laptop => "portable",
            FormFactor::AllInOne => "tout-en-un",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Hdd,
    Ssd,
    Nvme,
}

/// Where a model's machines come from. Recycled and assembled machines are renewal candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    New,
    Recycled,
    Assembled,
}

/// One hardware model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub id: Sp<String>,
    pub manufacturer: String,
    pub name: String,
    pub form_factor: FormFactor,
    pub year: u32,
    pub cpu: String,
    /// A comparable CPU performance score (e.g. a PassMark CPU mark).
    pub cpu_score: u32,
    pub ram_gb: u32,
    pub disk_kind: DiskKind,
    pub disk_gb: u32,
    pub gpu: String,
    pub gpu_dedicated: bool,
    pub vram_gb: u32,
    pub warranty_years: u32,
    pub origin: Origin,
}

/// Parses `models.toml` (`[[model]]` entries). Duplicate ids are findings.
pub fn parse(src: &Source) -> (Vec<Model>, Vec<Finding>) {
    let ctx = Ctx::new(src);
    let mut models: Vec<Model> = Vec::new();
    if let Some(doc) = ctx.parse() {
        let root = TableReader::root(&ctx, &doc, "models.toml");
        let entries = root.tables("model", true);
        root.finish();
        for t in entries {
            if let Some(m) = parse_model(t) {
                if let Some(prev) = models.iter().find(|p| p.id.value == m.id.value) {
                    ctx.push(Finding::error(
                        m.id.at.clone(),
                        "duplicate-model",
                        format!(
                            "model id \"{}\" is already defined at {}",
                            m.id.value, prev.id.at
                        ),
                    ));
                    continue;
                }
                models.push(m);
            }
        }
    }
    (models, ctx.into_findings())
}

fn parse_model(t: TableReader) -> Option<Model> {
    let ctx = t.ctx();
    let id = t.text("id", true);
    let manufacturer = t.text("manufacturer", true);
    let name = t.text("name", true);
    let form_factor = t
        .choice("form_factor", true, &["desktop", "laptop", "all-in-one"])
        .map(|f| match f.value {
            "laptop" => FormFactor::Laptop,
            "all-in-one" => FormFactor::AllInOne,
            _ => FormFactor::Desktop,
        });
    let year = t.int("year", true, 1990, 2100);
    let cpu = t.text("cpu", true);
    let cpu_score = t.int("cpu_score", true, 1, 1_000_000);
    let ram_gb = t.int("ram_gb", true, 1, 4096);
    let disk_kind = t
        .choice("disk_type", true, &["hdd", "ssd", "nvme"])
        .map(|d| match d.value {
            "hdd" => DiskKind::Hdd,
            "nvme" => DiskKind::Nvme,
            _ => DiskKind::Ssd,
        });
    let disk_gb = t.int("disk_gb", true, 1, 1_000_000);
    let gpu = t.text("gpu", true);
    let gpu_dedicated = t.boolean("gpu_dedicated").is_some_and(|b| b.value);
    let vram_gb = t
        .int("vram_gb", false, 0, 1024)
        .map_or(0, |v| v.value as u32);
    let warranty = t.int("warranty_years", false, 0, 20);
    let origin = t
        .choice("origin", false, &["new", "recycled", "assembled"])
        .map(|o| match o.value {
            "recycled" => Origin::Recycled,
            "assembled" => Origin::Assembled,
            _ => Origin::New,
        });
    t.finish();
    let id = id?;
    if !valid_id(&id.value) {
        ctx.push(
            Finding::error(
                id.at.clone(),
                "id",
                format!("model id \"{}\" is not a valid identifier", id.value),
            )
            .hint("use lower-case letters, digits and '-', e.g. \"optiplex-7010\""),
        );
    }
    let form_factor = form_factor?;
    Some(Model {
        warranty_years: warranty.map_or(form_factor.default_warranty_years(), |w| w.value as u32),
        id,
        manufacturer: manufacturer?.value,
        name: name?.value,
        form_factor,
        year: year?.value as u32,
        cpu: cpu?.value,
        cpu_score: cpu_score?.value as u32,
        ram_gb: ram_gb?.value as u32,
        disk_kind: disk_kind?,
        disk_gb: disk_gb?.value as u32,
        gpu: gpu?.value,
        gpu_dedicated,
        vram_gb,
        origin: origin.unwrap_or(Origin::New),
    })
}

/// Identifiers of models and rooms: lower-case letters, digits and `-`, starting with a letter
/// or digit (they become folder names and OU names).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
}
