// Package config parses the binaries' flags and REPLIKV_* environment variables into validated configurations.
//
// Every flag can also be set by an environment variable: REPLIKV_ + the flag name in upper case with '-' as '_'.
// A flag given on the command line wins over the environment. An invalid value is reported as an error naming the
// flag; the binaries exit with code 2 on it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/tlsconf"
)

// ErrUsage marks an invalid command line or environment value. The binaries exit with code 2 on it.
var ErrUsage = errors.New("usage error")

// ErrHelp is returned when -h or --help was asked for; usage has been printed and the binary exits 0.
var ErrHelp = flag.ErrHelp

// EnvPrefix is the prefix of every environment variable that sets a flag.
const EnvPrefix = "REPLIKV_"

// Common holds the settings both binaries take.
type Common struct {
	// DataDir holds local state (the store, the embedded NATS data, the leader id); created if missing.
	DataDir string
	// HTTPAddr is the HTTP API listen address; port 0 picks a free port.
	HTTPAddr string
	// HTTPBodyTimeout bounds the read of a request's body once its headers arrived (default 30 s; must be > 0).
	HTTPBodyTimeout time.Duration
	// HTTPBodyBuffer caps the bytes of request bodies the node holds at once (default 128 MiB; at least one
	// maximal value, 524288).
	HTTPBodyBuffer int64
	// NATSURL lists the NATS servers, comma-separated. Empty on the leader runs an embedded server.
	NATSURL string
	// Stream is the JetStream stream name of the replication log.
	Stream string
	// Snapshots is the snapshot store: file:///abs/dir or s3://bucket/prefix.
	Snapshots string
	// S3Endpoint is host:port of an S3-compatible server; empty means AWS.
	S3Endpoint string
	// S3Insecure uses plain HTTP to the S3 endpoint.
	S3Insecure bool
	// S3Region is the S3 region.
	S3Region string
	// NATSCreds, NATSCA, NATSCert and NATSKey are files for NATS authentication and TLS (see journal.Config).
	NATSCreds, NATSCA, NATSCert, NATSKey string
	// NATSUser and NATSPassword are this node's NATS user name and password (both or neither; empty = none): what it
	// logs in with, to an external NATS or to the leader's embedded server. On the leader with the embedded server,
	// setting them turns the embedded server's authentication on, with this user as the leader (see
	// journal.LeaderPermissions). Never together with credentials in NATSURL or with NATSCreds. The password is never
	// logged.
	NATSUser, NATSPassword string
	// AuthToken, when set, is required as a Bearer token on every /v1/ request (ReadToken will do for reads); it
	// allows every request. Never logged.
	AuthToken string
	// ReadToken, when set (only with AuthToken, and different from it), is a Bearer token that allows only GET and
	// HEAD requests under /v1/. Never logged.
	ReadToken string
	// TLSCert and TLSKey are the PEM certificate (leaf first, then intermediates) and private key of the HTTP API:
	// set, the API speaks HTTPS only, and picks up new files without a restart. Both or neither; empty = plain HTTP.
	TLSCert, TLSKey string
	// TLSClientCA, when set (only with TLSCert), is a PEM bundle of CAs: every client of the API must present a
	// certificate one of them signed (mutual TLS). Reloaded like TLSCert.
	TLSClientCA string
	// AdvertiseURL is the node's API URL as others reach it: on the leader, where followers send writers (the lease
	// carries it); on a follower, what the leader lists for it in /v1/followers. Empty means http:// (https:// with
	// TLSCert) + the bound HTTP address.
	AdvertiseURL string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// AWS credentials, read from the AWS_* environment only (never from flags). Never logged.
	AWSAccessKeyID, AWSSecretAccessKey, AWSSessionToken string
}

// Shared returns the settings both binaries take; Leader and Follower have it through Common.
func (c Common) Shared() Common { return c }

