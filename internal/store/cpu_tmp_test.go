package store

import (
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, entries uint64) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(entries), "cpu-ns/entry")
}
