//! Cases of the remote steps against the real lab: collect (HTTP on loopback, local file,
//! Debian package from the configured mirror), install on the namespace master, technical
//! tests, join of three workstations into the room's OU (password never in any argv), verify
//! green, then one broken thing per case and its precise finding.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::adapters::ssh::{SshConnector, SshOptions};
use parc::ports::HostAddress;
use parc::ports::{Directory, ExecRequest, NullReporter, RemoteHost, SecretBytes};
use parc::steps::StepError;
use parc::steps::collect::{Artifact, CollectError, Collector, Source};
use parc::steps::fleet::{RoomJoin, join_room, verify_room};
use parc::steps::install::{InstallOutcome, OsFamily, install};
use parc::steps::join::{JoinRequest, ensure_room_ou, join_linux};
use parc::steps::report::{ConformityRecord, HostVerdict, ParcRun, write_verify_report};
use parc::steps::techtest::{TechTest, run_tests};
use parc::steps::verify::{Expected, Finding, IMAGE_MARKER_PATH, verify_host};

use crate::{Case, Ctx, Net};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "collect_http_local_and_debian_into_the_cache",
            net: Net::Host,
            run: collect_all,
        },
        Case {
            name: "collect_refuses_a_wrong_digest",
            net: Net::Host,
            run: collect_wrong_digest,
        },
        Case {
            name: "install_on_the_master_is_isolated_and_idempotent",
            net: Net::Lab,
            run: install_master,
        },
        Case {
            name: "technical_tests_capture_output",
            net: Net::Lab,
            run: technical_tests,
        },
        Case {
            name: "join_three_workstations_password_never_in_argv",
            net: Net::Lab,
            run: join_three,
        },
        Case {
            name: "verify_green_and_french_report",
            net: Net::Lab,
            run: verify_green,
        },
        Case {
            name: "verify_finds_version_drift_on_one_host",
            net: Net::Lab,
            run: verify_drift,
        },
        Case {
            name: "verify_finds_computer_moved_out_of_the_ou",
            net: Net::Lab,
            run: verify_moved,
        },
        Case {
            name: "join_with_a_wrong_password_is_refused",
            net: Net::Lab,
            run: join_wrong_password,
        },
        Case {
            name: "verify_finds_missing_image_and_broken_trust",
            net: Net::Lab,
            run: verify_marker_and_trust,
        },
    ]
}

/// Serves the fixtures over HTTP on loopback, counting requests.
async fn http_server(ctx: &Ctx) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let tarball = std::fs::read(&ctx.tarball).unwrap();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/logiciels/scratch-lab-3.29.tar.gz",
        axum::routing::get(move || {
            let h = h.clone();
            let body = tarball.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                body
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}/logiciels/scratch-lab-3.29.tar.gz"),
        hits,
    )
}

fn artifacts(ctx: &Ctx, url: &str) -> Vec<Artifact> {
    vec![
        Artifact {
            product: "Scratch (labo)".into(),
            source: Source::Http { url: url.into() },
            sha256: ctx.sha(&ctx.tarball),
        },
        Artifact {
            product: "Outil de labo".into(),
            source: Source::Local {
                path: ctx.deb_v1.clone(),
            },
            sha256: ctx.sha(&ctx.deb_v1),
        },
        Artifact {
            product: "GNU Hello".into(),
            source: Source::Debian {
                package: "hello".into(),
                version: Some(ctx.hello_version.clone()),
            },
            sha256: ctx.hello_sha.clone(),
        },
    ]
}

