#!/usr/bin/env bash
# bench.sh push (issues 4 and 15): `sensei-loader push` of a .tar bundle into a loopback
# docker-registry against skopeo copying the same images from an oci: directory, in the same run.
# The peer at its best: skopeo run 8 at a time (`xargs -P8`, our default concurrency; a registry
# destination is safe for parallel copies), with sequential skopeo beside it for context.
#   Set A into an EMPTY registry   <= 0.8  x skopeo -P8, or <= 1.15 x the lone curl PUT of the
#                                  big layer in runs where that floor is itself above 0.7 x
#   Set B (100 small) likewise     <= 0.4  x skopeo -P8
#   again, everything there        <= 1.0  x the peer doing the same work: our push with
#                                  --full-check verifies every byte of the bundle and checks every
#                                  blob at the target; skopeo's re-copy reads no layer (it asks
#                                  the registry per blob), so its like-for-like side digests the
#                                  same blobs first (openssl dgst -sha256, each checked against its
#                                  name) and then re-copies -P8. The bare re-copy is printed beside
#                                  it, and our default tag-check fast path is a row of its own.
#   peak RSS                       <= 64 MiB
# After every timed run, the registry is checked (untimed) to hold every image at its digest.
# Context (no target): a lone curl PUT of the big layer (monolithic upload), which issue 4
# measured at ~0.69 x skopeo's whole push of Set A: one blob can't be uploaded in parallel, and
# docker-registry takes it in on one goroutine (here ~1.4 s of CPU for 400 MiB: receive, hash,
# write, fsync), so its time is the floor for any client; the next row is our whole push
# against that floor.
# Run by scripts/bench.sh (which builds and exports BENCH_*). Exit 1 if a target is missed.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"
trap stop_registries EXIT

export dir=$work/push
rm -rf "$dir"
mkdir -p "$dir"
rows=$dir/rows
fixtures

# The bundles: made by `sensei-bundler create` from the fixture layout (the same bytes the
# create benchmark pulls from a registry: digests are preserved either way), signed.
spec_layout "$dir/a.yaml" bench-a "${set_a[@]}"
spec_layout "$dir/b.yaml" bench-b "${set_b[@]}"
log "building the bundles (not timed)"
for s in a b; do
  "$bin/sensei-bundler" create --quiet -f "$dir/$s.yaml" --key "$work/k.key" -o "$dir/$s.tar" >/dev/null
done

# The peer: `skopeo copy --all` per image from the oci: layout, to the names our push maps the
# bundle's references to (registry.example.com/sensei/X -> HOST/bench/sensei/X); one at a time,
# or 8 at a time.
write_peer() { # FILE SET... -> a script: FILE HOST [PARALLEL]
  local file=$1
  shift
  {
    echo '#!/bin/sh'
    echo '# skopeo: one process per image, from one oci: layout, into the registry at $1, $2 at a time'
    echo 'set -e'
    echo "printf '%s\\n' $* |"
    echo "  xargs -P \"\${2:-1}\" -I{} skopeo copy -q --all --dest-tls-verify=false oci:$fx/oci:{} \"docker://\$1/bench/sensei/{}\""
  } >"$file"
}
write_peer "$dir/skopeo-a.sh" "${set_a[@]}"
write_peer "$dir/skopeo-b.sh" "${set_b[@]}"

