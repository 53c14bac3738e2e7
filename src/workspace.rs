//! The workspace on disk: finds its files, reads their text and hands it to the domain.
//!
//! Layout: `site.toml`, `models.toml`, `devices.csv`, `rooms/<room>.toml`; the state folder
//! `.parc/` (git-ignored: secrets, journal, known hosts, caches); `images/` and `reports/`.

use std::path::{Path, PathBuf};

use crate::domain::finding::{Finding, Severity, Source};
use crate::domain::workspace::{Sources, Workspace};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace {0} does not exist")]
    NotFound(PathBuf),
    #[error("{0} is not a parc workspace (no site.toml, models.toml, devices.csv or rooms/)")]
    NotAWorkspace(PathBuf),
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("room \"{room}\" has no recipe in {dir}")]
    UnknownRoom {
        room: String,
        dir: PathBuf,
        suggestion: Option<String>,
    },
    #[error("{file} has {} error(s):\n{}", .findings.len(), .findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Unparsable {
        file: String,
        findings: Vec<Finding>,
    },
    #[error("{} problem(s) in the workspace must be fixed first", .0.len())]
    Invalid(Vec<Finding>),
}

/// A workspace folder.
#[derive(Debug, Clone)]
pub struct WorkspaceDir {
    pub root: PathBuf,
}

/// A workspace read from disk: its sources (kept for editing and re-rendering), the parsed
/// model and the findings of parsing.
#[derive(Debug)]
pub struct Loaded {
    pub dir: WorkspaceDir,
    pub sources: Sources,
    pub ws: Workspace,
    pub parse_findings: Vec<Finding>,
}

impl WorkspaceDir {
    /// Opens a workspace folder; fails when it does not exist or holds none of the files.
    pub fn open(path: &Path) -> Result<Self, WorkspaceError> {
        if !path.is_dir() {
            return Err(WorkspaceError::NotFound(path.to_path_buf()));
        }
        let any = ["site.toml", "models.toml", "devices.csv", "rooms"]
            .iter()
            .any(|f| path.join(f).exists());
        if !any {
            return Err(WorkspaceError::NotAWorkspace(path.to_path_buf()));
        }
        Ok(Self {
            root: path.to_path_buf(),
        })
    }

    /// `.parc/`: secrets, journal, known hosts, caches. Never committed.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".parc")
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn reports_dir(&self) -> PathBuf {
        self.root.join("reports")
    }

    /// The recipe file of a room.
    pub fn room_file(&self, room: &str) -> PathBuf {
        self.root.join("rooms").join(format!("{room}.toml"))
    }

    /// Reads every file's text. A file that is not UTF-8 is an error finding, not a failure.
    pub fn read_sources(&self) -> Result<(Sources, Vec<Finding>), WorkspaceError> {
        let mut findings = Vec::new();
        let mut unreadable = Vec::new();
        let mut read = |rel: &str| -> Result<Option<Source>, WorkspaceError> {
            let path = self.root.join(rel);
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => Ok(Some(Source::new(rel, text))),
                    Err(e) => {
                        let src =
                            Source::new(rel, String::from_utf8_lossy(e.as_bytes()).into_owned());
                        unreadable.push(rel.to_string());
                        findings.push(
                            Finding::error(
                                src.at(e.utf8_error().valid_up_to()),
                                "encoding",
                                format!("{rel} is not valid UTF-8"),
                            )
                            .hint("save the file as UTF-8 (spreadsheets: \"CSV UTF-8\")"),
                        );
                        Ok(None)
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(WorkspaceError::Io { path, source }),
            }
        };
        let site = read("site.toml")?;
        let models = read("models.toml")?;
        let devices = read("devices.csv")?;
        let mut rooms = Vec::new();
        let rooms_dir = self.root.join("rooms");
        if rooms_dir.is_dir() {
            let entries = std::fs::read_dir(&rooms_dir).map_err(|source| WorkspaceError::Io {
                path: rooms_dir.clone(),
                source,
            })?;
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect();
            names.sort();
            for n in names {
                if let Some(src) = read(&format!("rooms/{n}"))? {
                    rooms.push(src);
                }
            }
        }
        Ok((
            Sources {
                site,
                models,
                devices,
                rooms,
                unreadable,
            },
            findings,
        ))
    }

    /// Reads and parses the whole workspace.
    pub fn load(&self) -> Result<Loaded, WorkspaceError> {
        let (sources, mut parse_findings) = self.read_sources()?;
        let (ws, f) = Workspace::parse(&sources);
        parse_findings.extend(f);
        Ok(Loaded {
            dir: self.clone(),
            sources,
            ws,
            parse_findings,
        })
    }
}

impl Loaded {
    /// Fails with every error finding of parsing (the workspace cannot be used as is).
    pub fn require_parsed(self) -> Result<Self, WorkspaceError> {
        let errors: Vec<Finding> = self
            .parse_findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .cloned()
            .collect();
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(WorkspaceError::Invalid(errors))
        }
    }

    /// The recipe of a room, or an error suggesting the closest id.
    pub fn room(&self, id: &str) -> Result<&crate::domain::recipe::Recipe, WorkspaceError> {
        if let Some(r) = self.ws.room(id) {
            return Ok(r);
        }
        let file = format!("rooms/{id}.toml");
        let findings: Vec<Finding> = self
            .parse_findings
            .iter()
            .filter(|f| f.location.file == file && f.severity == Severity::Error)
            .cloned()
            .collect();
        if !findings.is_empty() {
            return Err(WorkspaceError::Unparsable { file, findings });
        }
        Err(WorkspaceError::UnknownRoom {
            room: id.to_string(),
            dir: self.dir.root.join("rooms"),
            suggestion: crate::domain::finding::did_you_mean(
                id,
                self.ws.rooms.iter().map(|r| r.id.value.as_str()),
            )
            .map(str::to_string),
        })
    }

    /// The source text of a room's recipe.
    pub fn room_source(&self, id: &str) -> Option<&Source> {
        let file = &self.ws.room(id)?.file;
        self.sources.rooms.iter().find(|s| &s.name == file)
    }
}
