#!/usr/bin/env bash
# bench.sh create (issue 3): `sensei-bundler create` from a loopback docker-registry against
# skopeo pulling the same images into one oci: directory, in the same run, page cache warm,
# outputs on the same disk as the registry's storage.
#   Set A .tar            <= 0.67 x skopeo copy --all of each image into one oci: dir
#   Set B (100 small)     <= 0.25 x the same, one skopeo process per image
#   peak RSS (Set A)      <= 64 MiB
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

compare_row createA "create .tar, Set A" 0.67
compare_row createB "create .tar, Set B" 0.25
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
