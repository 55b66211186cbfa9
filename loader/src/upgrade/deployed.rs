//! What is deployed now: the release's latest revision as `helm list -o json` reports it, and the
//! chart version the compatibility check compares against.

use serde::{Deserialize, Serialize};

use super::error::UpgradeError;
use super::helm::{Helm, KubeTarget, command_line};

/// The release as helm lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployedRelease {
    pub name: String,
    pub namespace: String,
    pub revision: u64,
    /// `deployed`, `failed`, `pending-upgrade`, ...
    pub status: String,
    /// Helm's `NAME-VERSION`, e.g. `sensei-1.1.0`.
    pub chart: String,
    pub chart_name: String,
    pub chart_version: semver::Version,
    pub app_version: String,
}

/// One entry of `helm list -o json`. Helm 3 and 4 print the revision as a string; a number is
/// accepted too.
#[derive(Debug, Deserialize)]
struct ListEntry {
    name: String,
    #[serde(default)]
    namespace: String,
    revision: serde_json::Value,
    #[serde(default)]
    status: String,
    chart: String,
    #[serde(default)]
    app_version: String,
}

/// `helm list` for exactly this release. The status flags are explicit because the defaults
/// differ (Helm 3: deployed and failed; Helm 4: every status) and a pending release must be seen:
/// upgrading over it would fail in helm with a less helpful message. An uninstalled release is
/// not listed, and `upgrade --install` installs it afresh.
pub fn list_args(release: &str, namespace: Option<&str>, kube: &KubeTarget) -> Vec<String> {
    let mut args: Vec<String> = ["list", "--filter"].map(String::from).to_vec();
    // Release names are validated to [a-z0-9.-]; only the dot means something in a regex.
    args.push(format!("^{}$", release.replace('.', r"\.")));
    args.extend(["--deployed", "--failed", "--pending", "-o", "json"].map(String::from));
    if let Some(ns) = namespace {
        args.extend(["-n".to_owned(), ns.to_owned()]);
    }
    args.extend(kube.args());
    args
}

/// Asks helm what is deployed under `release`; `None` when nothing is.
pub fn find(
    helm: &Helm,
    release: &str,
    namespace: Option<&str>,
    kube: &KubeTarget,
    chart_name: &str,
) -> Result<Option<DeployedRelease>, UpgradeError> {
    let args = list_args(release, namespace, kube);
    let out = helm.captured(&args, None)?;
    parse_list(&out, release, chart_name).map_err(|why| UpgradeError::HelmOutput {
        command: command_line(&helm.path, &args),
        why,
    })
}

/// Picks `release` out of `helm list -o json` output (its latest revision if listed twice).
pub fn parse_list(
    json: &str,
    release: &str,
    chart_name: &str,
) -> Result<Option<DeployedRelease>, String> {
    // Helm prints nothing at all (not `[]`) for an empty list in some versions.
    if json.trim().is_empty() {
        return Ok(None);
    }
    let entries: Vec<ListEntry> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON release list: {e}"))?;
    let mut best: Option<DeployedRelease> = None;
    for e in entries.into_iter().filter(|e| e.name == release) {
        let revision = match &e.revision {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "release {release} has revision {}, not a number",
                e.revision
            )
        })?;
        let (name, version) = split_chart(&e.chart, chart_name).ok_or_else(|| {
            format!(
                "release {release} runs chart {:?}, which is not NAME-VERSION with a semver version",
                e.chart
            )
        })?;
        let d = DeployedRelease {
            name: e.name,
            namespace: e.namespace,
            revision,
            status: e.status,
            chart_name: name.to_owned(),
            chart_version: version,
            chart: e.chart,
            app_version: e.app_version,
        };
        if best.as_ref().is_none_or(|b| b.revision < d.revision) {
            best = Some(d);
        }
    }
    Ok(best)
}

/// Splits helm's `NAME-VERSION`. Both may contain `-` (`my-chart-1.2.0-rc.1`), so the expected
/// name is tried first, then the first split whose right side is a semver version.
pub fn split_chart<'a>(chart: &'a str, expected: &str) -> Option<(&'a str, semver::Version)> {
    if let Some(rest) = chart
        .strip_prefix(expected)
        .and_then(|r| r.strip_prefix('-'))
        && let Ok(v) = semver::Version::parse(rest)
    {
        return Some((&chart[..expected.len()], v));
    }
    chart
        .match_indices('-')
        .find_map(|(i, _)| Some((&chart[..i], semver::Version::parse(&chart[i + 1..]).ok()?)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_helm_list_json() {
        // Captured from Helm 4.1.4 (Helm 3.19 prints the same fields).
        let json = r#"[{"name":"rel","namespace":"ns","revision":"3","updated":"2026-01-02 00:00:00 +0000 UTC","status":"deployed","chart":"demo-0.0.9","app_version":"0.0.9"}]"#;
        let d = parse_list(json, "rel", "demo").unwrap().unwrap();
        assert_eq!(d.revision, 3);
        assert_eq!(d.chart_name, "demo");
        assert_eq!(d.chart_version, semver::Version::new(0, 0, 9));
        assert_eq!(d.status, "deployed");
        assert_eq!(parse_list("[]", "rel", "demo").unwrap(), None);
        assert_eq!(parse_list("\n", "rel", "demo").unwrap(), None);
        // The filter is a regex; only an exact name counts.
        assert_eq!(parse_list(json, "re", "demo").unwrap(), None);
        let two = r#"[{"name":"r","revision":2,"chart":"a-1.0.0"},{"name":"r","revision":"5","chart":"a-1.1.0"}]"#;
        assert_eq!(parse_list(two, "r", "a").unwrap().unwrap().revision, 5);
        assert!(parse_list("{", "r", "a").unwrap_err().contains("JSON"));
        let bad = r#"[{"name":"r","revision":"x","chart":"a-1.0.0"}]"#;
        assert!(parse_list(bad, "r", "a").unwrap_err().contains("revision"));
    }

    #[test]
    fn splits_chart_names_with_dashes() {
        let (n, v) = split_chart("my-chart-1.2.0-rc.1", "my-chart").unwrap();
        assert_eq!((n, v.to_string().as_str()), ("my-chart", "1.2.0-rc.1"));
        let (n, v) = split_chart("other-chart-2.0.0", "demo").unwrap();
        assert_eq!((n, v.to_string().as_str()), ("other-chart", "2.0.0"));
        assert!(split_chart("nochart", "demo").is_none());
    }

    #[test]
    fn list_args_are_exact() {
        let args = list_args("rel.a", Some("ns"), &KubeTarget::default());
        assert_eq!(
            args,
            [
                "list",
                "--filter",
                r"^rel\.a$",
                "--deployed",
                "--failed",
                "--pending",
                "-o",
                "json",
                "-n",
                "ns"
            ]
        );
    }
}
