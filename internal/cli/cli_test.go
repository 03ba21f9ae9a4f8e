package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/testutil/testca"
)

type fakeCfg struct{ common config.Common }

func (c fakeCfg) Shared() config.Common { return c.common }

// parseAs returns a parse function that yields cfg and records the arguments it saw.
func parseAs(cfg fakeCfg, err error, saw *[]string) func([]string, func(string) string, io.Writer) (fakeCfg, error) {
	return func(args []string, _ func(string) string, _ io.Writer) (fakeCfg, error) {
		*saw = args
		return cfg, err
	}
}

func TestRun_RunsTheNode(t *testing.T) {
	var saw []string
	cfg := fakeCfg{config.Common{HTTPAddr: "127.0.0.1:0", LogLevel: "warn"}}
	ran := false
	err := Run(context.Background(), []string{"--http-addr", "x"}, func(string) string { return "" }, io.Discard,
		parseAs(cfg, nil, &saw), func(ctx context.Context, got fakeCfg, log *zap.Logger) error {
			ran = true
			if got != cfg {
				return fmt.Errorf("run got %+v", got)
			}
			if log.Core().Enabled(zap.InfoLevel) || !log.Core().Enabled(zap.WarnLevel) {
				return errors.New("the logger is not at the configured level")
			}
			return ctx.Err()
		})
	if err != nil || !ran {
		t.Fatalf("Run = %v (ran %v)", err, ran)
	}
	if strings.Join(saw, " ") != "--http-addr x" {
		t.Fatalf("parse saw %q", saw)
	}
}

func TestRun_Errors(t *testing.T) {
	var saw []string
	noRun := func(context.Context, fakeCfg, *zap.Logger) error { return errors.New("must not run") }
	bad := fmt.Errorf("%w: bad flag", config.ErrUsage)
	if err := Run(context.Background(), nil, nil, io.Discard, parseAs(fakeCfg{}, bad, &saw), noRun); !errors.Is(err, config.ErrUsage) {
		t.Fatalf("parse error: Run = %v", err)
	}
	cfg := fakeCfg{config.Common{LogLevel: "loud"}}
	if err := Run(context.Background(), nil, nil, io.Discard, parseAs(cfg, nil, &saw), noRun); err == nil {
		t.Fatal("bad log level: no error")
	}
}

func TestRun_Healthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	var saw []string
	cfg := fakeCfg{config.Common{HTTPAddr: addr, LogLevel: "info"}}
	noRun := func(context.Context, fakeCfg, *zap.Logger) error { return errors.New("must not run") }
	if err := Run(context.Background(), []string{"healthcheck", "--http-addr", addr}, nil, io.Discard, parseAs(cfg, nil, &saw), noRun); err != nil {
		t.Fatalf("healthy: Run = %v", err)
	}
	if strings.Join(saw, " ") != "--http-addr "+addr {
		t.Fatalf("parse saw %q: the subcommand must not reach the flags", saw)
	}
	status = http.StatusServiceUnavailable
	if err := Run(context.Background(), []string{"healthcheck"}, nil, io.Discard, parseAs(cfg, nil, &saw), noRun); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: Run = %v", err)
	}
}

func TestHealthcheck_TLS(t *testing.T) {
	tf := testca.WriteFiles(t)
	start := func(t *testing.T, leaf testca.Leaf, mutual bool) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
			}
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS(t)}}
		if mutual {
			srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, tf.CA.Pool()
		}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "https://")
	}
	common := func(addr string, mutual bool) config.Common {
		c := config.Common{HTTPAddr: addr, TLSCert: tf.CertFile, TLSKey: tf.KeyFile}
		if mutual {
			c.TLSClientCA = tf.CAFile
		}
		return c
	}
	t.Run("OwnCertificate", func(t *testing.T) {
		if err := Healthcheck(context.Background(), common(start(t, tf.Leaf, false), false)); err != nil {
			t.Fatalf("Healthcheck = %v", err)
		}
	})
	t.Run("AnotherCertificate", func(t *testing.T) {
		// Same CA, but not the node's own certificate: not this node.
		if err := Healthcheck(context.Background(), common(start(t, tf.CA.Issue(t), false), false)); err == nil {
			t.Fatal("the probe accepted a server with another certificate")
		}
	})
	t.Run("Mutual", func(t *testing.T) {
		addr := start(t, tf.Leaf, true)
		if err := Healthcheck(context.Background(), common(addr, true)); err != nil {
			t.Fatalf("Healthcheck = %v", err)
		}
		if err := Healthcheck(context.Background(), common(addr, false)); err == nil {
			t.Fatal("the probe without a client certificate passed mutual TLS")
		}
	})
	t.Run("PlainHTTPServer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(srv.Close)
		if err := Healthcheck(context.Background(), common(strings.TrimPrefix(srv.URL, "http://"), false)); err == nil {
			t.Fatal("an HTTPS probe passed against a plain HTTP server")
		}
	})
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		out  bool
	}{
		{nil, ExitOK, false},
		{config.ErrHelp, ExitOK, false},
		{fmt.Errorf("x: %w", config.ErrUsage), ExitUsage, true},
		{errors.New("boom"), ExitError, true},
	} {
		var buf bytes.Buffer
		if got := ExitCode(tc.err, &buf); got != tc.code || (buf.Len() > 0) != tc.out {
			t.Errorf("ExitCode(%v) = %d, printed %q", tc.err, got, buf.String())
		}
	}
}

func TestProcsFor(t *testing.T) {
	for _, c := range []struct {
		current int
		env     string
		want    int
	}{
		{1, "", MinProcs},        // one CPU: raised
		{MinProcs, "", MinProcs}, // already enough
		{8, "", 8},               // never lowered
		{1, "1", 1},              // the operator's GOMAXPROCS wins
		{1, "bogus", 1},          // the runtime judges the variable; it is the operator's either way
	} {
		if got := procsFor(c.current, c.env); got != c.want {
			t.Errorf("procsFor(%d, %q) = %d, want %d", c.current, c.env, got, c.want)
		}
	}
}

// TestRun_RaisesGOMAXPROCS checks that a node limited to one processor runs with MinProcs, and that the GOMAXPROCS
// environment variable keeps the runtime's choice.
func TestRun_RaisesGOMAXPROCS(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, c := range []struct {
		env  string
		want int
	}{{"", MinProcs}, {"1", 1}} {
		runtime.GOMAXPROCS(1)
		var saw []string
		var during int
		cfg := fakeCfg{config.Common{HTTPAddr: "127.0.0.1:0", LogLevel: "warn"}}
		getenv := func(k string) string {
			if k == "GOMAXPROCS" {
				return c.env
			}
			return ""
		}
		err := Run(context.Background(), nil, getenv, io.Discard, parseAs(cfg, nil, &saw),
			func(context.Context, fakeCfg, *zap.Logger) error {
				during = runtime.GOMAXPROCS(0)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if during != c.want {
			t.Errorf("GOMAXPROCS=%q: the node ran with %d processors, want %d", c.env, during, c.want)
		}
	}
}