fn collect_all(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let (url, hits) = http_server(&ctx).await;
        let collector = Collector::new(ctx.cache.clone());
        for a in artifacts(&ctx, &url) {
            let c = collector.collect(&a, &NullReporter).await.unwrap();
            assert!(c.fetched, "{} was fetched", a.product);
            assert_eq!(
                ctx.sha(&c.path),
                a.sha256,
                "{} is in the cache under its digest",
                a.product
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A Debian package without a sha256 in the recipe is checked against the signed apt
        // index, and lands in the cache under that digest.
        let from_index = Artifact {
            product: "GNU Hello (digest from the apt index)".into(),
            source: Source::Debian {
                package: "hello".into(),
                version: Some(ctx.hello_version.clone()),
            },
            sha256: String::new(),
        };
        let c = collector.collect(&from_index, &NullReporter).await.unwrap();
        assert_eq!(c.sha256, ctx.hello_sha);
        assert_eq!(ctx.sha(&c.path), ctx.hello_sha);
        for a in artifacts(&ctx, &url) {
            let c = collector.collect(&a, &NullReporter).await.unwrap();
            assert!(
                !c.fetched,
                "{} comes from the cache the second time",
                a.product
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "no second HTTP request");
    }
    .boxed()
}

fn collect_wrong_digest(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let expected = ctx.sha(&ctx.deb_v1);
        // The recipe announces v1.0's digest but the file on disk is v0.9.
        let a = Artifact {
            product: "Outil de labo".into(),
            source: Source::Local {
                path: ctx.deb_v09.clone(),
            },
            sha256: expected.clone(),
        };
        let before: BTreeSet<_> = cache_entries(&ctx);
        let fresh = Collector::new(parc::steps::cache::ContentCache::new(
            ctx.workspace.join("cache-wrong"),
        ));
        let err = fresh.collect(&a, &NullReporter).await.unwrap_err();
        let actual = ctx.sha(&ctx.deb_v09);
        assert!(matches!(err, CollectError::Digest { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("Outil de labo") && msg.contains(&expected) && msg.contains(&actual),
            "{msg}"
        );
        assert!(
            fresh.cache().get(&expected).is_none() && fresh.cache().get(&actual).is_none(),
            "nothing unverified cached"
        );
        assert_eq!(before, cache_entries(&ctx));
        // A digest that is not a sha256 is refused before anything is fetched.
        let bad = Artifact {
            sha256: "deadbeef".into(),
            ..a
        };
        assert!(matches!(
            fresh.collect(&bad, &NullReporter).await,
            Err(CollectError::BadDigest { .. })
        ));
    }
    .boxed()
}

fn cache_entries(ctx: &Ctx) -> BTreeSet<String> {
    std::fs::read_dir(ctx.cache.root().join("sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn cached(ctx: &Ctx, a: &Artifact) -> std::path::PathBuf {
    ctx.cache
        .get(&a.sha256)
        .unwrap_or_else(|| panic!("{} is not in the cache (collect first)", a.product))
}

async fn sh(host: &dyn RemoteHost, cmd: &str) -> (Option<u32>, String) {
    let req = ExecRequest {
        command: cmd.into(),
        stdin: None,
        timeout: Duration::from_secs(120),
        cancel: Default::default(),
    };
    let out = host.exec(req, &mut |_, _| {}).await.unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.exit_status, text.trim().to_owned())
}

fn install_master(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let master = ctx.connect(&ctx.master()).await;
        let arts = artifacts(&ctx, "http://unused");
        let plan = [
            (ctx.scratch_spec(), cached(&ctx, &arts[0]).await),
            (ctx.tool_spec("1.0"), cached(&ctx, &arts[1]).await),
            (ctx.hello_spec(), cached(&ctx, &arts[2]).await),
        ];
        for (spec, file) in &plan {
            let o = install(&master, OsFamily::Linux, spec, file).await.unwrap();
            assert_eq!(
                o,
                InstallOutcome::Installed {
                    version: spec.version.clone()
                },
                "{}",
                spec.product
            );
        }
        for (spec, file) in &plan {
            let o = install(&master, OsFamily::Linux, spec, file).await.unwrap();
            assert_eq!(
                o,
                InstallOutcome::AlreadyInstalled {
                    version: spec.version.clone()
                },
                "{}",
                spec.product
            );
        }
        // The master's dpkg changed, the host's did not, and neither did another workstation.
        let host_dpkg = std::process::Command::new("dpkg-query")
            .args(["-W", "parc-lab-tool"])
            .output()
            .unwrap();
        assert!(
            !host_dpkg.status.success(),
            "the host's dpkg must not know parc-lab-tool"
        );
        let upper = ctx
            .lab
            .dir()
            .join("hosts")
            .join(ctx.master())
            .join("upper/usr/share/parc-lab-tool/VERSION");
        assert_eq!(
            std::fs::read_to_string(upper).unwrap(),
            "1.0",
            "the file landed in the master's overlay"
        );
        let p01 = ctx.connect("b204-p01").await;
        assert_eq!(sh(&p01, "dpkg-query -W parc-lab-tool").await.0, Some(1));
    }
    .boxed()
}

fn technical_tests(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let master = ctx.connect(&ctx.master()).await;
        let t = |name: &str, command: &str, secs| TechTest {
            name: name.into(),
            command: command.into(),
            timeout: Duration::from_secs(secs),
        };
        let tests = [
            t("hello répond", "hello", 10),
            t("outil de scratch", "/opt/scratch-lab/bin/outil", 10),
            t("fichier absent", "ls /opt/absent", 10),
            t("trop long", "sleep 30", 1),
        ];
        let r = run_tests(&master, &tests).await.unwrap();
        assert!(
            r[0].passed && r[0].output.contains("Hello, world!"),
            "{:?}",
            r[0]
        );
        assert!(
            r[1].passed && r[1].output.contains("outil 3.29 ok"),
            "{:?}",
            r[1]
        );
        assert!(
            !r[2].passed && r[2].exit_status == Some(2) && r[2].output.contains("/opt/absent"),
            "{:?}",
            r[2]
        );
        assert!(
            !r[3].passed && r[3].exit_status.is_none() && r[3].output.contains("did not finish"),
            "{:?}",
            r[3]
        );
    }
    .boxed()
}

fn join_request(ctx: &Ctx, host: &str) -> JoinRequest {
    JoinRequest::for_host(
        host,
        &ctx.room,
        &ctx.base_ou,
        ctx.lab.dns_domain(),
        "Administrator",
    )
}

/// Samples every process's argv (and environment) until stopped; returns
/// (processes sampled, whether an adcli process was seen, argvs holding the secret).
/// Samples every process's argv and environment until `stop`: how many it read, whether one
/// argv contained `marker` (the tool was caught running), and the argvs holding a secret.
pub fn sample_for_secret(
    secrets: Vec<String>,
    marker: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, bool, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut sampled, mut saw_adcli, mut leaks) = (0, false, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            for p in std::fs::read_dir("/proc").unwrap().flatten() {
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
                if cmdline.is_empty() {
                    continue;
                }
                sampled += 1;
                let argv = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                saw_adcli |= argv.contains(marker);
                let environ = String::from_utf8_lossy(&environ);
                if secrets
                    .iter()
                    .any(|s| argv.contains(s.as_str()) || environ.contains(s.as_str()))
                {
                    leaks.push(argv);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (sampled, saw_adcli, leaks)
    })
}

fn join_three(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dir = ctx.directory().await;
        let ou = parc::steps::join::room_ou(&ctx.room, &ctx.base_ou);
        // Neither the room's OU nor its parent exist yet: join_room creates them.
        assert!(dir.locate_computer("b204-p01").await.unwrap().is_none());

        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_for_secret(vec![ctx.password_text()], "adcli join", stop.clone());
        // The room's three workstations, two at a time (bounded concurrency).
        let conn = ctx.connector();
        let addrs: Vec<HostAddress> = ctx
            .workstations()
            .iter()
            .map(|n| ctx.lab.address(n).unwrap())
            .collect();
        let room = RoomJoin {
            room: ctx.room.clone(),
            base_ou: ctx.base_ou.clone(),
            domain: ctx.lab.dns_domain().into(),
            account: "Administrator".into(),
        };
        let joins = join_room(&conn, &dir, &addrs, &room, &ctx.password, 2)
            .await
            .unwrap();
        // Re-join: the existing account is reset, not duplicated.
        let first = ctx.connect(&joins[0].0).await;
        let rejoin = join_linux(&first, &join_request(&ctx, &joins[0].0), &ctx.password).await;
        stop.store(true, Ordering::SeqCst);
        let (sampled, saw_adcli, leaks) = sampler.join().unwrap();

        assert_eq!(joins.len(), 3);
        for (name, j) in &joins {
            let j = j.as_ref().unwrap_or_else(|e| panic!("joining {name}: {e}"));
            assert!(!j.details.contains(&ctx.password_text()));
        }
        rejoin.unwrap();
        assert!(
            saw_adcli,
            "the sampler ran during the joins ({sampled} argv sampled)"
        );
        assert!(
            leaks.is_empty(),
            "the join password appeared in argv/environ: {leaks:?}"
        );
        ensure_room_ou(&dir, &ou).await.unwrap(); // already there: nothing to do
        for (name, _) in &joins {
            let loc = dir
                .locate_computer(name)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name} has no account"));
            let cn = parc::steps::join::computer_name(name);
            assert_eq!(
                loc.dn.to_lowercase(),
                format!("cn={cn},{ou}").to_lowercase()
            );
        }
    }
    .boxed()
}

