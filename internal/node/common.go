package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/tlsconf"
)

// Log field names used across the package.
const (
	fieldSeq  = "seq"
	fieldAddr = "addr"
	fieldURL  = "url"
)

// openSnapshots opens the configured snapshot store (without touching the network) and its repo.
func openSnapshots(c config.Common, log *zap.Logger) (snapshots.Store, *snapshots.Repo, error) {
	st, err := snapshots.Open(c.Snapshots, snapshots.S3Config{
		Endpoint: c.S3Endpoint, Insecure: c.S3Insecure, Region: c.S3Region,
		AccessKeyID: c.AWSAccessKeyID, SecretAccessKey: c.AWSSecretAccessKey, SessionToken: c.AWSSessionToken,
	}, log.With(zap.String("component", "snapshots")))
	if err != nil {
		return nil, nil, fmt.Errorf("node: open snapshot store: %w", err)
	}
	return st, snapshots.NewRepo(st, c.Stream, log.With(zap.String("component", "snapshots"))), nil
}

// serveHTTP starts the API server on c.HTTPAddr, with HTTPS when c has a TLS certificate, and logs the bound address
// ("http listening", addr) for operators and tests. It sets h's tokens from c.
func serveHTTP(c config.Common, h api.Config, log *zap.Logger) (*api.Server, <-chan error, error) {
	h.AuthToken, h.ReadToken = c.AuthToken, c.ReadToken
	handler, err := api.NewHandler(h)
	if err != nil {
		return nil, nil, fmt.Errorf("node: http handler: %w", err)
	}
	httpLog := log.With(zap.String("component", "http"))
	var srv *api.Server
	if files := c.TLSFiles(); files.CertFile != "" {
		// The reloader owns no goroutine: it looks at the files during handshakes.
		reloader, rerr := tlsconf.NewReloader(files, httpLog)
		if rerr != nil {
			return nil, nil, fmt.Errorf("node: https: %w", rerr)
		}
		srv, err = api.ListenTLS(c.HTTPAddr, handler, reloader.ServerConfig(), httpLog)
	} else {
		srv, err = api.Listen(c.HTTPAddr, handler, httpLog)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("node: listen on %s: %w", c.HTTPAddr, err)
	}
	log.Info("http listening", zap.String(fieldAddr, srv.Addr()), zap.String(fieldURL, srv.URL()))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(); close(done) }()
	return srv, done, nil
}

// shutdownHTTP drains in-flight requests, bounded by a timeout.
func shutdownHTTP(srv *api.Server, done <-chan error, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("http shutdown", zap.Error(err))
	}
	<-done
}

// loadOrCreateID returns the id persisted in path, creating a random one with the given prefix the first time.
// A restarted leader keeps its id, and so takes its own lease back at once.
func loadOrCreateID(path, prefix string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node: read id: %w", err)
	}
	id := prefix + randomHex(6)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("node: write id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("node: write id: %w", err)
	}
	return id, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureDir creates the data dir.
func ensureDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("node: data dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("node: create data dir: %w", err)
	}
	return abs, nil
}

