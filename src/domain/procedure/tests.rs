//! Unit tests of the state machine: every gate, invalidation on recipe change, per-host
//! partial failure and resume points, on the engine's test workspace.

use super::*;
use crate::domain::finding::Source;
use crate::domain::recipe::Recipe;
use crate::domain::workspace::{Sources, Workspace};

const SITE: &str = include_str!("../../../tests/fixtures/engine-ws/site.toml");
const MODELS: &str = include_str!("../../../tests/fixtures/engine-ws/models.toml");
const DEVICES: &str = include_str!("../../../tests/fixtures/engine-ws/devices.csv");
const ROOM: &str = include_str!("../../../tests/fixtures/engine-ws/rooms/b204.toml");
const HOSTS: [&str; 4] = ["b204-01", "b204-02", "b204-03", "b204-04"];

// Field by field: `Sources` gains fields over time; the others stay at their default.
#[allow(clippy::field_reassign_with_default)]
fn workspace(room: &str) -> Workspace {
    let mut sources = Sources::default();
    sources.site = Some(Source::new("site.toml", SITE.to_string()));
    sources.models = Some(Source::new("models.toml", MODELS.to_string()));
    sources.devices = Some(Source::new("devices.csv", DEVICES.to_string()));
    sources.rooms = vec![Source::new("rooms/b204.toml", room.to_string())];
    let (ws, findings) = Workspace::parse(&sources);
    assert!(findings.is_empty(), "{findings:?}");
    ws
}

fn recipe(ws: &Workspace) -> &Recipe {
    ws.room("b204").expect("room b204")
}

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date")
}

fn facts_with_image(ws: &Workspace, current: &Current, image: Option<&str>) -> Facts {
    let images = image
        .map(|id| {
            vec![ImageFact {
                id: id.into(),
                recipe_digest: current.recipe.clone(),
            }]
        })
        .unwrap_or_default();
    Facts::gather(ws, recipe(ws), today(), images)
}

fn done(key: String, seq: u64) -> Record {
    Record {
        status: StepStatus::Done,
        key,
        seq,
        message: String::new(),
        image: None,
    }
}

/// A history where every step is done for `current`, capture having produced `image`.
fn all_done(current: &Current, image: &str) -> History {
    let mut h = History::default();
    let mut seq = 0;
    for step in [Step::Collect, Step::Format, Step::Install, Step::Test] {
        seq += 1;
        h.put(step, None, done(current.key(step, None), seq));
    }
    seq += 1;
    h.put(
        Step::Capture,
        None,
        Record {
            image: Some(image.into()),
            ..done(current.recipe.clone(), seq)
        },
    );
    for step in [Step::Deploy, Step::Join, Step::Verify] {
        for host in HOSTS {
            seq += 1;
            h.put(step, Some(host), done(current.key(step, Some(image)), seq));
        }
    }
    h
}

fn hosts() -> Vec<String> {
    HOSTS.iter().map(|h| h.to_string()).collect()
}

fn run_steps(items: &[PlanItem]) -> Vec<(Step, Option<String>)> {
    items
        .iter()
        .filter(|i| matches!(i.action, Action::Run { .. }))
        .map(|i| (i.step, i.host.clone()))
        .collect()
}

#[test]
fn a_fresh_room_plans_every_step_on_every_host() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let p = plan(
        &History::default(),
        &cur,
        &facts,
        &Selection::default(),
        &hosts(),
    );
    assert_eq!(run_steps(&p).len(), 5 + 3 * 4, "{p:#?}");
    assert!(p.iter().all(|i| matches!(
        i.action,
        Action::Run {
            check_first: false,
            ..
        }
    )));
}

#[test]
fn install_needs_collect_and_format() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let mut h = History::default();
    assert!(matches!(
        gate(Step::Install, None, &h, &cur, &facts),
        Err(Blocker::Needs {
            step: Step::Collect,
            ..
        })
    ));
    h.put(Step::Collect, None, done(cur.recipe.clone(), 1));
    assert!(matches!(
        gate(Step::Install, None, &h, &cur, &facts),
        Err(Blocker::Needs {
            step: Step::Format,
            ..
        })
    ));
    h.put(Step::Format, None, done(cur.base.clone(), 2));
    assert_eq!(gate(Step::Install, None, &h, &cur, &facts), Ok(()));
}

