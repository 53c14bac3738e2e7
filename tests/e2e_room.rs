//! The demo's room end to end, in the lab (root, real QEMU under TCG or KVM, real iPXE from
//! parc's own endpoint, real Samba AD, real OpenSSH): `parc master labo` runs the eight steps
//! on a master VM and four workstation VMs — one of which never boots from the network —,
//! stopping for the teachers' sign-off (recorded with `parc signoff`); it is killed (SIGKILL)
//! during install, during capture and during deploy, and each time run again, which resumes
//! without redoing what was done (issue 15's R1 in the real lab: the room ends as an
//! uninterrupted run leaves it, one image, each change audited once);
//! then a workstation whose disk was damaged is brought back with `parc reimage`. The
//! workstations deploy together by multicast (udpcast), and `parc status` says so.
//!
//! It fails (never skips) when it cannot run: no root, no QEMU.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

mod drift;
use drift::drift_one_percent;
mod secrets_watch;
use secrets_watch::SecretWatch;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PARC: &str = env!("CARGO_BIN_EXE_parc");
const PREFIX: &str = "parce2e";

struct Lab {
    dir: PathBuf,
}

impl Lab {
    /// Stops a workstation's VM (as a power cut would).
    fn stop_vm(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("vms/{name}.pid"))).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }

    fn script(&self, name: &str) -> Command {
        let mut c = Command::new(format!("{REPO}/lab/{name}"));
        c.env("PARC_LAB_PREFIX", PREFIX)
            .env("PARC_LAB_DIR", &self.dir)
            .env("PARC_LAB_HOSTS", "")
            // The lab plays a lycée: its DHCP server hands out addresses, parc is proxyDHCP.
            .env_remove("PARC_LAB_DHCP");
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.script("down.sh").status();
    }
}

