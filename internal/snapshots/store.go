package snapshots

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Store is a flat object store rooted at a directory or at bucket/prefix. Keys use '/' separators and follow
// ValidKey; a key that does not returns ErrInvalidKey from every method.
//
// All methods are safe for concurrent use. Writers of one key are not coordinated: the last Put to finish wins.
type Store interface {
	// Init checks the root is usable. create=true (the leader) creates the directory/bucket if missing;
	// create=false (followers, read-only) only checks it exists (ErrNotFound if not).
	Init(ctx context.Context, create bool) error
	// Put writes the object atomically: readers see either nothing or the whole object (file: temp file + fsync +
	// rename + dir fsync; S3: single PUT or multipart, size unknown). It streams r with bounded memory and returns
	// the number of bytes stored. If reading r fails or ctx ends, nothing becomes visible.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get streams the object; ErrNotFound if absent. A read that reaches the end of an object that was deleted or
	// replaced meanwhile returns an error wrapping ErrNotFound instead of io.EOF. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns every key that starts with prefix (a plain string prefix, "" for all), in ascending byte order.
	// A missing root is ErrNotFound; no matching key is an empty slice.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object; absent is not an error.
	Delete(ctx context.Context, key string) error
	// String describes the store for logs (never credentials).
	String() string
}

// S3Config configures the S3 backend. Credentials come from the caller (the binaries read AWS_* env only); they are
// never logged nor put in errors.
type S3Config struct {
	// Endpoint is host:port of an S3-compatible server, without a scheme. Empty means AWS (always HTTPS). When set,
	// buckets are addressed path-style.
	Endpoint string
	// Insecure selects plain HTTP to Endpoint.
	Insecure bool
	// Region is the bucket's region; empty means us-east-1.
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials; all empty means anonymous requests.
	AccessKeyID, SecretAccessKey, SessionToken string
	// PartSize is the multipart part size in bytes (memory used per upload); 0 means 16 MiB. S3 needs at least
	// 5 MiB.
	PartSize uint64
}

const (
	defaultRegion   = "us-east-1"
	defaultPartSize = 16 << 20
	minPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	maxKeyLen       = 1024
)

// Open parses file:///abs/dir or s3://bucket/prefix (prefix optional) without touching the network or disk. Anything
// else, or unusable S3 settings, returns an error wrapping ErrInvalidURL. log may be nil.
func Open(rawURL string, s3 S3Config, log *zap.Logger) (Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's error repeats the input, which could hold credentials: do not wrap it.
		return nil, fmt.Errorf("snapshots: %w: cannot parse; want file:///abs/dir or s3://bucket/prefix", ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("snapshots: %w: credentials in the URL are not supported; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrInvalidURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("snapshots: %w: %s: query, fragment or opaque part not allowed", ErrInvalidURL, u.Redacted())
	}
	switch u.Scheme {
	case "file":
		return openFile(u, log)
	case "s3":
		return openS3(u, s3, log)
	default:
		return nil, fmt.Errorf("snapshots: %w: scheme %q not supported; want file:///abs/dir or s3://bucket/prefix", ErrInvalidURL, u.Scheme)
	}
}

// openFile validates a file:// URL.
func openFile(u *url.URL, log *zap.Logger) (Store, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("snapshots: %w: file URL has host %q; want an absolute path: file:///abs/dir", ErrInvalidURL, u.Host)
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("snapshots: %w: file URL needs an absolute path: file:///abs/dir", ErrInvalidURL)
	}
	return newFileStore(filepath.Clean(u.Path), log), nil
}

// openS3 validates an s3:// URL and the S3 settings.
func openS3(u *url.URL, cfg S3Config, log *zap.Logger) (Store, error) {
	bucket := u.Host
	if err := validBucket(bucket); err != nil {
		return nil, fmt.Errorf("snapshots: %w: %s: bucket %q: %s", ErrInvalidURL, u.Redacted(), bucket, err)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := ValidKey(prefix); err != nil {
			return nil, fmt.Errorf("snapshots: %w: %s: prefix: %w", ErrInvalidURL, u.Redacted(), err)
		}
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.ContainsAny(cfg.Endpoint, "/?#@") {
		return nil, fmt.Errorf("snapshots: %w: S3 endpoint %q must be host:port (no scheme or path; use insecure for plain HTTP)",
			ErrInvalidURL, cfg.Endpoint)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.PartSize < minPartSize || cfg.PartSize > maxPartSize {
		return nil, fmt.Errorf("snapshots: %w: S3 part size %d out of range [%d, %d]", ErrInvalidURL, cfg.PartSize, minPartSize, maxPartSize)
	}
	return newS3Store(bucket, prefix, cfg, log)
}

// validBucket applies S3's bucket naming rules (3-63 characters of a-z, 0-9, '.', '-', starting and ending with a
// letter or digit).
func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("must be 3 to 63 characters")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' {
			return fmt.Errorf("only lowercase letters, digits, '.' and '-' allowed")
		}
		if (i == 0 || i == len(b)-1) && !alnum {
			return fmt.Errorf("must start and end with a letter or digit")
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("must not contain \"..\"")
	}
	return nil
}

// ValidKey reports whether key can name an object in every backend: 1 to 1024 bytes of valid UTF-8 without control
// characters or backslashes, '/'-separated segments that are non-empty and do not start with '.' (that also rules
// out "." and "..", and keeps the file backend's temporary files out of the key space). The error wraps
// ErrInvalidKey.
func ValidKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
	}
	return nil
}

// keyProblem returns why key is not valid, or "".
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > maxKeyLen:
		return "too long"
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "control character or backslash"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return "empty path segment"
		}
		if seg[0] == '.' {
			return "path segment starts with '.'"
		}
	}
	return ""
}

// validPrefix checks a List prefix: "" or a key, optionally ending with '/', whose last segment may be partial.
func validPrefix(prefix string) error {
	if p := strings.TrimSuffix(prefix, "/"); p != "" {
		return ValidKey(p)
	}
	if prefix == "/" {
		return fmt.Errorf("%w: prefix \"/\"", ErrInvalidKey)
	}
	return nil
}
