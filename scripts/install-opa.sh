#!/bin/sh
# Install the pinned OPA CLI with `go install` into Firebreak's cache and print
# its path. Only policy authors and CI need it (to test and build policies);
# the bot and `npm test` use the committed bundle.
#   FIREBREAK_CACHE  cache root (default ~/.cache/firebreak)
set -eu

OPA_VERSION=v1.22.2
DEST="${FIREBREAK_CACHE:-$HOME/.cache/firebreak}/opa-$OPA_VERSION"
OPA="$DEST/opa"

if [ -x "$OPA" ] && "$OPA" version 2>/dev/null | grep -qx "Version: ${OPA_VERSION#v}"; then
  echo "$OPA"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-opa: Go is needed to build opa $OPA_VERSION (https://go.dev/dl/)" >&2
  exit 1
fi

echo "install-opa: building opa $OPA_VERSION with go install into $DEST (a few minutes the first time)..." >&2
mkdir -p "$DEST"
# -v lists packages as they compile: progress for a long build.
GOBIN="$DEST" go install -v "github.com/open-policy-agent/opa@$OPA_VERSION" >&2
"$OPA" version | grep -qx "Version: ${OPA_VERSION#v}" || { echo "install-opa: $OPA is not opa $OPA_VERSION" >&2; exit 1; }
echo "$OPA"