# Monolithic upload of one blob with curl: POST opens the upload, one PUT sends every byte.
cat >"$dir/curl-put.sh" <<'EOF'
#!/bin/sh
# curl-put.sh HOST FILE DIGEST: a lone monolithic blob upload
set -e
loc=$(curl -fsS -X POST -D - -o /dev/null "http://$1/v2/bench/curl/blobs/uploads/" |
  tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
case $loc in http*) ;; *) loc="http://$1$loc" ;; esac
case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -fsS -o /dev/null -T "$2" -H 'Content-Type: application/octet-stream' "$loc${sep}digest=$3"
EOF
big_digest=$(python3 - "$fx/oci" <<'PY'
import json, os, sys
layout = sys.argv[1]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
m = next(m for m in index["manifests"]
         if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "big:1.0.0")
layers = json.load(open(blob(m["digest"])))["layers"]
print(max(layers, key=lambda l: l["size"])["digest"])
PY
)
big_file=$fx/oci/blobs/sha256/${big_digest#sha256:}

push_ok=1
ours() { # BUNDLE -> our push command line, as a string for compare
  if [ "$push_ok" = 1 ]; then
    echo "\"\$bin/sensei-loader\" push \"\$dir/$1\" --registry \"\$REG_HOST/bench\" --key \"\$work/k.pub\" --plain-http --quiet --json"
  else
    echo ":"
  fi
}
if ! "$bin/sensei-loader" push --help >/dev/null 2>&1; then
  push_ok=0
  log "sensei-loader has no 'push' subcommand yet: measuring the peer side only"
fi

fresh() { reg_fresh "$dir/registry"; }
check_a() { check_registry "$REG_HOST" bench/sensei "${set_a[@]}"; }
check_b() { check_registry "$REG_HOST" bench/sensei "${set_b[@]}"; }
compare pushA fresh "$(ours a.tar)" fresh 'sh "$dir/skopeo-a.sh" "$REG_HOST" 8' check_a check_a
# Sequential skopeo, for context: its samples against the same push's.
compare pushAseq : : fresh 'sh "$dir/skopeo-a.sh" "$REG_HOST" 1' : check_a

log "curl PUT of the big layer: 1 warm-up + $runs runs"
for ((r = 0; r <= runs; r++)); do
  fresh
  timed "$dir/curl$([ "$r" = 0 ] && echo .warmup)" sh "$dir/curl-put.sh" "$REG_HOST" "$big_file" "$big_digest"
done

compare pushB fresh "$(ours b.tar)" fresh 'sh "$dir/skopeo-b.sh" "$REG_HOST" 8' check_b check_b
compare pushBseq : : fresh 'sh "$dir/skopeo-b.sh" "$REG_HOST" 1' : check_b

# Everything there already: one registry, filled once (untimed), then both sides push again.
fresh
for s in a b; do
  sh "$dir/skopeo-$s.sh" "$REG_HOST" 8 >"$dir/fill.log" 2>&1 || { cat "$dir/fill.log" >&2; die "filling the registry failed"; }
done
[ "$push_ok" = 1 ] && for s in a b; do bash -c "$(ours $s.tar)" >/dev/null; done
full() { [ "$push_ok" = 1 ] && echo "$(ours "$1") --full-check" || echo ":"; }
# The blob files a set's images reach in the fixture layout (index -> manifests -> configs and
# layers): the bytes a verifying re-copy has to read.
set_blobs() { # FILE SET...
  local file=$1
  shift
  python3 - "$fx/oci" "$@" >"$file" <<'PY'
import json, os, sys
layout, refs = sys.argv[1], set(sys.argv[2:])
path = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
seen, todo = set(), [m["digest"] for m in index["manifests"]
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") in refs]
while todo:
    d = todo.pop()
    if d in seen:
        continue
    seen.add(d)
    doc = json.load(open(path(d)))
    todo += [m["digest"] for m in doc.get("manifests", [])]
    seen.update(l["digest"] for l in doc.get("layers", []) + [doc.get("config") or {}] if l)
for d in sorted(seen):
    print(path(d))
PY
}
set_blobs "$dir/blobs-a" "${set_a[@]}"
set_blobs "$dir/blobs-b" "${set_b[@]}"
# verify-blobs.sh LIST: every listed file's sha256 equals its name, else exit 1 (one openssl).
cat >"$dir/verify-blobs.sh" <<'SH'
#!/bin/sh
set -e
xargs openssl dgst -sha256 -r <"$1" |
  awk '{ n = split($2, p, "/"); if ($1 != p[n]) { print "bad blob " $2; bad = 1 } } END { exit bad }'
SH
verifying_peer() { echo "sh \"\$dir/verify-blobs.sh\" \"\$dir/blobs-$1\" && sh \"\$dir/skopeo-$1.sh\" \"\$REG_HOST\" 8"; }
compare repushA : "$(full a.tar)" : "$(verifying_peer a)" check_a check_a
compare repushB : "$(full b.tar)" : "$(verifying_peer b)" check_b check_b
# skopeo's bare re-copy (no digest check): context for the rows above and the fast path's peer.
compare recopyA : : : 'sh "$dir/skopeo-a.sh" "$REG_HOST" 8' : check_a
compare recopyB : : : 'sh "$dir/skopeo-b.sh" "$REG_HOST" 8' : check_b
compare fastA : "$(ours a.tar)" : : check_a :
compare fastB : "$(ours b.tar)" : : check_b :
reg_stop
reg_wipe "$dir/registry"

# Through faults (issue 14): 300 images (the 5 fixture images and 295 small ones) pushed through
# sensei-fault-proxy answering 500 to 20% of requests and resetting 5% of connections, against
# the same push straight into the registry. Every run must land whole in one go (checked after
# each, untimed); the proxy starts before the clock (a new seed each run, printed with what it
# injected) and is stopped after.
fx300=$dir/fx300
"$bin/sensei-fixtures" "$fx300" --small-images 295 >"$dir/fx300.refs" || die "cannot write the 300-image fixtures"
mapfile -t set_300 < <(cut -d' ' -f1 "$dir/fx300.refs" | sed 's#^registry.example.com/sensei/##')
[ "${#set_300[@]}" = 300 ] || die "the 300-image fixtures hold ${#set_300[@]} images"
fx=$fx300 spec_layout "$dir/c300.yaml" bench-300 "${set_300[@]}"
"$bin/sensei-bundler" create --quiet -f "$dir/c300.yaml" --key "$work/k.key" -o "$dir/c300.tar" >/dev/null ||
  die "cannot build the 300-image bundle"
check_300() { fx=$fx300 check_registry "$REG_HOST" bench/sensei "${set_300[@]}"; }
proxy_runs=0
through_faults() { # a fresh registry, and a fresh proxy in front of it (PROXY_HOST)
  fresh
  proxy_runs=$((proxy_runs + 1))
  rm -f "$dir/proxy.ctl"
  mkfifo "$dir/proxy.ctl"
  "$bin/sensei-fault-proxy" "$REG_HOST" --errors 0.20 --resets 0.05 --seed "$proxy_runs" \
    <"$dir/proxy.ctl" >"$dir/proxy.out" 2>>"$dir/proxy.err" &
  PROXY_PID=$!
  exec {proxy_ctl}>"$dir/proxy.ctl"
  local i
  for i in $(seq 1 100); do
    PROXY_HOST=$(head -n 1 "$dir/proxy.out" 2>/dev/null || true)
    [ -n "$PROXY_HOST" ] && break
    sleep 0.02
  done
  [ -n "$PROXY_HOST" ] || die "sensei-fault-proxy did not start: $(cat "$dir/proxy.err")"
  export PROXY_HOST
}
check_faults() { # stop the proxy, record what it injected, check every image is there
  exec {proxy_ctl}>&-
  wait "$PROXY_PID" || die "sensei-fault-proxy failed: $(cat "$dir/proxy.err")"
  local injected
  injected=$(tail -n 1 "$dir/proxy.out")
  echo "seed $proxy_runs: $injected" >>"$dir/proxy.injected"
  case $injected in *" errors=0 "*) die "the proxy injected no errors ($injected)" ;; esac
  check_300
}
if [ "$push_ok" = 1 ]; then
  faulty="\"\$bin/sensei-loader\" push \"\$dir/c300.tar\" --registry \"\$PROXY_HOST/bench\" --key \"\$work/k.pub\" --plain-http --quiet --json"
  compare faults300 through_faults "$faulty" fresh "$(ours c300.tar)" check_faults check_300
fi
reg_stop
reg_wipe "$dir/registry"

phases() { # NAME -> where our time went, from our --json reports
  [ "$push_ok" = 1 ] || return 0
  case $1 in
    # An up-to-date push ends after the tag checks: its report has no verification time.
    fast*) echo "ours: up to date after $(json_median "$dir/$1.ours.out" report pushSeconds) of checks" ;;
    *) echo "ours: verify $(json_median "$dir/$1.ours.out" report verifySeconds) + push $(json_median "$dir/$1.ours.out" report pushSeconds)" ;;
  esac
}
# Set A's target: 0.8 x skopeo -P8, unless the registry's own floor (the lone curl PUT of the
# big layer, which no client can beat) is itself above 0.7 x skopeo: then 1.15 x that floor.
floor_ratio=$(awk -v c="$(median "$dir/curl")" -v p="$(median "$dir/pushA.peer")" 'BEGIN { printf "%.3f", c / p }')
if awk -v f="$floor_ratio" 'BEGIN { exit !(f > 0.7) }'; then
  row info "push Set A, empty registry (vs skopeo -P8)" "$(median "$dir/pushA.ours")" "$(median "$dir/pushA.peer")" - \
    "floor $floor_ratio > 0.7: judged against the floor, next row; $(phases pushA)"
  row ratio "  push Set A / the lone curl PUT (floor)" "$(median "$dir/pushA.ours")" "$(median "$dir/curl")" 1.15 \
    "peer column: curl PUT of the big layer alone"
