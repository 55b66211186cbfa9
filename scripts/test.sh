#!/usr/bin/env bash
# The test command: installs the rig (scripts/setup.sh), builds, and runs every test:
# unit tests, CLI tests through the built binaries, end-to-end tests against skopeo and the
# real registry/helm, plus formatting and lints.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
export PATH="${SENSEI_RIG:-$root/.rig}/bin:$PATH"

cargo fmt --all -- --check
cargo build --workspace --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary must not hide the ones after it, so the closing count
# covers every test (cargo still exits non-zero when any failed).
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