#[test]
fn collect_refuses_while_the_licence_gate_does_not_hold() {
    let ws = workspace(&ROOM.replace("seats = 10", "seats = 2"));
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let h = History::default();
    assert!(matches!(
        gate(Step::Collect, None, &h, &cur, &facts),
        Err(Blocker::Licence(_))
    ));
    // Formatting the master touches no licensed product.
    assert_eq!(gate(Step::Format, None, &h, &cur, &facts), Ok(()));
    let ws = workspace(ROOM);
    let facts = facts_with_image(&ws, &cur, None);
    assert_eq!(gate(Step::Collect, None, &h, &cur, &facts), Ok(()));
}

#[test]
fn install_needs_a_clean_licence_gate() {
    let ws = workspace(&ROOM.replace("seats = 10", "seats = 2"));
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let mut h = History::default();
    h.put(Step::Collect, None, done(cur.recipe.clone(), 1));
    h.put(Step::Format, None, done(cur.base.clone(), 2));
    match gate(Step::Install, None, &h, &cur, &facts) {
        Err(Blocker::Licence(errs)) => {
            assert_eq!(errs.len(), 1);
            assert!(errs[0].contains("2 seats for 4 workstations"), "{errs:?}");
            assert!(errs[0].starts_with("rooms/b204.toml:"), "{errs:?}");
        }
        other => panic!("expected a licence blocker, got {other:?}"),
    }
    // The head's written authorisation lifts the gate, and is reported as an override.
    let authorised = format!(
        "{}\n[[authorisation]]\nproduct = \"Régressi\"\nby = \"M. Martin, proviseur\"\ndate = 2026-09-02\nreference = \"courrier 2026-41\"\n",
        ROOM.replace("seats = 10", "seats = 2")
    );
    let ws = workspace(&authorised);
    let facts = facts_with_image(&ws, &cur, None);
    assert_eq!(gate(Step::Install, None, &h, &cur, &facts), Ok(()));
    assert_eq!(facts.licence_overrides.len(), 1);
}

#[test]
fn capture_needs_tests_passed_and_a_signoff_of_the_installed_list() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let mut h = all_done(&cur, "b204/1");
    h.room.remove(&Step::Capture);
    h.put(
        Step::Test,
        None,
        Record {
            status: StepStatus::Failed,
            ..done(cur.tests.clone(), 4)
        },
    );
    assert!(matches!(
        gate(Step::Capture, None, &h, &cur, &facts),
        Err(Blocker::Needs {
            step: Step::Test,
            ..
        })
    ));
    h.put(Step::Test, None, done(cur.tests.clone(), 5));
    assert_eq!(gate(Step::Capture, None, &h, &cur, &facts), Ok(()));

    // No signature at all.
    let unsigned = ROOM.split("[[signoff]]").next().expect("head").to_string();
    let ws2 = workspace(&unsigned);
    let facts2 = facts_with_image(&ws2, &cur, None);
    assert_eq!(
        gate(Step::Capture, None, &h, &cur, &facts2),
        Err(Blocker::Signoff {
            installed: cur.software.clone()
        })
    );

    // A new version: the signature is of the old list; everything from install on must run again.
    let ws3 = workspace(&ROOM.replace("6.0.850", "6.0.900"));
    let cur3 = Current::of(recipe(&ws3));
    let facts3 = facts_with_image(&ws3, &cur3, None);
    let mut h3 = all_done(&cur3, "b204/1");
    h3.room.remove(&Step::Capture);
    assert_eq!(
        gate(Step::Capture, None, &h3, &cur3, &facts3),
        Err(Blocker::Signoff {
            installed: cur3.software.clone()
        })
    );
}

