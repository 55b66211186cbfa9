#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target>/ (gitignored) from real bundles.
#
# Random bytes almost never pass a tar checksum, let alone an ed25519 signature, so the fuzzers
# start from valid bundles made by the real bundler. They are signed with the key of seed
# [7; 32], the one key fuzz_targets/verify.rs trusts, so the verifier gets past step 3 and
# mutations reach manifest parsing, entry order, hashing and the trailer checks.
#
# Usage: fuzz/make-corpus.sh   (from anywhere; needs bash, cargo, base64; tar and openssl optional)
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
bin=${CARGO_TARGET_DIR:-$root/target}/debug
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$root" && cargo build --workspace --quiet)

# The PKCS#8 v1 DER of an ed25519 seed is a fixed 16-byte prefix followed by the seed itself.
der_hex=302e020100300506032b657004220420$(printf '07%.0s' $(seq 32))
{
    echo "-----BEGIN PRIVATE KEY-----"
    # shellcheck disable=SC2059 # the format string *is* the data: \xNN escapes
    printf "$(sed 's/../\\x&/g' <<<"$der_hex")" | base64
    echo "-----END PRIVATE KEY-----"
} >"$work/fuzz.key"

"$bin/sensei-fixtures" "$work/fx" >/dev/null
# The smallest useful bundle: the chart alone, no images.
cat >"$work/fx/tiny.yaml" <<'EOF'
name: tiny
version: 0.1.0
charts:
  - path: ./charts/demo
EOF

# A fixed creation time keeps the seeds byte-identical from run to run.
export SOURCE_DATE_EPOCH=1700000000
create() { "$bin/sensei-bundler" create -q --key "$work/fuzz.key" "$@" >/dev/null; }
create -f "$work/fx/tiny.yaml" -o "$work/tiny.tar"
create -f "$work/fx/tiny.yaml" -o "$work/tiny.tar.gz"
create -f "$work/fx/bundle.yaml" --platform linux/amd64 -o "$work/demo-amd64.tar"
create -f "$work/fx/bundle.yaml" -o "$work/demo.tar.gz"

# Sanity check: the seeds must verify under the key the verify target trusts, or the fuzzer
# would never get past the signature. Needs openssl to derive the public key.
if command -v openssl >/dev/null; then
    openssl pkey -in "$work/fuzz.key" -pubout -out "$work/fuzz.pub"
    for b in "$work"/*.tar "$work"/*.tar.gz; do
        "$bin/sensei-loader" verify -q --key "$work/fuzz.pub" "$b" >/dev/null
    done
fi

for target in archive_reader verify; do
    mkdir -p "$fuzz_dir/corpus/$target"
    cp "$work"/*.tar "$work"/*.tar.gz "$fuzz_dir/corpus/$target/"
done

# The reader must also refuse, without panicking, what other tools write: directories,
# symlinks, long names (GNU 'L' / PAX 'x' headers), old v7 headers. Seeds for those paths.
if command -v tar >/dev/null; then
    mkdir -p "$work/t/dir"
    echo hello >"$work/t/dir/file"
    ln -s file "$work/t/dir/link"
    echo long >"$work/t/dir/$(printf 'n%.0s' $(seq 120))"
    for format in ustar gnu pax v7; do
        # ustar and v7 cannot store the long name; tar still writes the rest, so ignore its status.
        tar -C "$work/t" --format=$format -cf "$fuzz_dir/corpus/archive_reader/other-$format.tar" dir 2>/dev/null || true
    done
fi
# The smallest valid archive: just the end-of-archive marker.
head -c 1024 /dev/zero >"$fuzz_dir/corpus/archive_reader/empty.tar"

ls -l "$fuzz_dir"/corpus/*/
