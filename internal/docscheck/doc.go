// Package docscheck keeps the documentation from drifting away from the code. It reads the repository's markdown
// (README.md, CONTRIBUTING.md, docs/*.md) and checks what can be checked mechanically:
//
//   - every command line in a fenced sh, bash, shell or console block: `make` targets exist in the Makefile; the flags
//     given to `leader`, `follower` and `go run ./cmd/demo` are flags of those programs; `replikvctl` command lines
//     parse (internal/ctl's own command tree, through ctl.CheckArgs); `scripts/compose.sh` subcommands exist; the
//     packages given to `go run`, `go test` and `go build` and the compose files given to `-f` exist; `curl` URLs name
//     an endpoint of the HTTP API with query parameters it takes;
//   - links between markdown files point to files and headings that exist;
//   - paths of the repository, test names and REPLIKV_* variables named in inline code exist;
//   - the references are complete: every flag of the binaries is in docs/configuration.md (and every flag row there
//     is a flag), every replikvctl command and flag is in docs/replikvctl.md, every make target in CONTRIBUTING.md,
//     every variable of the compose files in docs/configuration.md.
//
// What it cannot check (what a command prints, whether a command works against a running system) is left to the
// tests that run the commands: the demo, tests/ctl_test.go, and the compose suite, which runs the README's tour.
package docscheck