// Leader is the leader's configuration.
type Leader struct {
	Common
	// NATSListen is the client address of the embedded NATS server (only without NATSURL); port 0 picks a free port.
	NATSListen string
	// NATSSyncInterval is the embedded JetStream's fsync interval; 0 keeps the server default (2 minutes).
	NATSSyncInterval time.Duration
	// NATSSyncAlways makes the embedded JetStream fsync every write before acknowledging it.
	NATSSyncAlways bool
	// Duties are the settings of the leader's work, which a follower uses once promoted.
	Duties
	// NATSFollowerUser and NATSFollowerPassword are the user the embedded server admits followers as, with the
	// follower permissions (journal.FollowerPermissions). Both or neither; only with the embedded server (no NATSURL)
	// and NATSUser, and a name other than NATSUser's. Empty with NATSUser set means no follower can connect. The
	// password is never logged.
	NATSFollowerUser, NATSFollowerPassword string
}

// Duties are the settings of the work only the node holding the leader lease does: the lease itself, snapshots,
// sync confirmations and the stream's creation. Both binaries take them: a follower uses them once promoted.
type Duties struct {
	// SnapshotInterval is how often a snapshot is taken if the log moved; 0 means only on demand.
	SnapshotInterval time.Duration
	// SnapshotKeep is how many snapshots are kept in the store; at least 2.
	SnapshotKeep int
	// SnapshotCPU is the share of one core a snapshot's encoder may use, in (0, 1]; 1 means unpaced.
	SnapshotCPU float64
	// CatchUpMirror makes the leader keep a JetStream mirror of the log (<stream>_catchup) that followers catch up
	// from, so their reads do not hold back the leader's publishes.
	CatchUpMirror bool
	// CatchUpMirrorTags are JetStream placement tags for the catch-up mirror when the leader creates it: on a cluster,
	// put it on other servers than the log's leader. Only with CatchUpMirror.
	CatchUpMirrorTags []string
	// StreamTags are JetStream placement tags for the stream and the lease bucket when the leader creates them.
	StreamTags []string
	// SyncFollowers is how many ready followers must apply a write before it is confirmed; 0 = asynchronous.
	SyncFollowers int
	// SyncTimeout is how long a write waits for SyncFollowers before answering 202.
	SyncTimeout time.Duration
	// StreamReplicas is the replica count used when the stream is created (1 for a single server, 3 for a cluster).
	StreamReplicas int
	// LeaseTTL is how long the leader lease lives without renewal (MinLeaseTTL..MaxLeaseTTL). The lease bucket is
	// created with it; an existing bucket keeps its own TTL, and the leader goes by the shorter of the two.
	LeaseTTL time.Duration
	// IdempotencyTTL is how long the result of a write sent with an Idempotency-Key is kept for its retries
	// (MinIdempotencyTTL..MaxIdempotencyTTL). Every node keeps the records, so that a later leader knows them.
	IdempotencyTTL time.Duration
}

// WithDefaults returns d with the defaults of the flags' for the zero values that have no meaning of their own
// (IdempotencyTTL), for configurations built in code rather than parsed.
func (d Duties) WithDefaults() Duties {
	if d.IdempotencyTTL == 0 {
		d.IdempotencyTTL = DefaultIdempotencyTTL
	}
	return d
}

// Failover modes of a follower (--failover).
const (
	// FailoverOff: the follower never leads; POST /v1/promote answers 409.
	FailoverOff = "off"
	// FailoverManual: the follower leads only when asked (POST /v1/promote, replikvctl promote).
	FailoverManual = "manual"
	// FailoverAuto: the follower also takes the lease by itself when it is free and the follower is eligible (ready,
	// connected, within --ready-lag of the log).
	FailoverAuto = "auto"
)

// Catch-up pacing policies of a follower (--catchup-pacing).
const (
	// CatchUpPacingAdaptive paces catch-up against the leader's published write latency (AIMD), starting at
	// --catchup-rate; without reports from the leader it paces as CatchUpPacingFixed.
	CatchUpPacingAdaptive = "adaptive"
	// CatchUpPacingFixed paces catch-up at --catchup-rate (at least twice the log's growth) while the log grows.
	CatchUpPacingFixed = "fixed"
)

// Defaults of the follower's --ready-lag and --catchup-rate, which a leader that follows another uses too.
const (
	DefaultReadyLag    = 100
	DefaultCatchUpRate = 20000
	// DefaultIdempotencyTTL is the default --idempotency-ttl.
	DefaultIdempotencyTTL = 10 * time.Minute
)

