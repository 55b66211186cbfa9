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
cargo test --workspace --locked
