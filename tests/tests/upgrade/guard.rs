//! The compatibility check against the deployed release (major jump, downgrade, within the
//! rule) and the rollback guard against the last bundle loaded here: each refusal, then its
//! override.

use super::*;

#[test]
fn a_major_jump_is_refused_with_versions_rule_and_flag_then_allowed_with_allow_major() {
    let r = Rig::new();
    let deployed = r.deployed("0.9.0", 3);
    // The real helm list reads the pre-populated memory driver.
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for part in [
        "0.9.0",
        "1.2.0",
        "revision 3",
        "\">=1.1.0, <1.3.0\"",
        "--allow-major",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run", "--json"]);
    assert_exit(&out, 1);
    assert_eq!(json(&out)["verdict"], "rejected");

    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(
        &deployed,
        &wrapper,
        &["--dry-run", "--allow-major", "--json"],
    );
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "majorJump");
    assert_eq!(report["compatibility"]["overriddenBy"], "--allow-major");
    assert_eq!(report["deployed"]["chartVersion"], "0.9.0");
    // What helm says is deployed, plus the one revision the upgrade adds.
    assert_eq!(report["revision"], r.helm_revision(&deployed) + 1);
    assert_eq!(
        report["rollbackCommand"],
        format!("{} rollback demo 3 -n sensei", wrapper.display())
    );
}

#[test]
fn a_downgrade_from_the_deployed_version_is_refused_then_allowed() {
    let r = Rig::new();
    let deployed = r.deployed("1.3.0", 5);
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("1.3.0") && err.contains("1.2.0") && err.contains("--allow-downgrade"),
        "{err}"
    );
    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(
        &deployed,
        &wrapper,
        &["--dry-run", "--allow-downgrade", "--json"],
    );
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "downgrade");
    assert_eq!(report["compatibility"]["overriddenBy"], "--allow-downgrade");
    assert_eq!(
        report["rollbackCommand"],
        format!("{} rollback demo 5 -n sensei", wrapper.display())
    );
}

#[test]
fn an_upgrade_within_the_rule_goes_through() {
    let r = Rig::new();
    let deployed = r.deployed("1.1.0", 2);
    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(&deployed, &wrapper, &["--dry-run", "--json"]);
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "allowed");
    assert!(report["compatibility"].get("overriddenBy").is_none());
    assert_eq!(report["revision"], r.helm_revision(&deployed) + 1);
}

#[test]
fn a_bundle_older_than_the_last_one_loaded_here_is_refused_then_allowed() {
    let r = Rig::new();
    std::fs::create_dir_all(r.state_dir()).unwrap();
    let state = r.state_dir().join("demo.json");
    let recorded = r#"{"name": "demo", "version": "1.3.0", "loadedAt": "2026-03-01T00:00:00Z"}"#;
    std::fs::write(&state, recorded).unwrap();
    let out = r.upgrade(&r.b.tgz, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("version 1.2.0 is older than 1.3.0") && err.contains("--allow-downgrade"),
        "{err}"
    );
    let out = r.upgrade(
        &r.b.tgz,
        &helm4(),
        &["--dry-run", "--allow-downgrade", "--json"],
    );
    assert_exit(&out, 0);
    assert_eq!(json(&out)["report"]["lastLoaded"]["version"], "1.3.0");
    // A dry run leaves the record alone.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), recorded);

    // A corrupt record stops the upgrade (exit 3) rather than being ignored.
    std::fs::write(&state, "{").unwrap();
    let out = r.upgrade(&r.b.tgz, &helm4(), &["--dry-run"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
}