// Follower is the follower's configuration.
type Follower struct {
	Common
	// Duties are the leader's settings, used once the follower is promoted.
	Duties
	// Failover is FailoverOff, FailoverManual or FailoverAuto.
	Failover string
	// ID is the unique follower id shown by the leader; derived from the host name and data dir when empty.
	ID string
	// CatchUpRate is the most log entries per second a follower reads while catching up (raised to twice the log's
	// growth when the log grows faster); 0 means unpaced. With CatchUpPacingAdaptive it is the starting rate.
	CatchUpRate float64
	// CatchUpPacing is CatchUpPacingAdaptive or CatchUpPacingFixed.
	CatchUpPacing string
	// ReadyLag is how many log entries behind the follower may be and still report ready.
	ReadyLag uint64
}

type parser struct {
	fs *flag.FlagSet
	// checks run after parsing, in order; each names its flag.
	checks []func() error
}

func newParser(name string, stderr io.Writer) *parser {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &parser{fs: fs}
}

func (p *parser) check(fn func() error) { p.checks = append(p.checks, fn) }

// EnvName returns the environment variable that sets flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parse parses args, then fills every flag not given on the command line from the environment, then validates.
func (p *parser) parse(args []string, getenv func(string) string) error {
	p.fs.Usage = func() {
		fmt.Fprintf(p.fs.Output(), "Usage of %s:\n", p.fs.Name())
		p.fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(p.fs.Output(), "  --%s (env %s, default %q)\n    \t%s\n", f.Name, EnvName(f.Name), f.DefValue, f.Usage)
		})
	}
	if err := p.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if p.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, p.fs.Arg(0))
	}
	set := map[string]bool{}
	p.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	p.fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := p.fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%w: invalid value for --%s from %s: %w", ErrUsage, f.Name, EnvName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	for _, c := range p.checks {
		if err := c(); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	return nil
}