else
  compare_row pushA "push Set A, empty registry (vs skopeo -P8)" 0.8 "floor $floor_ratio; $(phases pushA)"
  row info "  push Set A / the lone curl PUT (floor)" "$(median "$dir/pushA.ours")" "$(median "$dir/curl")" - \
    "peer column: curl PUT of the big layer alone"
fi
row info "  push Set A vs sequential skopeo" "$(median "$dir/pushA.ours")" "$(median "$dir/pushAseq.peer")" - \
  "skopeo one image at a time: $(spread "$dir/pushAseq.peer")s"
compare_row pushB "push Set B, empty registry (vs skopeo -P8)" 0.4 "$(phases pushB)"
row info "  push Set B vs sequential skopeo" "$(median "$dir/pushB.ours")" "$(median "$dir/pushBseq.peer")" - \
  "skopeo one image at a time: $(spread "$dir/pushBseq.peer")s"
compare_row repushA "push Set A again, all there, --full-check (vs digests + re-copy)" 1.0 "$(phases repushA)"
row info "  the same vs skopeo's bare re-copy -P8" "$(median "$dir/repushA.ours")" "$(median "$dir/recopyA.peer")" - \
  "skopeo reads no layer: peer column is the re-copy alone"
compare_row repushB "push Set B again, all there, --full-check (vs digests + re-copy)" 1.0 "$(phases repushB)"
row info "  the same vs skopeo's bare re-copy -P8" "$(median "$dir/repushB.ours")" "$(median "$dir/recopyB.peer")" - \
  "skopeo reads no layer: peer column is the re-copy alone"
