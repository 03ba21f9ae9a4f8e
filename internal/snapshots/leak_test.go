package snapshots

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestRepo_Goroutines checks that Create and Restore, on success and on failure, leave no goroutine behind (the
// encoding goroutine and zstd's workers are joined). It is not parallel so other tests' goroutines do not interfere.
func TestRepo_Goroutines(t *testing.T) {
	ctx := t.Context()
	s := newFileTestStore(t)
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	r := NewRepo(s, testStream, nil)
	before := runtime.NumGoroutine()

	m, err := r.Create(ctx, &genSource{seq: 10, n: 20000, valueLen: 64, random: true}, "l")
	if err != nil {
		t.Fatal(err)
	}
	errSource := errors.New("source failed")
	if _, err := r.Create(ctx, &sliceSource{seq: 11, recs: []record{{"a", "1", 1}}, err: errSource}, "l"); !errors.Is(err, errSource) {
		t.Fatalf("Create = %v, want errSource", err)
	}
	if err := r.Restore(ctx, m, &collectSink{}, nil); err != nil {
		t.Fatal(err)
	}
	bad := m
	bad.Digest = hexA
	if err := r.Restore(ctx, bad, &collectSink{}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Restore = %v, want ErrCorrupt", err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}
