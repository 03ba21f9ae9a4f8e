package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/replikv/replikv/internal/testutil/testca"
)

// serve serves a 200 "ok" over TLS with cfg on a free loopback port and returns its https URL.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ErrorLog: zap.NewStdLog(zap.NewNop()), // rejected handshakes are what some tests want
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return "https://" + ln.Addr().String()
}

// client returns an HTTPS client that trusts roots, presents certs, and opens a new connection per request (each
// request is a new handshake).
func client(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
}

// get requests url and returns the serial number of the server's certificate.
func get(c *http.Client, url string) (*big.Int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, nil
}

func mustServe(t *testing.T, c *http.Client, url string, want *big.Int) {
	t.Helper()
	got, err := get(c, url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if got.Cmp(want) != 0 {
		t.Fatalf("server certificate serial %s, want %s", got, want)
	}
}

// fakeClock is a settable time for the check interval.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newReloader returns a Reloader on f whose check interval is every on clock.
func newReloader(t *testing.T, f Files, log *zap.Logger, clock *fakeClock, every time.Duration) *Reloader {
	t.Helper()
	r, err := NewReloader(f, log)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	r.now, r.every = clock.now, every
	r.nextCheck.Store(0)
	return r
}

func files(tf testca.Files, mutual bool) Files {
	f := Files{CertFile: tf.CertFile, KeyFile: tf.KeyFile}
	if mutual {
		f.ClientCAFile = tf.CAFile
	}
	return f
}

func TestReloader_ServesHTTPS(t *testing.T) {
	tf := testca.WriteFiles(t)
	r := newReloader(t, files(tf, false), nil, &fakeClock{t: time.Now()}, time.Second)
	url := serve(t, r.ServerConfig())
	mustServe(t, client(tf.CA.Pool()), url, tf.Leaf.Cert.SerialNumber)
	if _, err := get(client(testca.New(t, "other").Pool()), url); err == nil {
		t.Fatal("a client that does not trust the CA connected")
	}
}

func TestReloader_Rotation(t *testing.T) {
	tf := testca.WriteFiles(t)
	clock := &fakeClock{t: time.Now()}
	r := newReloader(t, files(tf, false), nil, clock, time.Second)
	url := serve(t, r.ServerConfig())
	c := client(tf.CA.Pool())
	mustServe(t, c, url, tf.Leaf.Cert.SerialNumber) // looks at the files, and not again for a second

	next := tf.CA.Issue(t)
	next.Write(t, tf.CertFile, tf.KeyFile)
	mustServe(t, c, url, tf.Leaf.Cert.SerialNumber) // within the check interval: no stat
	clock.add(time.Second)
	mustServe(t, c, url, next.Cert.SerialNumber) // the next handshake after it gets the new pair
	mustServe(t, c, url, next.Cert.SerialNumber)

	// Written in place (same inode) with a later modification time.
	third := tf.CA.Issue(t)
	if err := os.WriteFile(tf.CertFile, third.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf.KeyFile, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	for _, p := range []string{tf.CertFile, tf.KeyFile} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	clock.add(time.Second)
	mustServe(t, c, url, third.Cert.SerialNumber)
}

func TestReloader_InvalidFilesKeepThePreviousPair(t *testing.T) {
	tf := testca.WriteFiles(t)
	core, logs := observer.New(zapcore.WarnLevel)
	clock := &fakeClock{t: time.Now()}
	r := newReloader(t, files(tf, false), zap.New(core), clock, time.Second)
	url := serve(t, r.ServerConfig())
	c := client(tf.CA.Pool())
	old := tf.Leaf.Cert.SerialNumber

	// Half a rotation: the new certificate, the old key.
	next := tf.CA.Issue(t)
	testca.WriteFile(t, tf.CertFile, next.CertPEM)
	for range 3 {
		clock.add(time.Second)
		mustServe(t, c, url, old)
	}
	warns := logs.FilterMessageSnippet("do not load").All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings for the same failure, want 1 (rate-limited): %v", len(warns), warns)
	}
	for _, f := range warns[0].Context {
		if strings.Contains(f.String, "PRIVATE KEY") {
			t.Fatalf("the warning holds key material: %v", f)
		}
	}
	clock.add(warnEvery)
	mustServe(t, c, url, old)
	if n := logs.FilterMessageSnippet("do not load").Len(); n != 2 {
		t.Fatalf("%d warnings after %s, want 2", n, warnEvery)
	}

	// Not PEM at all, then a removed file: still the old pair.
	testca.WriteFile(t, tf.KeyFile, []byte("garbage"))
	clock.add(time.Second)
	mustServe(t, c, url, old)
	if err := os.Remove(tf.KeyFile); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	mustServe(t, c, url, old)
	if n := logs.FilterMessageSnippet("do not load").Len(); n != 4 {
		t.Fatalf("%d warnings, want 4 (a new failure is logged at once)", n)
	}

	// The rotation completes.
	testca.WriteFile(t, tf.KeyFile, next.KeyPEM)
	clock.add(time.Second)
	mustServe(t, c, url, next.Cert.SerialNumber)
}

func TestReloader_MutualTLS(t *testing.T) {
	tf := testca.WriteFiles(t)
	clock := &fakeClock{t: time.Now()}
	r := newReloader(t, files(tf, true), nil, clock, time.Second)
	url := serve(t, r.ServerConfig())
	pool := tf.CA.Pool()

	if _, err := get(client(pool), url); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	stranger := testca.New(t, "stranger")
	if _, err := get(client(pool, stranger.Issue(t).TLS(t)), url); err == nil {
		t.Fatal("a client with a certificate of another CA was served")
	}
	mustServe(t, client(pool, tf.CA.Issue(t).TLS(t)), url, tf.Leaf.Cert.SerialNumber)

	t.Run("CARotation", func(t *testing.T) {
		// A client that resumes a session its old certificate opened is refused once its CA left the bundle.
		cache := tls.NewLRUClientSessionCache(4)
		old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{tf.CA.Issue(t).TLS(t)},
				ClientSessionCache: cache}}}
		mustServe(t, old, url, tf.Leaf.Cert.SerialNumber)
		resp, err := old.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if !resp.TLS.DidResume {
			t.Fatal("the second connection did not resume: the test would not cover resumption")
		}

		testca.WriteFile(t, tf.CAFile, stranger.PEM)
		clock.add(time.Second)
		if _, err := get(old, url); err == nil {
			t.Fatal("a resumed session of a certificate of the removed CA was served")
		}
		if _, err := get(client(pool, tf.CA.Issue(t).TLS(t)), url); err == nil {
			t.Fatal("a certificate of the removed CA was served")
		}
		mustServe(t, client(pool, stranger.Issue(t).TLS(t)), url, tf.Leaf.Cert.SerialNumber)
	})
}