#[test]
fn deploy_needs_an_image_of_the_current_recipe() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let h = all_done(&cur, "b204/1");
    // Not in the store.
    let facts = facts_with_image(&ws, &cur, None);
    assert!(matches!(
        gate(Step::Deploy, Some("b204-02"), &h, &cur, &facts),
        Err(Blocker::NoImage { .. })
    ));
    // In the store, but its manifest names another recipe.
    let mut stale = facts.clone();
    stale.images.push(ImageFact {
        id: "b204/1".into(),
        recipe_digest: "sha256:other".into(),
    });
    assert!(matches!(
        gate(Step::Deploy, Some("b204-02"), &h, &cur, &stale),
        Err(Blocker::NoImage { .. })
    ));
    let ok = facts_with_image(&ws, &cur, Some("b204/1"));
    assert_eq!(gate(Step::Deploy, Some("b204-02"), &h, &cur, &ok), Ok(()));
    // Capture not done: blocked on capture.
    let mut h2 = h.clone();
    h2.room.remove(&Step::Capture);
    assert!(matches!(
        gate(Step::Deploy, Some("b204-02"), &h2, &cur, &ok),
        Err(Blocker::Needs {
            step: Step::Capture,
            ..
        })
    ));
}

#[test]
fn join_needs_deploy_on_that_host_and_verify_comes_last() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, Some("b204/1"));
    let mut h = all_done(&cur, "b204/1");
    h.hosts.remove(&(Step::Deploy, "b204-03".into()));
    assert!(matches!(
        gate(Step::Join, Some("b204-03"), &h, &cur, &facts),
        Err(Blocker::Needs { step: Step::Deploy, host: Some(ref x), .. }) if x == "b204-03"
    ));
    assert_eq!(gate(Step::Join, Some("b204-02"), &h, &cur, &facts), Ok(()));
    h.hosts.remove(&(Step::Join, "b204-02".into()));
    assert!(matches!(
        gate(Step::Verify, Some("b204-02"), &h, &cur, &facts),
        Err(Blocker::Needs {
            step: Step::Join,
            ..
        })
    ));
    assert_eq!(
        gate(Step::Verify, Some("b204-04"), &h, &cur, &facts),
        Ok(())
    );
}

#[test]
fn a_new_software_version_invalidates_install_test_signoff_capture_and_after() {
    let ws = workspace(ROOM);
    let old = Current::of(recipe(&ws));
    let h = all_done(&old, "b204/1");
    let ws2 = workspace(&ROOM.replace("6.0.850", "6.0.900"));
    let new = Current::of(recipe(&ws2));
    assert_ne!(old.recipe, new.recipe);
    assert_ne!(old.software, new.software);
    assert_eq!(old.base, new.base);
    assert!(matches!(
        h.effective(&new, Step::Collect, None),
        Effective::Stale(_)
    ));
    assert!(
        h.effective(&new, Step::Format, None).is_done(),
        "a new version does not reformat the master"
    );
    for step in [Step::Install, Step::Test, Step::Capture] {
        assert!(
            matches!(h.effective(&new, step, None), Effective::Stale(_)),
            "{step}"
        );
    }
    for host in HOSTS {
        for step in [Step::Deploy, Step::Join, Step::Verify] {
            assert!(
                !h.effective(&new, step, Some(host)).is_done(),
                "{step} on {host}"
            );
        }
    }
    // And the sign-off no longer matches: the plan stops at capture.
    let facts = facts_with_image(&ws2, &new, Some("b204/1"));
    let p = plan(&h, &new, &facts, &Selection::default(), &hosts());
    let capture = p.iter().find(|i| i.step == Step::Capture).expect("capture");
    assert!(
        matches!(capture.action, Action::Blocked(Blocker::Signoff { .. })),
        "{capture:?}"
    );
    assert_eq!(
        run_steps(&p),
        vec![
            (Step::Collect, None),
            (Step::Install, None),
            (Step::Test, None)
        ]
    );
}

