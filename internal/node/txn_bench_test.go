package node_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/testutil/httpload"
)

// BenchmarkLeader_TxnIngest compares the leader's key ingest through transactions (POST /v1/txn, txnSize puts of
// distinct keys with 128-byte values each, in JSON with base64 values and in the binary body) with single PUTs of the
// same keys and values, against one in-process leader with its embedded NATS server. PUTs come from 64 keep-alive
// clients, transactions from 16 (each carries txnSize keys). The bodies are built before each side's timing, so the
// client's encoding is not measured. keys/s of each side, and each transaction side's ratio to PUTs, are the result:
//
//	go test -run '^$' -bench TxnIngest -benchtime 3x ./internal/node
func BenchmarkLeader_TxnIngest(b *testing.B) {
	const (
		putClients = 64
		txnClients = 16
		txnSize    = 100
		perRound   = 50_000 // keys per side and round
		valueSize  = 128
	)
	l := startBenchLeader(b)
	ctx := b.Context()
	value := benchValue(valueSize)
	puts, err := newPutLoad(ctx, l.HTTPAddr(), putClients, value)
	if err != nil {
		b.Fatal(err)
	}
	defer puts.close()
	txnPool, err := httpload.DialPool(ctx, l.HTTPAddr(), txnClients)
	if err != nil {
		b.Fatal(err)
	}
	defer txnPool.Close()

	// bodies builds the round's transactions in one encoding: perRound/txnSize bodies of txnSize keys (prefix + index).
	bodies := func(prefix string, binary bool) [][]byte {
		out := make([][]byte, perRound/txnSize)
		for t := range out {
			ops := make([]api.TxnOp, txnSize)
			for j := range ops {
				ops[j] = api.TxnOp{Op: apply.OpPut, Key: []byte(prefix + strconv.Itoa(t*txnSize+j)), Value: value}
			}
			if binary {
				out[t] = api.AppendTxnBinary(nil, ops)
				continue
			}
			type opDoc struct {
				Op       string `json:"op"`
				Key      string `json:"key"`
				ValueB64 []byte `json:"value_b64"`
			}
			docs := make([]opDoc, len(ops))
			for j, o := range ops {
				docs[j] = opDoc{Op: "put", Key: string(o.Key), ValueB64: o.Value}
			}
			body, err := json.Marshal(map[string]any{"ops": docs})
			if err != nil {
				b.Fatal(err)
			}
			out[t] = body
		}
		return out
	}
	runTxns := func(prefix string, binary bool) (time.Duration, error) {
		ct := "application/json"
		if binary {
			ct = api.ContentTypeTxn
		}
		bs := bodies(prefix, binary)
		return txnPool.Run(ctx, len(bs), func(c *httpload.PutConn, _, i int) error {
			return c.Post("/v1/txn", ct, bs[i])
		})
	}
	if _, err := puts.run(ctx, "warmup-put-", 5_000); err != nil {
		b.Fatal(err)
	}
	if _, err := runTxns("warmup-txn-", false); err != nil {
		b.Fatal(err)
	}

	var tPut, tJSON, tBinary time.Duration
	rounds := 0
	for b.Loop() {
		prefix := fmt.Sprintf("r%d-", rounds)
		sides := []func() error{
			func() error { d, err := puts.run(ctx, prefix+"put-", perRound); tPut += d; return err },
			func() error { d, err := runTxns(prefix+"json-", false); tJSON += d; return err },
			func() error { d, err := runTxns(prefix+"bin-", true); tBinary += d; return err },
		}
		runSides(b, rounds, sides)
		rounds++
	}
	n := float64(rounds * perRound)
	b.ReportMetric(n/tPut.Seconds(), "put_keys/s")
	b.ReportMetric(n/tJSON.Seconds(), "txn_json_keys/s")
	b.ReportMetric(n/tBinary.Seconds(), "txn_binary_keys/s")
	b.ReportMetric(tPut.Seconds()/tJSON.Seconds(), "x_json_vs_put")
	b.ReportMetric(tPut.Seconds()/tBinary.Seconds(), "x_binary_vs_put")
}
