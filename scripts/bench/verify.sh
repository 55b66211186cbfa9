#!/usr/bin/env bash
# bench.sh verify: on a ~1 GiB bundle (BENCH_MIB) built from generated OCI layouts:
#   verify .tar      <= 1.25 x `openssl dgst -sha256` of the same file
#   verify .tar.gz   <= 1.5  x `openssl dgst -sha256` of the .tar.gz
#   create .tar.gz   <= 1.3  x create .tar (time), size <= 1.01 x the .tar
#   peak RSS of create and verify <= 64 MiB
#   gunzip of the .tar.gz by our reader (stored members copied out block by block) <= 1.0 x
#   flate2's MultiGzDecoder (zlib-rs) on the same file: the reader parses untrusted input
#   before authentication, so it must earn its place by being faster (issue 10)
# Run by scripts/bench.sh (which builds and exports BENCH_*). Exit 1 if a target is missed.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

mib=${BENCH_MIB:-1024}
dir=$work/verify
rm -rf "$dir"
mkdir -p "$dir"
rows=$dir/rows

log "generating a ${mib} MiB fixture set in $dir"
"$bin/sensei-fixtures" "$dir/src" --big-layer-mib "$mib" >/dev/null
"$bin/sensei-bundler" keygen --out "$dir/k" >/dev/null
export SOURCE_DATE_EPOCH=1767225600
create() { "$bin/sensei-bundler" create --quiet -f "$dir/src/bundle.yaml" --key "$dir/k.key" -o "$1" >/dev/null; }
create "$dir/b.tar"; create "$dir/b.tar.gz"

hf() { # name, [hyperfine options...], command -> median seconds
  local name=$1; shift
  hyperfine --style none --warmup 1 --runs "$runs" --export-json "$dir/$name.json" "$@" >"$dir/$name.log" 2>&1 ||
    { tail -n 20 "$dir/$name.log" >&2; die "hyperfine failed for $name"; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$dir/$name.json"
}
rss() { # command... -> peak RSS in MiB; a failed command or timing tool exits 3
  /usr/bin/time -f '%M' -o "$dir/rss" "$@" >/dev/null 2>&1 || die "failed: $*"
  local kib
  kib=$(tail -n 1 "$dir/rss")
  [[ $kib =~ ^[0-9]+$ ]] || die "/usr/bin/time gave no peak RSS for: $*"
  echo $((kib / 1024))
}

log "timing (median of $runs runs each)"
# Outputs are removed before each run: replacing a 1 GiB file costs the kernel a second or so
# of page-cache truncation, which is not the bundler's work.
# The two creates alternate run by run (lib.sh's compare), so a burst of load on this shared
# machine lands on both formats, not on whichever was timed second; each output must equal,
# byte for byte, the bundle built above (SOURCE_DATE_EPOCH makes them reproducible).
no_tar() { rm -f "$dir/c.tar"; }
no_tgz() { rm -f "$dir/c.tar.gz"; }
same_tar() { cmp -s "$dir/c.tar" "$dir/b.tar" || die "output check: create .tar differs from the first build"; }
same_tgz() { cmp -s "$dir/c.tar.gz" "$dir/b.tar.gz" || die "output check: create .tar.gz differs from the first build"; }
compare create no_tgz "$bin/sensei-bundler create --quiet -f $dir/src/bundle.yaml --key $dir/k.key -o $dir/c.tar.gz" \
  no_tar "$bin/sensei-bundler create --quiet -f $dir/src/bundle.yaml --key $dir/k.key -o $dir/c.tar" same_tgz same_tar
t_create_tgz=$(median "$dir/create.ours")
t_create_tar=$(median "$dir/create.peer")
t_sha_tar=$(hf sha_tar "openssl dgst -sha256 $dir/b.tar")
t_verify_tar=$(hf verify_tar "$bin/sensei-loader verify --quiet $dir/b.tar --key $dir/k.pub")
t_sha_tgz=$(hf sha_tgz "openssl dgst -sha256 $dir/b.tar.gz")
t_verify_tgz=$(hf verify_tgz "$bin/sensei-loader verify --quiet $dir/b.tar.gz --key $dir/k.pub")
gunzip=$BENCH_ROOT/target/release/examples/gunzip
[ "$("$gunzip" ours "$dir/b.tar.gz")" = "$("$gunzip" flate2 "$dir/b.tar.gz")" ] ||
  die "the two gzip decoders disagree on $dir/b.tar.gz"
t_gunzip_ours=$(hf gunzip_ours "$gunzip ours $dir/b.tar.gz")
t_gunzip_flate2=$(hf gunzip_flate2 "$gunzip flate2 $dir/b.tar.gz")
rss_create=$(rss "$bin/sensei-bundler" create --quiet -f "$dir/src/bundle.yaml" --key "$dir/k.key" -o "$dir/r.tar.gz")
rss_verify_tar=$(rss "$bin/sensei-loader" verify --quiet "$dir/b.tar" --key "$dir/k.pub")
rss_verify_tgz=$(rss "$bin/sensei-loader" verify --quiet "$dir/b.tar.gz" --key "$dir/k.pub")
size_tar=$(stat -c %s "$dir/b.tar"); size_tgz=$(stat -c %s "$dir/b.tar.gz")

row ratio "verify .tar / openssl dgst .tar" "$t_verify_tar" "$t_sha_tar" 1.25 ""
row ratio "verify .tar.gz / openssl dgst .tar.gz" "$t_verify_tgz" "$t_sha_tgz" 1.5 ""
row ratio "gunzip .tar.gz: our reader / flate2 MultiGzDecoder" "$t_gunzip_ours" "$t_gunzip_flate2" 1.0 \
  "peer column: flate2 (zlib-rs) on the same file"
row ratio "create .tar.gz / create .tar (time)" "$t_create_tgz" "$t_create_tar" 1.3 "peer column: create .tar; alternated, $(spread "$dir/create.ours") vs $(spread "$dir/create.peer")s"
row max "size .tar.gz / .tar" "$(python3 -c "print(round($size_tgz / $size_tar, 4))")" - 1.01 \
  "$size_tgz / $size_tar bytes"
row max "peak RSS create .tar.gz (MiB)" "$rss_create" - 64 ""
row max "peak RSS verify .tar (MiB)" "$rss_verify_tar" - 64 ""
row max "peak RSS verify .tar.gz (MiB)" "$rss_verify_tgz" - 64 ""

rm -rf "$dir/src" "$dir"/*.tar "$dir"/*.tar.gz
table "verify: $(( size_tar / 1048576 )) MiB bundle (median of $runs runs after a warm-up, hyperfine)"