func (p *parser) common(c *Common, role string, defaultHTTP, defaultNATS string, getenv func(string) string) {
	fs := p.fs
	fs.StringVar(&c.DataDir, "data-dir", "./data/"+role, "local state; created if missing")
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultHTTP, "HTTP API listen address; port 0 picks a free port")
	fs.DurationVar(&c.HTTPBodyTimeout, "http-body-timeout", 30*time.Second, "longest read of a request body after its headers")
	fs.Int64Var(&c.HTTPBodyBuffer, "http-body-buffer", 128<<20, "bytes of request bodies held at once; past it writes answer 503 with Retry-After")
	natsHelp := "the NATS server(s), comma-separated"
	if role == "leader" {
		natsHelp += "; empty runs an embedded NATS server"
	}
	fs.StringVar(&c.NATSURL, "nats-url", defaultNATS, natsHelp)
	fs.StringVar(&c.NATSCreds, "nats-creds", "", "NATS user credentials file (.creds); user/password or token auth go in --nats-url, or in --nats-user and --nats-password")
	natsUserHelp := "this node's NATS user name (with --nats-password)"
	if role == "leader" {
		natsUserHelp += "; with the embedded NATS server, turns its authentication on, this user being the leader"
	}
	fs.StringVar(&c.NATSUser, "nats-user", "", natsUserHelp)
	fs.StringVar(&c.NATSPassword, "nats-password", "", "the password of --nats-user (prefer the environment variable: a command line is visible to other users)")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "PEM file of CAs trusted for tls:// NATS servers; empty = system roots")
	fs.StringVar(&c.NATSCert, "nats-cert", "", "PEM client certificate for NATS mutual TLS (with --nats-key)")
	fs.StringVar(&c.NATSKey, "nats-key", "", "PEM client key for NATS mutual TLS (with --nats-cert)")
	fs.StringVar(&c.Stream, "stream", "REPLIKV", "JetStream stream name")
	defSnap := "./data/snapshots"
	if abs, err := filepath.Abs(defSnap); err == nil {
		defSnap = abs
	}
	fs.StringVar(&c.Snapshots, "snapshots", "file://"+defSnap, "snapshot store: file:///abs/dir or s3://bucket/prefix")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", "", "host:port of an S3-compatible server; empty = AWS")
	fs.BoolVar(&c.S3Insecure, "s3-insecure", false, "plain HTTP to the S3 endpoint")
	fs.StringVar(&c.S3Region, "s3-region", "us-east-1", "S3 region")
	fs.StringVar(&c.AuthToken, "auth-token", "", "when set, every /v1/ request needs Authorization: Bearer <token> (or --read-token for reads)")
	fs.StringVar(&c.ReadToken, "read-token", "", "a bearer token that allows only GET and HEAD under /v1/ (needs --auth-token)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) of the HTTP API: set, the API speaks HTTPS only (with --tls-key); reloaded when the file changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM bundle of CAs: HTTPS clients must present a certificate one of them signed (mutual TLS; needs --tls-cert)")
	advertiseHelp := "the URL the leader lists for this follower in /v1/followers (where operators' tools reach it)"
	if role == "leader" {
		advertiseHelp = "the URL followers send writers to"
	}
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", advertiseHelp+"; default http:// (https:// with --tls-cert) + the bound HTTP address")
	p.check(func() error {
		if c.AdvertiseURL == "" {
			return nil
		}
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			len(c.AdvertiseURL) > journal.MaxURLLen {
			return fmt.Errorf("--advertise-url: %q is not an http(s) URL without credentials (at most %d bytes)",
				RedactURL(c.AdvertiseURL), journal.MaxURLLen)
		}
		c.AdvertiseURL = strings.TrimRight(c.AdvertiseURL, "/")
		return nil
	})
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")

	p.check(func() error {
		if strings.TrimSpace(c.DataDir) == "" {
			return errors.New("--data-dir must not be empty")
		}
		return nil
	})
	p.check(func() error { return checkHostPort("--http-addr", c.HTTPAddr) })
	p.check(func() error {
		if c.HTTPBodyTimeout <= 0 {
			return fmt.Errorf("--http-body-timeout must be positive, got %s", c.HTTPBodyTimeout)
		}
		return nil
	})
	p.check(func() error {
		if c.HTTPBodyBuffer < apply.MaxValueLen {
			return fmt.Errorf("--http-body-buffer must be at least %d (one maximal value), got %d", apply.MaxValueLen, c.HTTPBodyBuffer)
		}
		return nil
	})
	p.check(func() error {
		if role == "follower" && c.NATSURL == "" {
			return errors.New("--nats-url must not be empty")
		}
		return checkNATSURLs("--nats-url", c.NATSURL)
	})
	p.check(func() error { return CheckStream(c.Stream) })
	p.check(func() error { return checkNATSUser(c) })
	p.check(func() error {
		if (c.NATSCert == "") != (c.NATSKey == "") {
			return errors.New("--nats-cert and --nats-key must be given together")
		}
		for name, path := range map[string]string{"--nats-creds": c.NATSCreds, "--nats-ca": c.NATSCA,
			"--nats-cert": c.NATSCert, "--nats-key": c.NATSKey} {
			if path == "" {
				continue
			}
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	p.check(func() error {
		if c.ReadToken == "" {
			return nil
		}
		if c.AuthToken == "" {
			return errors.New("--read-token needs --auth-token (without it every request may write)")
		}
		if c.ReadToken == c.AuthToken {
			return errors.New("--read-token must differ from --auth-token")
		}
		return nil
	})
	p.check(func() error { return checkTLS(c) })
	p.check(func() error { return checkSnapshotsURL(c.Snapshots) })
	p.check(func() error {
		if c.S3Endpoint == "" {
			return nil
		}
		return checkHostPort("--s3-endpoint", c.S3Endpoint)
	})
	p.check(func() error {
		if c.S3Region == "" {
			return errors.New("--s3-region must not be empty")
		}
		return nil
	})
	p.check(func() error {
		switch c.LogLevel {
		case "debug", "info", "warn", "error":
			return nil
		}
		return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.LogLevel)
	})
	p.check(func() error {
		c.AWSAccessKeyID = getenv("AWS_ACCESS_KEY_ID")
		c.AWSSecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
		c.AWSSessionToken = getenv("AWS_SESSION_TOKEN")
		return nil
	})
}

// checkNATSUser checks --nats-user and --nats-password: both or neither, and the node's only NATS credentials. Its
// errors never contain the password.
func checkNATSUser(c *Common) error {
	if c.NATSUser == "" && c.NATSPassword == "" {
		return nil
	}
	if c.NATSUser == "" {
		return errors.New("--nats-password needs --nats-user")
	}
	if err := journal.ValidateUserName(c.NATSUser); err != nil {
		return fmt.Errorf("--nats-user: %w", err)
	}
	if c.NATSPassword == "" {
		return errors.New("--nats-user needs --nats-password")
	}
	if c.NATSCreds != "" {
		return errors.New("--nats-user and --nats-creds are two kinds of NATS credentials: give one")
	}
	for _, part := range strings.Split(c.NATSURL, ",") {
		if u, err := url.Parse(strings.TrimSpace(part)); err == nil && u.User != nil {
			return fmt.Errorf("--nats-user: --nats-url %q has credentials of its own: give them once",
				RedactURL(strings.TrimSpace(part)))
		}
	}
	return nil
}

// checkNATSFollowerUser checks the leader's --nats-follower-user and --nats-follower-password. Its errors never
// contain a password.
func checkNATSFollowerUser(c *Leader) error {
	if c.NATSFollowerUser == "" && c.NATSFollowerPassword == "" {
		return nil
	}
	if c.NATSFollowerUser == "" {
		return errors.New("--nats-follower-password needs --nats-follower-user")
	}
	if err := journal.ValidateUserName(c.NATSFollowerUser); err != nil {
		return fmt.Errorf("--nats-follower-user: %w", err)
	}
	if c.NATSFollowerPassword == "" {
		return errors.New("--nats-follower-user needs --nats-follower-password")
	}
	if c.NATSURL != "" {
		return errors.New("--nats-follower-user: only with the embedded NATS server (without --nats-url); an external " +
			"NATS server's users are its own configuration (docs/deployment.md)")
	}
	if c.NATSUser == "" {
		return errors.New("--nats-follower-user needs --nats-user and --nats-password (the leader's own user, which " +
			"turns the embedded server's authentication on)")
	}
	if c.NATSFollowerUser == c.NATSUser {
		return errors.New("--nats-follower-user must differ from --nats-user (the two users have different permissions)")
	}
	return nil
}

// EmbeddedNATSUsers returns the users of the leader's embedded NATS server: none (no authentication) without
// --nats-user; else the leader's user with the leader's permissions and, with --nats-follower-user, the followers'
// user with the followers' permissions.
func (c Leader) EmbeddedNATSUsers() []journal.User {
	if c.NATSUser == "" {
		return nil
	}
	users := []journal.User{{Name: c.NATSUser, Password: c.NATSPassword, Permissions: journal.LeaderPermissions(c.Stream)}}
	if c.NATSFollowerUser != "" {
		users = append(users, journal.User{Name: c.NATSFollowerUser, Password: c.NATSFollowerPassword,
			Permissions: journal.FollowerPermissions(c.Stream)})
	}
	return users
}

// checkTLS checks the HTTP API's TLS flags and loads their files once, so that a missing or unusable file stops the
// binary at start with a message naming the flag.
func checkTLS(c *Common) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
	}
	if c.TLSCert == "" {
		return nil
	}
	if _, err := tlsconf.LoadKeyPair(c.TLSCert, c.TLSKey); err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	if c.TLSClientCA != "" {
		if _, err := tlsconf.LoadCAs(c.TLSClientCA); err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
	}
	return nil
}

