//go:build bench

package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/snapshots"
)

// rssValueSize is the value size of the RSS benchmark: random, so the snapshot does not compress.
const rssValueSize = 480

// randomSource is a snapshots.Source of n keys "rss-<12 digits>" with random (incompressible, but reproducible)
// values, key i at version i+1, at sequence n.
type randomSource struct{ n int }

func (s randomSource) Seq() uint64 { return uint64(s.n) }

func (s randomSource) Iterate(fn func(key, value []byte, version uint64) error) error {
	rng := rand.NewChaCha8([32]byte{'r', 'e', 'p', 'l', 'i', 'k', 'v'})
	key := make([]byte, 0, 16)
	value := make([]byte, rssValueSize)
	for i := range s.n {
		key = append(key[:0], "rss-"...)
		key = fmt.Appendf(key, "%012d", i)
		_, _ = rng.Read(value)
		if err := fn(key, value, uint64(i)+1); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkFollower_RestoreRSS measures the follower process's peak resident set (VmHWM from /proc/<pid>/status)
// while it restores a snapshot of -bench.rsskeys keys (default 2,200,000) with 480-byte random values (compressed
// size >= 1 GB), and one of half as many keys, in the same run. Goal: <= 256 MiB and flat (growth_x = peak at full
// size / peak at half size, ~1). The snapshots are written with snapshots.Repo.Create (the leader's own code path)
// into a local directory; the follower's log stream is empty, so the peak is the restore's.
func BenchmarkFollower_RestoreRSS(b *testing.B) {
	ctx := b.Context()
	full := *flagRSSKeys
	sizes := []int{full / 2, full}
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Close)
	jc, err := journal.Connect(ctx, journal.Config{URL: emb.ClientURL(), Stream: stream})
	if err != nil {
		b.Fatal(err)
	}
	_, err = jc.EnsureStream(ctx)
	jc.Close()
	if err != nil {
		b.Fatal(err)
	}

	type result struct {
		peakKiB  int64
		bytes    int64
		restore  time.Duration
		rounds   int
		snapRoot string
	}
	results := make([]result, len(sizes))
	for i, n := range sizes {
		root := filepath.Join(b.TempDir(), "snapshots")
		start := time.Now()
		m, err := createSnapshot(ctx, root, randomSource{n: n})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("snapshot of %d keys: %.1f MiB compressed, created in %v", n, float64(m.Bytes)/(1<<20),
			time.Since(start).Round(time.Millisecond))
		results[i] = result{bytes: m.Bytes, snapRoot: root}
	}
	if results[1].bytes < 1_000_000_000 && full >= 2_200_000 {
		b.Fatalf("the larger snapshot is %d bytes, want >= 1 GB", results[1].bytes)
	}
	for b.Loop() {
		for i := range sizes {
			peak, took, err := restoreRSS(b, emb.ClientURL(), results[i].snapRoot, fmt.Sprintf("rss-%d-%d", i, results[i].rounds))
			if err != nil {
				b.Fatal(err)
			}
			results[i].peakKiB = max(results[i].peakKiB, peak)
			results[i].restore += took
			results[i].rounds++
		}
	}
	half, fullRes := results[0], results[1]
	b.ReportMetric(float64(half.peakKiB)/1024, "half_peak_rss_MiB")
	b.ReportMetric(float64(fullRes.peakKiB)/1024, "full_peak_rss_MiB")
	b.ReportMetric(float64(fullRes.peakKiB)/float64(half.peakKiB), "growth_x")
	b.ReportMetric(float64(half.bytes)/(1<<20), "half_snapshot_MiB")
	b.ReportMetric(float64(fullRes.bytes)/(1<<20), "full_snapshot_MiB")
	b.ReportMetric(half.restore.Seconds()/float64(half.rounds), "half_restore_s")
	b.ReportMetric(fullRes.restore.Seconds()/float64(fullRes.rounds), "full_restore_s")
	b.Logf("follower peak RSS: %.0f MiB restoring %.0f MiB, %.0f MiB restoring %.0f MiB (goal <= 256 MiB, flat)",
		float64(half.peakKiB)/1024, float64(half.bytes)/(1<<20), float64(fullRes.peakKiB)/1024,
		float64(fullRes.bytes)/(1<<20))
}

// createSnapshot writes src as a snapshot into a file:// store at root.
func createSnapshot(ctx context.Context, root string, src snapshots.Source) (snapshots.Manifest, error) {
	st, err := snapshots.Open("file://"+root, snapshots.S3Config{}, zap.NewNop())
	if err != nil {
		return snapshots.Manifest{}, err
	}
	if err := st.Init(ctx, true); err != nil {
		return snapshots.Manifest{}, err
	}
	return snapshots.NewRepo(st, stream, zap.NewNop()).Create(ctx, src, "bench")
}

// restoreRSS starts a follower on the snapshot store at root, waits until it is ready, and returns its VmHWM (KiB)
// and the restore time it logged. It samples VmRSS every 50 ms meanwhile only to log the curve's maximum next to
// VmHWM, as a cross-check.
func restoreRSS(b *testing.B, natsURL, root, name string) (int64, time.Duration, error) {
	ctx := b.Context()
	dir := filepath.Join(b.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(filepath.Join(dir, "data"))
	p := startProc(b, dir, name, binaries.follower,
		"--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0",
		"--nats-url", natsURL,
		"--snapshots", "file://"+root,
		"--stream", stream,
		"--id", name)
	defer p.stop()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sampled int64
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := procStatus(p.Pid(), "VmRSS"); err == nil {
				sampled = max(sampled, kb)
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	})
	addr := p.waitField(msgHTTPListening, "addr", startTimeout)
	err := waitReady(ctx, newNode(addr), readyTimeout)
	cancel()
	wg.Wait()
	if err != nil {
		return 0, 0, err
	}
	peak, err := procStatus(p.Pid(), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	took, ok := p.field(msgSnapshotRestore, "took")
	secs, isNum := took.(float64)
	if !ok || !isNum {
		return 0, 0, fmt.Errorf("bench: %s did not log %q", name, msgSnapshotRestore)
	}
	b.Logf("%s: VmHWM %d KiB, sampled VmRSS max %d KiB, restore took %.2fs", name, peak, sampled, secs)
	return peak, time.Duration(secs * float64(time.Second)), nil
}
