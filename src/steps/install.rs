//! Install (procedure step c): on the master, uploads each product's installer (from the
//! collect cache), runs the install command rendered for the host's OS family, and records
//! the version the system then reports (dpkg-query, the `.parc-version` of an /opt folder,
//! the Windows uninstall registry). A product already at the recipe's version is skipped.
//! A Debian install first finishes whatever dpkg left half-done (`dpkg --configure -a`): an
//! install cut mid-way (parc killed, the link lost) is then simply run again.

use std::path::Path;

use serde_json::json;

use super::run::{failed, run, run_ok, text};
use super::{StepError, templates};
use crate::ports::RemoteHost;

pub use crate::domain::recipe::OsFamily;

/// What kind of installer a file is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallerKind {
    Deb,
    Tar,
    Zip,
    Msi,
    Exe,
}

impl InstallerKind {
    pub fn from_file_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        let tar = [
            ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst",
        ];
        if n.ends_with(".deb") {
            Some(Self::Deb)
        } else if tar.iter().any(|s| n.ends_with(s)) {
            Some(Self::Tar)
        } else if n.ends_with(".zip") {
            Some(Self::Zip)
        } else if n.ends_with(".msi") {
            Some(Self::Msi)
        } else if n.ends_with(".exe") {
            Some(Self::Exe)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Deb => "deb",
            Self::Tar => "tar",
            Self::Zip => "zip",
            Self::Msi => "msi",
            Self::Exe => "exe",
        }
    }
}

/// One product to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    pub product: String,
    /// The name the system knows it by: Debian package, folder under /opt, or the Windows
    /// uninstall entry's DisplayName.
    pub package: String,
    /// The recipe's version, compared with what the system reports.
    pub version: String,
    pub kind: InstallerKind,
    /// Silent switches of a Windows `.exe` installer (e.g. `/S`).
    pub silent_args: Option<String>,
}

/// The commands of one product on one OS family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub remote_path: String,
    pub install: String,
    pub query_version: String,
}

fn unsupported(os: OsFamily, spec: &InstallSpec) -> StepError {
    StepError::Render {
        what: format!("install of {}", spec.product),
        detail: format!("a {:?} installer cannot be installed on {os:?}", spec.kind),
    }
}

/// Renders the install and version-query commands of `spec` for `os`.
pub fn render(os: OsFamily, spec: &InstallSpec) -> Result<Rendered, StepError> {
    let file = format!(
        "{}_{}.{}",
        spec.package,
        spec.version,
        spec.kind.extension()
    );
    let remote_path = match os {
        OsFamily::Linux => format!("/var/cache/parc/installers/{file}"),
        OsFamily::Windows => format!("C:\\ProgramData\\parc\\installers\\{file}"),
    };
    let data = json!({
        "remote_path": remote_path,
        "package": spec.package,
        "version": spec.version,
        "dir": format!("/opt/{}", spec.package),
        "silent_args": spec.silent_args.clone().unwrap_or_default(),
    });
    let (install, query) = match (os, spec.kind) {
        (OsFamily::Linux, InstallerKind::Deb) => ("linux-deb-install", "linux-deb-version"),
        (OsFamily::Linux, InstallerKind::Tar) => ("linux-tar-install", "linux-opt-version"),
        (OsFamily::Linux, InstallerKind::Zip) => ("linux-zip-install", "linux-opt-version"),
        (OsFamily::Windows, InstallerKind::Msi) => ("windows-msi-install", "windows-version"),
        (OsFamily::Windows, InstallerKind::Exe) => ("windows-exe-install", "windows-version"),
        _ => return Err(unsupported(os, spec)),
    };
    Ok(Rendered {
        install: templates::render(install, &data)?,
        query_version: templates::render(query, &data)?,
        remote_path,
    })
}

/// What install did for one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// Installed now; the version the system reports.
    Installed { version: String },
    /// Already at the recipe's version: nothing done.
    AlreadyInstalled { version: String },
}

/// The version of `spec`'s product the host reports, if installed.
pub async fn installed_version(
    host: &dyn RemoteHost,
    os: OsFamily,
    spec: &InstallSpec,
) -> Result<Option<String>, StepError> {
    let r = render(os, spec)?;
    let what = format!("querying the version of {}", spec.product);
    let out = run_ok(host, &what, r.query_version).await?;
    let v = text(&out);
    Ok((!v.is_empty()).then_some(v))
}