func TestNewReloader_Errors(t *testing.T) {
	tf := testca.WriteFiles(t)
	other := tf.CA.Issue(t)
	dir := t.TempDir()
	otherKey := filepath.Join(dir, "other.key")
	testca.WriteFile(t, otherKey, other.KeyPEM)
	notPEM := filepath.Join(dir, "not.pem")
	testca.WriteFile(t, notPEM, []byte("not a certificate"))

	tests := []struct {
		name string
		f    Files
		is   error
	}{
		{"NoKey", Files{CertFile: tf.CertFile}, ErrInvalid},
		{"MissingCert", Files{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: tf.KeyFile}, fs.ErrNotExist},
		{"MissingKey", Files{CertFile: tf.CertFile, KeyFile: filepath.Join(dir, "nope.key")}, fs.ErrNotExist},
		{"KeyOfAnotherCert", Files{CertFile: tf.CertFile, KeyFile: otherKey}, ErrInvalid},
		{"CertNotPEM", Files{CertFile: notPEM, KeyFile: tf.KeyFile}, ErrInvalid},
		{"CANotPEM", Files{CertFile: tf.CertFile, KeyFile: tf.KeyFile, ClientCAFile: notPEM}, ErrInvalid},
		{"MissingCA", Files{CertFile: tf.CertFile, KeyFile: tf.KeyFile, ClientCAFile: filepath.Join(dir, "nope")},
			fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReloader(tc.f, nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(other.KeyPEM[30:60])) {
				t.Fatalf("the error holds key material: %v", err)
			}
		})
	}
}

func TestProbeConfig(t *testing.T) {
	tf := testca.WriteFiles(t)
	r := newReloader(t, files(tf, false), nil, &fakeClock{t: time.Now()}, time.Second)
	url := serve(t, r.ServerConfig())
	probe := func(f Files) error {
		cfg, err := ProbeConfig(f)
		if err != nil {
			return err
		}
		_, err = get(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, url)
		return err
	}
	if err := probe(files(tf, false)); err != nil {
		t.Fatalf("the probe of the node's own certificate: %v", err)
	}
	// Another certificate of the same CA is not the node's: refused.
	other := tf.CA.Issue(t)
	dir := t.TempDir()
	of := Files{CertFile: filepath.Join(dir, "o.crt"), KeyFile: filepath.Join(dir, "o.key")}
	other.Write(t, of.CertFile, of.KeyFile)
	if err := probe(of); !errors.Is(err, errNotOwnCert) {
		t.Fatalf("probe with another certificate: %v, want errNotOwnCert", err)
	}

	t.Run("Mutual", func(t *testing.T) {
		rm := newReloader(t, files(tf, true), nil, &fakeClock{t: time.Now()}, time.Second)
		murl := serve(t, rm.ServerConfig())
		cfg, err := ProbeConfig(files(tf, true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := get(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, murl); err != nil {
			t.Fatalf("the probe presents the node's certificate: %v", err)
		}
	})
}

func TestReloader_ConcurrentHandshakes(t *testing.T) {
	tf := testca.WriteFiles(t)
	r := newReloader(t, files(tf, true), nil, &fakeClock{t: time.Now()}, 0) // stat on every handshake
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	var handshakes sync.WaitGroup
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			handshakes.Go(func() { _ = conn.(*tls.Conn).Handshake(); _ = conn.Close() })
		}
	}()
	defer func() { _ = ln.Close(); <-accepted; handshakes.Wait() }()
	leafs := []testca.Leaf{tf.CA.Issue(t), tf.CA.Issue(t)}
	cfg := &tls.Config{RootCAs: tf.CA.Pool(), Certificates: []tls.Certificate{tf.CA.Issue(t).TLS(t)}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
				if err != nil {
					t.Error(err)
					return
				}
				_ = conn.Close()
			}
		})
	}
	for i := range 20 {
		leafs[i%2].Write(t, tf.CertFile, tf.KeyFile) // the pair is mismatched between the two writes
	}
	wg.Wait()
}
