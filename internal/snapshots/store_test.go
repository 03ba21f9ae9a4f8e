package snapshots

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/replikv/replikv/internal/testutil/versitygw"
	"go.uber.org/zap/zaptest"
)

// newFileTestStore returns a file store rooted at a directory that does not exist yet.
func newFileTestStore(t *testing.T) Store {
	t.Helper()
	s, err := Open("file://"+filepath.Join(t.TempDir(), "root"), S3Config{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// s3Factory returns a constructor of S3 stores on srv, each in a new bucket (so its root does not exist yet),
// alternating between a prefix and the bucket root.
func s3Factory(srv *versitygw.Server) func(t *testing.T) Store {
	var n atomic.Int64
	return func(t *testing.T) Store {
		t.Helper()
		i := n.Add(1)
		url := fmt.Sprintf("s3://bucket-%d/some/prefix", i)
		if i%2 == 0 {
			url = fmt.Sprintf("s3://bucket-%d", i)
		}
		s, err := Open(url, S3Config{
			Endpoint:        srv.Endpoint,
			Insecure:        true,
			AccessKeyID:     srv.AccessKey,
			SecretAccessKey: srv.SecretKey,
			PartSize:        contractPartSize,
		}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestFileStore_Contract(t *testing.T) {
	t.Parallel()
	RunStoreContract(t, newFileTestStore)
}

func TestS3Store_Contract(t *testing.T) {
	t.Parallel()
	RunStoreContract(t, s3Factory(versitygw.Start(t)))
}

func TestS3Store_String(t *testing.T) {
	t.Parallel()
	s, err := Open("s3://bkt/p", S3Config{Endpoint: "127.0.0.1:9", AccessKeyID: "AKIDSECRETID", SecretAccessKey: "very-secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.String()
	if got != "s3://bkt/p (endpoint 127.0.0.1:9)" {
		t.Fatalf("String() = %q", got)
	}
	if strings.Contains(got, "AKIDSECRETID") || strings.Contains(got, "very-secret") {
		t.Fatalf("String() leaks credentials: %q", got)
	}
}

func TestS3Store_Outage(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	s := s3Factory(srv)(t)
	ctx := t.Context()
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", "v")
	srv.Stop()
	// Without a deadline of the caller's, each call still fails fast (a bounded number of attempts), and the error
	// must not look like "absent".
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"List", func() error { _, err := s.List(ctx, ""); return err }},
		{"Get", func() error {
			rc, err := s.Get(ctx, "k")
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			return err
		}},
		{"Put", func() error { _, err := s.Put(ctx, "k2", strings.NewReader("v")); return err }},
	} {
		start := time.Now()
		err := call.fn()
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("%s during an outage = %v, want a transport error (not ErrNotFound)", call.name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s during an outage took %s to fail, want under 2 s", call.name, d)
		}
	}
	srv.Restart(t)
	if got := mustGet(t, s, "k"); string(got) != "v" {
		t.Fatalf("Get after restart = %q", got)
	}
}

// A leader killed mid-upload leaves an unfinished multipart upload behind. The leader's next Init aborts those under
// its prefix that started more than staleAge ago, and leaves younger ones (a running Put may own them), those outside
// its prefix, and everything on a follower's Init alone.
func TestS3Store_AbortsStaleUploads(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	ctx := t.Context()
	const bucket = "stale-uploads"
	st, err := Open("s3://"+bucket+"/mine", S3Config{
		Endpoint: srv.Endpoint, Insecure: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*s3Store)
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: s.client}
	for _, key := range []string{"mine/REPLIKV/7/data", "other/REPLIKV/7/data"} {
		if _, err := core.NewMultipartUpload(ctx, bucket, key, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("start upload %s: %v", key, err)
		}
	}
	uploads := func() []string {
		t.Helper()
		var keys []string
		for up := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
			if up.Err != nil {
				t.Fatalf("list uploads: %v", up.Err)
			}
			keys = append(keys, up.Key)
		}
		slices.Sort(keys)
		return keys
	}
	both := []string{"mine/REPLIKV/7/data", "other/REPLIKV/7/data"}
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := uploads(); !slices.Equal(got, both) {
		t.Fatalf("after Init with young uploads: %v, want %v", got, both)
	}
	s.staleAge = -time.Minute // every upload is stale now
	if err := s.Init(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := uploads(); !slices.Equal(got, both) {
		t.Fatalf("after a follower's Init: %v, want %v", got, both)
	}
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := uploads(); !slices.Equal(got, both[1:]) {
		t.Fatalf("after the leader's Init with stale uploads: %v, want %v", got, both[1:])
	}
	mustPut(t, s, "REPLIKV/7/data", "v")
	if got := mustGet(t, s, "REPLIKV/7/data"); string(got) != "v" {
		t.Fatalf("Get after the abort = %q", got)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		cfg     S3Config
		want    string // String() of the store, "" when an error is expected
		wantErr error
	}{
		{"File", "file:///var/snap", S3Config{}, "file:///var/snap", nil},
		{"FileClean", "file:///var//snap/../snap/", S3Config{}, "file:///var/snap", nil},
		{"FileLocalhost", "file://localhost/var/snap", S3Config{}, "file:///var/snap", nil},
		{"FileRelative", "file://var/snap", S3Config{}, "", ErrInvalidURL},
		{"FileNoPath", "file://", S3Config{}, "", ErrInvalidURL},
		{"S3Bucket", "s3://my-bucket", S3Config{}, "s3://my-bucket/", nil},
		{"S3Prefix", "s3://my-bucket/a/b/", S3Config{Endpoint: "h:1"}, "s3://my-bucket/a/b (endpoint h:1)", nil},
		{"S3BadBucket", "s3://My_Bucket/x", S3Config{}, "", ErrInvalidURL},
		{"S3ShortBucket", "s3://ab", S3Config{}, "", ErrInvalidURL},
		{"S3BadPrefix", "s3://bucket/a/../b", S3Config{}, "", ErrInvalidURL},
		{"S3Credentials", "s3://key:secret@bucket/x", S3Config{}, "", ErrInvalidURL},
		{"S3EndpointScheme", "s3://bucket", S3Config{Endpoint: "http://h:1"}, "", ErrInvalidURL},
		{"S3PartSizeSmall", "s3://bucket", S3Config{PartSize: 1 << 20}, "", ErrInvalidURL},
		{"Query", "file:///a?x=1", S3Config{}, "", ErrInvalidURL},
		{"Scheme", "gs://bucket", S3Config{}, "", ErrInvalidURL},
		{"NoScheme", "/var/snap", S3Config{}, "", ErrInvalidURL},
		{"Unparsable", "s3://bu cket\x7f", S3Config{}, "", ErrInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.url, tt.cfg, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open(%q) = %v, want %v", tt.url, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.url, err)
			}
			if got := s.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"REPLIKV/00000000000000000001/data", true},
		{"a/b-c_d.e/f", true},
		{"ünïcode/ключ", true},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"a/.tmp-x", false},
		{"a\\b", false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"\xff", false},
		{strings.Repeat("k", 1024), true},
		{strings.Repeat("k", 1025), false},
	}
	for _, tt := range tests {
		err := ValidKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidKey(%q) = %v, want ErrInvalidKey", tt.key, err)
		}
	}
}

// fileRoot returns the root directory of a file store.
func fileRoot(t *testing.T, s Store) string {
	t.Helper()
	fs, ok := s.(*fileStore)
	if !ok {
		t.Fatalf("store %T is not a file store", s)
	}
	return fs.root
}

// dirEntries lists every file and directory under root, relative.
func dirEntries(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileStore_Put(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("NoPartialFile", func(t *testing.T) {
		s := newFileTestStore(t)
		if err := s.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		gate := newGateReader(randomBytes(2<<20, 1), 1<<20)
		t.Cleanup(gate.release)
		done := make(chan error, 1)
		go func() { _, err := s.Put(ctx, "x/obj", gate); done <- err }()
		waitClosed(t, gate.reached, "Put to read 1 MiB")
		if _, err := os.Stat(filepath.Join(fileRoot(t, s), "x", "obj")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("final path exists during Put: %v", err)
		}
		gate.release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := dirEntries(t, fileRoot(t, s)); strings.Join(got, ",") != "x,x/obj" {
			t.Fatalf("entries after Put = %q, want no temporary files", got)
		}
	})
	t.Run("FailureLeavesNothing", func(t *testing.T) {
		s := newFileTestStore(t)
		if err := s.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "x/obj", errReader{errors.New("boom")}); err == nil {
			t.Fatal("Put succeeded with a failing reader")
		}
		for _, e := range dirEntries(t, fileRoot(t, s)) {
			if strings.Contains(e, tempPrefix) {
				t.Fatalf("temporary file left behind: %s", e)
			}
		}
	})
}

func TestFileStore_Init(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("SweepsStaleTemp", func(t *testing.T) {
		s := newFileTestStore(t)
		root := fileRoot(t, s)
		stale := filepath.Join(root, "d", tempPrefix+"data-1")
		fresh := filepath.Join(root, "d", tempPrefix+"data-2")
		for _, p := range []string{stale, fresh} {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-2 * staleTempAge)
		if err := os.Chtimes(stale, old, old); err != nil {
			t.Fatal(err)
		}
		if err := s.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale temp file still there: %v", err)
		}
		if _, err := os.Stat(fresh); err != nil {
			t.Fatalf("fresh temp file removed: %v", err)
		}
		if keys, err := s.List(ctx, ""); err != nil || len(keys) != 0 {
			t.Fatalf("List = %q, %v; temp files must not be listed", keys, err)
		}
	})
	t.Run("NotADirectory", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open("file://"+p, S3Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Init(ctx, false); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("Init on a file = %v, want a non-NotFound error", err)
		}
	})
}

func TestFileStore_Delete(t *testing.T) {
	t.Parallel()
	s := newFileTestStore(t)
	ctx := t.Context()
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "a/b/c", "1")
	mustPut(t, s, "a/d", "2")
	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, fileRoot(t, s)); strings.Join(got, ",") != "a,a/d" {
		t.Fatalf("entries after Delete = %q, want the empty directory a/b removed", got)
	}
	if err := s.Delete(ctx, "a/d"); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, fileRoot(t, s)); len(got) != 0 {
		t.Fatalf("entries after deleting everything = %q, want none (root kept)", got)
	}
	if err := s.Init(ctx, false); err != nil {
		t.Fatalf("root removed by Delete: %v", err)
	}
}

// TestWritebackFile writes a file of several writeback periods through writebackFile: the content is intact, and
// on Linux every period asked for writeback without failing.
func TestWritebackFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &writebackFile{f: f}
	chunk := make([]byte, 300<<10)
	var want []byte
	for i := range 12 { // 3.5 MiB: a period ends after chunks 4, 8 and 12
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		if n, err := w.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write %d = %d, %v", i, n, err)
		}
		want = append(want, chunk...)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("file content differs from what was written")
	}
	if runtime.GOOS == "linux" {
		if w.off {
			t.Fatal("writeback failed on Linux")
		}
		if w.started != 12*int64(len(chunk)) {
			t.Fatalf("last writeback at %d bytes, want %d", w.started, 12*len(chunk))
		}
	}
}
