//! Cases of the LDAP directory adapter and the Kerberos probe against the lab's Samba AD DC,
//! reached only through its network address (LDAPS/StartTLS, Kerberos) with the domain
//! administrator's credentials: bind and clock, OUs created once also when three tasks race,
//! computer accounts created, found and deleted, and the refusals a technician meets (wrong
//! password, wrong address, a CA that is not the DC's), each with its own kind and message.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use parc::adapters::kerberos::{KerberosError, kinit_check};
use parc::adapters::ldap_directory::{LdapConfig, LdapDirectory, LdapTls};
use parc::ports::{Directory, PortErrorKind, SecretBytes};

use crate::{Case, Ctx, Net};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "directory_ldap_bind_and_server_time",
            net: Net::Lab,
            run: bind_and_time,
        },
        Case {
            name: "directory_ldap_ensure_ou_is_idempotent_and_concurrent",
            net: Net::Lab,
            run: ensure_ou,
        },
        Case {
            name: "directory_ldap_precreate_locate_delete_computers",
            net: Net::Lab,
            run: computers,
        },
        Case {
            name: "directory_ldap_ou_writable_for_the_administrator",
            net: Net::Lab,
            run: writable,
        },
        Case {
            name: "directory_ldap_refusals_wrong_password_address_ca",
            net: Net::Lab,
            run: refusals,
        },
        Case {
            name: "directory_kinit_check",
            net: Net::Lab,
            run: kinit,
        },
    ]
}

const TEST_OU: &str = "OU=ldaptest,OU=Salles";
const HOSTS: [&str; 3] = ["ldap-p01", "ldap-p02.lycee-mistral.test", "LDAP-P03"];

/// The CA Samba made for itself on first start (`<targetdir>/private/tls/ca.pem`).
fn dc_ca(ctx: &Ctx) -> PathBuf {
    PathBuf::from(ctx.lab.dc_sam())
        .parent()
        .expect("the sam.ldb path has a folder")
        .join("tls/ca.pem")
}

fn config(ctx: &Ctx, tls: LdapTls) -> LdapConfig {
    LdapConfig {
        host: ctx.lab.dc_address().address,
        port: None,
        tls,
        ca_pem: Some(dc_ca(ctx)),
        realm: ctx.lab.realm().to_owned(),
        account: "Administrator".into(),
        password: ctx.password.clone(),
        timeout: Duration::from_secs(3),
    }
}

async fn connect(ctx: &Ctx) -> LdapDirectory {
    LdapDirectory::connect(config(ctx, LdapTls::Ldaps))
        .await
        .unwrap_or_else(|e| panic!("binding to the lab's DC: {e}"))
}

fn test_ou(ctx: &Ctx) -> String {
    format!("{TEST_OU},{}", ctx.lab.base_dn())
}

fn bind_and_time(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        for tls in [LdapTls::Ldaps, LdapTls::StartTls] {
            let dir = LdapDirectory::connect(config(&ctx, tls))
                .await
                .unwrap_or_else(|e| panic!("binding with {tls:?}: {e}"));
            assert_eq!(dir.base_dn(), ctx.lab.base_dn());
            let t = dir.server_time().await.expect("the DC's currentTime");
            let skew = (t - chrono::Utc::now()).num_milliseconds().abs();
            assert!(skew < 5_000, "the DC's clock is {skew} ms off ({t})");
        }
    }
    .boxed()
}

