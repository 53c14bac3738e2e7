//! Cases about the lab itself: `up` is idempotent and reports what runs, nothing can leave
//! the lab's network, the host's files are untouched (its dpkg database, /etc, Samba's
//! folders), and the domain password is in no log of the lab.

use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::ports::{ExecRequest, RemoteHost};

use crate::{Case, Ctx, Net};

pub fn first() -> Vec<Case> {
    vec![
        Case {
            name: "lab_up_is_idempotent_and_reports_what_runs",
            net: Net::Host,
            run: up_again,
        },
        Case {
            name: "lab_network_is_isolated",
            net: Net::Lab,
            run: isolated,
        },
    ]
}

pub fn last() -> Vec<Case> {
    vec![
        Case {
            name: "host_files_are_untouched",
            net: Net::Host,
            run: host_untouched,
        },
        Case {
            name: "no_secret_in_the_lab_logs",
            net: Net::Host,
            run: no_secret_in_logs,
        },
    ]
}

/// What of the host the lab must never change.
pub fn host_snapshot() -> Vec<(String, String)> {
    let mut snap = Vec::new();
    for f in [
        "/var/lib/dpkg/status",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/etc/krb5.conf",
        "/etc/krb5.keytab",
        "/etc/samba/smb.conf",
    ] {
        let v = match std::fs::read(f) {
            Ok(b) => parc::steps::cache::sha256_of(std::path::Path::new(f))
                .unwrap_or(format!("{} bytes", b.len())),
            Err(_) => "absent".into(),
        };
        snap.push((f.to_owned(), v));
    }
    for d in ["/var/log/samba", "/run/samba", "/var/lib/samba/private"] {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        snap.push((d.to_owned(), names.join(",")));
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    snap.push((
        "hostname".into(),
        String::from_utf8_lossy(&buf)
            .trim_end_matches('\0')
            .to_owned(),
    ));
    snap
}

fn up_again(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let pid_file = ctx.lab.dir().join("dc/run/samba-fg.pid");
        let before = std::fs::read_to_string(&pid_file).unwrap();
        let out = std::process::Command::new(ctx.lab.repo().join("lab/up.sh"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stderr.contains("already up"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap(),
            before,
            "the DC was not restarted"
        );
        for h in ctx.lab.hosts() {
            let line = stdout
                .lines()
                .find(|l| l.contains(&h.name))
                .unwrap_or_else(|| panic!("{h:?} missing: {stdout}"));
            assert!(line.contains(&h.ip) && line.contains("ssh:up"), "{line}");
        }
        assert!(stdout.contains("ldap:up kerberos:up ssh:up"), "{stdout}");
    }
    .boxed()
}

fn isolated(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        // parc's endpoint (this thread is in the server namespace) has no way out...
        let e = tokio::net::TcpStream::connect("192.0.2.1:80")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NetworkUnreachable, "{e}");
        // ...and neither has a workstation.
        let p01 = ctx.connect("b204-p01").await;
        let req = ExecRequest {
            command: "ip route; bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>&1; echo rc=$?".into(),
            stdin: None,
            timeout: std::time::Duration::from_secs(10),
            cancel: Default::default(),
        };
        let out = p01.exec(req, &mut |_, _| {}).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("default"), "{text}");
        assert!(
            text.contains("Network is unreachable") && text.contains("rc=1"),
            "{text}"
        );
    }
    .boxed()
}

fn host_untouched(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        assert_eq!(host_snapshot(), ctx.host_before, "the lab changed the host");
    }
    .boxed()
}

fn no_secret_in_logs(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let pw = ctx.password_text();
        let dir = ctx.lab.dir();
        let mut scanned = 0;
        for f in crate::cases_steps::walk(&dir) {
            let rel = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
            let is_log = rel.ends_with(".log")
                || rel.ends_with(".out")
                || rel.contains("/log/")
                || rel.contains("log.");
            if !is_log {
                continue;
            }
            scanned += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned();
            assert!(
                !text.contains(&pw),
                "the domain password is in {}",
                f.display()
            );
        }
        assert!(scanned >= 5, "scanned {scanned} logs only");
    }
    .boxed()
}
