# Shared by the sections of scripts/bench.sh (sourced, not run): timing, medians, peak RSS,
# loopback docker-registries, the fixture set and the summary table.
#
# Expects from scripts/bench.sh (exported): BENCH_ROOT, BENCH_BIN, BENCH_WORK, RUNS.
# shellcheck shell=bash

bin=$BENCH_BIN
work=$BENCH_WORK
runs=$RUNS
# Commands are strings run by `bash -c` at measurement time (so they see the registry started
# just before): what they name must be in the environment.
export bin work
export LC_ALL=C # EPOCHREALTIME and printf must use '.' as the decimal point

log() { echo "== $*" >&2; }
die() { echo "bench: $*" >&2; exit 3; }

# --- timing ----------------------------------------------------------------------------------

# timed FILE CMD...: runs CMD once, appends its wall time (s) to FILE and its peak RSS (KiB,
# GNU time's %M: the largest process of the tree) to FILE.rss. A failing command, or a timing
# tool that gives no number, aborts the benchmark (exit 3) with its output: a timing or an RSS
# of a failed run means nothing, and must never read as a target met or missed.
timed() {
  local file=$1; shift
  local out=$work/last-command.log t0 t1 rss
  sync # the previous run's dirty pages must not be written back on this run's clock
  rm -f "$file.rss.last"
  t0=$EPOCHREALTIME
  if ! /usr/bin/time -f '%M' -o "$file.rss.last" "$@" >"$out" 2>&1; then
    echo "bench: command failed: $*" >&2
    tail -n 30 "$out" >&2
    exit 3
  fi
  t1=$EPOCHREALTIME
  rss=$(tail -n 1 "$file.rss.last" 2>/dev/null || true)
  [[ $rss =~ ^[0-9]+$ ]] || die "/usr/bin/time gave no peak RSS for: $* (got '${rss}')"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$file"
  echo "$rss" >>"$file.rss"
  cat "$out" >>"$file.out" # e.g. --json reports, for phase timings
}

# fresh_out NAME: a new, empty output directory for the next run of one side ($dir/NAME.N,
# exported as OUT), after deleting the big files (>= 1 MiB, few inodes) of that side's previous
# run; its small files stay until drop_outs, untimed at the end of the section. Both sides are
# treated alike: deleting thousands of files just before a timed run slows the next run's file
# creation on ext4 (see reg_fresh), so neither side gets a clean-up the other does not.
declare -A out_runs=()
fresh_out() {
  local n=${out_runs[$1]:-0}
  [ "$n" = 0 ] || find "$dir/$1.$n" -type f -size +1023k -delete 2>/dev/null || true
  n=$((n + 1))
  out_runs[$1]=$n
  OUT=$dir/$1.$n
  export OUT
  mkdir -p "$OUT"
}

# drop_outs: deletes every output directory fresh_out made (not timed).
drop_outs() {
  local name
  for name in "${!out_runs[@]}"; do rm -rf "$dir/$name".*; done
  out_runs=()
}

# median FILE: the median of the numbers in FILE, one per line.
median() {
  python3 -c 'import statistics, sys; print(statistics.median(float(l) for l in open(sys.argv[1]) if l.strip()))' "$1"
}

# json_median FILE KEY...: the median of REPORT[KEY]... over the JSON documents in FILE (one
# per run, as `--json` prints them), formatted as seconds.
json_median() {
  python3 - "$@" <<'PY'
import json, statistics, sys
text, keys, values, pos = open(sys.argv[1]).read(), sys.argv[2:], [], 0
decoder = json.JSONDecoder()
while True:
    while pos < len(text) and text[pos] != "{":
        pos += 1
    if pos >= len(text):
        break
    doc, pos = decoder.raw_decode(text, pos)
    for k in keys:
        doc = doc[k]
    values.append(float(doc))
print(f"{statistics.median(values):.2f}s")
PY
}

# spread FILE: "min-max" of the numbers in FILE, for the table's note column.
spread() {
  python3 -c 'import sys; v = [float(l) for l in open(sys.argv[1]) if l.strip()]; print(f"{min(v):.2f}-{max(v):.2f}")' "$1"
}

