#!/usr/bin/env bash
# The main job end to end on this machine, against two real registries it starts on loopback:
# a "public" source registry (seeded with generated images) and an air-gapped "internal" one.
# Build a signed bundle from the source (through a pull mirror), verify it offline with only the
# public key, countersign it, reject a tampered copy, push it to the internal registry (digests
# preserved), take the seed's manual path (load-images.sh), render the pushed chart with the
# registry override, and dry-run the helm upgrade handoff. Everything stays in a temp directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >/dev/null 2>&1 || "$root/scripts/setup.sh"
export PATH="${SENSEI_RIG:-$root/.rig}/bin:$PATH"
cd "$root"
# SENSEI_BIN: a directory of already built binaries (the test that runs this demo passes its own).
if [ -n "${SENSEI_BIN:-}" ]; then
  bin=$SENSEI_BIN
else
  cargo build --workspace --quiet
  bin="$root/target/debug"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/sensei-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start_registry NAME: Debian's docker-registry on a free loopback port; sets $registry_host.
# (Not a $(...) call: the pid must reach the cleanup list in this shell.)
start_registry() {
  local name=$1 port dir
  port=$(free_port)
  dir="$work/registry-$name"
  mkdir -p "$dir/data"
  cat > "$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && { registry_host="127.0.0.1:$port"; return; }
    sleep 0.1
  done
  echo "demo: registry $name did not start; its log:" >&2
  cat "$dir/log" >&2
  exit 1
}

step "1. Generate OCI images (shared base layer, multi-arch index, Docker schema 2) and a Helm chart"
show "$bin/sensei-fixtures" "$work/src"

step "2. Start a source registry (stands in for registry.example.com) and an internal one"
start_registry source
src=$registry_host
start_registry internal
dst=$registry_host
echo "source registry:   $src"
echo "internal registry: $dst"
for image in api worker multi; do
  skopeo copy -q --all --preserve-digests --dest-tls-verify=false \
    "oci:$work/src/oci:$image:1.2.0" "docker://$src/sensei/$image:1.2.0"
done
skopeo copy -q --all --preserve-digests --dest-tls-verify=false \
  "oci:$work/src/oci-docker/legacy" "docker://$src/sensei/legacy:1.2.0"
echo "seeded sensei/{api,worker,multi,legacy}:1.2.0 with skopeo"

step "3. Release engineer: a spec that pulls registry.example.com through a mirror (the source)"
cat > "$work/sensei.yaml" <<EOF
name: sensei
version: 1.2.0
charts:
  - path: $work/src/charts/demo
images:
  - registry.example.com/sensei/api:1.2.0
  - registry.example.com/sensei/worker:1.2.0
  - registry.example.com/sensei/multi:1.2.0
  - registry.example.com/sensei/legacy:1.2.0
mirrors:
  registry.example.com: $src
EOF
cat "$work/sensei.yaml"
show "$bin/sensei-bundler" keygen --out "$work/release"
show "$bin/sensei-bundler" create -f "$work/sensei.yaml" --plain-http "$src" --dry-run

step "4. Release engineer: build the signed bundle"
show "$bin/sensei-bundler" create -f "$work/sensei.yaml" --plain-http "$src" --key "$work/release.key" -o "$work/sensei-1.2.0.tar.gz"

step "5. Security team: verify offline with only the public key"
show "$bin/sensei-loader" verify "$work/sensei-1.2.0.tar.gz" --key "$work/release.pub"

step "6. Security team: countersign (two-person rule), then require two signatures"
show "$bin/sensei-bundler" keygen --out "$work/security"
show "$bin/sensei-bundler" sign "$work/sensei-1.2.0.tar.gz" --key "$work/security.key"
show "$bin/sensei-loader" verify "$work/sensei-1.2.0.tar.gz" --key "$work/release.pub" --key "$work/security.pub" --threshold 2 --quiet | tail -n 1

step "7. A tampered copy (one byte flipped in a layer) is rejected with exit code 1"
gzip -dc "$work/sensei-1.2.0.tar.gz" > "$work/tampered.tar"
size=$(stat -c %s "$work/tampered.tar")
printf '\xff' | dd of="$work/tampered.tar" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$bin/sensei-loader" verify "$work/tampered.tar" --key "$work/release.pub"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" = 1 ] || { echo "demo: expected the tampered bundle to be rejected with exit 1" >&2; exit 1; }

step "8. Operator: push to the internal registry (verifies first; digests preserved)"
show "$bin/sensei-loader" push "$work/sensei-1.2.0.tar.gz" --registry "$dst" --plain-http --key "$work/release.pub"
want=$(tar -xzOf "$work/sensei-1.2.0.tar.gz" bundle.json | python3 -c 'import json,sys; print(next(i["digest"] for i in json.load(sys.stdin)["images"] if i["reference"].endswith("/multi:1.2.0")))')
got=$(skopeo inspect --raw --tls-verify=false "docker://$dst/sensei/multi:1.2.0" | sha256sum | cut -d' ' -f1)
echo "sensei/multi:1.2.0 in the bundle: $want"
echo "sensei/multi:1.2.0 at $dst: sha256:$got"
[ "$want" = "sha256:$got" ] || { echo "demo: the pushed digest differs" >&2; exit 1; }

step "9. The seed's manual path: extract, then ./load-images.sh (here into a /mirror prefix)"
mkdir "$work/extracted" && tar -xzf "$work/sensei-1.2.0.tar.gz" -C "$work/extracted"
(cd "$work/extracted" && PATH="$bin:$PATH" show ./load-images.sh --registry "$dst/mirror" --plain-http --key "$work/release.pub" --quiet)
curl -fsS "http://$dst/v2/_catalog"; echo

step "10. The pushed chart, pulled by the digest the bundle signed, renders every image at the internal registry"
mkdir -p "$work/pulled"
chart=$(tar -xzOf "$work/sensei-1.2.0.tar.gz" bundle.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["charts"][0]["digest"])')
show helm pull "oci://$dst/charts/demo@$chart" --version 1.2.0 --plain-http -d "$work/pulled"
pulled=$(ls "$work"/pulled/*.tgz) # named by helm: by digest it is not NAME-VERSION.tgz
show helm template sensei "$pulled" --set "global.imageRegistry=$dst" | grep -e '^\$ ' -e 'image:'

step "11. Operator: the helm upgrade handoff, dry run (Helm 4, no cluster here: in-memory driver)"
: > "$work/helm-memory"
HELM_DRIVER=memory HELM_MEMORY_DRIVER_DATA="$work/helm-memory" \
  show "$bin/sensei-loader" upgrade "$work/sensei-1.2.0.tar.gz" --key "$work/release.pub" \
  --registry "$dst" --plain-http --release sensei -n sensei --helm "$(command -v helm4)" \
  --state-dir "$work/state" --dry-run --quiet
echo
echo "demo complete."