/// Deploy stand-in: the room's product and the image marker on each workstation.
async fn deploy(ctx: &Ctx, host: &dyn RemoteHost) {
    let spec = ctx.tool_spec("1.0");
    install(host, OsFamily::Linux, &spec, &ctx.deb_v1)
        .await
        .unwrap();
    let (st, out) = sh(
        host,
        &format!(
            "mkdir -p /etc/parc && echo '{}' > {IMAGE_MARKER_PATH}",
            ctx.image_id
        ),
    )
    .await;
    assert_eq!(st, Some(0), "{out}");
}

fn expected(ctx: &Ctx, host: &str) -> Expected {
    Expected {
        hostname: host.into(),
        image_id: ctx.image_id.clone(),
        products: vec![ctx.tool_spec("1.0")],
        domain: ctx.lab.dns_domain().into(),
        ou_dn: parc::steps::join::room_ou(&ctx.room, &ctx.base_ou),
        os: OsFamily::Linux,
    }
}

async fn verify_all(ctx: &Ctx) -> Vec<(String, Result<(), Vec<Finding>>)> {
    let dir = ctx.directory().await;
    let hosts: Vec<HostAddress> = ctx
        .workstations()
        .iter()
        .map(|n| ctx.lab.address(n).unwrap())
        .collect();
    verify_room(&ctx.connector(), &dir, &hosts, |h| expected(ctx, h), 3)
        .await
        .into_iter()
        .map(|v| {
            assert!(v.error.is_none(), "{v:?}");
            let r = if v.findings.is_empty() {
                Ok(())
            } else {
                Err(v.findings)
            };
            (v.host, r)
        })
        .collect()
}