# max_rss_mib FILE: the largest peak RSS recorded by `timed FILE ...`, in MiB.
max_rss_mib() {
  python3 -c 'import sys; print(f"{max(int(l) for l in open(sys.argv[1]) if l.strip()) / 1024:.1f}")' "$1.rss"
}

# --- loopback docker-registry ----------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# reg_start DIR [STORAGE]: starts Debian's docker-registry with its storage in STORAGE
# (default DIR/storage) on a free loopback port; sets REG_HOST (127.0.0.1:PORT) and REG_PID.
# Every registry started is listed in $work/registry.pids, which the EXIT trap uses to stop them.
reg_start() {
  local dir=$1 storage=${2:-$1/storage} attempt port
  mkdir -p "$storage"
  for attempt in 1 2 3; do
    port=$(free_port)
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: sensei-bench
EOF
    docker-registry serve "$dir/config.yml" </dev/null >>"$dir/registry.log" 2>&1 &
    REG_PID=$!
    echo "$REG_PID" >>"$work/registry.pids"
    export REG_HOST=127.0.0.1:$port
    local i
    for i in $(seq 1 100); do
      if curl -fsS -o /dev/null "http://$REG_HOST/v2/" 2>/dev/null; then return 0; fi
      kill -0 "$REG_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    echo "bench: docker-registry on $REG_HOST did not come up (attempt $attempt):" >&2
    tail -n 5 "$dir/registry.log" >&2
  done
  die "cannot start docker-registry (log: $dir/registry.log)"
}

