//! Unit tests of the upgrade flow's pure parts: input checks, chart choice, compatibility
//! messages and the exact helm argument lists.
#![allow(clippy::unwrap_used)]

use super::inputs::{check as check_inputs, is_go_duration};
use super::*;
use sensei_core::digest::Digest;
use sensei_core::manifest::Compat;

fn options() -> UpgradeOptions {
    UpgradeOptions {
        bundle: "b.tar.gz".into(),
        trust: TrustOptions::default(),
        registry: "registry.internal:5000/mirror".parse().unwrap(),
        push: PushOptions::default(),
        release: "sensei".into(),
        namespace: Some("prod".into()),
        values: vec![],
        set: vec![],
        helm: "helm".into(),
        timeout: DEFAULT_TIMEOUT.into(),
        dry_run: false,
        allow_major: false,
        allow_downgrade: false,
        state_dir: "/nonexistent".into(),
        chart: None,
        kube: KubeTarget::default(),
    }
}

fn helm(major: u64) -> Helm {
    Helm {
        path: "helm".into(),
        version: format!("v{major}.0.0"),
        major,
    }
}

fn chart(name: &str, version: &str) -> ChartEntry {
    ChartEntry {
        name: name.into(),
        version: semver::Version::parse(version).unwrap(),
        reference: format!("charts/{name}:{version}"),
        digest: Digest::of(name.as_bytes()),
        source: None,
    }
}

fn manifest(name: &str, charts: Vec<ChartEntry>) -> BundleManifest {
    BundleManifest {
        schema_version: 1,
        media_type: sensei_core::manifest::MEDIA_TYPE.into(),
        name: name.into(),
        version: semver::Version::new(1, 2, 0),
        created: "2026-01-01T00:00:00Z".into(),
        expires: None,
        compat: Compat {
            upgrade_from: ">=1.1.0, <1.3.0".into(),
        },
        images: vec![],
        charts,
        files: vec![],
    }
}

fn deployed(version: &str, revision: u64) -> DeployedRelease {
    DeployedRelease {
        name: "sensei".into(),
        namespace: "prod".into(),
        revision,
        status: "deployed".into(),
        chart: format!("sensei-{version}"),
        chart_name: "sensei".into(),
        chart_version: semver::Version::parse(version).unwrap(),
        app_version: version.into(),
    }
}

#[test]
fn helm_arguments_are_exact_and_user_values_come_last() {
    let mut o = options();
    o.values = vec!["values.yaml".into(), "prod.yaml".into()];
    o.set = vec![
        "global.security.allowInsecureImages=true".into(),
        "a=b".into(),
    ];
    o.push.plain_http = true;
    o.kube.context = Some("prod".into());
    let args = upgrade_args(
        &o,
        &helm(4),
        "oci://registry.internal:5000/mirror/charts/sensei",
        &semver::Version::new(1, 2, 0),
        None,
        Some(Path::new("/ca.pem")),
    );
    assert_eq!(
        args.join(" "),
        "upgrade --install sensei oci://registry.internal:5000/mirror/charts/sensei \
         --version 1.2.0 -n prod --kube-context prod \
         --set global.imageRegistry=registry.internal:5000/mirror --plain-http --ca-file /ca.pem \
         -f values.yaml -f prod.yaml --set global.security.allowInsecureImages=true --set a=b \
         --wait --timeout 15m"
    );
    o.dry_run = true;
    let v = semver::Version::new(1, 2, 0);
    let args = upgrade_args(&o, &helm(4), "/tmp/sensei-1.2.0.tgz", &v, None, None);
    assert_eq!(args.last().unwrap(), "--dry-run=client");
    assert!(!args.contains(&"--plain-http".to_owned()), "{args:?}");
    let args = upgrade_args(&o, &helm(3), "/tmp/sensei-1.2.0.tgz", &v, None, None);
    assert_eq!(args.last().unwrap(), "--dry-run");
}

