package latency

import (
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{0.001, time.Millisecond},
	} {
		if got := Quantile(d, tc.q); got != tc.want {
			t.Errorf("Quantile(1..100 ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if d[0] != 100*time.Millisecond {
		t.Error("Quantile sorted its input")
	}
	if got := Quantile(nil, 0.99); got != 0 {
		t.Errorf("Quantile(nil) = %v, want 0", got)
	}
	if got := Ms(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("Ms(1.5ms) = %v", got)
	}
}