/// `dn:` lines of `ldbsearch` on the DC's sam.ldb (the DC's own view, not LDAP).
fn ldbsearch(ctx: &Ctx, base: &str, filter: &str) -> String {
    let out = Command::new("ldbsearch")
        .args([
            "-H",
            ctx.lab.dc_sam(),
            "-s",
            "base",
            "-b",
            base,
            filter,
            "dn",
        ])
        .output()
        .expect("running ldbsearch");
    assert!(
        out.status.success(),
        "ldbsearch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ensure_ou(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dir = Arc::new(connect(&ctx).await);
        let ou = test_ou(&ctx);
        dir.ensure_ou(&ou).await.expect("first ensure_ou");
        dir.ensure_ou(&ou).await.expect("second ensure_ou (no-op)");
        // Three tasks race on a fresh OU (each with its own connection) and on the existing one.
        let fresh = format!("OU=ldaprace,{ou}");
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let ctx = ctx.clone();
            let fresh = fresh.clone();
            let ou = ou.clone();
            tasks.push(tokio::spawn(async move {
                let dir = connect(&ctx).await;
                dir.ensure_ou(&fresh).await?;
                dir.ensure_ou(&ou).await
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("concurrent ensure_ou");
        }
        // Shared connection, concurrent calls.
        let (a, b, c) = tokio::join!(
            dir.ensure_ou(&ou),
            dir.ensure_ou(&ou),
            dir.ensure_ou(&fresh)
        );
        a.and(b).and(c).expect("ensure_ou on one shared connection");
        let w = dir.ou_writable(&fresh).await.expect("ou_writable");
        assert!(w.ou_exists, "{fresh} does not exist: {w:?}");
        for dn in [&ou, &fresh] {
            let seen = ldbsearch(&ctx, dn, "(objectClass=organizationalUnit)");
            assert!(
                seen.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("dn: {dn}"))),
                "sam.ldb has no {dn}: {seen}"
            );
        }
        dir.delete_computer(&fresh)
            .await
            .expect("removing the race OU");
        assert!(
            !dir.ou_writable(&fresh)
                .await
                .expect("ou_writable")
                .ou_exists
        );
    }
    .boxed()
}

fn computers(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dir = connect(&ctx).await;
        let ou = test_ou(&ctx);
        dir.ensure_ou(&ou).await.expect("ensure_ou");
        let mut dns = Vec::new();
        for h in HOSTS {
            assert_eq!(dir.locate_computer(h).await.expect("locate"), None);
            let dn = dir.precreate_computer(h, &ou).await.expect("precreate");
            let name = h.split('.').next().unwrap().to_uppercase();
            assert_eq!(dn, format!("CN={name},{ou}"));
            // Idempotent, also when asked for another OU: the existing account is returned.
            assert_eq!(
                dir.precreate_computer(h, &ctx.lab.base_dn())
                    .await
                    .expect("precreate again"),
                dn
            );
            dns.push(dn);
        }
        for (h, dn) in HOSTS.iter().zip(&dns) {
            let loc = dir
                .locate_computer(h)
                .await
                .expect("locate")
                .expect("found");
            assert!(loc.dn.eq_ignore_ascii_case(dn), "{h} at {}", loc.dn);
            let seen = ldbsearch(&ctx, dn, "(userAccountControl=4096)");
            assert!(seen.contains("dn: "), "sam.ldb: {seen}");
        }
        for dn in &dns {
            dir.delete_computer(dn).await.expect("delete");
            dir.delete_computer(dn).await.expect("delete again (no-op)");
        }
        for h in HOSTS {
            assert_eq!(dir.locate_computer(h).await.expect("locate"), None);
        }
    }
    .boxed()
}

fn writable(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let dir = connect(&ctx).await;
        let ou = test_ou(&ctx);
        dir.ensure_ou(&ou).await.expect("ensure_ou");
        let w = dir.ou_writable(&ou).await.expect("ou_writable");
        eprintln!(
            "     allowedChildClassesEffective of {} ({} classes): {}",
            w.checked_dn,
            w.child_classes.len(),
            w.child_classes.join(" ")
        );
        assert!(w.ou_exists && w.allowed, "{w:?}");
        let missing = format!("OU=absent,{ou}");
        let w = dir.ou_writable(&missing).await.expect("ou_writable");
        assert!(!w.ou_exists && w.allowed, "{w:?}");
        assert_eq!(w.checked_dn, ou);
    }
    .boxed()
}

