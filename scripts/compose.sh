#!/usr/bin/env bash
# compose.sh: build the replikv images without any registry and run the
# docker-compose stack (docker-compose.yml at the repository root).
#
# Usage: scripts/compose.sh build [replikv|nats|s3]... | up [compose up args]
#                           | down | urls | compose <args>
#
#   build     compile the static binaries on the host (CGO_ENABLED=0, for the
#             Docker engine's OS/architecture) and build the images FROM
#             scratch (all three unless named). Idempotent: unchanged binaries
#             give cached layers. Each step is announced, and `go build -v`
#             lists the packages it compiles (a first build compiles
#             nats-server and versitygw: a few minutes; later ones print
#             nothing and take seconds).
#   up        build, then `up -d` and wait until the leader and every follower
#             report healthy (at most UP_TIMEOUT seconds, printing what it
#             waits for); on failure print the container list and their logs
#             and exit 1.
#   down      `down -v --remove-orphans`, then verify that no container,
#             network or volume of the project is left (exit 1 if one is).
#   urls      print the API URLs of the running leader and followers on this
#             host, comma-separated, leader first, then the followers in the
#             order of their compose container number: the value of
#             REPLIKV_URL for replikvctl (https:// with docker-compose.tls.yml).
#   compose   run the detected compose command with the project's file and
#             name, e.g. `scripts/compose.sh compose ps`.
#
# Environment:
#   COMPOSE_PROJECT_NAME  project name (default replikv); build, up, down and
#                         the tests must agree on it
#   FOLLOWERS             followers `up` runs (default: as many as the project
#                         has now, at least 1)
#   UP_TIMEOUT            seconds `up` waits for health (default 300)
#   REPLIKV_IMAGE         replikv image tag (default replikv:local), always built
#   NATS_IMAGE, S3_IMAGE  default replikv-nats:local / replikv-s3:local are
#                         built here; any other value is used as given (compose
#                         pulls it if it is not present)
#   COMPOSE               override the compose command (e.g. "docker-compose")
#   COMPOSE_EXTRA_FILES   compose files added after docker-compose.yml,
#                         colon-separated, relative to the repository root
#                         (e.g. docker-compose.tls.yml for HTTPS)
# Each of these may also be set in .env (next to docker-compose.yml); the
# environment wins. Other variables (LEADER_PORT, S3_ACCESS_KEY, ...) are read
# by docker-compose.yml itself, from the environment or from .env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAGE="$ROOT/deploy/build"
VERSITYGW_VERSION="v1.8.0"

