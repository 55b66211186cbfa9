#!/bin/sh
# load-images.sh: loads this Sensei bundle's images and charts into your registry.
#
#   ./load-images.sh --registry registry.internal [--key release.pub] [sensei-loader push flags]
#
# It verifies the bundle (signature and every byte) and pushes it with `sensei-loader push`,
# digests preserved. Without --key it trusts the public keys in ${SENSEI_KEYS_DIR:-/etc/sensei/keys}.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if ! command -v sensei-loader >/dev/null 2>&1; then
  echo "load-images.sh: sensei-loader is not on PATH; install it (it ships with Sensei's air-gap kit) and run this again." >&2
  exit 2
fi
case " $* " in
  *" --key "*|*" --key="*) exec sensei-loader push "$here" "$@" ;;
esac
keys_dir=${SENSEI_KEYS_DIR:-/etc/sensei/keys}
set -- "$@"
found=0
for k in "$keys_dir"/*.pub; do
  [ -f "$k" ] || continue
  set -- "$@" --key "$k"
  found=1
done
if [ "$found" = 0 ]; then
  echo "load-images.sh: no trusted key: pass --key release.pub, or put the release public key in $keys_dir" >&2
  exit 2
fi
exec sensei-loader push "$here" "$@"
