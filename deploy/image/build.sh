#!/usr/bin/env bash
# Builds zombiewatch's image offline: static binaries compiled here, copied
# onto scratch by deploy/image/Containerfile. Prints the image's name.
#
#   deploy/image/build.sh [IMAGE]     (default localhost/zombiewatch:VERSION)
#
# Uses podman, or docker where podman is not installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

engine=$(command -v podman || command -v docker || true)
if [[ -z $engine ]]; then
  echo "build.sh: neither podman nor docker is installed" >&2
  exit 1
fi
version=$(sed -n 's/^const Release = "\(.*\)"$/\1/p' internal/cli/cli.go)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image=${1:-localhost/zombiewatch:$version}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# The commit is stamped through -ldflags: the binaries say it with
# --version whether or not the build could read git.
ldflags="-s -w -X github.com/zombiewatch/zombiewatch/internal/cli.commit=$revision"
for cmd in zombiewatch zombiewatch-exporter; do
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$ctx/$cmd" "./cmd/$cmd"
done
cp deploy/image/Containerfile "$ctx/"
"$engine" build -q -f "$ctx/Containerfile" --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -t "$image" "$ctx" >/dev/null
echo "$image"
