package snapshots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/zap"
)

const (
	awsEndpoint = "s3.amazonaws.com"
	// singlePutMax is how much Put reads ahead: an object that ends within it goes up in one PUT request instead
	// of a three-request multipart upload (manifests are always this small).
	singlePutMax = 1 << 20
	// staleUploadAge is how long ago an unfinished multipart upload must have started before Init(create=true)
	// aborts it as a crash leftover. S3 dates an upload by its start, not its last part, and a paced snapshot of a
	// large store can take hours, so this is much longer than the file backend's staleTempAge.
	staleUploadAge = 24 * time.Hour
	// s3Attempts bounds how often one call is tried (minio's default of 10, with its backoff, made a call take about
	// 4 s to fail during an outage; the callers retry on their own schedule).
	s3Attempts = 2
	// s3DialTimeout bounds each connection attempt to the S3 endpoint.
	s3DialTimeout = 3 * time.Second
	// s3ResponseTimeout bounds each attempt's wait for the response headers once its request is sent: a large part
	// upload is answered only after the server stored it, which takes well under this.
	s3ResponseTimeout = 30 * time.Second
)

// s3Store is the s3:// backend: objects under bucket/prefix.
type s3Store struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or "p/" with a trailing slash
	partSize uint64
	desc     string
	log      *zap.Logger
	// staleAge is how long ago an unfinished multipart upload must have started before Init(create=true) aborts it.
	staleAge time.Duration
}

// newS3Store builds the client; minio.New does not touch the network.
func newS3Store(bucket, prefix string, cfg S3Config, log *zap.Logger) (*s3Store, error) {
	endpoint, secure := cfg.Endpoint, !cfg.Insecure
	lookup := minio.BucketLookupPath
	if endpoint == "" {
		endpoint, secure, lookup = awsEndpoint, true, minio.BucketLookupAuto
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("snapshots: s3 transport: %w", err)
	}
	transport.DialContext = (&net.Dialer{Timeout: s3DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = s3ResponseTimeout
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    transport,
		MaxRetries:   s3Attempts,
	})
	if err != nil {
		// minio's message names the endpoint only, never credentials.
		return nil, fmt.Errorf("snapshots: %w: S3 endpoint %q: %v", ErrInvalidURL, cfg.Endpoint, err)
	}
	desc := "s3://" + bucket + "/" + prefix
	if cfg.Endpoint != "" {
		desc += " (endpoint " + cfg.Endpoint + ")"
	}
	if prefix != "" {
		prefix += "/"
	}
	return &s3Store{
		client:   client,
		bucket:   bucket,
		prefix:   prefix,
		partSize: cfg.PartSize,
		desc:     desc,
		log:      log.With(zap.String(logStore, desc)),
		staleAge: staleUploadAge,
	}, nil
}

func (s *s3Store) String() string { return s.desc }

// s3Err maps an S3 error onto this package's sentinels, once, here. Every error of the backend goes through it.
func s3Err(op string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return fmt.Errorf("snapshots: %s: %w (%s)", op, ErrNotFound, resp.Code)
		}
	}
	return fmt.Errorf("snapshots: %s: %w", op, err)
}

func (s *s3Store) Init(ctx context.Context, create bool) error {
	op := "init " + s.desc
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Err(op, err)
	}
	if ok {
		if create {
			s.abortStaleUploads(ctx)
		}
		return nil
	}
	if !create {
		return fmt.Errorf("snapshots: %s: bucket %s: %w", op, s.bucket, ErrNotFound)
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{})
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
		// Created concurrently; BucketAlreadyExists may also mean someone else owns it, which the next request shows.
		err = nil
	}
	if err != nil {
		return s3Err(op, err)
	}
	s.log.Info("created bucket", zap.String("bucket", s.bucket))
	return nil
}

