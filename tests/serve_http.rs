//! `parc serve` as a user runs it, on loopback: per-MAC iPXE scripts over real HTTP, the boot
//! environment's files, the boot environment's reports (token checked), the switch to local
//! boot after a report, the task table surviving a restart, stage 1 over real TFTP (tftp-hpa),
//! and refusals of bad input with exit 2.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:77:00:09";
const LAYOUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lab-layout.toml"
);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn setup(d: &Path) {
    std::fs::create_dir_all(d.join("bootenv")).unwrap();
    std::fs::write(d.join("bootenv/vmlinuz"), b"kernel bytes").unwrap();
    std::fs::write(d.join("bootenv/initrd.img"), vec![7u8; 300_000]).unwrap();
    std::fs::create_dir_all(d.join("ipxe")).unwrap();
    std::fs::write(d.join("ipxe/undionly.kpxe"), b"undionly").unwrap();
    std::fs::create_dir_all(d.join("ws")).unwrap();
}

fn serve(d: &Path, http: u16, tftp: u16, extra: &[&str]) -> Serve {
    let child = Command::new(env!("CARGO_BIN_EXE_parc"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--http-port",
            &http.to_string(),
            "--tftp-port",
            &tftp.to_string(),
        ])
        .arg("--bootenv")
        .arg(d.join("bootenv"))
        .arg("--ipxe-dir")
        .arg(d.join("ipxe"))
        .arg("-w")
        .arg(d.join("ws"))
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "parc serve did not listen on {http}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve(child)
}

fn field<'a>(script: &'a str, key: &str) -> &'a str {
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {script}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_task_once_then_the_local_disk() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let (http, tftp) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{http}");
    let c = reqwest::Client::new();
    let get = |url: String| {
        let c = c.clone();
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let script_url = format!("{base}/boot/mac/52-54-00-77-00-09.ipxe");
    let (id, token);
    {
        let _s = serve(
            d.path(),
            http,
            tftp,
            &["--assign", &format!("{MAC}=format"), "--layout", LAYOUT],
        );
        let script = get(script_url.clone()).await;
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        assert_eq!(field(&script, "parc.action="), "format");
        assert_eq!(field(&script, "parc.endpoint="), base);
        id = field(&script, "parc.task=").to_string();
        token = field(&script, "parc.token=").to_string();
        assert_eq!(token.len(), 64);
        // The same ticket opens the image service's task for the agent.
        let spec = c
            .get(format!("{base}/tasks/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(spec.status(), 200);
        assert!(spec.text().await.unwrap().contains("parc-root"));
        let initrd = c
            .get(format!("{base}/boot/initrd.img"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(initrd.as_ref(), vec![7u8; 300_000].as_slice());
        // Stage 1 over real TFTP chains to this endpoint.
        let out = d.path().join("boot.ipxe");
        let o = Command::new("tftp")
            .args([
                "-m",
                "binary",
                "127.0.0.1",
                &tftp.to_string(),
                "-c",
                "get",
                "boot.ipxe",
            ])
            .arg(&out)
            .output()
            .expect("tftp (apt-get install tftp-hpa)");
        assert!(o.status.success(), "{o:?}");
        let stage1 = std::fs::read_to_string(&out).unwrap();
        assert!(
            stage1.contains(&format!("chain {base}/boot/mac/${{net0/mac:hexhyp}}.ipxe")),
            "{stage1}"
        );
        assert_eq!(get(format!("{base}/boot/boot.ipxe")).await, stage1);
    }
    // A restart keeps the pending task: same action, a fresh ticket (the image service starts
    // empty), which the image routes know; the old ticket is dead.
    let (old_id, old_token) = (id, token);
    let _s = serve(d.path(), http, tftp, &["--layout", LAYOUT]);
    let script = get(script_url.clone()).await;
    assert_eq!(field(&script, "parc.action="), "format");
    let id = field(&script, "parc.task=").to_string();
    let token = field(&script, "parc.token=").to_string();
    assert_ne!(id, old_id);
    let spec = c
        .get(format!("{base}/tasks/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), 200);
    let old = c
        .post(format!("{base}/boot/tasks/{old_id}/done"))
        .header("X-Parc-Token", &old_token)
        .body("rc=0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.status(),
        409,
        "the replaced task still accepted a report"
    );
    let post = |path: &str, tok: &str, body: &str| {
        c.post(format!("{base}/boot/tasks/{id}/{path}"))
            .header("X-Parc-Token", tok)
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        post("booted", "wrong", "stage=booted")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post("booted", &token, "stage=booted")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post("done", &token, "rc=0&message=deployed")
            .await
            .unwrap()
            .status(),
        200
    );
    // From now on: local disk, and no second report.
    let script = get(script_url.clone()).await;
    assert!(
        script.contains("sanboot --no-describe --drive 0x80"),
        "{script}"
    );
    assert!(!script.contains("parc.task"), "{script}");
    assert_eq!(post("done", &token, "rc=0").await.unwrap().status(), 409);
    let table = std::fs::read_to_string(d.path().join("ws/.parc/boot/tasks.json")).unwrap();
    assert!(
        table.contains("\"state\": \"done\"") && table.contains("\"success\": true"),
        "{table}"
    );
    // Unknown MACs boot their disk; garbage is refused.
    assert!(
        get(format!("{base}/boot/mac/52-54-00-00-00-01.ipxe"))
            .await
            .contains("sanboot")
    );
    assert_eq!(
        c.get(format!("{base}/boot/mac/nonsense.ipxe"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[test]
fn refuses_to_bind_everything_or_bad_assignments() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_parc"))
            .arg("serve")
            .args(args)
            .arg("--bootenv")
            .arg(d.path().join("bootenv"))
            .output()
            .unwrap()
    };
    let o = run(&["--bind", "0.0.0.0"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to bind 0.0.0.0"));
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["--bind", "127.0.0.1", "--assign", "52:54:00:77:00=format"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("52:54:00:77:00"),
        "{o:?}"
    );
    // A deploy of an image the store does not have, a format without a layout, a broken layout.
    let o = run(&[
        "--bind",
        "127.0.0.1",
        "--assign",
        "52:54:00:77:00:01=deploy:b204/v9:b204-p01",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("b204/v9"),
        "{o:?}"
    );
    let o = run(&[
        "--bind",
        "127.0.0.1",
        "--assign",
        "52:54:00:77:00:01=format",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no disk layout"),
        "{o:?}"
    );
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "label = \"gpt\"\n[[partitions]]\nnumber = \"one\"\n").unwrap();
    let o = run(&["--bind", "127.0.0.1", "--layout", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.toml:3:10"),
        "{o:?}"
    );
    let o = run(&["--bind", "127.0.0.1", "--dhcp", "lab"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