// TLSFiles returns the HTTP API's TLS files; CertFile is empty when the API speaks plain HTTP.
func (c Common) TLSFiles() tlsconf.Files {
	return tlsconf.Files{CertFile: c.TLSCert, KeyFile: c.TLSKey, ClientCAFile: c.TLSClientCA}
}

// Bounds of --lease-ttl. JetStream removes expired lease keys on a timer of its own, and the leader renews every
// third of the TTL with a request that must be answered within that third: below a second, a busy server or a slow
// link lets the lease lapse while its holder is healthy.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = 10 * time.Minute
)

// Bounds of --idempotency-ttl.
const (
	MinIdempotencyTTL = time.Second
	MaxIdempotencyTTL = 7 * 24 * time.Hour
)

// ParseLeader parses the leader's flags and environment. Errors wrap ErrUsage (exit 2) or are ErrHelp (exit 0).
func ParseLeader(args []string, getenv func(string) string, stderr io.Writer) (Leader, error) {
	var c Leader
	p := newParser("leader", stderr)
	p.common(&c.Common, "leader", "127.0.0.1:8080", "", getenv)
	p.duties(&c.Duties, "leader")
	fs := p.fs
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server (only without --nats-url); port 0 picks a free port")
	syncFlag := &natsSync{}
	fs.Var(syncFlag, "nats-sync-interval", "embedded JetStream fsync: 'default' (server default, 2m: acknowledged writes may not be on disk yet), 'always' (fsync every write), or a duration")
	fs.StringVar(&c.NATSFollowerUser, "nats-follower-user", "", "the user the embedded NATS server admits followers as, with read-only access to the log (with --nats-follower-password; needs --nats-user, only without --nats-url)")
	fs.StringVar(&c.NATSFollowerPassword, "nats-follower-password", "", "the password of --nats-follower-user (prefer the environment variable)")
	p.check(func() error { return checkNATSFollowerUser(&c) })
	p.check(func() error { return checkHostPort("--nats-listen", c.NATSListen) })
	p.check(func() error {
		c.NATSSyncInterval, c.NATSSyncAlways = syncFlag.interval, syncFlag.always
		return nil
	})
	err := p.parse(args, getenv)
	return c, err
}

