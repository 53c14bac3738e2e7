//! A throwaway PostgreSQL cluster for the tests, from Debian's `postgresql` package: `initdb`
//! in a temporary folder (run as the `postgres` system user, since initdb refuses root), the
//! server on a unix socket in that folder and never on TCP, stopped and removed when the
//! [`Cluster`] is dropped. The package is installed when missing (as root, with
//! `scripts/ensure-packages.sh`); without root, or when it cannot be installed, the test
//! fails saying what is missing — it never skips.
//!
//! Roles other than `postgres` log in with a password (scram-sha-256), so parc's path through
//! its secret store is the one tested.
//!
//! [`Cluster::start_tls`] also listens on 127.0.0.1 (a free port), TLS only (`hostssl`; a
//! connection without TLS is rejected by `hostnossl … reject`), with a server certificate for
//! `localhost` and 127.0.0.1 signed by a CA made for the test with the `openssl` CLI (Debian's
//! `openssl`, installed as `postgresql` is when missing).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    server: Child,
    bin: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    /// The server's port (its socket's name too: `.s.PGSQL.PORT`).
    port: u16,
    /// The CA that signed the server's certificate, when it listens on TCP with TLS.
    ca: Option<PathBuf>,
    // Last: removed once the server has stopped.
    _dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb`, if any.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// The PostgreSQL server's binaries, installing Debian's `postgresql` when they are missing.
fn server_bin() -> PathBuf {
    if let Some(b) = find_bin() {
        return b;
    }
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    assert!(
        root,
        "the PostgreSQL tests need the postgresql package (/usr/lib/postgresql/*/bin/initdb is missing): \
         install it (apt-get install postgresql) or run the tests as root, which installs it"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-packages.sh");
    let st = Command::new(&script)
        .arg("postgresql")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        st.success(),
        "installing the postgresql package failed ({st}); the PostgreSQL tests need it"
    );
    find_bin().expect("postgresql is installed but /usr/lib/postgresql/*/bin/initdb is missing")
}

/// The uid and gid of the `postgres` system user (the package creates it).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "there is no `postgres` system user (the postgresql package creates it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// `cmd` as the `postgres` user (setpriv execs it: no extra process in between).
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--pdeathsig=KILL",
        "--",
    ])
    .arg(program);
    c
}

/// `openssl` (installing Debian's package when it is missing, as root).
fn ensure_openssl() {
    if Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-packages.sh");
    let st = Command::new(&script)
        .arg("openssl")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        st.success(),
        "installing the openssl package failed ({st}); the TLS tests need it"
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: `ca.pem` (a CA made for the test), `server.crt` and `server.key` (a server
/// certificate it signed, for `sans` as openssl writes them: `DNS:localhost,IP:127.0.0.1`).
pub fn make_certificates(dir: &Path, sans: &str) {
    ensure_openssl();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=parc test region CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=parc test database",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A port of 127.0.0.1 free now (the kernel's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    /// initdb, then the server on its unix socket only; waits until it answers.
    pub fn start() -> Cluster {
        Self::start_with(false)
    }

    /// As [`Cluster::start`], the server also listening on 127.0.0.1 (see [`Cluster::port`]),
    /// TLS only, its certificate for `localhost` and 127.0.0.1 signed by [`Cluster::ca`].
    pub fn start_tls() -> Cluster {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Cluster {
        let bin = server_bin();
        // SAFETY: getuid has no preconditions.
        assert!(
            unsafe { libc::getuid() } == 0,
            "the PostgreSQL tests start a cluster as the postgres user, which needs root"
        );
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix("parc-pg-")
            .tempdir()
            .expect("tempdir");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        let data = dir.path().join("data");
        let socket = dir.path().join("sock");
        std::fs::create_dir(&socket).expect("mkdir sock");
        std::os::unix::fs::chown(&socket, Some(uid), Some(gid)).expect("chown");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=reject",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The superuser without a password (the tests' own admin), everyone else with one;
        // over TCP, TLS only.
        let mut hba = String::from("local all postgres trust\nlocal all all scram-sha-256\n");
        let mut args: Vec<String> = Vec::new();
        let mut ca = None;
        let port = if tls {
            let certs = dir.path().join("certs");
            std::fs::create_dir(&certs).expect("mkdir certs");
            make_certificates(&certs, "DNS:localhost,IP:127.0.0.1");
            for f in ["server.crt", "server.key"] {
                std::os::unix::fs::chown(certs.join(f), Some(uid), Some(gid)).expect("chown");
            }
            hba.push_str(
                "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
            );
            let port = free_port();
            args.extend([
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", certs.join("server.crt").display()),
                "-c".into(),
                format!("ssl_key_file={}", certs.join("server.key").display()),
            ]);
            ca = Some(certs.join("ca.pem"));
            port
        } else {
            args.extend(["-c".into(), "listen_addresses=".into()]);
            5432
        };
        args.extend(["-c".into(), format!("port={port}")]);
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("log");
        let server = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&socket)
            .args(&args)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start postgres");
        let mut cluster = Cluster {
            server,
            bin,
            socket,
            log,
            port,
            ca,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = cluster.server.try_wait() {
                panic!(
                    "postgres exited at start ({st}): {}",
                    std::fs::read_to_string(&cluster.log).unwrap_or_default()
                );
            }
            let ready = Command::new(cluster.bin.join("pg_isready"))
                .arg("-h")
                .arg(&cluster.socket)
                .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "postgres did not answer within 60 s: {}",
                std::fs::read_to_string(&cluster.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The folder of the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket
    }

    /// Runs SQL as the superuser in `db`; its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.socket)
            .args(["-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-A",
                "-t",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A login role with a password.
    pub fn create_role(&self, name: &str, password: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"),
        );
    }

    /// A database owned by `owner`.
    pub fn create_db(&self, name: &str, owner: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
    }

    /// The URL parc connects with (no password: that is a secret), through the unix socket.
    pub fn url(&self, user: &str, db: &str) -> String {
        let port = match self.port {
            5432 => String::new(),
            p => format!("&port={p}"),
        };
        format!(
            "postgresql://{user}@/{db}?host={}{port}",
            self.socket.display()
        )
    }

    /// The server's port (on 127.0.0.1 for a [`Cluster::start_tls`] cluster).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the server's certificate ([`Cluster::start_tls`]).
    pub fn ca(&self) -> &Path {
        self.ca
            .as_deref()
            .expect("a cluster started with start_tls")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (clients disconnected, no waiting on them).
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.server.id() as libc::pid_t, libc::SIGINT) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The password of the `parc` role the tests create, kept as the workspace's secret.
pub const PASSWORD: &str = "s3cret-for-tests";

/// `[state]` pointing at `db` on the cluster as role `parc`, the password a secret.
pub fn state_toml(cluster: &Cluster, db: &str) -> String {
    format!(
        "\n[state]\nbackend = \"postgres\"\nurl = \"{}\"\npassword = {{ secret = \"state-db\" }}\n",
        cluster.url("parc", db)
    )
}

/// Stores [`PASSWORD`] as the workspace's `state-db` secret.
pub fn set_password(root: &Path) {
    parc::secrets::SecretStore::new(&root.join(".parc"))
        .set("state-db", PASSWORD.as_bytes())
        .expect("secret");
}

/// A bare workspace of lycée `uai` whose state is `db` on the cluster.
pub fn pg_workspace(cluster: &Cluster, db: &str, uai: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("site.toml"),
        format!("[lycee]\nuai = \"{uai}\"\n{}", state_toml(cluster, db)),
    )
    .expect("site.toml");
    set_password(ws.path());
    ws
}

/// Runs the `parc` binary on workspace `ws`: (exit code, stdout, stderr).
pub fn parc_in(ws: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args(args)
        .arg("-w")
        .arg(ws)
        .env_remove("PARC_WORKSPACE")
        .output()
        .expect("run parc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
