//! The state database over TLS, against a real throwaway cluster listening on 127.0.0.1 with
//! TLS only (`pg_support`'s `Cluster::start_tls`: `hostssl` with a password, `hostnossl`
//! rejected, a server certificate for `localhost` and 127.0.0.1 signed by a CA made for the
//! test). The certificate is always verified: trusted through `[state] ca`, the connection
//! works and the server sees it encrypted; without `ca` (an issuer the system does not know)
//! or under a host name the certificate does not carry, it is refused (exit 1, naming the
//! URL and the certificate's problem). A bad `ca` file and an `sslmode` parc does not read are
//! `site.toml` mistakes at their line (exit 2).
//!
//! Needs root (the cluster runs as the `postgres` user); fails, never skips, without it.

mod pg_support;

use std::path::Path;

use parc::journal::Journal;
use pg_support::{Cluster, PASSWORD, parc_in, set_password};

const UAI: &str = "0840042X";

/// A workspace of lycée [`UAI`] whose `[state]` is `url` (with `extra` lines), the password
/// a secret.
fn workspace(url: &str, extra: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("site.toml"),
        format!(
            "[lycee]\nuai = \"{UAI}\"\n\n[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword = {{ secret = \"state-db\" }}\n{extra}"
        ),
    )
    .expect("site.toml");
    set_password(ws.path());
    ws
}

/// The workspace's copy of the cluster's CA, named by `ca = "region-ca.pem"`.
fn with_ca(cluster: &Cluster, ws: &Path) -> &'static str {
    std::fs::copy(cluster.ca(), ws.join("region-ca.pem")).expect("copy the CA");
    "ca = \"region-ca.pem\"\n"
}

/// What the server says of the `parc` role's sessions: `ssl|version` per session.
fn parc_sessions(cluster: &Cluster) -> String {
    cluster.psql(
        "postgres",
        "SELECT s.ssl || '|' || coalesce(s.version, '') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'parc'",
    )
}

#[test]
fn the_state_database_is_reached_over_verified_tls_only() {
    let cluster = Cluster::start_tls();
    cluster.create_role("parc", PASSWORD);
    cluster.create_db("parc", "parc");
    let port = cluster.port();
    let ip_url = format!("postgresql://parc@127.0.0.1:{port}/parc");

    // (1) The CA given: `sslmode=require` works, and the server sees the session encrypted.
    let url = format!("{ip_url}?sslmode=require");
    let ws = workspace(&url, "");
    let extra = with_ca(&cluster, ws.path());
    append(ws.path(), extra);
    let (code, out, err) = parc_in(ws.path(), &["runs"]);
    assert_eq!(code, 0, "parc runs over TLS: {out}{err}");
    let journal = Journal::open_workspace(ws.path()).expect("the journal over TLS");
    let seen = parc_sessions(&cluster);
    assert!(
        seen.starts_with("true|TLSv1."),
        "the server's view: {seen:?}"
    );
    drop(journal);

    // No sslmode on a TCP URL: TLS is required, verified the same way.
    let ws_default = workspace(&ip_url, "");
    let extra = with_ca(&cluster, ws_default.path());
    append(ws_default.path(), extra);
    let (code, out, err) = parc_in(ws_default.path(), &["runs"]);
    assert_eq!(code, 0, "parc runs, TLS by default: {out}{err}");

    // The name in the URL is the one verified: `localhost` is in the certificate too.
    let ws_name = workspace(
        &format!("postgresql://parc@localhost:{port}/parc?hostaddr=127.0.0.1"),
        "",
    );
    let extra = with_ca(&cluster, ws_name.path());
    append(ws_name.path(), extra);
    let (code, out, err) = parc_in(ws_name.path(), &["runs"]);
    assert_eq!(code, 0, "parc runs to localhost: {out}{err}");

    // (2) Without `ca`, the test CA is an unknown issuer: refused, exit 1.
    let ws_no_ca = workspace(&url, "");
    let (code, _, err) = parc_in(ws_no_ca.path(), &["runs"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to the journal database {url}"))
            && err.contains("certificate")
            && err.contains("UnknownIssuer")
            && err.contains("set `ca` in [state]"),
        "{err}"
    );

    // (3) A host name the certificate does not carry (the same server, reached as
    // db.region.example): refused, exit 1, even with the right CA.
    let wrong = format!("postgresql://parc@db.region.example:{port}/parc?hostaddr=127.0.0.1");
    let ws_wrong = workspace(&wrong, "");
    let extra = with_ca(&cluster, ws_wrong.path());
    append(ws_wrong.path(), extra);
    let (code, _, err) = parc_in(ws_wrong.path(), &["runs"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to the journal database {wrong}"))
            && err.contains("certificate not valid for name \"db.region.example\"")
            && err.contains("does not name the host of `url`"),
        "{err}"
    );

    // `sslmode=disable` is honoured: no TLS, which this server rejects.
    let plain = format!("{ip_url}?sslmode=disable");
    let ws_plain = workspace(&plain, "");
    let (code, _, err) = parc_in(ws_plain.path(), &["runs"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to the journal database {plain}"))
            && err.contains("no encryption"),
        "{err}"
    );

    // The unix socket needs no TLS: `sslmode=require` is ignored there, as libpq does.
    let ws_socket = workspace(
        &format!("{}&sslmode=require", cluster.url("parc", "parc")),
        "",
    );
    let (code, out, err) = parc_in(ws_socket.path(), &["runs"]);
    assert_eq!(code, 0, "parc runs over the unix socket: {out}{err}");
}

fn append(ws: &Path, extra: &str) {
    let site = ws.join("site.toml");
    let text = std::fs::read_to_string(&site).expect("site.toml");
    std::fs::write(&site, format!("{text}{extra}")).expect("site.toml");
}

#[test]
fn a_bad_ca_file_or_an_sslmode_parc_does_not_read_is_a_site_toml_mistake_at_its_line() {
    // No server is needed: these are found before connecting.
    let url = "postgresql://parc@127.0.0.1:1/parc?sslmode=require";
    // site.toml's `ca` is on line 8.
    let missing = workspace(url, "ca = \"certs/region-ca.pem\"\n");
    let (code, _, err) = parc_in(missing.path(), &["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("site.toml:8:")
            && err.contains("cannot read")
            && err.contains("region-ca.pem"),
        "{err}"
    );
    let not_pem = workspace(url, "ca = \"region-ca.pem\"\n");
    std::fs::write(not_pem.path().join("region-ca.pem"), "not a certificate\n").unwrap();
    let (code, _, err) = parc_in(not_pem.path(), &["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("site.toml:8:") && err.contains("holds no PEM certificate"),
        "{err}"
    );
    let verify = workspace("postgresql://parc@127.0.0.1:1/parc?sslmode=verify-full", "");
    let (code, _, err) = parc_in(verify.path(), &["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("site.toml:6:")
            && err.contains("sslmode=verify-full")
            && err.contains("verifies the server's certificate"),
        "{err}"
    );
}
