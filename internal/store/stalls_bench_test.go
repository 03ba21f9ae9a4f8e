package store

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

var flagStallsDuration = flag.Duration("stalls.duration", 150*time.Second,
	"how long each BenchmarkApplyStalls case applies; pebble's memtables start small and double, so 150 s at 5,000 applies/s sees about eight WAL rotations")

// BenchmarkApplyStalls measures how long single applies stall while pebble rotates its write-ahead log: a paced
// load of 5,000 applies/s (one put, 128-byte value, as the leader applies a write) for -stalls.duration, with and
// without the store's background WAL writeback (walBytesPerSync), next to three disk neighbours: none, a writer of
// 300 MiB files that fsyncs each file once at its end (as a bulk copy does), and the same writer fsyncing every
// 8 MiB. It reports the largest stall, the number of applies slower than 20 ms, and the p99.9. Run it pinned to one
// core (taskset -c 0) to stand for a busy leader.
func BenchmarkApplyStalls(b *testing.B) {
	for _, neighbour := range []struct {
		name      string
		syncEvery int // MiB; 0 = no neighbour, -1 = one fsync per file
	}{{"Quiet", 0}, {"NeighbourOneFsync", -1}, {"NeighbourFsyncEvery8MiB", 8}} {
		for _, wal := range []struct {
			name string
			off  bool
		}{{"WALWriteback", false}, {"NoWALWriteback", true}} {
			b.Run(neighbour.name+"/"+wal.name, func(b *testing.B) {
				for b.Loop() {
					benchApplyStalls(b, neighbour.syncEvery, wal.off)
				}
			})
		}
	}
}

func benchApplyStalls(b *testing.B, syncEvery int, noWriteback bool) {
	dir := b.TempDir()
	db, err := Open(filepath.Join(dir, "db"), Options{noWALBytesPerSync: noWriteback})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var noiseErr error
	if syncEvery != 0 {
		wg.Go(func() { noiseErr = diskNeighbour(filepath.Join(dir, "neighbour"), syncEvery, stop) })
	}
	const rate, burst = 5000, 10
	value := make([]byte, 128)
	lat := make([]time.Duration, 0, int(flagStallsDuration.Seconds()*rate)+burst)
	tick := time.NewTicker(time.Second * burst / rate)
	defer tick.Stop()
	start := time.Now()
	seq := uint64(0)
	for time.Since(start) < *flagStallsDuration {
		<-tick.C
		for range burst {
			seq++
			t0 := time.Now()
			key := fmt.Appendf(nil, "key-%09d", seq)
			if err := db.Apply(seq, []apply.Mutation{{Key: key, Value: value, Version: seq}}, apply.Mark{}); err != nil {
				close(stop)
				wg.Wait()
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
	}
	close(stop)
	wg.Wait()
	if noiseErr != nil {
		b.Fatal(noiseErr)
	}
	slow := 0
	for _, d := range lat {
		if d > 20*time.Millisecond {
			slow++
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_stall_ms")
	b.ReportMetric(float64(slow), "applies_over_20ms")
	b.ReportMetric(float64(lat[len(lat)*999/1000].Microseconds()), "p999_us")
}

// diskNeighbour writes 300 MiB files to path over and over until stop is closed, fsyncing every syncEvery MiB, or
// once per file when syncEvery < 0.
func diskNeighbour(path string, syncEvery int, stop <-chan struct{}) error {
	buf := make([]byte, 1<<20)
	for {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for i := 1; i <= 300; i++ {
			select {
			case <-stop:
				return f.Close()
			default:
			}
			if _, err := f.Write(buf); err != nil {
				return errors.Join(err, f.Close())
			}
			if syncEvery > 0 && i%syncEvery == 0 {
				if err := f.Sync(); err != nil {
					return errors.Join(err, f.Close())
				}
			}
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return err
		}
	}
}
