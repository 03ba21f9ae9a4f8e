package docscheck

import (
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

var loaded struct {
	once sync.Once
	repo *Repo
	err  error
}

func repo(t *testing.T) *Repo {
	t.Helper()
	loaded.once.Do(func() { loaded.repo, loaded.err = Load(root) })
	if loaded.err != nil {
		t.Fatal(loaded.err)
	}
	return loaded.repo
}

// TestRepositoryDocs checks the repository's own documentation.
func TestRepositoryDocs(t *testing.T) {
	problems, err := repo(t).CheckAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestRepo_Check feeds made-up documents, each with one mistake the check must find, and one without.
func TestRepo_Check(t *testing.T) {
	fence := "```"
	sh := func(lines ...string) string { return fence + "sh\n" + strings.Join(lines, "\n") + "\n" + fence + "\n" }
	tests := []struct {
		name string
		doc  string
		want string // a substring of the one problem expected; "" for none
	}{
		{"OK", sh(
			"make build                                  # a comment",
			"FOLLOWERS=3 make compose-up",
			"export REPLIKV_URL=$(scripts/compose.sh urls)",
			"bin/replikvctl --url http://127.0.0.1:8080 status && bin/replikvctl put k v --if-absent",
			`leader --data-dir /tmp/l --nats-listen 127.0.0.1:0 \`,
			"  --snapshot-interval 0",
			"follower healthcheck --http-addr 127.0.0.1:8081",
			"go run ./cmd/demo --keys 1000 --keep",
			"go run ./cmd/replikvctl verify --rounds 3",
			"curl -s 'http://127.0.0.1:8080/v1/kv?prefix=user/&limit=10' > /dev/null",
			"docker compose -f docker-compose.yml -f docker-compose.tls.yml config",
		) + "See [api](docs/api.md#read-consistency), `internal/ctl/root.go`, `TestCheckArgs`, `REPLIKV_DATA_DIR`, " +
			"`make test-unit`.\n", ""},
		{"MadeUpLeaderFlag", sh("leader --data-dir /tmp/l --made-up-flag 1"), "leader --made-up-flag: no such flag"},
		{"MadeUpFollowerFlag", sh("follower --nats-listen :4222"), "follower --nats-listen: no such flag"},
		{"MadeUpFlagInline", "Run `leader --made-up-flag=1` first.\n", "leader --made-up-flag: no such flag"},
		{"MadeUpCtlFlag", sh("replikvctl status --made-up-flag"), "unknown flag: --made-up-flag"},
		{"MadeUpCtlCommand", sh("bin/replikvctl stauts"), `unknown command "stauts"`},
		{"CtlBadValue", sh("replikvctl put k v --if-match seven"), `invalid argument "seven"`},
		{"CtlViaGoRun", sh("go run ./cmd/replikvctl verify extra"), "accepts 0 arg(s)"},
		{"MadeUpDemoFlag", sh("go run ./cmd/demo --followers 3"), "demo --followers: no such flag"},
		{"MadeUpMakeTarget", sh("make deploy"), "make deploy: no such target"},
		{"MadeUpComposeSubcommand", sh("scripts/compose.sh restart"), "scripts/compose.sh restart: no such subcommand"},
		{"MissingScript", sh("scripts/nope.sh"), "no such script"},
		{"MissingPackage", sh("go test ./internal/nope/"), "no such package"},
		{"MissingComposeFile", sh("docker compose -f docker-compose.nope.yml up -d"), "no such file"},
		{"CurlUnknownEndpoint", sh("curl http://127.0.0.1:8080/v1/keys/a"), "no such endpoint"},
		{"CurlUnknownQuery", sh("curl 'http://127.0.0.1:8080/v1/kv/a?consistent=strong'"), `no query parameter "consistent"`},
		{"BrokenLink", "See [x](docs/nope.md).\n", "no such file docs/nope.md"},
		{"BrokenAnchor", "See [x](docs/api.md#no-such-heading).\n", "has no heading with the anchor #no-such-heading"},
		{"BrokenLocalAnchor", "# Title\n\nSee [x](#nope).\n", "has no heading with the anchor #nope"},
		{"MissingPath", "The code is in `internal/nope/nope.go`.\n", "no such file or directory"},
		{"MissingTest", "`TestNoSuchThing` checks it.\n", "no test, benchmark or fuzz target"},
		{"MadeUpVariable", "Set `REPLIKV_MADE_UP=1`.\n", "REPLIKV_MADE_UP: no flag"},
	}
	r := repo(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Check("README.md", []byte(tc.doc))
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("problems in a correct document: %v", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0].Msg, tc.want) {
				t.Fatalf("got %v, want one problem with %q", got, tc.want)
			}
		})
	}
}

// TestRepo_Complete checks that a reference missing a flag, or describing a flag that does not exist, is found.
func TestRepo_Complete(t *testing.T) {
	r := repo(t)
	base := map[string]string{}
	names, err := r.DocFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		base[n] = readDoc(t, n)
	}
	if p := r.Complete(base); len(p) > 0 {
		t.Fatalf("the repository's references are incomplete (see TestRepositoryDocs): %v", p)
	}
	t.Run("FlagNotDescribed", func(t *testing.T) {
		texts := copyDocs(base)
		texts["docs/configuration.md"] = strings.ReplaceAll(texts["docs/configuration.md"], "`--nats-listen`", "the listen address")
		assertOne(t, r.Complete(texts), "--nats-listen is not described")
	})
	t.Run("MadeUpFlagRow", func(t *testing.T) {
		texts := copyDocs(base)
		texts["docs/configuration.md"] += "\n| `--made-up-flag` | 0 | nothing |\n"
		assertOne(t, r.Complete(texts), "--made-up-flag: no such flag")
	})
	t.Run("CtlFlagNotDescribed", func(t *testing.T) {
		texts := copyDocs(base)
		texts["docs/replikvctl.md"] = strings.ReplaceAll(texts["docs/replikvctl.md"], "--give-up", "--giveup")
		assertOne(t, r.Complete(texts), "--give-up")
	})
	t.Run("MakeTargetNotDescribed", func(t *testing.T) {
		texts := copyDocs(base)
		texts["CONTRIBUTING.md"] = strings.ReplaceAll(texts["CONTRIBUTING.md"], "make clean", "make tidy")
		assertOne(t, r.Complete(texts), "the make target clean")
	})
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(root + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyDocs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func assertOne(t *testing.T, got []Problem, want string) {
	t.Helper()
	if len(got) != 1 || !strings.Contains(got[0].Msg, want) {
		t.Fatalf("got %v, want one problem with %q", got, want)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   [][]string
	}{
		{"Simple", "make build", [][]string{{"make", "build"}}},
		{"Comment", "make build   # bin/leader, bin/follower", [][]string{{"make", "build"}}},
		{"Assignments", "A=1 B='x y' make test", [][]string{{"make", "test"}}},
		{"Continuation", "leader --data-dir d \\\n  --http-addr :0", [][]string{{"leader", "--data-dir", "d", "--http-addr", ":0"}}},
		{"Lists", "a x && b y || c; d | e", [][]string{{"a", "x"}, {"b", "y"}, {"c"}, {"d"}, {"e"}}},
		{"Substitution", `export U=$(scripts/compose.sh urls)`, [][]string{{"scripts/compose.sh", "urls"}}},
		{"QuotedSubstitution", `watch "$(ls -1 | head -n 1)" now`, [][]string{{"ls", "-1"}, {"head", "-n", "1"}, {"watch", "$(ls -1 | head -n 1)", "now"}}},
		{"ProcessSubstitution", "source <(replikvctl completion bash)", [][]string{{"replikvctl", "completion", "bash"}}},
		{"Redirections", "replikvctl completion zsh > out 2>/dev/null", [][]string{{"replikvctl", "completion", "zsh"}}},
		{"Quotes", `curl -H "Authorization: Bearer $T" 'http://h/v1/kv?a=1&b=2'`, [][]string{{"curl", "-H", "Authorization: Bearer $T", "http://h/v1/kv?a=1&b=2"}}},
		{"Braces", `replikvctl watch "${URLS##*,}"`, [][]string{{"replikvctl", "watch", "${URLS##*,}"}}},
		{"Prefixes", "sudo -E env X=1 taskset -c 0 go test ./x", [][]string{{"go", "test", "./x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := Commands(tc.script, 1)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, c := range cmds {
				got = append(got, c.Args)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := Commands(`echo "unclosed`, 1); err == nil {
		t.Error("an unclosed quote parsed")
	}
}

func TestAnchors(t *testing.T) {
	got := anchors([]string{"1-2. Leader ingest", "Catch-up readers and the log's lock", "HTTPS", "HTTPS",
		"The `healthcheck` probe"})
	for _, want := range []string{"1-2-leader-ingest", "catch-up-readers-and-the-logs-lock", "https", "https-1",
		"the-healthcheck-probe"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
}
