package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultCheckInterval is the least time between two looks (one stat per file) at the files of a Reloader.
const DefaultCheckInterval = time.Second

// warnEvery is how often a reload failure that keeps recurring with the same error is logged again.
const warnEvery = time.Minute

// Log field names.
const (
	fieldSerial   = "serial"
	fieldNotAfter = "not_after"
	fieldMutual   = "mutual_tls"
)

// Reloader serves the certificate and client CAs of Files and picks up new files without a restart. During a TLS
// handshake, at most once per check interval, it stats the files; when one changed (modification time, size or
// inode), it loads them all and serves the new pair from that handshake on. New files that do not load (a key that
// does not match its certificate, a half-written file) leave the previous pair in service and are tried again at
// the next check; the failure is logged at warn, again only when it changes or once a minute. Replace the files by
// renaming new ones over them, so that no handshake reads a half-written file.
//
// A Reloader is safe for concurrent use and owns no goroutine.
type Reloader struct {
	files Files
	log   *zap.Logger
	every time.Duration
	now   func() time.Time

	cur       atomic.Pointer[generation]
	nextCheck atomic.Int64 // Unix nanoseconds before which the files are not looked at again

	mu       sync.Mutex // held by the one handshake that checks the files; guards the fields below
	warnMsg  string     // the last reload failure logged
	warnedAt time.Time
}

// generation is one loaded set of files and the configuration handshakes use with it. It is never modified.
type generation struct {
	stamps []stamp
	config *tls.Config
	leaf   *x509.Certificate
}

// stamp identifies one version of a file cheaply.
type stamp struct {
	size    int64
	modTime int64 // Unix nanoseconds
	inode   uint64
}

// NewReloader loads f (CertFile and KeyFile are required) and returns a Reloader serving it; log (nil = no logs)
// gets a line per reload and the reload failures. It fails when the files cannot be read or do not hold a usable
// certificate, key and (when set) CA bundle.
func NewReloader(f Files, log *zap.Logger) (*Reloader, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("tlsconf: %w: a certificate and a key are required", ErrInvalid)
	}
	if log == nil {
		log = zap.NewNop()
	}
	r := &Reloader{files: f, log: log, every: DefaultCheckInterval, now: time.Now}
	g, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(g)
	r.nextCheck.Store(r.now().Add(r.every).UnixNano())
	log.Info("tls: certificate loaded", zap.String(fieldSerial, serial(g.leaf)),
		zap.Time(fieldNotAfter, g.leaf.NotAfter), zap.Bool(fieldMutual, f.ClientCAFile != ""))
	if r.now().After(g.leaf.NotAfter) {
		log.Warn("tls: the certificate has expired", zap.Time(fieldNotAfter, g.leaf.NotAfter))
	}
	return r, nil
}

// ServerConfig returns the configuration of the API's listener: every handshake takes the certificate, and with
// mutual TLS the client CAs, of the current files through GetConfigForClient.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		GetConfigForClient: r.GetConfigForClient,
	}
}

// GetConfigForClient is the tls.Config hook: it checks the files when the check interval has passed since the last
// look and returns the configuration of the files in service.
func (r *Reloader) GetConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return r.current().config, nil
}

// current returns the generation in service, after looking at the files if the check interval has passed.
func (r *Reloader) current() *generation {
	now := r.now().UnixNano()
	if now < r.nextCheck.Load() {
		return r.cur.Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now < r.nextCheck.Load() { // another handshake looked meanwhile
		return r.cur.Load()
	}
	r.nextCheck.Store(now + int64(r.every))
	r.refresh()
	return r.cur.Load()
}

// refresh loads the files when they changed since the generation in service was loaded. Called with mu held.
func (r *Reloader) refresh() {
	cur := r.cur.Load()
	stamps, err := r.stat()
	if err == nil && slices.Equal(stamps, cur.stamps) {
		return
	}
	var next *generation
	if err == nil {
		next, err = r.load()
	}
	if err != nil {
		msg := err.Error()
		if now := r.now(); msg != r.warnMsg || now.Sub(r.warnedAt) >= warnEvery {
			r.warnMsg, r.warnedAt = msg, now
			r.log.Warn("tls: the certificate files changed but do not load; still serving the previous certificate",
				zap.String(fieldSerial, serial(cur.leaf)), zap.Error(err))
		}
		return
	}
	r.warnMsg = ""
	r.cur.Store(next)
	r.log.Info("tls: certificate reloaded", zap.String(fieldSerial, serial(next.leaf)),
		zap.Time(fieldNotAfter, next.leaf.NotAfter))
}

// stat returns the stamps of the files, in the order certificate, key, client CAs.
func (r *Reloader) stat() ([]stamp, error) {
	paths := []string{r.files.CertFile, r.files.KeyFile}
	if r.files.ClientCAFile != "" {
		paths = append(paths, r.files.ClientCAFile)
	}
	stamps := make([]stamp, 0, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		stamps = append(stamps, stamp{size: fi.Size(), modTime: fi.ModTime().UnixNano(), inode: inode(fi)})
	}
	return stamps, nil
}

// load stats, then reads the files into a new generation: a file replaced between the two is loaded again at the
// next check, since its stamp then differs from the one recorded.
func (r *Reloader) load() (*generation, error) {
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := LoadKeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
		Certificates: []tls.Certificate{cert},
	}
	if r.files.ClientCAFile != "" {
		pool, err := LoadCAs(r.files.ClientCAFile)
		if err != nil {
			return nil, err
		}
		// crypto/tls checks the chains of a resumed session against these CAs too: a CA removed from the bundle
		// stops admitting its clients at once.
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &generation{stamps: stamps, config: c, leaf: cert.Leaf}, nil
}

// serial formats a certificate's serial number as openssl prints it (upper-case hex bytes), for logs.
func serial(c *x509.Certificate) string {
	return fmt.Sprintf("%X", c.SerialNumber.Bytes())
}
