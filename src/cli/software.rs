//! `parc software ROOM`: the room's software list as the teachers sign it (French), with the
//! digest their signature binds to. `--canonical` prints the exact text that is hashed.

use anyhow::Context as _;

use crate::domain::digest::{canonical_software_list, software_digest};
use crate::domain::recipe::{LicenceKind, Recipe};
use crate::domain::validate::{SignoffState, signoff_state};
use crate::exit::{CliError, Status};
use crate::workspace::WorkspaceDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub room: String,
    /// Print the canonical text whose SHA-256 is the digest, and nothing else.
    #[arg(long)]
    pub canonical: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let dir = WorkspaceDir::open(&args.ws.workspace).map_err(CliError::user)?;
    let loaded = dir
        .load()
        .context("reading the workspace")
        .map_err(CliError::internal)?;
    let recipe = loaded.room(&args.room).map_err(super::room_error)?;
    if args.canonical {
        print!(
            "{}",
            canonical_software_list(
                recipe
                    .software
                    .iter()
                    .map(|s| (s.name.value.as_str(), s.version.value.as_str()))
            )
        );
        return Ok(Status::Success);
    }
    let lycee = loaded
        .ws
        .site
        .as_ref()
        .map(|s| format!("{} ({})", s.name.value, s.uai.value));
    let model = loaded
        .ws
        .model(&recipe.model.value)
        .map(|m| format!("{} {}", m.manufacturer, m.name));
    print!(
        "{}",
        render(
            recipe,
            lycee.as_deref(),
            model.as_deref(),
            loaded.ws.workstations(&recipe.id.value).len()
        )
    );
    Ok(Status::Success)
}

fn licence_fr(k: LicenceKind, seats: Option<u32>) -> String {
    match k {
        LicenceKind::Free => "libre / gratuit".into(),
        LicenceKind::Site => "licence site".into(),
        LicenceKind::Volume => "accord en volume".into(),
        LicenceKind::Seats => format!("{} poste(s)", seats.unwrap_or(0)),
    }
}

/// The document the teachers date and sign.
pub fn render(
    recipe: &Recipe,
    lycee: Option<&str>,
    model: Option<&str>,
    workstations: usize,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Liste des logiciels — salle {} ({})\n",
        recipe.id.value, recipe.name
    ));
    if let Some(l) = lycee {
        out.push_str(&format!("Établissement : {l}\n"));
    }
    if !recipe.disciplines.is_empty() {
        let d: Vec<&str> = recipe
            .disciplines
            .iter()
            .map(|d| d.value.as_str())
            .collect();
        out.push_str(&format!("Disciplines : {}\n", d.join(", ")));
    }
    out.push_str(&format!(
        "Matériel : {} — {workstations} poste(s) en service — système : {} ({})\n\n",
        model.unwrap_or(&recipe.model.value),
        recipe.os_family.as_str(),
        recipe.base_image.value
    ));
    let mut items: Vec<_> = recipe.software.iter().collect();
    items.sort_by(|a, b| a.name.value.cmp(&b.name.value));
    let w = items
        .iter()
        .map(|s| s.name.value.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let v = items
        .iter()
        .map(|s| s.version.value.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    out.push_str(&format!(
        "  {:<w$}  {:<v$}  Licence\n",
        "Logiciel", "Version"
    ));
    for s in items {
        out.push_str(&format!(
            "  {:<w$}  {:<v$}  {}\n",
            s.name.value,
            s.version.value,
            licence_fr(
                s.licence.kind.value,
                s.licence.seats.as_ref().map(|s| s.value)
            )
        ));
    }
    let digest = software_digest(&recipe.software);
    out.push_str(&format!(
        "\n{} logiciel(s). Empreinte de la liste : {digest}\n",
        recipe.software.len()
    ));
    out.push_str(
        "(SHA-256 de la forme canonique : nom et version de chaque logiciel, triés ; toute modification \
         de la liste change l'empreinte et annule les signatures.)\n\n",
    );
    match signoff_state(recipe) {
        SignoffState::Valid(v) => {
            out.push_str("Signatures valides pour cette liste :\n");
            for s in v {
                out.push_str(&format!(
                    "  - {} ({}), le {}\n",
                    s.teacher.value,
                    s.discipline.value,
                    s.date.value.format("%d/%m/%Y")
                ));
            }
        }
        SignoffState::Stale { latest, .. } => out.push_str(&format!(
            "La liste a changé depuis la signature de {} le {} : elle doit être signée à nouveau.\n",
            latest.teacher.value,
            latest.date.value.format("%d/%m/%Y")
        )),
        SignoffState::None => out.push_str("Cette liste n'a encore été signée par aucun enseignant.\n"),
    }
    out.push_str("\nListe arrêtée, datée et signée par les enseignants concernés :\n\n");
    out.push_str(
        "  Nom et prénom                  Discipline              Date          Signature\n",
    );
    for _ in 0..3 {
        out.push_str("  ____________________________   _____________________   ___________   _______________\n\n");
    }
    out
}