#[test]
fn a_forced_image_stands_for_the_capture_only_where_it_is_forced() {
    let ws = workspace(ROOM);
    let old = Current::of(recipe(&ws));
    let mut h = all_done(&old, "b204/1");
    let ws2 = workspace(&ROOM.replace("6.0.850", "6.0.900"));
    let new = Current::of(recipe(&ws2));
    // The store holds b204/1, captured from the old recipe.
    let mut facts = facts_with_image(&ws2, &new, None);
    facts.images.push(ImageFact {
        id: "b204/1".into(),
        recipe_digest: old.recipe.clone(),
    });
    assert!(matches!(
        gate(Step::Deploy, Some("b204-02"), &h, &new, &facts),
        Err(Blocker::Needs {
            step: Step::Capture,
            ..
        })
    ));
    let mut forced = h.clone();
    forced.forced_image = Some("b204/1".into());
    assert_eq!(
        gate(Step::Deploy, Some("b204-02"), &forced, &new, &facts),
        Ok(())
    );
    // A forced image that is not in the store is still refused.
    forced.forced_image = Some("b204/9".into());
    assert!(matches!(
        gate(Step::Deploy, Some("b204-02"), &forced, &new, &facts),
        Err(Blocker::NoImage { .. })
    ));
    // Deploy redone with the forced image: join and verify may follow on that host only.
    forced.forced_image = Some("b204/1".into());
    forced.put(
        Step::Deploy,
        Some("b204-02"),
        done(new.key(Step::Deploy, Some("b204/1")), 100),
    );
    assert!(
        forced
            .effective(&new, Step::Deploy, Some("b204-02"))
            .is_done()
    );
    assert_eq!(
        gate(Step::Join, Some("b204-02"), &forced, &new, &facts),
        Ok(())
    );
    // Without the force (the next `parc master`), that deploy is not current: the room needs a
    // capture of today's recipe.
    h.put(
        Step::Deploy,
        Some("b204-02"),
        done(new.key(Step::Deploy, Some("b204/1")), 100),
    );
    assert!(!h.effective(&new, Step::Deploy, Some("b204-02")).is_done());
    assert!(matches!(
        h.effective(&new, Step::Capture, None),
        Effective::Stale(_)
    ));
}

#[test]
fn a_new_base_image_invalidates_format_and_everything_after_it() {
    let ws = workspace(ROOM);
    let old = Current::of(recipe(&ws));
    let h = all_done(&old, "b204/1");
    let ws2 = workspace(&ROOM.replace("debian-12", "debian-13"));
    let new = Current::of(recipe(&ws2));
    assert!(matches!(
        h.effective(&new, Step::Format, None),
        Effective::Stale(_)
    ));
    assert!(matches!(
        h.effective(&new, Step::Install, None),
        Effective::Stale(_)
    ));
}

#[test]
fn changing_only_the_tests_reruns_test_and_what_follows() {
    let ws = workspace(ROOM);
    let old = Current::of(recipe(&ws));
    let h = all_done(&old, "b204/1");
    let ws2 = workspace(&ROOM.replace("geogebra --version", "geogebra --help"));
    let new = Current::of(recipe(&ws2));
    assert_eq!(old.recipe, new.recipe);
    assert!(h.effective(&new, Step::Install, None).is_done());
    assert!(matches!(
        h.effective(&new, Step::Test, None),
        Effective::Stale(_)
    ));
    assert!(matches!(
        h.effective(&new, Step::Capture, None),
        Effective::Stale(_)
    ));
}

#[test]
fn a_failed_workstation_blocks_only_its_own_later_steps() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, Some("b204/1"));
    let mut h = all_done(&cur, "b204/1");
    for step in [Step::Deploy, Step::Join, Step::Verify] {
        for host in HOSTS {
            h.hosts.remove(&(step, host.to_string()));
        }
    }
    let image_key = cur.key(Step::Deploy, Some("b204/1"));
    h.put(Step::Deploy, Some("b204-01"), done(image_key.clone(), 10));
    h.put(Step::Deploy, Some("b204-02"), done(image_key.clone(), 11));
    h.put(
        Step::Deploy,
        Some("b204-03"),
        Record {
            status: StepStatus::Failed,
            message: "disk".into(),
            ..done(image_key.clone(), 12)
        },
    );
    h.put(Step::Deploy, Some("b204-04"), done(image_key, 13));
    let sel = Selection {
        from: Some(Step::Join),
        ..Selection::default()
    };
    for host in HOSTS {
        let a = decide(Step::Join, Some(host), &h, &cur, &facts, &sel);
        if host == "b204-03" {
            assert!(
                matches!(
                    a,
                    Action::Blocked(Blocker::Needs {
                        step: Step::Deploy,
                        ..
                    })
                ),
                "{a:?}"
            );
        } else {
            assert!(matches!(a, Action::Run { .. }), "{host}: {a:?}");
        }
    }
    // Without --from, the next run retries only the failed deploy.
    let p = plan(&h, &cur, &facts, &Selection::default(), &hosts());
    let deploys: Vec<_> = run_steps(&p)
        .into_iter()
        .filter(|(s, _)| *s == Step::Deploy)
        .collect();
    assert_eq!(deploys, vec![(Step::Deploy, Some("b204-03".to_string()))]);
}

