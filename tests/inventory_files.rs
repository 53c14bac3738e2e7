//! `parc inventory import linbo | glpi-csv | parc FILE`: dry run by default, written with
//! `--yes`, bad files refused with file:line:col and exit 2, nothing touched.

use assert_cmd::Command;

const SITE: &str = "[lycee]\nname = \"Lycée Test\"\nuai = \"0840001A\"\nsector = \"Avignon\"\n\n\
[domain]\nrealm = \"TEST.LAN\"\nnetbios = \"TEST\"\ncomputers_ou = \"OU=Salles,DC=test,DC=lan\"\njoin_account = \"join\"\n\n\
[endpoint]\nkind = \"pxe\"\naddress = \"10.0.0.1\"\n";
const MODELS: &str = "[[model]]\nid = \"optiplex-7010\"\nmanufacturer = \"Dell\"\nname = \"OptiPlex 7010\"\nform_factor = \"desktop\"\nyear = 2019\n\
cpu = \"i5\"\ncpu_score = 6000\nram_gb = 8\ndisk_type = \"ssd\"\ndisk_gb = 256\ngpu = \"Intel\"\n";
const DEVICES: &str = "room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state;ip;notes\n\
b204;b204-pc01;52:54:00:aa:bb:01;SN1;optiplex-7010;2019-09-01;;region;in-service;;\n";

fn ws() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("site.toml"), SITE).unwrap();
    std::fs::write(d.path().join("models.toml"), MODELS).unwrap();
    std::fs::write(d.path().join("devices.csv"), DEVICES).unwrap();
    d
}

fn run(d: &tempfile::TempDir, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("parc")
        .unwrap()
        .args(["inventory", "import"])
        .args(args)
        .arg("-w")
        .arg(d.path())
        .assert()
}

#[test]
fn linbo_updates_rooms_and_ips_after_a_dry_run() {
    let d = ws();
    let f = d.path().join("linbo.csv");
    std::fs::write(&f, "# linuxmuster\nb205;B204-PC01;win10-optiplex-7010;52:54:00:AA:BB:01;10.0.5.11;;;;classroom-studentcomputer;;1\n").unwrap();
    let a = run(&d, &["linbo", f.to_str().unwrap()]).success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        out.contains("~ b204-pc01: room: b204 → b205; ip: (empty) → 10.0.5.11"),
        "{out}"
    );
    assert!(out.contains("Dry run"), "{out}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("devices.csv")).unwrap(),
        DEVICES
    );
    run(&d, &["linbo", f.to_str().unwrap(), "--yes"]).success();
    assert_eq!(
        std::fs::read_to_string(d.path().join("devices.csv")).unwrap(),
        "room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state;ip;notes\n\
         b205;b204-pc01;52:54:00:aa:bb:01;SN1;optiplex-7010;2019-09-01;;region;in-service;10.0.5.11;\n"
    );
}

#[test]
fn glpi_csv_adds_a_workstation() {
    let d = ws();
    let f = d.path().join("export.csv");
    std::fs::write(
        &f,
        "Nom;Statut;Numéro de série;Modèle;Lieu;Date d'achat;Durée de garantie;Adresse MAC\n\
         B204-PC02;En service;SN2;OptiPlex 7010;Lycée > B204;01-09-2019;60 mois;52:54:00:aa:bb:02\n",
    )
    .unwrap();
    run(&d, &["glpi-csv", f.to_str().unwrap(), "--yes"]).success();
    let text = std::fs::read_to_string(d.path().join("devices.csv")).unwrap();
    assert!(
        text.ends_with(
            "b204;b204-pc02;52:54:00:aa:bb:02;SN2;optiplex-7010;2019-09-01;2024-09-01;region;in-service;;\n"
        ),
        "{text}"
    );
}

#[test]
fn bad_files_exit_2_and_touch_nothing() {
    let d = ws();
    let f = d.path().join("linbo.csv");
    std::fs::write(&f, "b205;pc9;grp;not-a-mac;10.0.0.9\n").unwrap();
    let a = run(&d, &["linbo", f.to_str().unwrap(), "--yes"]).code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("linbo.csv:1:14: MAC address \"not-a-mac\" is malformed"),
        "{err}"
    );
    let a = run(
        &d,
        &[
            "parc",
            d.path().join("missing.csv").to_str().unwrap(),
            "--yes",
        ],
    )
    .code(2);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("cannot read"));
    assert_eq!(
        std::fs::read_to_string(d.path().join("devices.csv")).unwrap(),
        DEVICES
    );
}
