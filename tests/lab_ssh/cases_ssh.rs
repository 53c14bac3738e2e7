//! Cases of the SSH adapter against the lab's real sshd: pinned host keys (unknown and
//! changed keys refused with their fingerprint, the accept path), exec (streams, status,
//! stdin, timeout, cancellation), upload/download with sha256, bounded concurrency.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::adapters::ssh::{SshConnector, SshError, SshOptions, known_hosts, trust_host};
use parc::ports::{ExecRequest, OutputStream, PortErrorKind, RemoteHost, SecretBytes};
use russh::keys::PublicKey;
use tokio_util::sync::CancellationToken;

use crate::{Case, Ctx, Net};

/// Output chunks as the sink received them.
type Chunks = Vec<(OutputStream, Vec<u8>)>;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unknown_host_key_is_refused_with_its_fingerprint",
            net: Net::Lab,
            run: unknown_host_key,
        },
        Case {
            name: "changed_host_key_is_refused",
            net: Net::Lab,
            run: changed_host_key,
        },
        Case {
            name: "parc_hosts_trust_needs_the_right_fingerprint",
            net: Net::Host,
            run: cli_trust,
        },
        Case {
            name: "exec_streams_output_status_and_stdin",
            net: Net::Lab,
            run: exec_streams,
        },
        Case {
            name: "exec_timeout_and_cancellation",
            net: Net::Lab,
            run: exec_timeout_cancel,
        },
        Case {
            name: "upload_and_download_checked_by_sha256",
            net: Net::Lab,
            run: upload_download,
        },
        Case {
            name: "connections_are_bounded_and_only_connect_is_retried",
            net: Net::Lab,
            run: bounded,
        },
    ]
}

fn fingerprint_of(ctx: &Ctx, name: &str) -> String {
    let line = ctx.lab.host_public_key(name).unwrap();
    known_hosts::fingerprint(&PublicKey::from_openssh(line.trim()).unwrap())
}

fn req(command: &str, timeout: Duration) -> ExecRequest {
    ExecRequest {
        command: command.into(),
        stdin: None,
        timeout,
        cancel: CancellationToken::new(),
    }
}

fn unknown_host_key(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let fresh = tempfile::tempdir().unwrap();
        let state = fresh.path().join(".parc");
        let conn = SshConnector::open(&state, SshOptions::default()).unwrap();
        ctx.lab.authorize_key(&conn.public_key_line()).unwrap();
        let p01 = ctx.lab.address("b204-p01").unwrap();
        let fp = fingerprint_of(&ctx, "b204-p01");

        let err = conn
            .connect_host(&p01)
            .await
            .err()
            .expect("an unpinned host must be refused");
        assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&fp),
            "the refusal shows the offered fingerprint {fp}: {msg}"
        );
        assert!(
            msg.contains(&format!("parc hosts trust b204-p01 --fingerprint {fp}")),
            "the refusal says how to accept: {msg}"
        );
        assert_eq!(
            parc::ports::PortError::from(err).kind,
            PortErrorKind::Refused
        );
        assert!(!conn.known_hosts().exists(), "nothing was pinned silently");

        // The accept path: a wrong expected fingerprint pins nothing; the right one pins.
        let wrong = fingerprint_of(&ctx, "b204-p02");
        let e = trust_host(
            conn.known_hosts(),
            &p01,
            Some(&wrong),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, SshError::FingerprintMismatch { .. }), "{e}");
        assert!(!conn.known_hosts().exists());
        let pinned = trust_host(conn.known_hosts(), &p01, Some(&fp), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(pinned, fp);
        let host = conn.connect_host(&p01).await.unwrap();
        let out = host
            .exec(req("hostname", Duration::from_secs(10)), &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "b204-p01");
    }
    .boxed()
}

fn changed_host_key(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let fresh = tempfile::tempdir().unwrap();
        let state = fresh.path().join(".parc");
        let conn = SshConnector::open(&state, SshOptions::default()).unwrap();
        ctx.lab.authorize_key(&conn.public_key_line()).unwrap();
        let p02 = ctx.lab.address("b204-p02").unwrap();
        // Pin another machine's key for p02: what a re-installed or impersonated host looks like.
        let other =
            PublicKey::from_openssh(ctx.lab.host_public_key("b204-p03").unwrap().trim()).unwrap();
        known_hosts::pin(conn.known_hosts(), &p02.address, 22, &other).unwrap();
        let err = conn
            .connect_host(&p02)
            .await
            .err()
            .expect("a changed key must be refused");
        let msg = err.to_string();
        assert!(matches!(err, SshError::ChangedHostKey { .. }), "{msg}");
        assert!(
            msg.contains(&fingerprint_of(&ctx, "b204-p03")),
            "names the pinned key: {msg}"
        );
        assert!(
            msg.contains(&fingerprint_of(&ctx, "b204-p02")),
            "names the offered key: {msg}"
        );
        // Refusals are not retried: still exactly one line pinned, still the old key.
        let still = known_hosts::lookup(conn.known_hosts(), &p02.address, 22)
            .unwrap()
            .unwrap();
        assert_eq!(
            known_hosts::fingerprint(&still),
            fingerprint_of(&ctx, "b204-p03")
        );
    }
    .boxed()
}

