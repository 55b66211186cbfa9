#!/usr/bin/env bash
# Speed and memory targets, as ratios against a peer measured in the same run (the machine is
# noisy: compare ratios, quote medians). Usage: scripts/bench.sh [verify]   (default: verify)
#
# verify: on a ~1 GiB bundle (BENCH_MIB) built from generated OCI layouts:
#   verify .tar      <= 1.25 x `openssl dgst -sha256` of the same file
#   verify .tar.gz   <= 1.5  x `openssl dgst -sha256` of the .tar.gz
#   create .tar.gz   <= 1.3  x create .tar (time), size <= 1.01 x the .tar
#   peak RSS of create and verify <= 64 MiB
# Exits 1 if a target is missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-verify}
runs=${RUNS:-5}
mib=${BENCH_MIB:-1024}
"$root/scripts/setup.sh" >/dev/null
cd "$root"
cargo build --release --workspace --quiet
bin="$root/target/release"
work=${BENCH_DIR:-$(mktemp -d /var/tmp/sensei-bench.XXXXXX)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work"

case "$what" in
  verify) ;;
  *) echo "bench.sh: unknown benchmark '$what' (known: verify)" >&2; exit 2 ;;
esac

echo "== generating a ${mib} MiB fixture set in $work" >&2
"$bin/sensei-fixtures" "$work/src" --big-layer-mib "$mib" >/dev/null
"$bin/sensei-bundler" keygen --out "$work/k" >/dev/null
export SOURCE_DATE_EPOCH=1767225600
create() { "$bin/sensei-bundler" create --quiet -f "$work/src/bundle.yaml" --key "$work/k.key" -o "$1" >/dev/null; }
create "$work/b.tar"; create "$work/b.tar.gz"

hf() { # name, [hyperfine options...], command -> median seconds
  local name=$1; shift
  hyperfine --style none --warmup 1 --runs "$runs" --export-json "$work/$name.json" "$@" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/$name.json"
}
rss() { # command... -> peak RSS in MiB
  /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1
  echo $(( $(tail -n 1 "$work/rss") / 1024 ))
}

echo "== timing (median of $runs runs each)" >&2
# Outputs are removed before each run: replacing a 1 GiB file costs the kernel a second or so
# of page-cache truncation, which is not the bundler's work.
t_create_tar=$(hf create_tar --prepare "rm -f $work/c.tar" "$bin/sensei-bundler create --quiet -f $work/src/bundle.yaml --key $work/k.key -o $work/c.tar")
t_create_tgz=$(hf create_tgz --prepare "rm -f $work/c.tar.gz" "$bin/sensei-bundler create --quiet -f $work/src/bundle.yaml --key $work/k.key -o $work/c.tar.gz")
t_sha_tar=$(hf sha_tar "openssl dgst -sha256 $work/b.tar")
t_verify_tar=$(hf verify_tar "$bin/sensei-loader verify --quiet $work/b.tar --key $work/k.pub")
t_sha_tgz=$(hf sha_tgz "openssl dgst -sha256 $work/b.tar.gz")
t_verify_tgz=$(hf verify_tgz "$bin/sensei-loader verify --quiet $work/b.tar.gz --key $work/k.pub")
rss_create=$(rss "$bin/sensei-bundler" create --quiet -f "$work/src/bundle.yaml" --key "$work/k.key" -o "$work/r.tar.gz")
rss_verify_tar=$(rss "$bin/sensei-loader" verify --quiet "$work/b.tar" --key "$work/k.pub")
rss_verify_tgz=$(rss "$bin/sensei-loader" verify --quiet "$work/b.tar.gz" --key "$work/k.pub")
size_tar=$(stat -c %s "$work/b.tar"); size_tgz=$(stat -c %s "$work/b.tar.gz")

python3 - "$t_create_tar" "$t_create_tgz" "$t_sha_tar" "$t_verify_tar" "$t_sha_tgz" "$t_verify_tgz" \
  "$rss_create" "$rss_verify_tar" "$rss_verify_tgz" "$size_tar" "$size_tgz" <<'PY'
import sys
(ct, cg, st, vt, sg, vg) = map(float, sys.argv[1:7])
rc, rvt, rvg = map(int, sys.argv[7:10])
size_tar, size_tgz = map(int, sys.argv[10:12])
rows = [
    ("verify .tar / openssl dgst .tar", vt / st, 1.25, f"{vt:.3f}s / {st:.3f}s"),
    ("verify .tar.gz / openssl dgst .tar.gz", vg / sg, 1.5, f"{vg:.3f}s / {sg:.3f}s"),
    ("create .tar.gz / create .tar (time)", cg / ct, 1.3, f"{cg:.3f}s / {ct:.3f}s"),
    ("size .tar.gz / .tar", size_tgz / size_tar, 1.01, f"{size_tgz} / {size_tar} bytes"),
    ("peak RSS create .tar.gz (MiB)", rc, 64, ""),
    ("peak RSS verify .tar (MiB)", rvt, 64, ""),
    ("peak RSS verify .tar.gz (MiB)", rvg, 64, ""),
]
print(f"bundle: {size_tar / 2**20:.0f} MiB .tar")
missed = 0
for name, value, target, detail in rows:
    ok = value <= target
    missed += not ok
    print(f"{'ok  ' if ok else 'MISS'} {name:40s} {value:8.3f}  (target <= {target})  {detail}")
sys.exit(1 if missed else 0)
PY