// duties registers the flags of the leader's work (Duties) and their checks; a follower takes them for when it is
// promoted.
func (p *parser) duties(c *Duties, role string) {
	fs := p.fs
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", 5*time.Minute, "take a snapshot this often if the log moved; 0 = only on demand")
	fs.IntVar(&c.SnapshotKeep, "snapshot-keep", 3, "snapshots kept in the store; never fewer than 2")
	fs.Float64Var(&c.SnapshotCPU, "snapshot-cpu", 0.1, "share of one CPU core a snapshot may use, in (0, 1]; 1 = unpaced (fastest)")
	fs.BoolVar(&c.CatchUpMirror, "catchup-mirror", false, "keep a mirror of the log (<stream>_catchup) for followers to catch up from, so their reads do not slow the leader's writes")
	fs.IntVar(&c.SyncFollowers, "sync-followers", 0, "a write is confirmed only after this many ready followers applied it (0 = asynchronous)")
	fs.DurationVar(&c.SyncTimeout, "sync-timeout", 5*time.Second, "how long a write waits for --sync-followers")
	fs.Func("catchup-mirror-tags", "comma-separated JetStream placement tags for the catch-up mirror when it is created (a cluster puts it on servers that have every tag); needs --catchup-mirror", tagsFlag(&c.CatchUpMirrorTags))
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 10*time.Second, "how long the leader lease lives without renewal: another leader can take over this long after the leader last renewed it, and the leader stops answering reads a little before that")
	fs.DurationVar(&c.IdempotencyTTL, "idempotency-ttl", DefaultIdempotencyTTL, "how long the result of a write sent with an Idempotency-Key is kept, so that a retry with the same key returns it instead of writing again; set it alike on every node")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", 1, "replicas of the stream when it is created (3 on a clustered JetStream)")
	fs.Func("stream-tags", "comma-separated JetStream placement tags for the stream and the lease bucket when they are created (a cluster puts them on servers that have every tag)", tagsFlag(&c.StreamTags))
	p.check(func() error {
		if c.SnapshotInterval < 0 {
			return errors.New("--snapshot-interval must not be negative")
		}
		return nil
	})
	p.check(func() error {
		if c.SnapshotKeep < 2 {
			return fmt.Errorf("--snapshot-keep: %d is fewer than 2 (the newest two snapshots are always kept)", c.SnapshotKeep)
		}
		return nil
	})
	p.check(func() error {
		if !(c.SnapshotCPU > 0 && c.SnapshotCPU <= 1) { // also refuses NaN
			return fmt.Errorf("--snapshot-cpu: %v is not in (0, 1]", c.SnapshotCPU)
		}
		return nil
	})
	p.check(func() error {
		if c.SyncFollowers < 0 {
			return errors.New("--sync-followers must not be negative")
		}
		return nil
	})
	p.check(func() error {
		if c.SyncTimeout <= 0 {
			return errors.New("--sync-timeout must be positive")
		}
		return nil
	})
	p.check(func() error {
		if len(c.CatchUpMirrorTags) > 0 && !c.CatchUpMirror {
			return errors.New("--catchup-mirror-tags: only with --catchup-mirror")
		}
		return nil
	})
	p.check(func() error {
		if c.LeaseTTL < MinLeaseTTL || c.LeaseTTL > MaxLeaseTTL {
			return fmt.Errorf("--lease-ttl: %v is not between %v and %v", c.LeaseTTL, MinLeaseTTL, MaxLeaseTTL)
		}
		return nil
	})
	p.check(func() error {
		if c.IdempotencyTTL < MinIdempotencyTTL || c.IdempotencyTTL > MaxIdempotencyTTL {
			return fmt.Errorf("--idempotency-ttl: %v is not between %v and %v", c.IdempotencyTTL, MinIdempotencyTTL,
				MaxIdempotencyTTL)
		}
		return nil
	})
	p.check(func() error {
		if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
			return fmt.Errorf("--stream-replicas: %d is not between 1 and 5", c.StreamReplicas)
		}
		return nil
	})
	if role == "follower" {
		// The help says when they apply.
		for _, name := range []string{"snapshot-interval", "snapshot-keep", "snapshot-cpu", "catchup-mirror",
			"sync-followers", "sync-timeout", "catchup-mirror-tags", "lease-ttl", "stream-replicas", "stream-tags"} {
			f := fs.Lookup(name)
			f.Usage = "once promoted to leader: " + f.Usage
		}
	}
}