#[test]
fn helm_gets_one_ca_file_holding_every_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(helm_ca_file(&[], dir.path()).unwrap(), None);
    let a = dir.path().join("a.pem");
    let b = dir.path().join("b.pem");
    std::fs::write(&a, "-----A-----").unwrap();
    std::fs::write(&b, "-----B-----\n").unwrap();
    // One file is passed as it is; several are concatenated, each on its own lines.
    assert_eq!(
        helm_ca_file(std::slice::from_ref(&a), dir.path()).unwrap(),
        Some(a.clone())
    );
    let joined = helm_ca_file(&[a, b.clone()], dir.path()).unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(&joined).unwrap(),
        "-----A-----\n-----B-----\n"
    );
    let missing = dir.path().join("missing.pem");
    let err = helm_ca_file(&[b, missing.clone()], dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn rollback_command_undoes_or_uninstalls() {
    let o = options();
    assert_eq!(
        rollback_command(&o, Some(&deployed("1.1.0", 7))),
        "helm rollback sensei 7 -n prod"
    );
    assert_eq!(rollback_command(&o, None), "helm uninstall sensei -n prod");
    let mut o = options();
    o.namespace = None;
    o.helm = "/opt/helm 4/helm".into();
    assert_eq!(
        rollback_command(&o, Some(&deployed("1.1.0", 2))),
        "'/opt/helm 4/helm' rollback sensei 2"
    );
}

#[test]
fn inputs_are_checked_before_anything_runs() {
    assert!(check_inputs(&options()).is_ok());
    type Change = fn(&mut UpgradeOptions);
    let cases: [(Change, &str); 5] = [
        (|o| o.release = "Sensei".into(), "--release"),
        (|o| o.namespace = Some("a.b".into()), "namespace"),
        (|o| o.timeout = "15".into(), "--timeout"),
        (|o| o.set = vec!["novalue".into()], "KEY=VALUE"),
        (
            |o| o.values = vec!["/nonexistent/values.yaml".into()],
            "values file",
        ),
    ];
    for (change, why) in cases {
        let mut o = options();
        change(&mut o);
        let err = check_inputs(&o).unwrap_err();
        assert_eq!(err.fault(), Fault::Input, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn go_durations() {
    for ok in [
        "15m", "90s", "1h30m", "2.5s", "300ms", "1h0m0s", "10us", "10µs",
    ] {
        assert!(is_go_duration(ok), "{ok}");
    }
    for bad in ["", "15", "m", "1x", "1.2.3s", ".s", "-1m", "1 m"] {
        assert!(!is_go_duration(bad), "{bad}");
    }
}

#[test]
fn chart_choice() {
    let m = manifest(
        "sensei",
        vec![chart("data-plane", "1.2.0"), chart("sensei", "1.2.0")],
    );
    assert_eq!(select_chart(&m, None).unwrap().name, "sensei");
    assert_eq!(
        select_chart(&m, Some("data-plane")).unwrap().name,
        "data-plane"
    );
    let err = select_chart(&m, Some("nope")).unwrap_err();
    assert_eq!(err.fault(), Fault::Input);
    assert!(
        err.to_string().contains("data-plane 1.2.0, sensei 1.2.0"),
        "{err}"
    );
    let m = manifest("product", vec![chart("only", "1.0.0")]);
    assert_eq!(select_chart(&m, None).unwrap().name, "only");
    let m = manifest("product", vec![chart("a", "1.0.0"), chart("b", "1.0.0")]);
    let err = select_chart(&m, None).unwrap_err().to_string();
    assert!(
        err.contains("--chart") && err.contains("a 1.0.0, b 1.0.0"),
        "{err}"
    );
    let err = select_chart(&manifest("p", vec![]), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no chart"), "{err}");
}

#[test]
fn compatibility_refusals_name_versions_rule_and_flag() {
    let m = manifest("sensei", vec![chart("sensei", "1.2.0")]);
    let c = chart("sensei", "1.2.0");
    let o = options();
    let ok = check_compat(&o, &m, &c, Some(&deployed("1.1.0", 3))).unwrap();
    assert_eq!((ok.verdict, ok.overridden_by), ("allowed", None));
    assert_eq!(
        check_compat(&o, &m, &c, None).unwrap().verdict,
        "freshInstall"
    );

    let err = check_compat(&o, &m, &c, Some(&deployed("0.9.0", 3))).unwrap_err();
    assert_eq!(err.fault(), Fault::Rejected);
    let msg = err.to_string();
    for part in [
        "0.9.0",
        "1.2.0",
        ">=1.1.0, <1.3.0",
        "--allow-major",
        "revision 3",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    let mut allow = options();
    allow.allow_major = true;
    let ok = check_compat(&allow, &m, &c, Some(&deployed("0.9.0", 3))).unwrap();
    assert_eq!(
        (ok.verdict, ok.overridden_by),
        ("majorJump", Some("--allow-major"))
    );

    let msg = check_compat(&o, &m, &c, Some(&deployed("1.3.0", 3)))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("1.3.0") && msg.contains("--allow-downgrade"),
        "{msg}"
    );
    allow.allow_downgrade = true;
    assert!(check_compat(&allow, &m, &c, Some(&deployed("1.3.0", 3))).is_ok());

    // Outside the rule: no flag lets it through.
    let msg = check_compat(&allow, &m, &c, Some(&deployed("1.0.0", 3)))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("1.0.0") && msg.contains("upgrade through a release"),
        "{msg}"
    );
}

#[test]
fn the_chart_is_pinned_by_digest_where_helm_can_pull_by_digest() {
    #[derive(Default)]
    struct Steps(std::sync::Mutex<Vec<String>>);
    impl Observer for Steps {
        fn step(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_owned());
        }
    }
    let entry = chart("sensei", "1.2.0");
    let url = "oci://registry.internal/charts/sensei";
    let with = |version: &str| {
        let steps = Steps::default();
        let helm = Helm {
            path: "helm".into(),
            version: version.into(),
            major: 3,
        };
        let arg = pinned_chart(&helm, url, &entry, &steps);
        (arg, steps.0.into_inner().unwrap())
    };
    let (arg, steps) = with("v3.19.0+g3d8990f");
    assert_eq!(arg, format!("{url}@{}", entry.digest));
    assert!(steps.is_empty(), "{steps:?}");
    let (arg, steps) = with("v3.17.3+ge4da497");
    assert_eq!(arg, url);
    assert_eq!(steps.len(), 1);
    assert!(
        steps[0].contains("v3.17.3") && steps[0].contains("by tag") && steps[0].contains("3.18"),
        "{steps:?}"
    );
}