row info "  push Set A again, tag check only (default)" "$(median "$dir/fastA.ours")" "$(median "$dir/recopyA.peer")" - "$(phases fastA); peer: bare re-copy"
row info "  push Set B again, tag check only (default)" "$(median "$dir/fastB.ours")" "$(median "$dir/recopyB.peer")" - "$(phases fastB); peer: bare re-copy"
[ "$push_ok" = 1 ] && compare_row faults300 "push 300 images through 20% 500s + 5% resets (vs none)" 2.0 \
  "peer column: the same push straight into the registry; every run landed whole in one go"
row max "peak RSS push, Set A (MiB)" "$(max_rss_mib "$dir/pushA.ours")" \
  "$(max_rss_mib "$dir/pushA.peer")" 64 "peer column: largest skopeo process"
row max "peak RSS push, Set B (MiB)" "$(max_rss_mib "$dir/pushB.ours")" \
  "$(max_rss_mib "$dir/pushB.peer")" 64 "peer column: largest skopeo process"

title="push: sensei-loader push of a .tar vs skopeo copy --all per image from an oci: dir, 8 at a time
  median of $runs runs after a warm-up; a fresh loopback docker-registry for every run into an
  empty one; bundles: .tar made by sensei-bundler create from the fixture layout
  $(set_label A)
  $(set_label B)"
if [ "$push_ok" = 1 ]; then
  table "$title"
else
  table "$title
  !! sensei-loader push is MISSING: the ours column timed a no-op" || true
  exit 3
fi
