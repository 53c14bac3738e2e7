//! Lab integration tests: bring the project's lab up (real Samba AD DC, real OpenSSH
//! workstations in namespaces), run every case against it, always tear it down, and check
//! that nothing of the lab is left — also after a case that fails (a child run of this
//! binary with a deliberately failing case).
//!
//! Run as root: `cargo test --test lab_ssh`. It fails (never skips)
//! when the lab cannot run. Custom harness (`harness = false`): the cases share one lab and
//! run in order; each case runs on its own thread, inside the server namespace (parc's
//! endpoint address) unless it needs the host's network (collect from the apt mirror).

mod cases_dhcp;
mod cases_directory;
mod cases_lab;
mod cases_odj;
mod cases_ssh;
mod cases_steps;
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parc::lab::{Lab, leftovers};

pub use fixtures::Ctx;

/// Where a case runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// Inside the server namespace: reaches the lab's hosts.
    Lab,
    /// The host's network: loopback HTTP and the apt mirror.
    Host,
}

type CaseFn = fn(Arc<Ctx>) -> futures::future::BoxFuture<'static, ()>;

pub struct Case {
    pub name: &'static str,
    pub net: Net,
    pub run: CaseFn,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_case(ctx: &Arc<Ctx>, case: &Case) -> Result<Duration, String> {
    let ctx = ctx.clone();
    let net = case.net;
    let f = case.run;
    let t0 = Instant::now();
    let joined = std::thread::Builder::new()
        .name(case.name.into())
        .spawn(move || {
            if net == Net::Lab {
                ctx.lab
                    .enter_server_netns()
                    .expect("entering the lab's server namespace");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(f(ctx));
        })
        .expect("spawning the case thread")
        .join();
    match joined {
        Ok(()) => Ok(t0.elapsed()),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".into())),
    }
}

/// Brings the lab up, runs `cases`, tears the lab down whatever happened. Returns the
/// number of failures (the lab failing to come up or to go down counts).
fn run_suite(repo: &Path, cases: &[Case]) -> usize {
    let t0 = Instant::now();
    // Always a fresh lab: a previous run killed half-way may have left one behind.
    if let Err(e) = Lab::down(repo) {
        eprintln!("FAIL lab down (before up): {e}");
        return 1;
    }
    let lab = match Lab::up(repo) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("FAIL lab up: {e}");
            let _ = Lab::down(repo);
            return 1;
        }
    };
    eprintln!("lab up: {:.1} s", t0.elapsed().as_secs_f32());
    let mut failures = 0;
    match Ctx::new(lab.clone()) {
        Err(e) => {
            eprintln!("FAIL fixtures: {e}");
            failures += 1;
        }
        Ok(ctx) => {
            let ctx = Arc::new(ctx);
            for case in cases {
                match run_case(&ctx, case) {
                    Ok(d) => eprintln!("ok   {} ({:.1} s)", case.name, d.as_secs_f32()),
                    Err(msg) => {
                        failures += 1;
                        eprintln!("FAIL {}: {msg}", case.name);
                    }
                }
            }
        }
    }
    let t1 = Instant::now();
    if let Err(e) = Lab::down(repo) {
        eprintln!("FAIL lab down: {e}");
        failures += 1;
    }
    // `down` always succeeds, also when there is nothing left to tear down.
    if let Err(e) = Lab::down(repo) {
        eprintln!("FAIL a second lab down: {e}");
        failures += 1;
    }
    let left = leftovers(lab.prefix(), &lab.dir());
    if !left.is_empty() {
        eprintln!("FAIL lab down left: {left:?}");
        failures += 1;
    }
    eprintln!("lab down: {:.1} s", t1.elapsed().as_secs_f32());
    failures
}

fn deliberately_failing(_ctx: Arc<Ctx>) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async {
        panic!("deliberate failure: checks that the lab is torn down after a failing case");
    })
}

fn main() -> ExitCode {
    let repo = repo();
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        eprintln!(
            "FAIL: the lab tests need root (network namespaces, mounts); uid is {uid}. They do not skip."
        );
        return ExitCode::FAILURE;
    }
    if std::env::args().any(|a| a == "--deliberately-failing-case") {
        let cases = [Case {
            name: "deliberately_failing",
            net: Net::Lab,
            run: deliberately_failing,
        }];
        let failures = run_suite(&repo, &cases);
        return if failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    let t0 = Instant::now();
    let mut cases = cases_lab::first();
    cases.extend(cases_ssh::cases());
    cases.extend(cases_dhcp::cases());
    cases.extend(cases_directory::cases());
    cases.extend(cases_steps::cases());
    cases.extend(cases_odj::cases());
    cases.extend(cases_lab::last());
    // `cargo test --test lab_ssh -- WORD`: only the cases whose name contains WORD (the
    // cases run in order and build on each other, so a filter is for quick iterations).
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filter.is_empty() {
        cases.retain(|c| filter.iter().any(|f| c.name.contains(f.as_str())));
        let failures = run_suite(&repo, &cases);
        eprintln!(
            "lab_ssh (filtered): {} cases, {failures} failed",
            cases.len()
        );
        return if failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut failures = run_suite(&repo, &cases);
    let main_run = t0.elapsed();

    // Teardown after a failing case: a child run whose only case panics must fail, and
    // leave no namespace, process or mount of the lab.
    let t1 = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--deliberately-failing-case")
        .status();
    let lab = parc::lab::lab_dir(&repo);
    let left = leftovers(
        &std::env::var("PARC_LAB_PREFIX").unwrap_or("parclab".into()),
        &lab,
    );
    match status {
        Ok(s) if !s.success() && left.is_empty() => {
            eprintln!(
                "ok   teardown_after_a_failing_case ({:.1} s)",
                t1.elapsed().as_secs_f32()
            );
        }
        other => {
            failures += 1;
            eprintln!("FAIL teardown_after_a_failing_case: child {other:?}, left {left:?}");
        }
    }
    eprintln!(
        "lab_ssh: {} cases + teardown check, {failures} failed; main run (lab up + cases + down) {:.1} s, total {:.1} s",
        cases.len(),
        main_run.as_secs_f32(),
        t0.elapsed().as_secs_f32()
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