# reg_stop: stops the registry REG_PID names (storage stays).
reg_stop() {
  if [ -n "${REG_PID:-}" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=
  fi
}

# reg_fresh DIR: an EMPTY registry: stops the current one and starts a new one on a new port (so
# no client cache remembers the old registry's content under this name) and in a new storage
# directory, DIR/storage.N. What the previous run left costs the next one if it is cleaned up
# the wrong way, and both ways were measured here:
# - deleting its thousands of small files: for ~30 s ext4 then checks the recently deleted
#   inodes whenever it allocates one, so the next run's file creation slows (a Set B push took
#   1.3-2.1 s after such wipes, 1.0-1.2 s without), a fixed cost that weighs most on the faster
#   side; so the small files stay until reg_wipe;
# - keeping its big blobs: gigabytes written in a minute slow later big writes (the lone curl
#   PUT went from 1.5-1.6 s to 2.4 s); so files of 1 MiB or more are deleted (few inodes).
reg_fresh() {
  reg_stop
  if [ -n "${reg_runs:-}" ]; then
    find "$1/storage.$reg_runs" -type f -size +1023k -delete 2>/dev/null || true
  fi
  reg_runs=$((${reg_runs:-0} + 1))
  reg_start "$1" "$1/storage.$reg_runs"
}

# reg_wipe DIR: deletes the storage of every registry reg_fresh started in DIR (not timed).
reg_wipe() {
  rm -rf "$1"/storage.*
}

stop_registries() {
  local pid
  [ -f "$work/registry.pids" ] || return 0
  while read -r pid; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done <"$work/registry.pids"
  rm -f "$work/registry.pids"
  return 0
}

# --- fixtures --------------------------------------------------------------------------------

# The benchmark sets are OCI media-type images only: skopeo's oci: transport (1.9) does not
# read Docker schema 2 manifests from a layout, so it could not take part with legacy images.
#   Set A: api, worker, multi (index, linux/amd64 + linux/arm64), small-000, all sharing the base
#          layer, plus big (one incompressible layer of BENCH_BIG_MIB MiB, default 400).
#   Set B: small-000 ... small-(BENCH_SMALL-1) (default 100), sharing the base layer.
big_mib=${BENCH_BIG_MIB:-400}
small_count=${BENCH_SMALL:-100}
export fx=$work/fx
set_a=(api:1.2.0 worker:1.2.0 multi:1.2.0 small-000:1.0.0 big:1.0.0)
set_b=()
for ((i = 0; i < small_count; i++)); do set_b+=("$(printf 'small-%03d:1.0.0' "$i")"); done

# fixtures: generates $fx once per benchmark run (deterministic: same options, same bytes).
fixtures() {
  if [ ! -f "$fx/bundle.yaml" ]; then
    log "generating fixtures in $fx (big layer ${big_mib} MiB, ${small_count} small images)"
    "$bin/sensei-fixtures" "$fx" --big-layer-mib "$big_mib" --small-images "$small_count" >/dev/null
  fi
  [ -f "$work/k.key" ] || "$bin/sensei-bundler" keygen --out "$work/k" >/dev/null
}

# source_registry DIR: starts a registry in DIR holding every image of Set A and Set B as
# bench/REF (copied from the fixture layout, digests preserved; not timed), and writes
# $dir/a.yaml and $dir/b.yaml pulling the sets from it. Sets src to its HOST:PORT.
source_registry() {
  reg_start "$1"
  src=$REG_HOST
  export src
  log "seeding the source registry $src (${#set_a[@]} + ${#set_b[@]} images, not timed)"
  printf '%s\n' "${set_a[@]}" "${set_b[@]}" | sort -u |
    xargs -P 4 -I{} skopeo copy -q --all --preserve-digests --dest-tls-verify=false \
      "oci:$fx/oci:{}" "docker://$src/bench/{}"
  spec_registry "$dir/a.yaml" bench-a "$src" "${set_a[@]}"
  spec_registry "$dir/b.yaml" bench-b "$src" "${set_b[@]}"
}

# spec_registry FILE NAME HOST SET...: a spec pulling those images from the registry at HOST
# (as HOST/bench/REF). Set A's spec (NAME bench-a) carries the demo chart too, as a real release
# does: a little more work for us than for skopeo.
spec_registry() {
  local file=$1 name=$2 host=$3 ref
  shift 3
  {
    echo "name: $name"
    echo "version: 1.0.0"
    [ "$name" = bench-a ] && printf 'charts:\n  - path: %s\n' "$fx/charts/demo"
    echo "images:"
    for ref in "$@"; do echo "  - $host/bench/$ref"; done
  } >"$file"
}

# spec_layout FILE NAME SET...: a spec reading those images from the fixture layout, named
# registry.example.com/sensei/REF in the bundle.
spec_layout() {
  local file=$1 name=$2 ref
  shift 2
  {
    echo "name: $name"
    echo "version: 1.0.0"
    [ "$name" = bench-a ] && printf 'charts:\n  - path: %s\n' "$fx/charts/demo"
    echo "images:"
    for ref in "$@"; do
      printf '  - ref: registry.example.com/sensei/%s\n    layout: %s\n    layoutRef: %s\n' \
        "$ref" "$fx/oci" "$ref"
    done
  } >"$file"
}

# set_label NAME: a one-line description of a set, for the tables.
set_label() {
  case $1 in
    A) echo "Set A: ${#set_a[@]} OCI images sharing a base layer (api, worker, multi [2 platforms], small-000, big [${big_mib} MiB layer])" ;;
    B) echo "Set B: ${small_count} small OCI images sharing a base layer" ;;
  esac
}

# compare NAME OURS_PREP OURS_CMD PEER_PREP PEER_CMD [OURS_CHECK PEER_CHECK]: one warm-up run of
# each side (page cache, skopeo's blob-info cache), then $runs runs of each, alternating which
# side goes first so that drifts in the machine's load hit both. *_PREP are shell functions run
# untimed just before each run (or ":"); *_CMD are `bash -c` strings; *_CHECK are functions run
# untimed just after each run that exit 3 unless the run's output is right (a fast wrong answer
# must not count). Samples: $dir/NAME.ours and $dir/NAME.peer.
compare() {
  local name=$1 r check_ours=${6:-:} check_peer=${7:-:}
  rm -f "$dir/$name".*
  log "$name: 1 warm-up + $runs runs of each side"
  for ((r = 0; r <= runs; r++)); do
    local suffix=
    [ "$r" = 0 ] && suffix=.warmup
    if ((r % 2)); then
      "$4"; timed "$dir/$name.peer$suffix" bash -c "$5"; "$check_peer"
      "$2"; timed "$dir/$name.ours$suffix" bash -c "$3"; "$check_ours"
    else
      "$2"; timed "$dir/$name.ours$suffix" bash -c "$3"; "$check_ours"
      "$4"; timed "$dir/$name.peer$suffix" bash -c "$5"; "$check_peer"
    fi
  done
}

