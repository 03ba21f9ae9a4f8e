// Package metrics holds one Prometheus registry per node. Nothing here is global, so tests can run many nodes in one
// process.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors a node exports on /metrics.
type Metrics struct {
	// Registry holds every collector below plus the Go and process collectors.
	Registry *prometheus.Registry

	// AppliedSeq is the last log sequence applied to the local store.
	AppliedSeq prometheus.Gauge
	// LogLastSeq is the last sequence of the replication log, as last observed.
	LogLastSeq prometheus.Gauge
	// Lag is LogLastSeq - AppliedSeq (0 when ahead or unknown).
	Lag prometheus.Gauge
	// SnapshotSeq is the sequence of the last snapshot created (leader) or restored (follower).
	SnapshotSeq prometheus.Gauge
	// WriteDuration is the latency of write requests, by operation and HTTP status code.
	WriteDuration *prometheus.HistogramVec
	// ReadDuration is the latency of read requests, by kind (get, list, digest) and HTTP status code.
	ReadDuration *prometheus.HistogramVec
	// RestoreBytes counts snapshot bytes downloaded during restores.
	RestoreBytes prometheus.Counter
	// SnapshotDuration is the time taken to create and upload a snapshot.
	SnapshotDuration prometheus.Histogram
	// Followers is the number of followers heard from recently, by state (leader only).
	Followers *prometheus.GaugeVec
	// Errors counts errors by component and kind.
	Errors *prometheus.CounterVec
	// StoreWriteStalls is how long each write stall of the local store lasted (pebble delaying writes while its
	// flushes or compactions fall behind).
	StoreWriteStalls prometheus.Histogram
	// CheckpointsVerified counts checkpoints at which this node's state digest was found equal to the leader's
	// (followers).
	CheckpointsVerified prometheus.Counter
	// CheckpointMismatches counts checkpoints at which this node's state digest or key count differed from the
	// leader's (followers).
	CheckpointMismatches prometheus.Counter
	// CheckpointVerifiedSeq is the log sequence of the last checkpoint verified equal to the leader's (followers).
	CheckpointVerifiedSeq prometheus.Gauge
	// ReplicationLag is, on a ready follower, the time from the log's server storing an entry to the follower having
	// applied it.
	ReplicationLag prometheus.Histogram
	// CatchUpRate is the rate, in log entries per second, a follower's catch-up pacer reads at (-1: unpaced).
	CatchUpRate prometheus.Gauge
}

// New builds a fresh registry with every collector registered.
func New(role string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	constLabels := prometheus.Labels{"role": role}
	latencyBuckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		Registry: reg,
		AppliedSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_applied_seq",
			Help: "Last log sequence applied to the local store.", ConstLabels: constLabels}),
		LogLastSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_log_last_seq",
			Help: "Last sequence of the replication log as last observed.", ConstLabels: constLabels}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_lag",
			Help: "Log entries not yet applied locally.", ConstLabels: constLabels}),
		SnapshotSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_snapshot_seq",
			Help: "Sequence of the last snapshot created (leader) or restored (follower).", ConstLabels: constLabels}),
		WriteDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "replikv_write_duration_seconds",
			Help: "Latency of write requests.", Buckets: latencyBuckets, ConstLabels: constLabels}, []string{"op", "code"}),
		ReadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "replikv_read_duration_seconds",
			Help: "Latency of read requests.", Buckets: latencyBuckets, ConstLabels: constLabels}, []string{"kind", "code"}),
		RestoreBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "replikv_restore_bytes_total",
			Help: "Snapshot bytes downloaded by restores.", ConstLabels: constLabels}),
		SnapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replikv_snapshot_duration_seconds",
			Help: "Time to create and upload a snapshot.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16), ConstLabels: constLabels}),
		Followers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replikv_followers",
			Help: "Followers heard from recently, by state.", ConstLabels: constLabels}, []string{"state"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replikv_errors_total",
			Help: "Errors by component and kind.", ConstLabels: constLabels}, []string{"component", "kind"}),
		StoreWriteStalls: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replikv_store_write_stall_seconds",
			Help:    "Duration of the local store's write stalls (flushes or compactions falling behind).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), ConstLabels: constLabels}),
		CheckpointsVerified: prometheus.NewCounter(prometheus.CounterOpts{Name: "replikv_checkpoint_verified_total",
			Help: "Checkpoints at which the local state digest equalled the leader's.", ConstLabels: constLabels}),
		CheckpointMismatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "replikv_checkpoint_mismatch_total",
			Help: "Checkpoints at which the local state digest or key count differed from the leader's.", ConstLabels: constLabels}),
		CheckpointVerifiedSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_checkpoint_verified_seq",
			Help: "Log sequence of the last checkpoint verified equal to the leader's.", ConstLabels: constLabels}),
		ReplicationLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replikv_replication_lag_seconds",
			Help: "On a ready follower: time from the log's server storing an entry (the leader's publish is " +
				"acknowledged then) to this follower having applied it, by the two hosts' clocks (negative clamped to 0).",
			Buckets: latencyBuckets, ConstLabels: constLabels}),
		CatchUpRate: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replikv_catchup_rate",
			Help: "Log entries per second this follower's catch-up reads are paced at while it is more than " +
				"--ready-lag behind; -1 while they are not paced (caught up, or the leader takes no writes).",
			ConstLabels: constLabels}),
	}
	reg.MustRegister(m.AppliedSeq, m.LogLastSeq, m.Lag, m.SnapshotSeq, m.WriteDuration, m.ReadDuration,
		m.RestoreBytes, m.SnapshotDuration, m.Followers, m.Errors, m.StoreWriteStalls, m.CheckpointsVerified,
		m.CheckpointMismatches, m.CheckpointVerifiedSeq, m.ReplicationLag, m.CatchUpRate)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
