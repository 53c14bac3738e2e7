//! Collect (procedure step a): fetches each software source of a room — HTTP(S), a local
//! file, or a Debian package from the machine's configured apt mirror — into the
//! content-addressed cache, verifying the recipe's sha256. A mismatch names the product, the
//! expected and the actual digest, and nothing enters the cache; a cached item is not fetched
//! again. Download progress goes to the `Reporter`.

use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::cache::{CacheError, ContentCache, is_sha256_hex};
use crate::ports::{ProgressEvent, Reporter};

/// Where a product's installer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http {
        url: String,
    },
    Local {
        path: PathBuf,
    },
    /// `apt-get download package[=version]` from the configured mirror.
    Debian {
        package: String,
        version: Option<String>,
    },
}

/// One thing to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub product: String,
    pub source: Source,
    /// The recipe's sha256 (64 lowercase hex digits).
    pub sha256: String,
}

/// What collect produced for one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub product: String,
    pub path: PathBuf,
    pub sha256: String,
    /// false when the cache already held it (nothing was fetched).
    pub fetched: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(
        "{product}: sha256 mismatch for {origin}: expected {expected}, got {actual}; not cached"
    )]
    Digest {
        product: String,
        origin: String,
        expected: String,
        actual: String,
    },
    #[error("{product}: `{digest}` is not a sha256 (64 lowercase hex digits)")]
    BadDigest { product: String, digest: String },
    #[error("{product}: fetching {origin}")]
    Fetch {
        product: String,
        origin: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{product}: the cache")]
    Cache {
        product: String,
        #[source]
        source: CacheError,
    },
}

fn origin(source: &Source) -> String {
    match source {
        Source::Http { url } => url.clone(),
        Source::Local { path } => path.display().to_string(),
        Source::Debian { package, version } => match version {
            Some(v) => format!("Debian package {package}={v}"),
            None => format!("Debian package {package}"),
        },
    }
}

/// What collect needs: the cache and an HTTP client (kept here so callers never name reqwest).
#[derive(Debug, Clone)]
pub struct Collector {
    cache: ContentCache,
    http: reqwest::Client,
}

impl Collector {
    pub fn new(cache: ContentCache) -> Self {
        Self {
            cache,
            http: reqwest::Client::new(),
        }
    }

    pub fn cache(&self) -> &ContentCache {
        &self.cache
    }

    /// Collects one artifact into the cache.
    pub async fn collect(
        &self,
        artifact: &Artifact,
        reporter: &dyn Reporter,
    ) -> Result<Collected, CollectError> {
        collect(&self.cache, &self.http, artifact, reporter).await
    }
}