fn verify_green(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        for name in ctx.workstations() {
            deploy(&ctx, &ctx.connect(&name).await).await;
        }
        let results = verify_all(&ctx).await;
        for (name, r) in &results {
            assert_eq!(r, &Ok(()), "{name} should be compliant");
        }
        // The report of the room, with a fourth workstation that does not answer.
        let dir = ctx.directory().await;
        let mut hosts: Vec<HostAddress> = ctx
            .workstations()
            .iter()
            .map(|n| ctx.lab.address(n).unwrap())
            .collect();
        let mut silent = hosts[2].clone();
        silent.hostname = "b204-p04".into();
        silent.port = 2222;
        hosts.push(silent);
        let opts = SshOptions {
            connect_attempts: 1,
            ..SshOptions::default()
        };
        let conn = SshConnector::open(&ctx.state, opts).unwrap();
        let verdicts = verify_room(&conn, &dir, &hosts, |h| expected(&ctx, h), 4).await;
        assert!(
            verdicts[..3].iter().all(HostVerdict::compliant),
            "{verdicts:?}"
        );
        assert_eq!(verdicts[3].host, "b204-p04");
        let error = verdicts[3].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("connecting on b204-p04: connecting to b204-p04"),
            "{error}"
        );
        let record = ConformityRecord::new(
            &ctx.room,
            "2026-11-22T15:30:00+01:00",
            ParcRun::this("tech@lab"),
            verdicts,
        );
        let files = write_verify_report(&ctx.workspace, &record, "20261122T153000").unwrap();
        let html = std::fs::read_to_string(&files.html).unwrap();
        assert!(html.contains("Postes conformes : 3 sur 4"), "{html}");
        assert!(
            html.contains("<td>b204-p04</td><td class=\"ko\">Vérification impossible</td>"),
            "{html}"
        );
        let json = std::fs::read_to_string(&files.json).unwrap();
        assert!(json.contains("\"compliant\": false"), "{json}");
        assert!(
            json.contains("\"status\": \"verification-impossible\""),
            "{json}"
        );
        assert_no_secret_under(&ctx, &ctx.workspace);
    }
    .boxed()
}

fn assert_no_secret_under(ctx: &Ctx, dir: &std::path::Path) {
    let pw = ctx.password_text();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&pw),
            "the password is in {}",
            entry.display()
        );
    }
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