fn cache() -> PathBuf {
    std::env::var_os("PARC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join(".cache"))
}

/// Runs a script with PARC_CACHE set; its stdout's last line.
fn script_output(cmd: &mut Command, what: &str) -> String {
    let o = cmd
        .env("PARC_CACHE", cache())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(o.status.success(), "{what} failed: {o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

struct Ws {
    root: PathBuf,
    lab: PathBuf,
    bootenv: PathBuf,
}

impl Ws {
    fn parc(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PARC);
        c.args(args)
            .env("PARC_WORKSPACE", &self.root)
            .env("PARC_LAB", &self.lab)
            .env("PARC_BOOTENV", &self.bootenv)
            .env_remove("PARC_ADAPTERS");
        c
    }

    /// `parc reimage HOST` must succeed (else the workstation's console is shown).
    fn reimage(&self, host: &str, timeouts: &[&str]) {
        let mut args = vec!["reimage", host];
        args.extend(timeouts);
        let o = self.run(&args);
        assert_eq!(o.status.code(), Some(0), "console:\n{}", self.vm_log(host));
    }

    /// Starts `parc args` and SIGKILLs it where `at` says: `at` sees each JSON event parc prints
    /// and, every 200 ms, `None` (to look at the workspace); once it returns what it saw, parc
    /// is killed. Panics if parc ends before.
    fn run_killed(
        &self,
        args: &[&str],
        mut at: impl FnMut(Option<&serde_json::Value>) -> Option<String>,
    ) -> String {
        let t0 = Instant::now();
        let mut child = self
            .parc(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running parc");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(e) = serde_json::from_str::<serde_json::Value>(&line)
                    && tx.send(e).is_err()
                {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let hit = loop {
            let hit = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(e) => {
                    let hit = at(Some(&e));
                    seen.push(e);
                    hit
                }
                Err(RecvTimeoutError::Timeout) => at(None),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    panic!(
                        "parc {} ended ({status:?}) before its kill point: {seen:?}",
                        args.join(" ")
                    );
                }
            };
            if let Some(hit) = hit {
                break hit;
            }
        };
        // std's kill is SIGKILL: no handler runs, nothing is flushed or released.
        child.kill().unwrap();
        let _ = child.wait();
        eprintln!(
            "e2e: parc {} SIGKILLed after {:.0} s, {hit}",
            args.join(" "),
            t0.elapsed().as_secs_f64()
        );
        hit
    }

    /// Each step's state (host "") and its state per host, from `parc status labo --json`.
    fn step_states(&self) -> Vec<(String, String, String)> {
        let o = self.run(&["status", "labo", "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
        let mut states = Vec::new();
        for step in st["steps"].as_array().cloned().unwrap_or_default() {
            states.push((
                step["step"].as_str().unwrap_or_default().to_string(),
                String::new(),
                step["state"].as_str().unwrap_or_default().to_string(),
            ));
            for h in step["hosts"].as_array().cloned().unwrap_or_default() {
                states.push((
                    step["step"].as_str().unwrap_or_default().to_string(),
                    h["host"].as_str().unwrap_or_default().to_string(),
                    h["state"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        states
    }

    fn run(&self, args: &[&str]) -> Output {
        let t0 = Instant::now();
        let o = self
            .parc(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("running parc");
        eprintln!(
            "e2e: parc {} -> {:?} in {:.0} s",
            args.join(" "),
            o.status.code(),
            t0.elapsed().as_secs_f64()
        );
        o
    }

    /// The newest verify report (JSON) parc wrote under reports/: each host's status and, for a
    /// workstation that could not be verified, why.
    fn latest_report(&self) -> std::collections::BTreeMap<String, (String, String)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.root.join("reports"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        let Some(newest) = files.last() else {
            panic!(
                "no verify report under {}",
                self.root.join("reports").display()
            );
        };
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(newest).unwrap()).expect("report JSON");
        v["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["host"].as_str().unwrap_or("").to_string(),
                    (
                        h["status"].as_str().unwrap_or("").to_string(),
                        h["error"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect()
    }

    fn vm_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.lab.join(format!("vms/{host}.log"))).unwrap_or_default()
    }
}

/// The JSON lines of a `--json` run.
fn events(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn host_events<'a>(
    ev: &'a [serde_json::Value],
    kind: &str,
    step: &str,
) -> Vec<&'a serde_json::Value> {
    ev.iter()
        .filter(|e| e["event"] == kind && e["step"] == step)
        .collect()
}

/// Whether `step` started in these events.
fn started(ev: &[serde_json::Value], step: &str) -> bool {
    ev.iter()
        .any(|e| e["event"] == "step-started" && e["step"] == step)
}

fn preflight() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "e2e_room needs root (network namespaces, taps, mounts): run the suite as root"
    );
    let q = Command::new("qemu-system-x86_64").arg("--version").output();
    assert!(
        q.is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is missing: scripts/pxe-deps.sh installs it"
    );
}

/// Every file under `dir` with its size and modification time: what "nothing changed" means.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `parc doctor labo` against the lab configured as a lycée: all ok; then a wrong DC address,
/// the DC's CA file missing, a wrong password, a second full DHCP server on the bridge and the serving port taken —
/// each named with its fix, exit 1, nothing in the workspace changed.
fn doctor_cases(ws: &Ws, lab: &Lab) {
    let t0 = Instant::now();
    let doctor = |what: &str| -> (i32, String) {
        let o = ws.parc(&["doctor", "labo"]).output().expect("parc doctor");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!(
            "e2e: parc doctor labo ({what}) -> {:?}\n{out}",
            o.status.code()
        );
        (o.status.code().unwrap_or(-1), out)
    };
    let problem = |out: &str, name: &str| -> String {
        let mut lines = out.lines();
        while let Some(l) = lines.next() {
            if l.starts_with("problem") && l.split_whitespace().nth(1) == Some(name) {
                return format!("{l}\n{}", lines.next().unwrap_or_default());
            }
        }
        panic!("no problem line for {name} in:\n{out}");
    };
    let before = snapshot(&ws.root);

    let (code, out) = doctor("the lab as a lycée");
    assert_eq!(code, 0, "{out}");
    for name in [
        "address",
        "ports",
        "dhcp",
        "dc-bind",
        "dc-kerberos",
        "dc-clock",
        "dc-ou",
        "secrets",
        "disk",
        "workstations",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok") && l.split_whitespace().nth(1) == Some(name)),
            "no ok line for {name}:\n{out}"
        );
    }
    assert!(out.contains("10.77.0.254"), "the lab's lycée DHCP: {out}");

    // The DC's address wrong.
    let site = ws.root.join("site.toml");
    let good = std::fs::read_to_string(&site).unwrap();
    std::fs::write(
        &site,
        good.replace("controller = \"10.77.0.1\"", "controller = \"10.77.0.99\""),
    )
    .unwrap();
    let (code, out) = doctor("the DC's address wrong");
    std::fs::write(&site, &good).unwrap();
    assert_eq!(code, 1, "{out}");
    let p = problem(&out, "dc-bind");
    assert!(p.contains("10.77.0.99") && p.contains("fix:"), "{p}");

    // The DC's CA certificate not exported yet: named where site.toml asks for it.
    let ca = ws.root.join("dc-ca.pem");
    let aside = ws.root.with_extension("ca-aside");
    std::fs::rename(&ca, &aside).unwrap();
    let (code, out) = doctor("the DC's CA file missing");
    std::fs::rename(&aside, &ca).unwrap();
    assert_eq!(code, 1, "{out}");
    let p = problem(&out, "dc-ca");
    assert!(
        p.contains("site.toml:") && p.contains("dc-ca.pem") && p.contains("fix:"),
        "{p}"
    );

    // A wrong password.
    let set = |value: &[u8]| {
        use std::io::Write as _;
        let mut c = ws
            .parc(&["secret", "set", "domain-join"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(value).unwrap();
        assert!(c.wait().unwrap().success());
    };
    let right = std::fs::read(lab.dir.join("secrets/admin-password")).unwrap();
    set(b"not-the-password");
    let (code, out) = doctor("a wrong password");
    set(&right);
    assert_eq!(code, 1, "{out}");
    let p = problem(&out, "dc-bind");
    assert!(p.contains("parc secret set domain-join"), "{p}");
    assert!(!out.contains("not-the-password"), "{out}");

    // A second full DHCP server on the bridge.
    let o = lab
        .script("dhcp-up.sh")
        .args([
            "rogue",
            "10.77.0.253",
            "--addresses",
            "10.77.0.200,10.77.0.220",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "dhcp-up.sh rogue: {o:?}");
    let (code, out) = doctor("a second DHCP server");
    let o = lab.script("dhcp-down.sh").arg("rogue").output().unwrap();
    assert!(o.status.success(), "dhcp-down.sh rogue: {o:?}");
    assert_eq!(code, 1, "{out}");
    let p = problem(&out, "dhcp");
    assert!(
        p.contains("10.77.0.253") && p.contains("10.77.0.254"),
        "{p}"
    );

    // The serving port taken (a listener in the lab's server namespace).
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let ns = format!("{PREFIX}-srv");
    let holder = std::thread::spawn(move || {
        parc::lab::enter_netns(&ns).unwrap();
        let l = std::net::TcpListener::bind("10.77.0.1:8000").unwrap();
        tx.send(()).unwrap();
        let _ = stop_rx.recv();
        drop(l);
    });
    rx.recv().unwrap();
    let (code, out) = doctor("the serving port taken");
    stop_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(code, 1, "{out}");
    let p = problem(&out, "ports");
    assert!(p.contains("tcp 8000"), "{p}");

    // Only what the test itself rewrote (site.toml, the secret) may differ.
    let ours = |v: Vec<(PathBuf, u64, std::time::SystemTime)>| -> Vec<_> {
        v.into_iter()
            .filter(|(p, ..)| !p.ends_with("site.toml") && !p.ends_with("domain-join"))
            .collect()
    };
    assert_eq!(
        ours(snapshot(&ws.root)),
        ours(before),
        "parc doctor changed the workspace"
    );
    let (code, out) = doctor("all fixed again");
    assert_eq!(code, 0, "{out}");
    eprintln!(
        "e2e: parc doctor, seven runs, in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn a_room_rebuilt_end_to_end_then_a_damaged_workstation_reimaged() {
    preflight();
    let t_all = Instant::now();
    let top = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_room");
    let _ = std::fs::remove_dir_all(&top);
    std::fs::create_dir_all(&top).unwrap();
    let lab = Lab {
        dir: top.join("lab"),
    };
    let _ = lab.script("down.sh").output();
    script_output(&mut lab.script("up.sh"), "lab/up.sh");

    // The agent in the boot environment: this build's (its sha2 and zstd are optimised even
    // in dev builds), or PARC_PXE_AGENT.
    let agent = std::env::var("PARC_PXE_AGENT")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_parc-agent").to_string());
    let bootenv = PathBuf::from(script_output(
        Command::new(format!("{REPO}/images/bootenv/build.sh")).arg(&agent),
        "images/bootenv/build.sh",
    ));
    let ws = Ws {
        root: top.join("ws"),
        lab: lab.dir.clone(),
        bootenv: bootenv.clone(),
    };
    let o = Command::new("cp")
        .args(["-r", &format!("{REPO}/lab/workspace")])
        .arg(&ws.root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // A fifth workstation whose network boot is off in its firmware: it never boots.
    let csv = ws.root.join("devices.csv");
    let mut devices = std::fs::read_to_string(&csv).unwrap();
    devices.push_str(
        "labo;labo-pc05;52:54:00:4c:00:05;LAB-VM-0005;lab-vm;2025-09-01;;fonds-propres;in-service;10.77.0.25;PXE coupé\n",
    );
    std::fs::write(&csv, devices).unwrap();
    std::fs::create_dir_all(lab.dir.join("vms")).unwrap();
    std::fs::write(lab.dir.join("vms/labo-pc05.noboot"), "").unwrap();
    script_output(
        Command::new(format!("{REPO}/images/base/build.sh"))
            .args(["--bootenv"])
            .arg(&bootenv)
            .arg(&ws.root)
            .env("PARC_BIN", PARC),
        "images/base/build.sh",
    );
    let secret = std::fs::File::open(lab.dir.join("secrets/admin-password")).unwrap();
    let o = ws
        .parc(&["secret", "set", "domain-join"])
        .stdin(secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // From here on no process's command line, and none of what parc writes, may show it.
    let password = std::fs::read_to_string(lab.dir.join("secrets/admin-password")).unwrap();
    let watch = SecretWatch::start(vec![password.trim().as_bytes().to_vec()]);
    // The technician exports the DC's CA certificate once (site.toml: ca_file).
    std::fs::copy(
        lab.dir.join("dc/private/tls/ca.pem"),
        ws.root.join("dc-ca.pem"),
    )
    .expect("the lab DC's CA certificate");
    eprintln!(
        "e2e: lab, boot environment, base image ready in {:.0} s",
        t_all.elapsed().as_secs_f64()
    );
    doctor_cases(&ws, &lab);

    // 1. Up to the technician's tests; killed 5 s into install on the master (which takes
    //    about 20 s: uploads and dpkg), then run again: capture waits for the teachers'
    //    sign-off. (The master's steps report step events only.)
    let timeouts = ["--wake-timeout", "150", "--boot-timeout", "900"];
    let mut args = vec!["master", "labo", "--json"];
    args.extend(timeouts);
    let mut install_started = None;
    ws.run_killed(&args, |e| {
        if let Some(e) = e
            && e["step"] == "install"
        {
            if e["event"] == "step-finished" {
                return Some("as install finished on the master".into());
            }
            if e["event"] == "step-started" {
                install_started = Some(Instant::now());
            }
        }
        install_started
            .filter(|t| t.elapsed() >= Duration::from_secs(5))
            .map(|_| "5 s into install on the master".into())
    });
    let o = ws.run(&args);
    let ev = events(&o.stdout);
    let summary = ev.last().cloned().unwrap_or_default();
    assert_eq!(o.status.code(), Some(2), "{summary}");
    assert_eq!(summary["outcome"], "blocked", "{summary}");
    assert!(
        !started(&ev, "format"),
        "the resumed run formatted the master again: {ev:?}"
    );
    let states = ws.step_states();
    for step in ["collect", "format", "install", "test"] {
        assert!(
            states.iter().any(|(s, _, _)| s == step)
                && states
                    .iter()
                    .filter(|(s, _, _)| s == step)
                    .all(|(_, _, st)| st == "done"),
            "{step} not done: {states:?}\nmaster's console:\n{}",
            ws.vm_log("labo-pc01")
        );
    }
    assert!(
        summary["detail"].as_str().unwrap_or("").contains("sign"),
        "{summary}"
    );

    let o = ws.run(&[
        "signoff",
        "labo",
        "--teacher",
        "Mme Claire Martin",
        "--discipline",
        "Mathématiques",
    ]);
    assert!(o.status.success());

    // 2. Capture, killed two seconds after its staging folder appears in the store (the
    //    master is sending); again, killed as soon as one workstation is deployed.
    let store = parc::image::store::FsImageStore::for_workspace(&ws.root);
    let room_dir = store.root().join("labo");
    let mut staged = None;
    ws.run_killed(&args, |e| {
        if let Some(e) = e
            && e["step"] == "capture"
            && e["event"] == "step-finished"
        {
            return Some("as capture finished".into());
        }
        if staged.is_none()
            && std::fs::read_dir(&room_dir).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
            })
        {
            staged = Some(Instant::now());
        }
        staged
            .filter(|t| t.elapsed() >= Duration::from_secs(2))
            .map(|_| "2 s into the capture's upload".into())
    });
    assert!(
        store.ids(Some("labo")).unwrap().is_empty(),
        "a killed capture left an image listed"
    );
    let mut first = None;
    let mut resumed = Vec::new();
    ws.run_killed(&args, |e| {
        let e = e?;
        resumed.push(e.clone());
        if e["event"] == "host-finished" && e["step"] == "deploy" && e["ok"] == true {
            first = e["host"].as_str().map(str::to_string);
            return Some(format!("as {} was deployed", first.as_deref()?));
        }
        None
    });
    for step in ["format", "install"] {
        assert!(
            !started(&resumed, step),
            "the run resumed after capture's kill ran {step} again: {resumed:?}"
        );
    }
    let first = first.unwrap();

    // 3. Again: deploy resumes (not on `first`); labo-pc05 never boots and is reported.
    let o = ws.run(&args);
    let ev = events(&o.stdout);
    let summary = ev.last().cloned().unwrap_or_default();
    assert_eq!(o.status.code(), Some(1), "{summary}");
    assert_eq!(summary["outcome"], "partial", "{summary}");
    let failures = summary["failures"].as_array().cloned().unwrap_or_default();
    // Only labo-pc05: its deploy failed, its join and verify were skipped for that reason.
    assert!(
        failures.iter().all(|f| f["host"] == "labo-pc05"),
        "{summary}"
    );
    let failed: Vec<_> = failures.iter().filter(|f| f["skipped"] == false).collect();
    assert_eq!(failed.len(), 1, "{summary}");
    assert_eq!(failed[0]["step"], "deploy", "{summary}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("never booted from the network"),
        "{summary}"
    );
    let redeployed: Vec<_> = host_events(&ev, "host-started", "deploy")
        .iter()
        .filter(|e| e["host"] == first.as_str())
        .cloned()
        .collect();
    assert!(
        redeployed.is_empty(),
        "{first} was deployed again: {redeployed:?}"
    );
    for host in ["labo-pc01", "labo-pc02", "labo-pc03", "labo-pc04"] {
        assert!(
            host_events(&ev, "host-finished", "verify")
                .iter()
                .any(|e| e["host"] == host && e["ok"] == true),
            "{host} not verified: {ev:?}\nconsole:\n{}",
            ws.vm_log(host)
        );
    }

    // The verify report says the same, in French, for the whole room.
    let report = ws.latest_report();
    let expect_report = |report: &std::collections::BTreeMap<String, (String, String)>| {
        for host in ["labo-pc01", "labo-pc02", "labo-pc03", "labo-pc04"] {
            let status = report.get(host).map(|(s, _)| s.as_str());
            assert_eq!(status, Some("conforme"), "{report:?}");
        }
        let (status, why) = report.get("labo-pc05").cloned().unwrap_or_default();
        assert_eq!(status, "verification-impossible", "{report:?}");
        assert!(why.contains("never booted from the network"), "{report:?}");
    };
    expect_report(&report);

    // Three kills later the room is as one uninterrupted run leaves it: one image, intact,
    // and every change audited exactly once in an unbroken chain.
    assert_eq!(store.ids(Some("labo")).unwrap(), ["labo/v1"]);
    for check in [&["image", "verify", "--all"][..], &["audit", "verify"]] {
        let o = ws.run(check);
        assert!(
            o.status.success(),
            "parc {}: {}",
            check.join(" "),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let audit = rusqlite::Connection::open(ws.root.join(".parc/audit.db")).expect("audit db");
    let mut changes = std::collections::BTreeMap::new();
    let mut q = audit
        .prepare("SELECT action, subject FROM entries WHERE action <> 'anchor'")
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        *changes.entry(row.unwrap()).or_insert(0) += 1;
    }
    let once = |action: &str, subject: &str| {
        assert_eq!(
            changes.get(&(action.to_string(), subject.to_string())),
            Some(&1),
            "{action} {subject} not audited exactly once: {changes:?}"
        )
    };
    once("format", "labo-pc01");
    once("install", "labo-pc01");
    once("capture", "labo/v1");
    for host in ["labo-pc02", "labo-pc03", "labo-pc04"] {
        once("deploy", host);
        once("join", host);
    }
    assert!(changes.values().all(|n| *n == 1), "{changes:?}");

    // The room's workstations took their image together, by multicast, and status says so
    // per workstation (the run log names the session).
    let st = ws.run(&["status", "labo"]);
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    // At least one took the whole image from the room's stream (the others may have been
    // dropped by a busy sender and caught up by HTTP: "by multicast, then unicast").
    assert!(
        st.lines()
            .any(|l| l.contains("labo-pc0") && l.trim_end().ends_with("by multicast")),
        "no workstation took its whole image by multicast:\n{st}"
    );
    eprintln!("e2e: parc status labo:\n{st}");

    // 4. labo-pc03 breaks: its disk is damaged; reimage brings it back.
    let deploys_before = ws
        .vm_log("labo-pc03")
        .matches("running parc-agent deploy")
        .count();
    lab.stop_vm("labo-pc03");
    let o = Command::new("dd")
        .args([
            "if=/dev/zero",
            "bs=1M",
            "count=40",
            "conv=notrunc",
            "status=none",
        ])
        .arg(format!(
            "of={}",
            lab.dir.join("vms/labo-pc03.img").display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    ws.reimage("labo-pc03", &timeouts);
    let o = ws.run(&["status", "labo", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    let verify = st["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == "verify"))
        .cloned()
        .unwrap_or_default();
    let pc03 = verify["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "labo-pc03"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(pc03["state"], "done", "after the reimage: {st}");
    expect_report(&ws.latest_report());
    // The damaged disk was really rewritten: its console shows one more deploy.
    let console = ws.vm_log("labo-pc03");
    assert_eq!(
        console.matches("running parc-agent deploy").count(),
        deploys_before + 1,
        "labo-pc03 was not deployed once more:\n{console}"
    );

    // 5. labo-pc02 drifts from its image (1% of its files rewritten, deleted or joined by
    //    new ones): a reimage fetches only the chunks it lacks, as the endpoint counts.
    lab.stop_vm("labo-pc02");
    let drifted = on_root_partition(&lab.dir.join("vms/labo-pc02.img"), drift_one_percent);
    let log = ws.root.join(".parc/boot/access.log");
    let before = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
    ws.reimage("labo-pc02", &timeouts);
    let text = std::fs::read_to_string(&log).expect("the endpoint's access log");
    // `<time> <task> <host> <method> <path> <status> <bytes>`
    let fetched: u64 = text[before..]
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() == 7 && f[2] == "labo-pc02" && f[3] == "GET")
        .map(|f| f[6].parse::<u64>().unwrap())
        .sum();
    let image = store.list_manifests(Some("labo")).unwrap().pop().unwrap();
    let total: u64 = image.streams().map(|s| s.size).sum();
    eprintln!(
        "e2e: labo-pc02 reimaged after {drifted} bytes of its files drifted: {fetched} of {total} bytes fetched ({:.1}%)",
        100.0 * fetched as f64 / total as f64
    );
    // The drift, the chunks around each change and what the running system changed since
    // its deploy (logs, keys, the domain's files): a few percent, never the whole image.
    assert!(
        fetched > 0 && fetched * 10 < total,
        "labo-pc02 fetched {fetched} of {total} bytes"
    );
    let st = String::from_utf8(ws.run(&["status", "labo"]).stdout).unwrap();
    assert!(
        st.lines()
            .any(|l| l.contains("labo-pc02") && l.contains("incrementally")),
        "labo-pc02's reimage was not incremental:\n{st}"
    );
    // From the record its deploy left at the endpoint: only the changed files were read.
    assert!(
        st.lines().any(|l| l.contains("labo-pc02")
            && l.contains("only the files changed since its last deploy read")),
        "labo-pc02's reimage did not take the record of its last deploy:\n{st}"
    );
    // The secret never showed: not on a command line during the run, not in the journal,
    // the audit log, the logs, the live files, the endpoint's state, the reports or the
    // workstations' consoles (their disk images are not searched).
    let vms = lab.dir.join("vms");
    let consoles: Vec<PathBuf> = std::fs::read_dir(&vms)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    let mut roots = vec![ws.root.join(".parc"), ws.root.join("reports")];
    roots.extend(consoles);
    eprintln!(
        "e2e: {}",
        watch.finish(&roots, &[ws.root.join(".parc/secrets")])
    );
    eprintln!(
        "e2e: whole room (1 master + 4 workstations, one never booting) and the reimages in {:.0} s",
        t_all.elapsed().as_secs_f64()
    );
}

/// Runs `f` on the root filesystem (the ext4 partition holding `etc/parc/image-id`) of the
/// raw disk image `disk`, mounted read-write.
fn on_root_partition<T>(disk: &Path, f: impl Fn(&Path) -> T) -> T {
    let out = Command::new("sfdisk").arg("-J").arg(disk).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sfdisk -J");
    for p in j["partitiontable"]["partitions"].as_array().unwrap() {
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let dev = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(format!("--offset={}", start * 512))
            .arg(format!("--sizelimit={}", size * 512))
            .arg(disk)
            .output()
            .unwrap();
        let dev = String::from_utf8(dev.stdout).unwrap().trim().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "ext4", &dev])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let got =
            (mounted && dir.path().join("etc/parc/image-id").is_file()).then(|| f(dir.path()));
        if mounted {
            let _ = Command::new("umount").arg(dir.path()).status();
        }
        let _ = Command::new("losetup").args(["-d", &dev]).status();
        if let Some(got) = got {
            return got;
        }
    }
    panic!(
        "{}: no root filesystem with an image marker",
        disk.display()
    );
}
