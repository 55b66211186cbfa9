#!/usr/bin/env bash
# bench.sh regress: this tree's binaries against the binaries of an earlier commit (BENCH_BASE),
# in the same run, on the same inputs, so that a change that should cost nothing is shown to.
#   create .tar, Set A and Set B, from a loopback docker-registry   <= 1.03 x the base's
#   push .tar, Set A and Set B, into an empty docker-registry       <= 1.03 x the base's
# BENCH_BASE: a commit (default: the one before the output checks and temporary-file locks of
# issue 14 were added, i.e. the parent of the commit that added core/src/outfile.rs). It is
# built once in a git worktree under the work dir, with its own target directory (~5 min).
# Run by scripts/bench.sh (which builds and exports BENCH_*). Exit 1 if a target is missed.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'stop_registries; git -C "$BENCH_ROOT" worktree remove --force "$dir/base" 2>/dev/null || true' EXIT

export dir=$work/regress
rm -rf "$dir"
mkdir -p "$dir"
rows=$dir/rows
fixtures

base=${BENCH_BASE:-}
if [ -z "$base" ]; then
  added=$(git -C "$BENCH_ROOT" log --diff-filter=A --format=%H -- core/src/outfile.rs | tail -n 1)
  [ -n "$added" ] || die "no BENCH_BASE given and core/src/outfile.rs has no history to find one"
  base=$added^
fi
base=$(git -C "$BENCH_ROOT" rev-parse --verify "$base^{commit}") || die "BENCH_BASE: no such commit"
log "building the base $base (release, its own target dir; not timed)"
git -C "$BENCH_ROOT" worktree add --detach --force "$dir/base" "$base" >/dev/null 2>&1 ||
  die "cannot check out $base"
(cd "$dir/base" && CARGO_TARGET_DIR=$work/base-target cargo build --release --locked --quiet \
  -p sensei-bundler -p sensei-loader) || die "cannot build the base $base"
export old=$work/base-target/release

source_registry "$dir/source"

clean() { rm -f "$dir/out.tar"; }
create_with() { # BIN_VAR SPEC
  echo "\"\$$1/sensei-bundler\" create -f \"\$dir/$2\" --plain-http \$src --key \"\$work/k.key\" -o \"\$dir/out.tar\" --quiet"
}
compare createA clean "$(create_with bin a.yaml)" clean "$(create_with old a.yaml)"
compare createB clean "$(create_with bin b.yaml)" clean "$(create_with old b.yaml)"
log "building the bundles to push (not timed)"
for s in a b; do
  "$bin/sensei-bundler" create --quiet -f "$dir/$s.yaml" --plain-http "$src" \
    --key "$work/k.key" -o "$dir/$s.tar" >/dev/null || die "cannot build the $s bundle"
done
reg_stop
push_with() { # BIN_VAR BUNDLE
  echo "\"\$$1/sensei-loader\" push \"\$dir/$2\" --registry \"\$REG_HOST/bench\" --key \"\$work/k.pub\" --plain-http --quiet"
}
fresh() { reg_fresh "$dir/target"; }
compare pushA fresh "$(push_with bin a.tar)" fresh "$(push_with old a.tar)"
compare pushB fresh "$(push_with bin b.tar)" fresh "$(push_with old b.tar)"
reg_stop
reg_wipe "$dir/target"

compare_row createA "create .tar, Set A" 1.03
compare_row createB "create .tar, Set B" 1.03
compare_row pushA "push .tar, Set A" 1.03
compare_row pushB "push .tar, Set B" 1.03
table "regress: this tree (ours) against $(git -C "$BENCH_ROOT" log -1 --format='%h %s' "$base" | cut -c1-60) (peer)
  median of $runs runs after a warm-up, alternating; create from a loopback docker-registry,
  push into a fresh one each run
  $(set_label A)
  $(set_label B)"
