//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/testutil/httpload"
)

const (
	// txnOps is the operations per transaction of BenchmarkLeader_TxnIngestVsRedis, and Redis's pipeline depth.
	txnOps = 100
	// txnConns is the connections of both sides.
	txnConns = 16
	// txnRoundKeys is the keys each side writes per round.
	txnRoundKeys = 500_000
	// redisRandomKeys is the key space of the random-key Redis variant: large enough that nearly every SET adds a
	// key, as every replikv put does.
	redisRandomKeys = 100_000_000
)

// BenchmarkLeader_TxnIngestVsRedis compares the leader's key ingest through transactions with Redis's pipelined SETs,
// both measured in the same run. replikv: the leader binary (embedded NATS, as startCluster starts it) takes
// transactions of 100 puts of distinct keys with random 128-byte values each (POST /v1/txn, the binary body), from
// 16 keep-alive connections with one transaction in flight each; the bodies are built before the timing. Redis: a
// redis-server started here (no persistence) and
//
//	redis-benchmark -t set -P 100 -c 16 -d 128 -n 500000 --csv
//
// whose own requests/s is the reference (it SETs one key over and over). Each round runs, in an order that
// alternates, 500,000 keys through replikv, that command, and the same command with -r 100000000 (keys drawn from
// 100 million, so nearly every SET adds a key, as replikv's puts do). x_vs_redis_set = replikv keys/s / Redis SETs/s,
// goal >= 0.5; x_vs_redis_set_r is the same against the random-key variant, no goal. It fails when redis-benchmark
// (Debian's redis-tools) is missing.
func BenchmarkLeader_TxnIngestVsRedis(b *testing.B) {
	redisBench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		b.Fatalf("redis-benchmark not found: it comes with Debian's redis-tools (apt-get install -y redis-tools, or run scripts/bench.sh): %v", err)
	}
	ctx := b.Context()
	c := startCluster(b, 0, nil, "")
	redis := startRedis(b, b.TempDir(), "redis-txn")
	vals := newValues(42, valueSize)
	// txns builds the bodies, dials the connections, and then times the transactions from the first request.
	txns := func(prefix string, keys int) (time.Duration, error) {
		bodies := txnBodies(prefix, keys, vals)
		pool, err := httpload.DialPool(ctx, c.addr, txnConns)
		if err != nil {
			return 0, err
		}
		defer pool.Close()
		return pool.Run(ctx, len(bodies), func(c *httpload.PutConn, _, i int) error {
			return c.Post("/v1/txn", api.ContentTypeTxn, bodies[i])
		})
	}
	// Warm-up, uncounted: the leader's and Redis's first allocations, the connections' first requests.
	if _, err := txns("warmup-", 20*txnOps); err != nil {
		b.Fatal(err)
	}
	if _, err := redisBenchmarkSet(ctx, redisBench, redis.port, 100_000); err != nil {
		b.Fatal(err)
	}

	var (
		tTxn           time.Duration
		redisSet       []float64 // SETs/s of each round
		redisSetRandom []float64
		rounds         int
	)
	for b.Loop() {
		sides := []func() error{
			func() error {
				d, err := txns(fmt.Sprintf("txn-%d-", rounds), txnRoundKeys)
				tTxn += d
				return err
			},
			func() error {
				rps, err := redisBenchmarkSet(ctx, redisBench, redis.port, txnRoundKeys)
				redisSet = append(redisSet, rps)
				return err
			},
			func() error {
				rps, err := redisBenchmarkSet(ctx, redisBench, redis.port, txnRoundKeys,
					"-r", strconv.Itoa(redisRandomKeys))
				redisSetRandom = append(redisSetRandom, rps)
				return err
			},
		}
		if rounds%2 == 1 {
			sides[0], sides[2] = sides[2], sides[0]
		}
		for _, side := range sides {
			if err := side(); err != nil {
				b.Fatal(err)
			}
		}
		rounds++
	}
	txnRate := float64(rounds*txnRoundKeys) / tTxn.Seconds()
	// The same keys at each round's rate: the time-weighted mean, as for replikv.
	meanRate := func(rates []float64) float64 {
		var secs float64
		for _, r := range rates {
			secs += txnRoundKeys / r
		}
		return float64(len(rates)*txnRoundKeys) / secs
	}
	set, setRandom := meanRate(redisSet), meanRate(redisSetRandom)
	b.ReportMetric(txnRate, "txn_keys/s")
	b.ReportMetric(set, "redis_set_keys/s")
	b.ReportMetric(setRandom, "redis_set_r_keys/s")
	b.ReportMetric(txnRate/set, "x_vs_redis_set")
	b.ReportMetric(txnRate/setRandom, "x_vs_redis_set_r")
	b.Logf("replikv %.0f keys/s in transactions of %d; redis-benchmark SET -P %d: %.0f/s (%.2fx), with random keys %.0f/s (%.2fx)",
		txnRate, txnOps, txnOps, set, txnRate/set, setRandom, txnRate/setRandom)
}

// txnBodies returns the binary bodies of keys/txnOps transactions of txnOps puts each, of the keys prefix<i> with
// values from vals.
func txnBodies(prefix string, keys int, vals *values) [][]byte {
	out := make([][]byte, keys/txnOps)
	ops := make([]api.TxnOp, txnOps)
	buf := make([]byte, txnOps*valueSize) // one transaction's values; AppendTxnBinary copies them
	for t := range out {
		for j := range ops {
			v := buf[j*valueSize : (j+1)*valueSize]
			copy(v, vals.next())
			ops[j] = api.TxnOp{Op: apply.OpPut, Key: []byte(prefix + strconv.Itoa(t*txnOps+j)), Value: v}
		}
		out[t] = api.AppendTxnBinary(nil, ops)
	}
	return out
}

// redisBenchmarkSet runs redis-benchmark -t set -P 100 -c 16 -d 128 -n n --csv (and extra) against the Redis on port
// and returns its requests/s.
func redisBenchmarkSet(ctx context.Context, bin string, port, n int, extra ...string) (float64, error) {
	args := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "set", "-P", strconv.Itoa(txnOps),
		"-c", strconv.Itoa(txnConns), "-d", strconv.Itoa(valueSize), "-n", strconv.Itoa(n), "--csv"}, extra...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("bench: redis-benchmark %v: %w\n%s%s", args, err, out, stderr.Bytes())
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("bench: redis-benchmark output: %w\n%s", err, out)
	}
	for _, row := range rows {
		if len(row) >= 2 && row[0] == "SET" {
			rps, err := strconv.ParseFloat(row[1], 64)
			if err != nil {
				return 0, fmt.Errorf("bench: redis-benchmark: rps %q: %w", row[1], err)
			}
			if rps <= 0 {
				return 0, fmt.Errorf("bench: redis-benchmark: rps %q", row[1])
			}
			return rps, nil
		}
	}
	return 0, fmt.Errorf("bench: redis-benchmark printed no SET row:\n%s", out)
}
