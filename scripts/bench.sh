#!/usr/bin/env bash
# Speed and memory targets, as ratios against a peer measured in the same run (the machine is
# noisy: compare ratios, quote medians). Usage: scripts/bench.sh [all|verify|create|push|regress]
# (default: all). Each section prints a table; `all` ends with every table together.
#
# verify (scripts/bench/verify.sh): on a ~1 GiB bundle built from generated OCI layouts
#   verify .tar <= 1.25 x openssl dgst, .tar.gz <= 1.5 x; create .tar.gz <= 1.3 x create .tar;
#   .tar.gz size <= 1.01 x .tar; peak RSS <= 64 MiB
# create (scripts/bench/create.sh, issue 3): from a loopback docker-registry
#   Set A (4 images sharing a base layer + a 400 MiB one) <= 0.67 x skopeo into one oci: dir;
#   Set B (100 small images) <= 0.25 x skopeo one image at a time; peak RSS <= 64 MiB
# push (scripts/bench/push.sh, issues 4, 14 and 15): into an empty loopback docker-registry, against
#   skopeo copy --all from an oci: dir run 8 at a time (sequential skopeo shown beside it)
#   Set A <= 0.8 x (or <= 1.15 x the lone curl PUT of its big layer when that floor is above
#   0.7 x skopeo); Set B <= 0.4 x; pushing again when everything is there, --full-check (which
#   reads every byte), <= 1.0 x skopeo digesting the same blobs then re-copying (the bare re-copy
#   and the default tag-check fast path shown beside it); peak RSS <= 64 MiB
#   300 images through sensei-fault-proxy (500 to 20% of requests, 5% of connections reset),
#   every run landing whole in one go: <= 2.0 x the same push straight into the registry (issue 14)
# Every section checks each timed run's output (the archive verifies, or every image is at the
# target with its digest) and stops with exit 3 if one is wrong or the timing tool fails.
# regress (scripts/bench/regress.sh, issue 14): this tree against an earlier commit
#   (BENCH_BASE, built in a worktree): create and push of Set A and Set B <= 1.03 x the base's.
#   Not part of `all`: it builds a second copy of the project (~5 min).
#
# Environment: RUNS (default 5), BENCH_DIR (work dir, default a new one under /var/tmp),
# KEEP=1 (keep it), BENCH_BASE (regress), BENCH_MIB (verify's bundle, 1024), BENCH_BIG_MIB (400), BENCH_SMALL (100).
# Exit: 0 every target met, 1 a target missed, 2 usage, 3 a benchmark could not run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
case "$what" in
  all) sections=(verify create push) ;;
  verify | create | push | regress) sections=("$what") ;;
  *) echo "bench.sh: unknown benchmark '$what' (known: all, verify, create, push, regress)" >&2; exit 2 ;;
esac

"$root/scripts/setup.sh" >/dev/null
cd "$root"
cargo build --release --locked --workspace --quiet
cargo build --release --locked --quiet -p sensei-core --example gunzip
export BENCH_ROOT=$root BENCH_BIN=$root/target/release RUNS=${RUNS:-5}
export BENCH_WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/sensei-bench.XXXXXX)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$BENCH_WORK"' EXIT
mkdir -p "$BENCH_WORK"

missed=0 failed=0
for section in "${sections[@]}"; do
  status=0
  "$root/scripts/bench/$section.sh" || status=$?
  case $status in
    0) ;;
    1) missed=1 ;;
    *) failed=$status; echo "bench.sh: the $section benchmark could not run (exit $status)" >&2 ;;
  esac
done

if [ ${#sections[@]} -gt 1 ]; then
  echo "==================== summary ===================="
  for section in "${sections[@]}"; do
    [ -f "$BENCH_WORK/$section/rows.txt" ] && cat "$BENCH_WORK/$section/rows.txt"
  done
fi
[ "$failed" = 0 ] || exit "$failed"
exit "$missed"