/// Collects one artifact into `cache`.
async fn collect(
    cache: &ContentCache,
    http: &reqwest::Client,
    artifact: &Artifact,
    reporter: &dyn Reporter,
) -> Result<Collected, CollectError> {
    let product = artifact.product.clone();
    // A Debian package whose recipe gives no sha256 is checked against the digest of the
    // signed apt index (the Packages file apt verified with the archive's key).
    let resolved;
    let artifact = match (&artifact.source, artifact.sha256.is_empty()) {
        (Source::Debian { package, version }, true) => {
            let sha256 = debian_index_sha256(package, version.as_deref())
                .await
                .map_err(|source| CollectError::Fetch {
                    product: product.clone(),
                    origin: origin(&artifact.source),
                    source,
                })?;
            resolved = Artifact {
                sha256,
                ..artifact.clone()
            };
            &resolved
        }
        _ => artifact,
    };
    if !is_sha256_hex(&artifact.sha256) {
        return Err(CollectError::BadDigest {
            product,
            digest: artifact.sha256.clone(),
        });
    }
    if let Some(path) = cache.get(&artifact.sha256) {
        return Ok(Collected {
            product,
            path,
            sha256: artifact.sha256.clone(),
            fetched: false,
        });
    }
    let origin = origin(&artifact.source);
    let fetch_err = |source: Box<dyn std::error::Error + Send + Sync>| CollectError::Fetch {
        product: product.clone(),
        origin: origin.clone(),
        source,
    };
    let cache_err = |source| CollectError::Cache {
        product: product.clone(),
        source,
    };
    let staging = cache.staging().map_err(cache_err)?;
    let file = match &artifact.source {
        Source::Http { url } => {
            let dest = staging.path().join("download");
            fetch_http(http, url, &dest, &product, reporter)
                .await
                .map_err(fetch_err)?;
            dest
        }
        Source::Local { path } => {
            let dest = staging.path().join("local");
            tokio::fs::copy(path, &dest)
                .await
                .map_err(|e| fetch_err(Box::new(e)))?;
            dest
        }
        Source::Debian { package, version } => {
            fetch_debian(package, version.as_deref(), staging.path())
                .await
                .map_err(fetch_err)?
        }
    };
    match cache.admit(&file, &artifact.sha256) {
        Ok(path) => {
            reporter.report(ProgressEvent::HostFinished {
                step: "collect".into(),
                host: product.clone(),
                ok: true,
                message: format!("{origin} verified (sha256 {})", artifact.sha256),
            });
            Ok(Collected {
                product,
                path,
                sha256: artifact.sha256.clone(),
                fetched: true,
            })
        }
        Err(CacheError::Mismatch {
            expected, actual, ..
        }) => Err(CollectError::Digest {
            product,
            origin,
            expected,
            actual,
        }),
        Err(e) => Err(cache_err(e)),
    }
}

async fn fetch_http(
    http: &reqwest::Client,
    url: &str,
    dest: &Path,
    product: &str,
    reporter: &dyn Reporter,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let resp = http.get(url).send().await?.error_for_status()?;
    let total = resp.content_length();
    let mut out = tokio::fs::File::create(dest).await?;
    let mut stream = resp.bytes_stream();
    let mut done = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        out.write_all(&chunk).await?;
        done += chunk.len() as u64;
        reporter.report(ProgressEvent::HostProgress {
            step: "collect".into(),
            host: product.to_owned(),
            done,
            total,
            unit: "bytes".into(),
        });
    }
    out.sync_all().await?;
    Ok(())
}

/// The SHA256 of a Debian package as the machine's signed apt index records it
/// (`apt-cache show PACKAGE=VERSION`). The index must be current (`apt-get update`).
pub async fn debian_index_sha256(
    package: &str,
    version: Option<&str>,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let spec = apt_spec(package, version);
    let stdout = apt("apt-cache", &["show", "--no-all-versions", &spec], None).await?;
    String::from_utf8_lossy(&stdout)
        .lines()
        .find_map(|l| l.strip_prefix("SHA256: "))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| is_sha256_hex(h))
        .ok_or_else(|| format!("apt-cache show {spec}: no SHA256 in the index").into())
}

/// `package=version`, or the package alone (the candidate version).
fn apt_spec(package: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{package}={v}"),
        None => package.to_owned(),
    }
}

/// Runs an apt tool (in `dir`), returning its stdout; a failure carries the command and its
/// stderr.
async fn apt(
    tool: &str,
    args: &[&str],
    dir: Option<&Path>,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let mut cmd = tokio::process::Command::new(tool);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().await?;
    if !out.status.success() {
        return Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(out.stdout)
}

/// `apt-get download` into `dir` (uses the machine's apt sources; no host name in parc).
async fn fetch_debian(
    package: &str,
    version: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, Box<dyn std::error::Error + Send + Sync>> {
    let spec = apt_spec(package, version);
    apt("apt-get", &["-q", "download", &spec], Some(dir)).await?;
    let mut debs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            debs.push(p);
        }
    }
    match debs.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("apt-get download {spec} produced {} .deb files", debs.len()).into()),
    }
}