fn refusals(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let wrong = "parc-Wrong-Pa55";
        let mut cfg = config(&ctx, LdapTls::Ldaps);
        cfg.password = SecretBytes(wrong.into());
        let e = LdapDirectory::connect(cfg)
            .await
            .err()
            .expect("a wrong password is refused");
        eprintln!("     wrong password: {e}");
        assert_eq!(e.kind, PortErrorKind::Refused, "{e}");
        assert!(
            e.message
                .contains("refused the credentials of Administrator@"),
            "{e}"
        );
        let real = String::from_utf8_lossy(&ctx.password.0).into_owned();
        assert!(
            !e.message.contains(wrong) && !e.message.contains(&real),
            "{e}"
        );
        assert!(!format!("{e:?}").contains(wrong), "{e:?}");

        // On the lab's bridge, nobody there.
        let mut cfg = config(&ctx, LdapTls::Ldaps);
        cfg.host = "10.77.0.99".into();
        let t0 = Instant::now();
        let e = LdapDirectory::connect(cfg)
            .await
            .err()
            .expect("nobody at 10.77.0.99");
        let took = t0.elapsed();
        eprintln!("     wrong address ({:?} after {took:?}): {e}", e.kind);
        assert!(
            matches!(e.kind, PortErrorKind::Unreachable | PortErrorKind::Timeout),
            "{:?}: {e}",
            e.kind
        );
        assert!(e.message.contains("10.77.0.99:636"), "{e}");
        assert!(took < Duration::from_millis(3_500), "took {took:?}");

        // Nothing listens on 3890 of the DC: refused at once.
        let mut cfg = config(&ctx, LdapTls::StartTls);
        cfg.port = Some(3890);
        let e = LdapDirectory::connect(cfg).await.err().expect("port 3890");
        assert_eq!(e.kind, PortErrorKind::Unreachable, "{e}");
        assert!(e.message.contains(":3890 refused the connection"), "{e}");

        // A CA that is not the DC's.
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("other-ca.pem");
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=Not the DC CA", "-keyout"])
            .arg(tmp.path().join("k.pem"))
            .arg("-out")
            .arg(&other)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("running openssl");
        assert!(st.success(), "openssl req failed");
        for tls in [LdapTls::Ldaps, LdapTls::StartTls] {
            let mut cfg = config(&ctx, tls);
            cfg.ca_pem = Some(other.clone());
            let e = LdapDirectory::connect(cfg)
                .await
                .err()
                .expect("a certificate from another CA is refused");
            assert_eq!(e.kind, PortErrorKind::Refused, "{e}");
            eprintln!("     other CA ({tls:?}): {e}");
            assert!(e.message.contains("TLS certificate"), "{e}");
            assert!(e.message.contains("other-ca.pem"), "{e}");
        }
    }
    .boxed()
}

fn kinit(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    async move {
        let realm = ctx.lab.realm().to_owned();
        let kdc = ctx.lab.dc_address().address;
        let t = Duration::from_secs(10);
        let good = ctx.password.clone();
        let (r, k) = (realm.clone(), kdc.clone());
        tokio::task::spawn_blocking(move || kinit_check(&r, &k, "Administrator", &good, t))
            .await
            .unwrap()
            .expect("kinit with the right password");
        let (r, k) = (realm.clone(), kdc.clone());
        let e = tokio::task::spawn_blocking(move || {
            kinit_check(
                &r,
                &k,
                "Administrator",
                &SecretBytes(b"parc-Wrong".to_vec()),
                t,
            )
        })
        .await
        .unwrap()
        .expect_err("a wrong password");
        assert!(
            matches!(e, KerberosError::WrongPassword { .. }),
            "{e:?}: {e}"
        );
        assert!(!e.to_string().contains("parc-Wrong"), "{e}");
        let (r, k) = (realm.clone(), kdc.clone());
        let e = tokio::task::spawn_blocking(move || {
            kinit_check(&r, &k, "nobody-here", &SecretBytes(b"x".to_vec()), t)
        })
        .await
        .unwrap()
        .expect_err("an unknown account");
        assert!(
            matches!(e, KerberosError::UnknownClient { .. }),
            "{e:?}: {e}"
        );
        let e = tokio::task::spawn_blocking(move || {
            kinit_check(
                &realm,
                "10.77.0.99",
                "Administrator",
                &SecretBytes(b"x".to_vec()),
                Duration::from_secs(3),
            )
        })
        .await
        .unwrap()
        .expect_err("no KDC at 10.77.0.99");
        assert!(
            matches!(
                e,
                KerberosError::Timeout { .. } | KerberosError::NoKdc { .. }
            ),
            "{e:?}: {e}"
        );
    }
    .boxed()
}
