//! `parc status [ROOM]`: each step's state per room, the per-workstation table, what blocks.

use crate::engine::{self, RoomStatus};
use crate::exit::{CliError, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One room (default: every room of the workspace).
    pub room: Option<String>,
    /// One JSON object per room per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    let loaded = super::master::load(&args.ws)?;
    // The image store the gates read (the workspace's images/ folder, or the fakes'); if it
    // cannot be opened, the journal's word about the captured image is taken.
    let images = super::master::image_store(&loaded).ok();
    let rooms: Vec<String> = match &args.room {
        Some(r) => vec![r.clone()],
        None => loaded.ws.rooms.iter().map(|r| r.id.value.clone()).collect(),
    };
    let rt = super::master::runtime()?;
    let today = chrono::Local::now().date_naive();
    for room in rooms {
        let st = rt
            .block_on(engine::room_status(
                &loaded,
                &room,
                images.as_deref(),
                today,
            ))
            .map_err(super::master::engine_error)?;
        if args.json {
            println!("{}", serde_json::to_string(&st).unwrap_or_default());
        } else {
            print!("{}", render(&st));
        }
    }
    Ok(Status::Success)
}

fn render(st: &RoomStatus) -> String {
    let mut out = format!("room {} — recipe {}", st.room, short(&st.recipe_digest));
    if let Some(i) = &st.image {
        out.push_str(&format!(", image {i}"));
    }
    out.push('\n');
    for s in &st.steps {
        out.push_str(&format!(
            "  {:<8} {:<12} {}\n",
            s.step.as_str(),
            s.state,
            s.detail
        ));
        for h in &s.hosts {
            if h.state != "done" || s.state != "done" || !h.detail.is_empty() {
                out.push_str(&format!(
                    "      {:<12} {:<12} {}\n",
                    h.host, h.state, h.detail
                ));
            }
        }
    }
    if let Some(b) = &st.blocked {
        out.push_str(&format!("  blocked: {b}\n"));
    }
    if let Some(n) = &st.next {
        out.push_str(&format!("  next: {n}\n"));
    }
    if let Some(h) = &st.running {
        out.push_str(&format!(
            "  running: parc master, pid {} on {}, since {}\n",
            h.pid, h.host, h.started
        ));
    }
    if !st.images_checked && st.image.is_some() {
        out.push_str("  (image store not checked: the journal's word is taken)\n");
    }
    if let Some(r) = &st.last_run {
        out.push_str(&format!(
            "  last run: {} {} (started {})\n",
            r.id,
            r.outcome.as_deref().unwrap_or("running"),
            r.started
        ));
    }
    out
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}