// retry calls fn until it succeeds or ctx ends, with capped exponential backoff, reporting each failure.
func retry(ctx context.Context, min, max time.Duration, fn func() error, onErr func(error, time.Duration)) error {
	backoff := min
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if onErr != nil {
			onErr(err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min2(backoff*2, max)
	}
}

func min2(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// updateSeqMetrics publishes the applied/log/lag gauges.
func updateSeqMetrics(m *metrics.Metrics, applied, logLast uint64) {
	m.AppliedSeq.Set(float64(applied))
	if logLast < applied {
		logLast = applied
	}
	m.LogLastSeq.Set(float64(logLast))
	m.Lag.Set(float64(logLast - applied))
}

// runUntilDone waits until ctx is cancelled (a clean stop) or the HTTP server fails, then closes the node.
func runUntilDone(ctx context.Context, served <-chan error, closeNode func() error) error {
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		runErr = fmt.Errorf("node: http server: %w", err)
	}
	return errors.Join(runErr, closeNode())
}

// local is the state both roles keep on their own machine: the data dir, the store, the snapshot repo, and the
// reported state. Leader and Follower embed it.
type local struct {
	dataDir   string
	storeOpts store.Options
	holder    storeHolder
	notify    *seqNotifier
	state     stateTracker
	snapStore snapshots.Store
	repo      *snapshots.Repo
	restorer  *restorer
}

// openLocal creates the data dir, removes what a crash mid-restore left, opens the store (keeping idempotency records
// for idemTTL) and the snapshot repo. On
// success the caller owns closing the store (holder.swap(nil)); on error nothing stays open.
func (n *local) openLocal(c config.Common, idemTTL time.Duration, log *zap.Logger, m *metrics.Metrics) error {
	var err error
	if n.dataDir, err = ensureDir(c.DataDir); err != nil {
		return err
	}
	if err := store.CleanStale(n.dataDir); err != nil {
		return fmt.Errorf("node: clean data dir: %w", err)
	}
	n.storeOpts = store.Options{Logger: log, IdemTTL: idemTTL,
		OnWriteStall: func(d time.Duration) { m.StoreWriteStalls.Observe(d.Seconds()) }}
	if n.snapStore, n.repo, err = openSnapshots(c, log); err != nil {
		return err
	}
	n.restorer = &restorer{repo: n.repo, dataDir: n.dataDir, storeOpts: n.storeOpts, log: log, metrics: m, state: &n.state}
	n.notify = newSeqNotifier(0)
	if err := n.reopenStore(); err != nil {
		if !errors.Is(err, store.ErrDiskFull) {
			return err
		}
		// Stay up (healthz, status) and open the store once space returns: see ensureStore.
		log.Error("the store's disk is full; the node waits for space to open it", zap.Error(err))
	}
	return nil
}

// ensureStore opens the store when a full disk kept openLocal (or an earlier attempt) from opening it. Errors wrap
// store.ErrDiskFull while the disk is still full.
func (n *local) ensureStore() error {
	if n.holder.get() != nil {
		return nil
	}
	return n.reopenStore()
}

// Applied implements api.Node.
func (n *local) Applied() uint64 { return n.notify.Seq() }

// View implements api.Node.
func (n *local) View(ctx context.Context) (api.View, error) { return n.holder.view(ctx) }

// WaitApplied implements api.Node.
func (n *local) WaitApplied(ctx context.Context, seq uint64) error { return n.notify.Wait(ctx, seq) }

// reopenStore opens the store directory again after a restore (or a reset) replaced it, makes it the node's store
// and advances the applied sequence readers wait on.
func (n *local) reopenStore() error {
	db, err := store.Open(store.StoreDir(n.dataDir), n.storeOpts)
	if err != nil {
		return fmt.Errorf("node: reopen store: %w", err)
	}
	_ = n.holder.swap(db)
	n.notify.Advance(db.Applied())
	n.state.setSnapshotSeq(db.SnapshotSeq())
	return nil
}

// repeatLimiter decides when a failure that keeps recurring is worth logging again: at once when its text changes,
// else at most once per every. Owned by one goroutine.
type repeatLimiter struct {
	every time.Duration
	last  string
	at    time.Time
}

// due reports whether err should be logged now, and if so records it as logged.
func (r *repeatLimiter) due(err error) bool {
	if msg := err.Error(); msg != r.last || time.Since(r.at) >= r.every {
		r.last, r.at = msg, time.Now()
		return true
	}
	return false
}

// defaultAdvertise is a node's API URL when --advertise-url is not given: the server's URL, with the machine's host
// name in place of an address that listens on every interface (0.0.0.0, ::), which no other host could dial: in a
// container that is the name its peers reach it by.
func defaultAdvertise(srv *api.Server) string {
	name, err := os.Hostname()
	if err != nil {
		name = ""
	}
	return advertiseURL(srv.URL(), name)
}

// advertiseURL replaces the host of serverURL by hostname when it is an unspecified address and hostname is not
// empty.
func advertiseURL(serverURL, hostname string) string {
	u, err := url.Parse(serverURL)
	if err != nil || hostname == "" {
		return serverURL
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsUnspecified() {
		return serverURL
	}
	u.Host = net.JoinHostPort(hostname, u.Port())
	return u.String()
}