fn verify_drift(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let p02 = ctx.connect("b204-p02").await;
        p02.upload(&ctx.deb_v09, "/var/tmp/tool-0.9.deb")
            .await
            .unwrap();
        let (st, out) = sh(&p02, "dpkg -i --force-downgrade /var/tmp/tool-0.9.deb").await;
        assert_eq!(st, Some(0), "{out}");
        let results = verify_all(&ctx).await;
        for (name, r) in &results {
            if name == "b204-p02" {
                assert_eq!(
                    r,
                    &Err(vec![Finding::ProductVersion {
                        product: "Outil de labo".into(),
                        expected: "1.0".into(),
                        actual: Some("0.9".into()),
                    }])
                );
            } else {
                assert_eq!(r, &Ok(()), "{name}");
            }
        }
        let verdicts: Vec<HostVerdict> = results
            .into_iter()
            .map(|(host, r)| HostVerdict {
                host,
                findings: r.err().unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let record = ConformityRecord::new(
            &ctx.room,
            "2026-11-22T15:40:00+01:00",
            ParcRun::this("tech@lab"),
            verdicts,
        );
        let files = write_verify_report(&ctx.workspace, &record, "20261122T154000").unwrap();
        let html = std::fs::read_to_string(&files.html).unwrap();
        assert!(
            html.contains("logiciel Outil de labo en version 0.9 au lieu de 1.0"),
            "{html}"
        );
        // Put it back: install brings the recipe's version again.
        let o = install(&p02, OsFamily::Linux, &ctx.tool_spec("1.0"), &ctx.deb_v1)
            .await
            .unwrap();
        assert_eq!(
            o,
            InstallOutcome::Installed {
                version: "1.0".into()
            }
        );
    }
    .boxed()
}

fn verify_moved(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dc = ctx
            .connector()
            .connect_host(&ctx.lab.dc_address())
            .await
            .unwrap();
        let elsewhere = format!("CN=Computers,{}", ctx.lab.base_dn());
        let (st, out) = sh(
            &dc,
            &format!(
                "samba-tool computer move B204-P03 '{elsewhere}' -H '{}'",
                ctx.lab.dc_sam()
            ),
        )
        .await;
        assert_eq!(st, Some(0), "{out}");
        let results = verify_all(&ctx).await;
        for (name, r) in &results {
            if name == "b204-p03" {
                assert_eq!(
                    r,
                    &Err(vec![Finding::ComputerOutsideOu {
                        computer: "B204-P03".into(),
                        expected_ou: parc::steps::join::room_ou(&ctx.room, &ctx.base_ou),
                        actual_dn: format!("CN=B204-P03,{elsewhere}"),
                    }])
                );
            } else {
                assert_eq!(r, &Ok(()), "{name}");
            }
        }
    }
    .boxed()
}

fn join_wrong_password(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let p01 = ctx.connect("b204-p01").await;
        let wrong = SecretBytes(b"Mauvais-Mot2Passe!".to_vec());
        let err = join_linux(&p01, &join_request(&ctx, "b204-p01"), &wrong)
            .await
            .unwrap_err();
        assert!(matches!(err, StepError::JoinCredentials { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("b204-p01") && msg.contains("Administrator"),
            "{msg}"
        );
        assert!(
            !msg.contains("Mauvais-Mot2Passe!") && !msg.contains(&ctx.password_text()),
            "{msg}"
        );
        // The machine's existing join is unharmed.
        let (st, out) = sh(
            &p01,
            &format!("adcli testjoin --domain={}", ctx.lab.dns_domain()),
        )
        .await;
        assert_eq!(st, Some(0), "{out}");
    }
    .boxed()
}

fn verify_marker_and_trust(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let p01 = ctx.connect("b204-p01").await;
        let (st, out) = sh(&p01, &format!("rm -f {IMAGE_MARKER_PATH} /etc/krb5.keytab")).await;
        assert_eq!(st, Some(0), "{out}");
        let dir = ctx.directory().await;
        let findings = verify_host(&p01, &dir, &expected(&ctx, "b204-p01"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(
            findings[0],
            Finding::ImageMarker {
                expected: ctx.image_id.clone(),
                actual: None
            }
        );
        assert!(
            matches!(&findings[1], Finding::DomainTrust { detail } if detail.contains("keytab")),
            "{findings:?}"
        );
        assert!(
            findings[1]
                .message_fr()
                .starts_with("relation d'approbation avec le domaine rompue")
        );
    }
    .boxed()
}