fn exec_streams(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let host = ctx.connect("b204-master").await;
        let seen: Arc<Mutex<Chunks>> = Arc::default();
        let s2 = seen.clone();
        let out = host
            .exec(
                req("echo out; echo err >&2; exit 3", Duration::from_secs(10)),
                &mut move |stream, data| s2.lock().unwrap().push((stream, data.to_vec())),
            )
            .await
            .unwrap();
        assert_eq!(out.exit_status, Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        {
            let seen = seen.lock().unwrap();
            assert!(
                seen.iter()
                    .any(|(s, d)| *s == OutputStream::Stdout && d == b"out\n")
            );
            assert!(
                seen.iter()
                    .any(|(s, d)| *s == OutputStream::Stderr && d == b"err\n")
            );
        }

        let mut r = req("wc -c; cat", Duration::from_secs(10));
        r.stdin = Some(SecretBytes(b"abc".to_vec()));
        let out = host.exec(r, &mut |_, _| {}).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    }
    .boxed()
}

fn exec_timeout_cancel(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let host = ctx.connect("b204-master").await;
        let err = host
            .exec(req("sleep 31", Ctx::short_timeout()), &mut |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Timeout, "{err}");
        assert!(
            err.message.contains("sleep 31") && err.message.contains("b204-master"),
            "{err}"
        );

        let r = req("sleep 32", Duration::from_secs(60));
        let token = r.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel();
        });
        let err = host.exec(r, &mut |_, _| {}).await.unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Cancelled, "{err}");

        // Both commands are gone from the host, not left running.
        let (_, ps) = {
            let out = host
                .exec(req("ps -eo args", Duration::from_secs(10)), &mut |_, _| {})
                .await
                .unwrap();
            (
                out.exit_status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        assert!(!ps.contains("sleep 31") && !ps.contains("sleep 32"), "{ps}");
        // The session is still usable after a killed command.
        let out = host
            .exec(
                req("echo still-here", Duration::from_secs(10)),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, b"still-here\n");
    }
    .boxed()
}

fn upload_download(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let host = ctx.connect("b204-p03").await;
        let local = ctx.files.join("blob.bin");
        let mut data = vec![0u8; 3 * 1024 * 1024 + 17];
        getrandom::fill(&mut data).unwrap();
        std::fs::write(&local, &data).unwrap();
        let want = ctx.sha(&local);
        let got = host
            .upload(&local, "/var/tmp/parc test/blob.bin")
            .await
            .unwrap();
        assert_eq!(got, want);
        let out = host
            .exec(
                req(
                    "sha256sum '/var/tmp/parc test/blob.bin'",
                    Duration::from_secs(10),
                ),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
        let back = ctx.files.join("blob.back");
        let got = host
            .download("/var/tmp/parc test/blob.bin", &back)
            .await
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(std::fs::read(&back).unwrap(), data);
        let missing = host
            .download("/nonexistent", &ctx.files.join("x"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind, PortErrorKind::NotFound, "{missing}");
    }
    .boxed()
}

fn bounded(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let opts = SshOptions {
            max_hosts: 2,
            ..SshOptions::default()
        };
        let conn = SshConnector::open(&ctx.state, opts).unwrap();
        let ws = ctx.workstations();
        let a = conn
            .connect_host(&ctx.lab.address(&ws[0]).unwrap())
            .await
            .unwrap();
        let _b = conn
            .connect_host(&ctx.lab.address(&ws[1]).unwrap())
            .await
            .unwrap();
        let third = ctx.lab.address(&ws[2]).unwrap();
        let waited =
            tokio::time::timeout(Duration::from_millis(800), conn.connect_host(&third)).await;
        assert!(
            waited.is_err(),
            "a third host must wait while two are connected"
        );
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(10), conn.connect_host(&third)).await;
        assert!(
            matches!(c, Ok(Ok(_))),
            "the third host connects once a slot is free"
        );

        // Nothing listens on port 2222: unreachable, retried, then reported as such.
        let opts = SshOptions {
            connect_attempts: 3,
            retry_delay: Duration::from_millis(100),
            ..SshOptions::default()
        };
        let conn = SshConnector::open(&ctx.state, opts).unwrap();
        let mut closed = ctx.lab.address(&ws[0]).unwrap();
        closed.port = 2222;
        let t0 = std::time::Instant::now();
        let err = conn.connect_host(&closed).await.err().unwrap();
        assert!(matches!(err, SshError::Connect { .. }), "{err}");
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "two pauses (100 + 200 ms) between three attempts"
        );
        assert_eq!(
            parc::ports::PortError::from(err).kind,
            PortErrorKind::Unreachable
        );
    }
    .boxed()
}

/// `parc hosts show-key | trust` as a technician runs them (in the server namespace).
pub fn cli_trust(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let ws = tempfile::tempdir().unwrap();
        let parc = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ctx.lab.server_netns(),
                    env!("CARGO_BIN_EXE_parc"),
                    "hosts",
                ])
                .args(args)
                .args(["--address", "10.77.0.12", "-w"])
                .arg(ws.path())
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let fp = fingerprint_of(&ctx, "b204-p02");
        let (code, out, _) = parc(&["show-key", "b204-p02"]);
        assert_eq!(code, Some(0));
        assert!(
            out.contains(&fp) && out.contains("parc hosts trust b204-p02 --fingerprint"),
            "{out}"
        );
        let kh = ws.path().join(".parc/known_hosts");
        assert!(!kh.exists(), "show-key pins nothing");

        let wrong = fingerprint_of(&ctx, "b204-p03");
        let (code, _, err) = parc(&["trust", "b204-p02", "--fingerprint", &wrong]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(&fp) && err.contains("hint: "),
            "{err}"
        );
        assert!(!kh.exists());

        let (code, out, err) = parc(&["trust", "b204-p02", "--fingerprint", &fp]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(&fp), "{out}");
        let pinned = known_hosts::lookup(&kh, "10.77.0.12", 22).unwrap().unwrap();
        assert_eq!(known_hosts::fingerprint(&pinned), fp);
    }
    .boxed()
}