# fixture_digests REF...: "REF DIGEST" per line, the top manifest digest of each fixture image
# as the layout holds it (the truth outputs are checked against).
fixture_digests() {
  python3 - "$fx/oci" "$@" <<'PY'
import json, os, sys
index = json.load(open(os.path.join(sys.argv[1], "index.json")))
by_ref = {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m["digest"]
          for m in index["manifests"]}
for ref in sys.argv[2:]:
    print(ref, by_ref[ref])
PY
}

# check_registry HOST PREFIX REF...: every REF is at HOST/PREFIX/NAME:TAG with the fixture's
# digest (asked with a HEAD, so nothing is read twice); exit 3 naming the first that is not.
check_registry() {
  local host=$1 prefix=$2 ref digest got
  shift 2
  while read -r ref digest; do
    got=$(curl -fsS -I \
      -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
      "http://$host/v2/$prefix/${ref%%:*}/manifests/${ref#*:}" 2>/dev/null |
      tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    [ "$got" = "$digest" ] || die "output check: $host/$prefix/$ref is '${got:-missing}', not $digest"
  done < <(fixture_digests "$@")
}

# check_oci_dir DIR REF...: every REF is in the oci: layout DIR with the fixture's digest.
check_oci_dir() {
  local layout=$1
  shift
  python3 - "$layout" <<PY || die "output check: the oci: layout $layout lacks an image or a digest differs"
import json, os, sys
index = json.load(open(os.path.join(sys.argv[1], "index.json")))
have = {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m["digest"]
        for m in index["manifests"]}
want = dict(line.split() for line in """$(fixture_digests "$@")""".splitlines())
bad = [r for r, d in want.items() if have.get(r) != d]
sys.exit(1 if bad else 0)
PY
}

# compare_row NAME MEASURE TARGET [NOTE]: the table row for a `compare NAME ...`.
compare_row() {
  local f=$dir/$1
  row ratio "$2" "$(median "$f.ours")" "$(median "$f.peer")" "$3" \
    "ours $(spread "$f.ours")s, peer $(spread "$f.peer")s${4:+; $4}"
}

# --- the table -------------------------------------------------------------------------------

# row KIND MEASURE OURS PEER TARGET NOTE, appended to $rows:
#   ratio: OURS and PEER are median seconds; passes if OURS/PEER <= TARGET
#   max:   OURS is a value (MiB, a size ratio); passes if OURS <= TARGET; PEER is context or "-"
#   info:  like ratio, for context: no target
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }

# table TITLE: prints $rows as the section's table (also saved as $rows.txt for the summary);
# returns 1 if a target was missed.
table() {
  python3 - "$1" "$rows" <<'PY' | tee "$rows.txt"
import sys
title, path = sys.argv[1], sys.argv[2]
rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
out = [("measure", "ours", "peer", "ratio", "target", "result", "note")]
missed = 0
for kind, measure, ours, peer, target, note in rows:
    o = float(ours)
    if kind in ("ratio", "info"):
        p = float(peer)
        value = o / p
        shown = (f"{o:.3f}s", f"{p:.3f}s", f"{value:.3f}")
    else:
        value = o
        shown = (ours, peer, "-")
    if kind == "info":
        result, tgt = "info", "-"
    else:
        ok = value <= float(target)
        missed += not ok
        result, tgt = ("PASS" if ok else "FAIL"), f"<= {target}"
    out.append((measure, *shown, tgt, result, note))
widths = [max(len(r[i]) for r in out) for i in range(6)]
print(title)
for r in out:
    print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r[:6], widths))) + ("  " + r[6] if r[6] else ""))
print()
with open(path + ".missed", "w") as f:
    f.write(str(missed))
PY
  [ "$(cat "$rows.missed")" = 0 ]
}