// ParseFollower parses the follower's flags and environment. Errors wrap ErrUsage (exit 2) or are ErrHelp (exit 0).
func ParseFollower(args []string, getenv func(string) string, stderr io.Writer) (Follower, error) {
	var c Follower
	p := newParser("follower", stderr)
	p.common(&c.Common, "follower", "127.0.0.1:8081", "nats://127.0.0.1:4222", getenv)
	p.duties(&c.Duties, "follower")
	p.fs.StringVar(&c.Failover, "failover", FailoverManual, "when this follower takes over as leader: off (never), manual (on POST /v1/promote), auto (also by itself when the lease is free and it is ready)")
	p.check(func() error {
		switch c.Failover {
		case FailoverOff, FailoverManual, FailoverAuto:
			return nil
		}
		return fmt.Errorf("--failover: %q is not one of off, manual, auto", c.Failover)
	})
	fs := p.fs
	fs.StringVar(&c.ID, "id", "", "unique follower id shown by the leader; default derived from host name and data dir")
	readyLag := fs.Int64("ready-lag", DefaultReadyLag, "the follower is ready when it is at most this many log entries behind")
	fs.Float64Var(&c.CatchUpRate, "catchup-rate", DefaultCatchUpRate, "log entries per second (at least 100) a follower reads while catching up, at least twice the log's growth; 0 = unpaced")
	fs.StringVar(&c.CatchUpPacing, "catchup-pacing", CatchUpPacingFixed, "how catch-up is paced while the leader takes writes: fixed (--catchup-rate) or adaptive (faster while the leader's write latency stays low, slower when it rises; --catchup-rate is the starting rate)")
	p.check(func() error {
		switch c.CatchUpPacing {
		case CatchUpPacingAdaptive, CatchUpPacingFixed:
			return nil
		}
		return fmt.Errorf("--catchup-pacing: %q is not one of adaptive, fixed", c.CatchUpPacing)
	})
	p.check(func() error {
		if *readyLag < 0 {
			return fmt.Errorf("--ready-lag: %d is negative", *readyLag)
		}
		c.ReadyLag = uint64(*readyLag)
		return nil
	})
	p.check(func() error {
		// Below 100/s the log consumer would pull so rarely that the server could drop it as inactive (1 minute).
		if c.CatchUpRate != 0 && !(c.CatchUpRate >= 100 && c.CatchUpRate <= 1e9) { // also refuses NaN and infinity
			return fmt.Errorf("--catchup-rate: %v is neither 0 (unpaced) nor between 100 and 1e9 entries per second", c.CatchUpRate)
		}
		return nil
	})
	p.check(func() error {
		if c.ID == "" {
			c.ID = DefaultFollowerID(c.DataDir)
		}
		if err := journal.ValidateNodeID(c.ID); err != nil {
			return fmt.Errorf("--id: must be 1 to 256 bytes of printable characters without spaces: %w", err)
		}
		return nil
	})
	err := p.parse(args, getenv)
	return c, err
}

