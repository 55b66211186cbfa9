//! Helm chart fixtures beyond the demo chart of [`crate::fixtures`]: charts whose images depend
//! on their values, for image discovery.

use std::fs;
use std::io;
use std::path::Path;

/// Name of the chart [`write_discovery_chart`] writes.
pub const DISCOVERY_CHART: &str = "discovery";
/// Its version.
pub const DISCOVERY_VERSION: &str = "0.3.0";

/// Always rendered.
pub const API_IMAGE: &str = "registry.example.com/sensei/api:0.3.0";
/// Rendered only with `metrics.enabled: true`; also declared in `artifacthub.io/images`.
pub const METRICS_IMAGE: &str = "registry.example.com/sensei/metrics:0.3.0";
/// Never rendered (a hook image a values flag would enable in a real chart); only declared.
pub const MIGRATE_IMAGE: &str = "registry.example.com/sensei/migrate:0.3.0";
/// Rendered by an init container from a Docker Hub short name (`busybox:1.36`).
pub const INIT_IMAGE: &str = "docker.io/library/busybox:1.36";

/// Writes a chart directory at `dir` that renders [`API_IMAGE`] and [`INIT_IMAGE`] always and
/// [`METRICS_IMAGE`] only when `metrics.enabled` is set, and declares [`METRICS_IMAGE`] and
/// [`MIGRATE_IMAGE`] in `artifacthub.io/images` and [`API_IMAGE`] in `images`. The registry
/// of the Sensei images is the `registry` value (default `registry.example.com`).
pub fn write_discovery_chart(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir.join("templates"))?;
    fs::write(
        dir.join("Chart.yaml"),
        format!(
            "apiVersion: v2
name: {DISCOVERY_CHART}
version: {DISCOVERY_VERSION}
annotations:
  artifacthub.io/images: |
    - name: metrics
      image: {METRICS_IMAGE}
    - name: migrate
      image: {MIGRATE_IMAGE}
  images: |
    - {API_IMAGE}
"
        ),
    )?;
    fs::write(
        dir.join("values.yaml"),
        "registry: registry.example.com\nmetrics:\n  enabled: false\n",
    )?;
    fs::write(
        dir.join("templates/deployment.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-api
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers:
        - name: wait
          image: busybox:1.36
      containers:
        - name: api
          image: {{ .Values.registry }}/sensei/api:{{ .Chart.Version }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          image: {{ .Values.registry }}/sensei/metrics:{{ .Chart.Version }}
        {{- end }}
"#,
    )
}