/// Installs `spec` on `host` from the cached `installer` unless already at its version.
pub async fn install(
    host: &dyn RemoteHost,
    os: OsFamily,
    spec: &InstallSpec,
    installer: &Path,
) -> Result<InstallOutcome, StepError> {
    if let Some(v) = installed_version(host, os, spec).await? {
        if v == spec.version {
            return Ok(InstallOutcome::AlreadyInstalled { version: v });
        }
    }
    let r = render(os, spec)?;
    let what = format!("uploading the installer of {}", spec.product);
    host.upload(installer, &r.remote_path)
        .await
        .map_err(|source| StepError::Port {
            host: host.name().to_owned(),
            what,
            source,
        })?;
    let what = format!("installing {} {}", spec.product, spec.version);
    let out = run(host, &what, r.install, None).await?;
    if !out.success() {
        return Err(failed(host, &what, &out));
    }
    let got = installed_version(host, os, spec).await?;
    match got {
        Some(v) if v == spec.version => Ok(InstallOutcome::Installed { version: v }),
        other => Err(StepError::Command {
            host: host.name().to_owned(),
            what,
            status: "0".into(),
            detail: format!(
                "the system reports version {} after install, the recipe says {}",
                other.as_deref().unwrap_or("none"),
                spec.version
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: InstallerKind, package: &str, version: &str, args: Option<&str>) -> InstallSpec {
        InstallSpec {
            product: package.into(),
            package: package.into(),
            version: version.into(),
            kind,
            silent_args: args.map(Into::into),
        }
    }

    #[test]
    fn kinds_from_file_names() {
        assert_eq!(
            InstallerKind::from_file_name("geogebra_6.0.deb"),
            Some(InstallerKind::Deb)
        );
        assert_eq!(
            InstallerKind::from_file_name("scratch.TAR.GZ"),
            Some(InstallerKind::Tar)
        );
        assert_eq!(
            InstallerKind::from_file_name("x.tar.zst"),
            Some(InstallerKind::Tar)
        );
        assert_eq!(
            InstallerKind::from_file_name("Setup.MSI"),
            Some(InstallerKind::Msi)
        );
        assert_eq!(InstallerKind::from_file_name("readme.txt"), None);
    }

    #[test]
    fn golden_linux_deb() {
        let r = render(
            OsFamily::Linux,
            &spec(InstallerKind::Deb, "geogebra-classic", "6.0.848", None),
        )
        .unwrap();
        assert_eq!(
            r.install,
            include_str!("golden/linux-deb-install.txt").trim_end()
        );
        assert_eq!(
            r.query_version,
            include_str!("golden/linux-deb-version.txt").trim_end()
        );
    }

    #[test]
    fn golden_linux_tar_into_opt() {
        let r = render(
            OsFamily::Linux,
            &spec(InstallerKind::Tar, "scratch", "3.29", None),
        )
        .unwrap();
        assert_eq!(
            r.install,
            include_str!("golden/linux-tar-install.txt").trim_end()
        );
        assert_eq!(
            r.query_version,
            "cat '/opt/scratch'/.parc-version 2>/dev/null || true"
        );
    }

    #[test]
    fn golden_windows_msi_and_exe() {
        let msi = render(
            OsFamily::Windows,
            &spec(InstallerKind::Msi, "GeoGebra Classic", "6.0.848", None),
        )
        .unwrap();
        assert_eq!(
            msi.install,
            include_str!("golden/windows-msi-install.txt").trim_end()
        );
        assert_eq!(
            msi.query_version,
            include_str!("golden/windows-version.txt").trim_end()
        );
        let exe = render(
            OsFamily::Windows,
            &spec(InstallerKind::Exe, "Notepad++", "8.6.9", Some("/S")),
        )
        .unwrap();
        assert_eq!(
            exe.install,
            include_str!("golden/windows-exe-install.txt").trim_end()
        );
    }

    #[test]
    fn a_deb_is_refused_on_windows() {
        let e = render(OsFamily::Windows, &spec(InstallerKind::Deb, "x", "1", None)).unwrap_err();
        assert!(
            e.to_string().contains("cannot be installed on Windows"),
            "{e}"
        );
    }

    #[test]
    fn hostile_names_stay_one_word() {
        let r = render(
            OsFamily::Linux,
            &spec(InstallerKind::Deb, "x'; rm -rf /; '", "1", None),
        )
        .unwrap();
        assert!(
            r.query_version.contains(r"'x'\''; rm -rf /; '\'''"),
            "{}",
            r.query_version
        );
    }
}
