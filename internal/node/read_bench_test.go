package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkLeader_ReadLatency measures what linearizable leader reads cost: GETs of existing keys through the
// leader's own API (every read waits at the read barrier until the leader has applied what it published) against
// the same reads through the same handler and server stack on the same leader without the barrier (the no-op
// server of BenchmarkLeader_Ingest, whose reads are eventual), alternating, once idle and once under a write load of
// 16 closed-loop writers. It reports p50 and p99 of both and their ratios (x_p50, x_p99 = barrier / no barrier).
func BenchmarkLeader_ReadLatency(b *testing.B) {
	const (
		keys    = 1000
		readers = 4
		perSide = 2000 // reads per side and phase, split across the readers
		writers = 16
	)
	l := startBenchLeader(b)
	noopAddr := startNoopServer(b, l)
	ctx := b.Context()
	value := benchValue(128)
	ld, err := newPutLoad(ctx, l.HTTPAddr(), 64, value)
	if err != nil {
		b.Fatal(err)
	}
	defer ld.close()
	if _, err := ld.run(ctx, "k", keys); err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: readers}}
	defer hc.CloseIdleConnections()
	read := func(addr string) ([]time.Duration, error) {
		var (
			mu  sync.Mutex
			all []time.Duration
			wg  sync.WaitGroup
			bad error
		)
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lat := make([]time.Duration, 0, perSide/readers)
				for i := range perSide / readers {
					start := time.Now()
					resp, err := hc.Get("http://" + addr + "/v1/kv/k" + strconv.Itoa((r*7919+i*31)%keys))
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("GET: %d", resp.StatusCode)
						}
					}
					if err != nil {
						mu.Lock()
						bad = err
						mu.Unlock()
						return
					}
					lat = append(lat, time.Since(start))
				}
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, bad
	}
	var lat [2][2][]time.Duration // [idle, load][barrier, none]
	for b.Loop() {
		for phase := range 2 {
			stop := func() {}
			if phase == 1 {
				wctx, cancel := context.WithCancel(ctx)
				wl, err := newPutLoad(wctx, l.HTTPAddr(), writers, value)
				if err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = wl.run(wctx, "w", 1<<30) // until cancelled
				}()
				stop = func() { cancel(); wg.Wait(); wl.close() }
			}
			for _, side := range []int{0, 1, 1, 0} { // alternate the order
				addr := l.HTTPAddr()
				if side == 1 {
					addr = noopAddr
				}
				d, err := read(addr)
				if err != nil {
					stop()
					b.Fatal(err)
				}
				lat[phase][side] = append(lat[phase][side], d...)
			}
			stop()
		}
	}
	for phase, name := range []string{"idle", "load"} {
		bp50, bp99 := quantiles(lat[phase][0])
		np50, np99 := quantiles(lat[phase][1])
		b.ReportMetric(float64(bp50.Microseconds()), name+"_barrier_p50_us")
		b.ReportMetric(float64(bp99.Microseconds()), name+"_barrier_p99_us")
		b.ReportMetric(float64(np50.Microseconds()), name+"_nobarrier_p50_us")
		b.ReportMetric(float64(np99.Microseconds()), name+"_nobarrier_p99_us")
		b.ReportMetric(bp50.Seconds()/np50.Seconds(), name+"_x_p50")
		b.ReportMetric(bp99.Seconds()/np99.Seconds(), name+"_x_p99")
	}
}

// quantiles returns the median and the 99th percentile of d.
func quantiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0
	}
	return s[len(s)/2], s[len(s)*99/100]
}
