#!/usr/bin/env bash
# install-compose.sh: make `docker compose` (Compose v2, the docker CLI plugin)
# available, so that the compose suite can run with it as well as with
# Debian's docker-compose (v1). Nothing is done when `docker compose` already
# answers, or when there is no docker CLI (the compose suite then skips, or
# fails under CI=true).
#
# Debian 12 packages only Compose v1, and no registry is reachable, so the
# plugin is built from its Go module (github.com/docker/compose/v2, through the
# Go module proxy) into $DOCKER_CONFIG/cli-plugins (default ~/.docker), where
# the docker CLI looks for it. The module's go.mod has exclude directives, so
# `go install module@version` refuses it: it is built as the main module from
# a copy of its downloaded source instead. About 2 minutes on a fresh machine.
#
# Environment: COMPOSE_VERSION (default v2.40.3).
set -euo pipefail

VERSION="${COMPOSE_VERSION:-v2.40.3}"
MODULE="github.com/docker/compose/v2"

log() { printf 'install-compose.sh: %s\n' "$*" >&2; }

if ! command -v docker >/dev/null 2>&1; then
	log "no docker CLI: not installing the compose plugin"
	exit 0
fi
if docker compose version >/dev/null 2>&1; then
	exit 0
fi
command -v go >/dev/null 2>&1 || { log "go is not installed"; exit 1; }

dest="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "building docker compose $VERSION from the Go module proxy into $dest"
# Outside any module, so that the download is not recorded in a go.sum.
dir="$(cd "$work" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$dir" && -d "$dir" ]] || { log "go mod download $MODULE@$VERSION gave no source directory"; exit 1; }
cp -R "$dir/." "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$dest"
(cd "$work/src" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X $MODULE/internal.Version=$VERSION" -o "$dest/docker-compose" ./cmd)
docker compose version >&2