#[test]
fn resume_points() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, None);
    let mut h = History::default();
    h.put(Step::Collect, None, done(cur.recipe.clone(), 1));
    h.put(Step::Format, None, done(cur.base.clone(), 2));
    h.put(
        Step::Install,
        None,
        Record {
            status: StepStatus::Running,
            ..done(cur.recipe.clone(), 3)
        },
    );
    let sel = Selection::default();
    assert_eq!(
        decide(Step::Collect, None, &h, &cur, &facts, &sel),
        Action::AlreadyDone
    );
    assert_eq!(
        decide(Step::Format, None, &h, &cur, &facts, &sel),
        Action::AlreadyDone
    );
    // Interrupted, not idempotent: check before re-running.
    assert!(matches!(
        decide(Step::Install, None, &h, &cur, &facts, &sel),
        Action::Run {
            check_first: true,
            ..
        }
    ));
    // Interrupted test is idempotent: just re-run.
    h.put(Step::Install, None, done(cur.recipe.clone(), 4));
    h.put(
        Step::Test,
        None,
        Record {
            status: StepStatus::Running,
            ..done(cur.tests.clone(), 5)
        },
    );
    assert!(matches!(
        decide(Step::Test, None, &h, &cur, &facts, &sel),
        Action::Run {
            check_first: false,
            ..
        }
    ));
    // Re-formatting the master after install makes install stale.
    h.put(Step::Format, None, done(cur.base.clone(), 6));
    assert!(
        matches!(h.effective(&cur, Step::Install, None), Effective::Stale(ref s) if s.contains("format"))
    );
}

#[test]
fn selection_only_from_and_hosts() {
    let ws = workspace(ROOM);
    let cur = Current::of(recipe(&ws));
    let facts = facts_with_image(&ws, &cur, Some("b204/1"));
    let h = all_done(&cur, "b204/1");
    assert!(run_steps(&plan(&h, &cur, &facts, &Selection::default(), &hosts())).is_empty());
    let only = Selection {
        only: Some(Step::Test),
        ..Selection::default()
    };
    assert_eq!(
        run_steps(&plan(&h, &cur, &facts, &only, &hosts())),
        vec![(Step::Test, None)]
    );
    let from = Selection {
        from: Some(Step::Join),
        hosts: Some(vec!["b204-02".into()]),
        ..Selection::default()
    };
    assert_eq!(
        run_steps(&plan(&h, &cur, &facts, &from, &hosts())),
        vec![
            (Step::Join, Some("b204-02".into())),
            (Step::Verify, Some("b204-02".into()))
        ]
    );
    assert_eq!("Deploy".parse::<Step>(), Ok(Step::Deploy));
    assert!("deploi".parse::<Step>().is_err());
}

mod properties {
    //! From any recorded history, with every outside fact satisfied, the plan never blocks,
    //! re-runs everything downstream of what it re-runs, and applying it leaves every step done.

    use proptest::prelude::*;

    use super::*;

    fn arb_record() -> impl Strategy<Value = Option<(u8, bool, u64)>> {
        // (status index, key current?, seq)
        proptest::option::of((0u8..5, any::<bool>(), 1u64..200))
    }

