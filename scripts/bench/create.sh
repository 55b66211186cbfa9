#!/usr/bin/env bash
# bench.sh create (issue 3): `sensei-bundler create` from a loopback docker-registry against
# skopeo pulling the same images into one oci: directory, in the same run, page cache warm,
# outputs on the same disk as the registry's storage.
#   Set A .tar            <= 0.5  x skopeo copy --all of each image into one oci: dir (issue 10)
#   Set B (100 small)     <= 0.12 x the same, one skopeo process per image
#   Set C (BENCH_C_IMAGES images, default 8, each a base layer plus its own BENCH_C_MIB MiB
#         layer, default 400: a 3.4 GB bundle, the scale real releases reach)
#                         <= 0.8  x the same; peak disk use <= 1.05 x the bundle
#   peak RSS              <= 64 MiB
# BENCH_C_IMAGES=0 leaves Set C out (it needs ~4 x its size of free disk).
# Run by scripts/bench.sh (which builds and exports BENCH_*). Exit 1 if a target is missed.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"
trap stop_registries EXIT

export dir=$work/create
rm -rf "$dir"
mkdir -p "$dir"
rows=$dir/rows
fixtures

source_registry "$dir/registry"

# The peer: skopeo has no multi-image copy (and its oci: layout is not safe for concurrent
# writers), so its users script one `skopeo copy --all` per image into one oci: directory.
write_peer() { # FILE SET... -> a script: FILE OCI_DIR
  local file=$1 ref
  shift
  {
    echo '#!/bin/sh'
    echo '# skopeo: one process per image, all into one oci: directory ($1)'
    echo 'set -e'
    for ref in "$@"; do
      echo "skopeo copy -q --all --src-tls-verify=false docker://$src/bench/$ref \"oci:\$1:$ref\""
    done
  } >"$file"
}
write_peer "$dir/skopeo-a.sh" "${set_a[@]}"
write_peer "$dir/skopeo-b.sh" "${set_b[@]}"

# Each run writes into a fresh directory of its own (fresh_out), for both sides alike; what a
# run wrote is checked after it, untimed: our archive must verify, skopeo's layout must hold
# every image at its digest.
ours_out() { fresh_out ours; }
peer_out() { fresh_out peer; }
ours() { # SPEC -> the bundler command line, as a string for compare
  echo "\"\$bin/sensei-bundler\" create -f \"\$dir/$1\" --plain-http $src --key \"\$work/k.key\" -o \"\$OUT/out.tar\" --quiet"
}
check_ours() {
  "$bin/sensei-loader" verify --quiet "$OUT/out.tar" --key "$work/k.pub" >/dev/null ||
    die "output check: $OUT/out.tar does not verify"
}
check_peer_a() { check_oci_dir "$OUT/peer" "${set_a[@]}"; }
check_peer_b() { check_oci_dir "$OUT/peer" "${set_b[@]}"; }

compare createA ours_out "$(ours a.yaml)" peer_out 'sh "$dir/skopeo-a.sh" "$OUT/peer"' check_ours check_peer_a
compare createB ours_out "$(ours b.yaml)" peer_out 'sh "$dir/skopeo-b.sh" "$OUT/peer"' check_ours check_peer_b
drop_outs

# Set C: BENCH_C_IMAGES fixture sets, each generated with its own seed so that every big layer
# differs, their `big` image seeded into the registry as bench/large-N:1.0.0.
c_images=${BENCH_C_IMAGES:-8}
c_mib=${BENCH_C_MIB:-400}
set_c=()
if [ "$c_images" -gt 0 ]; then
  log "Set C: generating $c_images images with a ${c_mib} MiB layer each (not timed)"
  for ((i = 0; i < c_images; i++)); do
    ref=$(printf 'large-%03d:1.0.0' "$i")
    set_c+=("$ref")
    "$bin/sensei-fixtures" "$dir/fxc" --big-layer-mib "$c_mib" --seed "$((i + 1))" >/dev/null
    skopeo copy -q --all --preserve-digests --dest-tls-verify=false \
      "oci:$dir/fxc/oci:big:1.0.0" "docker://$src/bench/$ref"
    rm -rf "$dir/fxc"
  done
  spec_registry "$dir/c.yaml" bench-c "$src" "${set_c[@]}"
  write_peer "$dir/skopeo-c.sh" "${set_c[@]}"
  # Peak disk use of our side: the output directory's size, sampled while the build runs.
  disk_watch() { # -> starts a sampler of $OUT's size into $dir/disk.samples
    (while :; do du -sb "$OUT" 2>/dev/null | cut -f1; sleep 0.05; done) >>"$dir/disk.samples" &
    disk_pid=$!
  }
  ours_out_c() { ours_out; disk_watch; }
  check_ours_c() {
    if [ -n "${disk_pid:-}" ]; then
      kill "$disk_pid" 2>/dev/null || true
      wait "$disk_pid" 2>/dev/null || true
      disk_pid=
    fi
    check_ours
    stat -c %s "$OUT/out.tar" >>"$dir/disk.bundle"
  }
  check_peer_c() { check_registry_oci_c; }
  # skopeo's layout, checked against the registry's own digests (the fixtures are gone).
  check_registry_oci_c() {
    local ref want
    for ref in "${set_c[@]}"; do
      want=$(skopeo inspect --raw --tls-verify=false "docker://$src/bench/$ref" | sha256sum | cut -d' ' -f1)
      python3 - "$OUT/peer" "$ref" "sha256:$want" <<'PY' || die "output check: skopeo's layout lacks $ref"
import json, os, sys
index = json.load(open(os.path.join(sys.argv[1], "index.json")))
sys.exit(0 if any(m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]
                  and m["digest"] == sys.argv[3] for m in index["manifests"]) else 1)
PY
    done
  }
  old_runs=$runs
  runs=${BENCH_C_RUNS:-3}
  compare createC ours_out_c "$(ours c.yaml)" peer_out 'sh "$dir/skopeo-c.sh" "$OUT/peer"' check_ours_c check_peer_c
  runs=$old_runs
  drop_outs
fi

compare_row createA "create .tar, Set A" 0.5
compare_row createB "create .tar, Set B" 0.12
if [ "$c_images" -gt 0 ]; then
  compare_row createC "create .tar, Set C ($c_images x ${c_mib} MiB)" 0.8
  peak=$(sort -n "$dir/disk.samples" | tail -n 1)
  bundle=$(sort -n "$dir/disk.bundle" | tail -n 1)
  row max "peak disk create, Set C / bundle" "$(awk -v p="$peak" -v b="$bundle" 'BEGIN { printf "%.3f", p / b }')" - 1.05 \
    "largest output directory seen: $peak bytes; bundle $bundle bytes"
  row max "peak RSS create, Set C (MiB)" "$(max_rss_mib "$dir/createC.ours")" \
    "$(max_rss_mib "$dir/createC.peer")" 64 "peer column: largest skopeo process"
fi
row max "peak RSS create, Set A (MiB)" "$(max_rss_mib "$dir/createA.ours")" \
  "$(max_rss_mib "$dir/createA.peer")" 64 "peer column: largest skopeo process"
row max "peak RSS create, Set B (MiB)" "$(max_rss_mib "$dir/createB.ours")" \
  "$(max_rss_mib "$dir/createB.peer")" 64 "peer column: largest skopeo process"

reg_stop
rm -rf "$dir/registry/storage"
table "create: sensei-bundler create vs skopeo copy --all per image into one oci: dir
  median of $runs runs after a warm-up; source: a loopback docker-registry
  $(set_label A)
  $(set_label B)"