// DefaultFollowerID derives a stable id from the host name and the absolute data dir.
func DefaultFollowerID(dataDir string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "follower"
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	var h uint32 = 2166136261 // FNV-1a, enough to tell data dirs on one host apart
	for i := 0; i < len(abs); i++ {
		h ^= uint32(abs[i])
		h *= 16777619
	}
	return fmt.Sprintf("%s-%08x", host, h)
}

var streamRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckStream validates a stream name: 1 to 64 of [A-Za-z0-9_-].
func CheckStream(name string) error {
	if !streamRE.MatchString(name) {
		return fmt.Errorf("--stream: %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", name)
	}
	return nil
}

// tagsFlag parses a comma-separated list of JetStream placement tags into *dst (spaces around a tag are dropped; an
// empty value means none).
func tagsFlag(dst *[]string) func(string) error {
	return func(v string) error {
		*dst = nil
		if strings.TrimSpace(v) == "" {
			return nil
		}
		tags := strings.Split(v, ",")
		for i := range tags {
			tags[i] = strings.TrimSpace(tags[i])
		}
		if err := journal.ValidateTags(tags); err != nil {
			return err
		}
		*dst = tags
		return nil
	}
}

func checkHostPort(flagName, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port: %w", flagName, v, err)
	}
	_ = host
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: %q has an invalid port", flagName, v)
	}
	return nil
}

func checkNATSURLs(flagName, v string) error {
	if v == "" {
		return nil
	}
	for _, part := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.Host == "" {
			return fmt.Errorf("%s: %q is not a NATS URL (nats://host:port)", flagName, RedactURL(part))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s: %q has scheme %q, want nats, tls, ws or wss", flagName, RedactURL(part), u.Scheme)
		}
	}
	return nil
}

// RedactURL returns raw with any user information (a user and password, or a token) replaced by "REDACTED", for
// errors and logs; a URL that does not parse loses everything between its scheme and the last '@' of its
// authority.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			u.User = url.User("REDACTED")
		}
		return u.String()
	}
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		rest = "REDACTED" + rest[i:]
	}
	return scheme + rest
}

func checkSnapshotsURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("--snapshots: %q is not a URL", RedactURL(v))
	}
	v = RedactURL(v)
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return fmt.Errorf("--snapshots: %q must be file:///absolute/dir", v)
		}
	case "s3":
		if u.Host == "" {
			return fmt.Errorf("--snapshots: %q must be s3://bucket/prefix", v)
		}
	default:
		return fmt.Errorf("--snapshots: %q must be file:///abs/dir or s3://bucket/prefix", v)
	}
	return nil
}

// natsSync is the --nats-sync-interval flag: "default", "always" or a positive duration.
type natsSync struct {
	interval time.Duration
	always   bool
	raw      string
}

func (n *natsSync) String() string {
	if n.raw == "" {
		return "default"
	}
	return n.raw
}

func (n *natsSync) Set(v string) error {
	switch v {
	case "default", "":
		n.interval, n.always = 0, false
	case "always":
		n.interval, n.always = 0, true
	default:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not 'default', 'always' or a positive duration", v)
		}
		n.interval, n.always = d, false
	}
	n.raw = v
	return nil
}