    fn status(i: u8) -> StepStatus {
        [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Done,
            StepStatus::Failed,
            StepStatus::Skipped,
        ][i as usize]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_history_resumes_to_all_done(
            room in proptest::collection::vec(arb_record(), 5),
            hosts in proptest::collection::vec(arb_record(), 12),
        ) {
            let ws = workspace(ROOM);
            let cur = Current::of(recipe(&ws));
            let facts = facts_with_image(&ws, &cur, Some("b204/1"));
            let mut h = History::default();
            for (step, r) in Step::ALL.iter().take(5).zip(&room) {
                if let Some((s, current, seq)) = r {
                    let key = if *current { cur.key(*step, None) } else { "sha256:old".into() };
                    let image = (*step == Step::Capture).then(|| "b204/1".to_string());
                    h.put(*step, None, Record { status: status(*s), key, seq: *seq, message: String::new(), image });
                }
            }
            for (i, r) in hosts.iter().enumerate() {
                let step = Step::ALL[5 + i / 4];
                if let Some((s, current, seq)) = r {
                    let key = if *current { cur.key(step, Some("b204/1")) } else { "image:b204/0".into() };
                    h.put(step, Some(HOSTS[i % 4]), Record { status: status(*s), key, seq: *seq, message: String::new(), image: None });
                }
            }
            let p = plan(&h, &cur, &facts, &Selection::default(), &hosts_vec());
            let mut sim = h.clone();
            let mut seq = 1000;
            let mut ran: Vec<(Step, Option<String>)> = Vec::new();
            for item in &p {
                match &item.action {
                    Action::Blocked(b) => prop_assert!(false, "{:?} on {:?} blocked: {b}", item.step, item.host),
                    Action::NotSelected => prop_assert!(false, "nothing is deselected by default"),
                    Action::AlreadyDone => {
                        prop_assert!(h.effective(&cur, item.step, item.host.as_deref()).is_done());
                        // Nothing it builds on runs again before it in this plan.
                        for pred in item.step.predecessors() {
                            let ph = if pred.per_host() { item.host.clone() } else { None };
                            prop_assert!(!ran.contains(&(*pred, ph)), "{:?} kept although {pred} reruns", item.step);
                        }
                    }
                    Action::Run { .. } => {
                        seq += 1;
                        let image = sim.captured_image(&cur).map(str::to_string).or_else(|| Some("b204/1".into()));
                        let key = cur.key(item.step, image.as_deref());
                        let img = (item.step == Step::Capture).then(|| "b204/1".to_string());
                        sim.put(item.step, item.host.as_deref(), Record { status: StepStatus::Done, key, seq, message: String::new(), image: img });
                        ran.push((item.step, item.host.clone()));
                    }
                }
            }
            for step in Step::ALL {
                if step.per_host() {
                    for host in HOSTS {
                        prop_assert!(sim.effective(&cur, step, Some(host)).is_done(), "{step} on {host}");
                    }
                } else {
                    prop_assert!(sim.effective(&cur, step, None).is_done(), "{step}");
                }
            }
        }
    }

    fn hosts_vec() -> Vec<String> {
        HOSTS.iter().map(|h| h.to_string()).collect()
    }
}

/// A Windows room plans the same eight steps as a Linux room: nothing blocked for being
/// Windows, each step runnable once the one before it is (the sign-off given).
#[test]
fn a_windows_room_plans_all_eight_steps() {
    let room = ROOM.replace("family = \"linux\"", "family = \"windows\"");
    assert_ne!(room, ROOM, "the fixture names its OS family");
    let ws = workspace(&room);
    let cur = Current::of(recipe(&ws));
    let mut facts = facts_with_image(&ws, &cur, None);
    assert_eq!(facts.os_family, crate::domain::recipe::OsFamily::Windows);
    facts.signed.push(cur.software.clone());
    let p = plan(
        &History::default(),
        &cur,
        &facts,
        &Selection::default(),
        &hosts(),
    );
    for step in Step::ALL {
        let a: Vec<&Action> = p
            .iter()
            .filter(|i| i.step == step)
            .map(|i| &i.action)
            .collect();
        assert!(
            !a.is_empty() && a.iter().all(|a| matches!(a, Action::Run { .. })),
            "{step}: {a:?}"
        );
    }
    assert!(gate(Step::Install, None, &History::default(), &cur, &facts).is_err());
}
