#!/usr/bin/env bash
# The main job end to end on this machine: generate OCI image layouts and a Helm chart, build a
# signed bundle from them, verify it offline with only the public key, countersign it, and show
# that a tampered copy is rejected. Everything stays in a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >/dev/null 2>&1 || "$root/scripts/setup.sh"
cd "$root"
cargo build --workspace --quiet
bin="$root/target/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/sensei-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "1. Generate OCI image layouts (shared base layer, multi-arch index, Docker schema 2) and a chart"
show "$bin/sensei-fixtures" "$work/src"

step "2. Release engineer: make a signing key, then build the bundle"
show "$bin/sensei-bundler" keygen --out "$work/release"
show "$bin/sensei-bundler" create -f "$work/src/bundle.yaml" --version 1.2.0 --key "$work/release.key" -o "$work/sensei-1.2.0.tar.gz"

step "3. Security team: verify offline with only the public key"
show "$bin/sensei-loader" verify "$work/sensei-1.2.0.tar.gz" --key "$work/release.pub"

step "4. Security team: countersign (two-person rule), then require two signatures"
show "$bin/sensei-bundler" keygen --out "$work/security"
show "$bin/sensei-bundler" sign "$work/sensei-1.2.0.tar.gz" --key "$work/security.key"
show "$bin/sensei-loader" verify "$work/sensei-1.2.0.tar.gz" --key "$work/release.pub" --key "$work/security.pub" --threshold 2 --quiet | tail -n 1

step "5. A tampered copy (one byte flipped in a layer) is rejected with exit code 1"
cp "$work/sensei-1.2.0.tar" "$work/tampered.tar" 2>/dev/null || gzip -dc "$work/sensei-1.2.0.tar.gz" > "$work/tampered.tar"
size=$(stat -c %s "$work/tampered.tar")
printf '\xff' | dd of="$work/tampered.tar" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$bin/sensei-loader" verify "$work/tampered.tar" --key "$work/release.pub"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" = 1 ] || { echo "demo: expected the tampered bundle to be rejected with exit 1" >&2; exit 1; }

step "6. The seed's manual path: extract, then load-images.sh (needs sensei-loader push, coming with the loader)"
mkdir "$work/extracted" && tar -xzf "$work/sensei-1.2.0.tar.gz" -C "$work/extracted"
show "$bin/sensei-loader" verify "$work/extracted" --key "$work/release.pub" --quiet | tail -n 1
echo
echo "demo complete."
