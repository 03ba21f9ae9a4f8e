// Package latency summarises latency samples for benchmarks.
package latency

import (
	"math"
	"slices"
	"time"
)

// Quantile returns the q-quantile (0 < q <= 1) of d by the nearest-rank method; 0 for no samples. d is not changed.
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Ms is d in milliseconds, for benchmark metrics.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