// abortStaleUploads aborts the multipart uploads under the prefix that were started more than staleAge ago: the
// parts of a leader killed mid-upload, which S3 keeps (and bills) until they are aborted. Like the file backend's
// temporary files, they cost only space, so errors are logged (a gateway may not list uploads at all).
func (s *s3Store) abortStaleUploads(ctx context.Context) {
	cutoff := time.Now().Add(-s.staleAge)
	var stale []minio.ObjectMultipartInfo
	var listErr error
	// ListIncompleteUploads runs a goroutine until its channel is drained or ctx ends: drain on every path.
	lctx, cancel := context.WithCancel(ctx)
	for up := range s.client.ListIncompleteUploads(lctx, s.bucket, s.prefix, true) {
		switch {
		case up.Err != nil:
			if listErr == nil {
				listErr = up.Err
				cancel()
			}
		case strings.HasPrefix(up.Key, s.prefix) && !up.Initiated.IsZero() && up.Initiated.Before(cutoff):
			stale = append(stale, up)
		}
	}
	cancel()
	if listErr != nil {
		s.log.Warn("list unfinished multipart uploads", zap.Error(s3Err("list uploads", listErr)))
	}
	core := minio.Core{Client: s.client}
	for _, up := range stale {
		if err := core.AbortMultipartUpload(ctx, s.bucket, up.Key, up.UploadID); err != nil {
			s.log.Warn("abort stale multipart upload", zap.String(logKey, up.Key), zap.Error(s3Err("abort upload", err)))
			continue
		}
		s.log.Info("aborted stale multipart upload", zap.String(logKey, up.Key), zap.Time("initiated", up.Initiated))
	}
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := ValidKey(key); err != nil {
		return 0, fmt.Errorf("snapshots: put: %w", err)
	}
	op := "put " + key
	// Read ahead: a small object is one PUT with a known size (atomic); a larger one streams as multipart with
	// unknown size, which S3 only makes visible on CompleteMultipartUpload (minio aborts the upload on error).
	head := make([]byte, singlePutMax)
	n, err := io.ReadFull(ctxReader{ctx: ctx, r: r}, head)
	var info minio.UploadInfo
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		info, err = s.client.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(head[:n]), int64(n),
			minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	case err == nil:
		body := io.MultiReader(bytes.NewReader(head), ctxReader{ctx: ctx, r: r})
		info, err = s.client.PutObject(ctx, s.bucket, s.prefix+key, body, -1,
			minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.partSize})
	default:
		return 0, fmt.Errorf("snapshots: %s: %w", op, err)
	}
	if err != nil {
		return 0, s3Err(op, err)
	}
	return info.Size, nil
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, fmt.Errorf("snapshots: get: %w", err)
	}
	op := "get " + key
	body, info, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Err(op, err)
	}
	return &s3Object{ctx: ctx, s: s, key: key, etag: info.ETag, body: body}, nil
}

// s3Object streams one GET response and, at its end, checks the object still exists with the same ETag: a gateway
// may keep serving a deleted object from an open file, so this is where a deletion during the read becomes visible.
type s3Object struct {
	ctx  context.Context
	s    *s3Store
	key  string
	etag string
	body io.ReadCloser
	err  error // sticky
}

func (o *s3Object) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.body.Read(p)
	if errors.Is(err, io.EOF) {
		info, serr := o.s.client.StatObject(o.ctx, o.s.bucket, o.s.prefix+o.key, minio.StatObjectOptions{})
		switch {
		case serr != nil:
			err = s3Err("get "+o.key+": check after read", serr)
		case info.ETag != o.etag:
			err = fmt.Errorf("snapshots: get %s: replaced during read: %w", o.key, ErrNotFound)
		}
	} else if err != nil {
		err = fmt.Errorf("snapshots: get %s: %w", o.key, err)
	}
	o.err = err
	return n, err
}

func (o *s3Object) Close() error { return o.body.Close() }

func (s *s3Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, fmt.Errorf("snapshots: list: %w", err)
	}
	op := "list " + s.desc
	// ListObjects runs a goroutine until its channel is drained or ctx ends: drain on every path.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := []string{}
	var firstErr error
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			if firstErr == nil {
				firstErr = obj.Err
				cancel()
			}
			continue
		}
		key, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || strings.HasSuffix(key, "/") {
			continue // directory markers some gateways report
		}
		keys = append(keys, key)
	}
	if firstErr != nil {
		return nil, s3Err(op, firstErr)
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("snapshots: delete: %w", err)
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	if err != nil {
		if err = s3Err("delete "+key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}