log() { printf 'compose.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# dotenv_default sets variable $1, when the environment does not, from the
# .env file that compose reads too (last `NAME=value` line, quotes removed),
# else to $2. The variables are exported, so the script and compose agree.
dotenv_default() {
	local name="$1" value="$2" line
	if [[ -n "${!name+set}" ]]; then
		export "${name?}"
		return
	fi
	if [[ -f "$ROOT/.env" ]] && line="$(grep -E "^[[:space:]]*$name=" "$ROOT/.env" | tail -n 1)"; then
		value="${line#*=}"
		value="${value%"${value##*[![:space:]]}"}"
		if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
			value="${BASH_REMATCH[1]}"
		fi
	fi
	export "$name=$value"
}

dotenv_default COMPOSE_PROJECT_NAME replikv
dotenv_default REPLIKV_IMAGE replikv:local
dotenv_default NATS_IMAGE replikv-nats:local
dotenv_default S3_IMAGE replikv-s3:local
dotenv_default LEADER_PORT 8080
dotenv_default COMPOSE_EXTRA_FILES ""
: "${UP_TIMEOUT:=300}"

# compose_cmd prints the compose command: Compose v2 (`docker compose`) when
# the plugin answers, else the standalone docker-compose (v1 or v2).
compose_cmd() {
	if [[ -n "${COMPOSE:-}" ]]; then
		printf '%s\n' "$COMPOSE"
	elif docker compose version >/dev/null 2>&1; then
		printf 'docker compose\n'
	elif command -v docker-compose >/dev/null 2>&1; then
		printf 'docker-compose\n'
	else
		die "neither 'docker compose' nor 'docker-compose' is installed"
	fi
}

compose() {
	local cmd f
	local files=(--file "$ROOT/docker-compose.yml")
	cmd="$(compose_cmd)"
	if [[ -n "$COMPOSE_EXTRA_FILES" ]]; then
		local extra
		IFS=: read -r -a extra <<<"$COMPOSE_EXTRA_FILES"
		for f in "${extra[@]}"; do
			[[ -n "$f" ]] || continue
			[[ "$f" == /* ]] || f="$ROOT/$f"
			files+=(--file "$f")
		done
	fi
	# shellcheck disable=SC2086 # the command is one or two words
	$cmd --project-name "$COMPOSE_PROJECT_NAME" --project-directory "$ROOT" \
		"${files[@]}" "$@"
}

# stage_context prepares deploy/build/<name>: the Dockerfile, an empty data
# directory and a world-writable /tmp; the caller adds the binaries.
stage_context() {
	local name="$1" dir="$STAGE/$1"
	mkdir -p "$dir/data" "$dir/tmp"
	chmod 0755 "$dir/data"
	chmod 1777 "$dir/tmp"
	cp "$ROOT/deploy/$name/Dockerfile" "$dir/Dockerfile"
}

# build_image builds image tag $2 from context deploy/build/$1 and removes the
# image the tag pointed to before if nothing else refers to it any more. The
# image only copies a binary onto scratch: it takes seconds, so its output is
# shown only when it fails.
build_image() {
	local name="$1" tag="$2" old new out
	log "docker build $tag"
	old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
	if ! out="$(docker build --quiet --tag "$tag" "$STAGE/$name" 2>&1)"; then
		printf '%s\n' "$out" >&2
		die "docker build $tag failed"
	fi
	new="$(docker image inspect --format '{{.Id}}' "$tag")"
	if [[ -n "$old" && "$old" != "$new" ]]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
	log "image $tag ${new:7:12}"
}

# go_env sets GO_ENV to the environment of a static build for the Docker
# engine's OS and architecture (a Mac host builds linux binaries).
go_env() {
	command -v go >/dev/null 2>&1 || die "go is not installed"
	docker version >/dev/null 2>&1 || die "no Docker engine is reachable"
	GO_OS="$(docker version --format '{{.Server.Os}}')"
	GO_ARCH="$(docker version --format '{{.Server.Arch}}')"
	GO_ENV=(env CGO_ENABLED=0 GOOS="$GO_OS" GOARCH="$GO_ARCH")
}

# -v makes go list every package it compiles as it goes: the progress of a
# first build, which compiles for minutes; a cached build lists nothing.
GO_FLAGS=(-v -trimpath "-ldflags=-s -w")

# step announces a build step; step_done says how long it took.
step() {
	STEP_START=$SECONDS
	log "$*"
}
step_done() { log "done in $((SECONDS - STEP_START))s"; }

build_replikv() {
	stage_context replikv
	local bin
	for bin in leader follower; do
		step "go build ./cmd/$bin for $GO_OS/$GO_ARCH"
		(cd "$ROOT" && "${GO_ENV[@]}" go build "${GO_FLAGS[@]}" -o "$STAGE/replikv/$bin" "./cmd/$bin") ||
			die "go build ./cmd/$bin failed"
		step_done
	done
	build_image replikv "$REPLIKV_IMAGE"
}

build_nats() {
	if [[ "$NATS_IMAGE" != "replikv-nats:local" ]]; then
		log "NATS_IMAGE=$NATS_IMAGE is not built here"
		return
	fi
	stage_context nats
	# The nats-server version pinned in go.mod.
	step "go build nats-server (the version go.mod pins; a first build takes a few minutes)"
	(cd "$ROOT" && "${GO_ENV[@]}" go build "${GO_FLAGS[@]}" -o "$STAGE/nats/nats-server" \
		github.com/nats-io/nats-server/v2) || die "go build nats-server failed"
	step_done
	build_image nats "$NATS_IMAGE"
}

build_s3() {
	if [[ "$S3_IMAGE" != "replikv-s3:local" ]]; then
		log "S3_IMAGE=$S3_IMAGE is not built here"
		return
	fi
	stage_context s3
	local pkg="github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	step "go install versitygw $VERSITYGW_VERSION (a first build downloads and compiles it: a few minutes)"
	# go install refuses GOBIN for a cross-compiled binary: then it installs
	# into $GOPATH/bin/<os>_<arch>, and the binary is copied from there.
	if [[ "$GO_OS/$GO_ARCH" == "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" ]]; then
		(cd "$STAGE" && GOFLAGS= GOBIN="$STAGE/s3" "${GO_ENV[@]}" go install "${GO_FLAGS[@]}" "$pkg") ||
			die "go install versitygw failed"
	else
		(cd "$STAGE" && GOFLAGS= GOBIN= "${GO_ENV[@]}" go install "${GO_FLAGS[@]}" "$pkg") ||
			die "go install versitygw failed"
		cp "$(go env GOPATH)/bin/${GO_OS}_${GO_ARCH}/versitygw" "$STAGE/s3/versitygw"
	fi
	step_done
	build_image s3 "$S3_IMAGE"
}

# cmd_build builds the named images (replikv, nats, s3), all by default.
cmd_build() {
	go_env
	local img
	[[ $# -gt 0 ]] || set -- replikv nats s3
	for img in "$@"; do
		case "$img" in
		replikv | nats | s3) "build_$img" ;;
		*) die "unknown image $img (want replikv, nats or s3)" ;;
		esac
	done
}

# project_containers lists the ids of the project's containers, optionally of
# one service.
project_containers() {
	local -a filters=(--filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
	if [[ $# -gt 0 ]]; then
		filters+=(--filter "label=com.docker.compose.service=$1")
	fi
	docker ps -aq "${filters[@]}"
}

# all_healthy succeeds when the leader and $FOLLOWERS followers run and are
# healthy; it prints what it is still waiting for otherwise.
all_healthy() {
	local svc id health count
	for svc in leader follower; do
		count=0
		for id in $(project_containers "$svc"); do
			health="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
			if [[ "$health" != "healthy" ]]; then
				printf '%s %s is %s\n' "$svc" "${id:0:12}" "$health"
				return 1
			fi
			count=$((count + 1))
		done
		if [[ "$svc" == "leader" && "$count" -lt 1 ]] || [[ "$svc" == "follower" && "$count" -lt "$FOLLOWERS" ]]; then
			printf '%s: %d healthy\n' "$svc" "$count"
			return 1
		fi
	done
}

dump_state() {
	compose ps >&2 || true
	compose logs --no-color --tail=200 >&2 || true
}

cmd_up() {
	cmd_build
	if [[ -z "${FOLLOWERS:-}" ]]; then
		FOLLOWERS="$(project_containers follower | wc -l)"
		FOLLOWERS=$((FOLLOWERS > 0 ? FOLLOWERS : 1))
	fi
	# Plain `docker compose` / `docker-compose` run in this directory must find the same project as this script, so
	# write the project name into .env (which compose reads) if there is no .env yet.
	if [[ ! -f "$ROOT/.env" ]]; then
		printf '# Written by scripts/compose.sh up: plain compose commands here use this project name.\n# Add settings from .env.example below.\nCOMPOSE_PROJECT_NAME=%s\n' "$COMPOSE_PROJECT_NAME" >"$ROOT/.env"
		log "wrote .env (COMPOSE_PROJECT_NAME=$COMPOSE_PROJECT_NAME)"
	fi
	if ! compose up -d --scale "follower=$FOLLOWERS" "$@"; then
		dump_state
		die "up failed"
	fi
	local deadline=$((SECONDS + UP_TIMEOUT)) waiting="" said=""
	log "waiting until the leader and $FOLLOWERS follower(s) are healthy (at most ${UP_TIMEOUT}s)"
	while ! waiting="$(all_healthy)"; do
		if ((SECONDS >= deadline)); then
			dump_state
			die "not healthy after ${UP_TIMEOUT}s: $waiting"
		fi
		if [[ "$waiting" != "$said" ]]; then
			log "waiting: $waiting"
			said="$waiting"
		fi
		sleep 1
	done
	compose ps
	log "stack $COMPOSE_PROJECT_NAME is up; leader on 127.0.0.1:$LEADER_PORT; API URLs: scripts/compose.sh urls"
}

# host_url prints the URL on this host of container $1's published port $2/tcp
# (bound to 127.0.0.1), https:// when the container serves its API over TLS.
host_url() {
	local id="$1" port="$2" hostport env scheme=http
	# Whole outputs first: with pipefail, a grep that stops at its first match
	# could fail the pipeline of a writer it cut short.
	hostport="$(docker port "$id" "$port/tcp" 2>/dev/null || true)"
	hostport="$(grep -m 1 '^127\.0\.0\.1:' <<<"$hostport" || true)"
	[[ -n "$hostport" ]] || return 1
	env="$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id")"
	if grep -q '^REPLIKV_TLS_CERT=.' <<<"$env"; then
		scheme=https
	fi
	printf '%s://%s\n' "$scheme" "$hostport"
}

# cmd_urls prints the leader's and the followers' API URLs, comma-separated.
cmd_urls() {
	local label="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" id url urls=()
	for id in $(docker ps -q --filter "$label" --filter "label=com.docker.compose.service=leader"); do
		url="$(host_url "$id" 8080)" && urls+=("$url")
	done
	[[ ${#urls[@]} -gt 0 ]] || die "no running leader in project $COMPOSE_PROJECT_NAME"
	# Followers in the order of their container number (follower-1, -2, ...).
	for id in $(docker ps --filter "$label" --filter "label=com.docker.compose.service=follower" \
		--format '{{.Label "com.docker.compose.container-number"}} {{.ID}}' | sort -n | cut -d' ' -f2); do
		url="$(host_url "$id" 8081)" && urls+=("$url")
	done
	(
		IFS=,
		printf '%s\n' "${urls[*]}"
	)
}

cmd_down() {
	compose down -v --remove-orphans
	local label="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" left=""
	left+="$(docker ps -aq --filter "$label")"
	left+="$(docker network ls -q --filter "$label")"
	left+="$(docker volume ls -q --filter "$label")"
	if [[ -n "$left" ]]; then
		docker ps -a --filter "$label" >&2
		docker network ls --filter "$label" >&2
		docker volume ls --filter "$label" >&2
		die "project $COMPOSE_PROJECT_NAME left resources behind"
	fi
	log "project $COMPOSE_PROJECT_NAME is down; nothing left"
}

main() {
	local sub="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$sub" in
	build) cmd_build "$@" ;;
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	urls) cmd_urls ;;
	compose) compose "$@" ;;
	*)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
