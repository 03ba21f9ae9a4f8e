//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// clock is the history's time: nanoseconds since base, from the monotonic clock. Log entry times (the JetStream
// server's wall clock, same machine) are mapped onto it through base's wall time.
type clock struct {
	base     time.Time
	baseWall time.Time
}

func newClock() *clock {
	now := time.Now()
	return &clock{base: now, baseWall: now.Round(0)}
}

func (c *clock) now() int64 { return int64(time.Since(c.base)) }

// fromWall maps a wall-clock time onto the history clock.
func (c *clock) fromWall(t time.Time) int64 { return int64(t.Sub(c.baseWall)) }

func (c *clock) stamp() string { return fmt.Sprintf("%.3fs", sec(c.now())) }

// opKind is what a client did.
type opKind uint8

const (
	kPut         opKind = iota // PUT on the leader
	kCAS                       // PUT on the leader with If-Match
	kDelete                    // DELETE on the leader
	kGetLeader                 // GET on the leader (strong by definition)
	kGetStrong                 // GET ?consistency=strong on a follower
	kGetMinSeq                 // GET ?min_seq=N on a follower (N: the highest version this client wrote)
	kGetEventual               // GET on a follower
	numKinds
)

var kindNames = [numKinds]string{"put", "cas", "delete", "get-leader", "get-strong", "get-min-seq", "get-eventual"}

func (k opKind) String() string {
	if k >= numKinds {
		return "init"
	}
	return kindNames[k]
}

func (k opKind) isWrite() bool { return k <= kDelete }

// outcome is how an op ended, from the client's point of view.
type outcome uint8

const (
	outOK         outcome = iota // 200
	outNotFound                  // 404: GET of an absent key, DELETE of an absent key (definite no-op)
	outPrecond                   // 412: the If-Match did not hold (definite no-op)
	outFailed                    // a write answered 503 "unavailable": definitely not committed
	outUnknown                   // a write whose outcome is unknown (timeout, connection error, other 5xx)
	outReadFailed                // a read without a 200 or 404: dropped from the history
)

var outcomeNames = []string{"ok", "not-found", "precondition-failed", "failed", "unknown", "read-failed"}

func (o outcome) String() string { return outcomeNames[o] }

// op is one client operation as recorded.
type op struct {
	ID      int
	Client  int
	Kind    opKind
	Key     string
	Node    string // the node asked
	Value   string // the value written (put, cas)
	IfMatch uint64 // cas
	MinSeq  uint64 // get-min-seq
	Call    int64  // history clock at invocation
	Return  int64  // history clock at the answer
	Run     int    // the node's run number during the op, 0 if it changed (a restart) during it
	Out     outcome
	Status  int
	Code    string // the error answer's "code"
	Err     string // transport error
	Version uint64 // write: the answer's version; read: the ETag
	Got     string // read: the value
	Seq     uint64 // the answer's Replikv-Seq
}

func (o *op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d c%d %s %s@%s", o.ID, o.Client, o.Kind, o.Key, o.Node)
	switch o.Kind {
	case kPut:
		fmt.Fprintf(&b, " value=%s", o.Value)
	case kCAS:
		fmt.Fprintf(&b, " value=%s if-match=%d", o.Value, o.IfMatch)
	case kGetMinSeq:
		fmt.Fprintf(&b, " min_seq=%d", o.MinSeq)
	}
	fmt.Fprintf(&b, " [%.3fs..%.3fs] -> %s", sec(o.Call), sec(o.Return), o.Out)
	if o.Status != 0 {
		fmt.Fprintf(&b, " %d", o.Status)
	}
	if o.Code != "" {
		fmt.Fprintf(&b, " code=%s", o.Code)
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " err=%q", o.Err)
	}
	if o.Out == outOK && !o.Kind.isWrite() {
		fmt.Fprintf(&b, " value=%s", o.Got)
	}
	if o.Version != 0 {
		fmt.Fprintf(&b, " version=%d", o.Version)
	}
	if o.Status != 0 {
		fmt.Fprintf(&b, " seq=%d", o.Seq)
	}
	return b.String()
}

const (
	numKeys       = 10
	clientTimeout = 5 * time.Second
	readWait      = "3s" // the timeout= of strong and min_seq reads, below the client's timeout
)

func keyName(i int) string { return "k" + strconv.Itoa(i) }

// client is one load goroutine's state; only that goroutine touches it until run returns.
type client struct {
	id       int
	rng      *rand.Rand
	hc       *http.Client
	c        *cluster
	clk      *clock
	ops      []op
	counter  int
	versions map[string]uint64 // the last version this client saw per key, for If-Match
	written  uint64            // the highest version this client wrote, for min_seq
}

func newClient(id int, seed int64, c *cluster, clk *clock) *client {
	return &client{
		id:  id,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(id)+1)),
		hc: &http.Client{
			Timeout:       clientTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 4},
		},
		c: c, clk: clk, versions: map[string]uint64{},
	}
}

// run issues operations until ctx ends, with a short random pause between them (the load is kept moderate: the
// processes and later the checker share two cores).
func (cl *client) run(ctx context.Context) {
	defer cl.hc.CloseIdleConnections()
	chase := ""
	for ctx.Err() == nil {
		if chase == "" {
			tm := time.NewTimer(time.Duration(10+cl.rng.IntN(30)) * time.Millisecond)
			select {
			case <-ctx.Done():
				tm.Stop()
				return
			case <-tm.C:
			}
		}
		chase = cl.one(chase)
	}
}

// one draws and runs one operation. With chase set it reads that key at once, on the leader or strongly on a
// follower: right after an acknowledged write is where a node that acknowledges before it applies, or a strong read
// that does not wait for the whole log, shows a stale value. It returns the key to chase next, if any.
func (cl *client) one(chase string) string {
	key := keyName(cl.rng.IntN(numKeys))
	if chase != "" {
		key = chase
	}
	o := op{Client: cl.id, Key: key, Node: "leader"}
	p := cl.rng.IntN(100)
	switch {
	case chase != "" && p < 50:
		o.Kind = kGetLeader
	case chase != "":
		o.Kind = kGetStrong
	case p < 22:
		o.Kind = kPut
	case p < 34:
		o.Kind = kCAS
		o.IfMatch = cl.versions[key]
		if o.IfMatch == 0 {
			o.Kind = kPut
		}
	case p < 40:
		o.Kind = kDelete
	case p < 55:
		o.Kind = kGetLeader
	case p < 70:
		o.Kind = kGetStrong
	case p < 82:
		o.Kind = kGetMinSeq
		o.MinSeq = max(cl.written, 1)
	default:
		o.Kind = kGetEventual
	}
	if o.Kind == kPut || o.Kind == kCAS {
		cl.counter++
		o.Value = fmt.Sprintf("c%d-%d", cl.id, cl.counter)
	}
	if !o.Kind.isWrite() && o.Kind != kGetLeader {
		o.Node = cl.c.followers[cl.rng.IntN(len(cl.c.followers))].name
	}
	n := cl.c.nodeByName(o.Node)
	run := n.runNumber()
	o.Call = cl.clk.now()
	if o.Kind.isWrite() {
		cl.write(n, &o)
	} else {
		cl.read(n, &o)
	}
	o.Return = cl.clk.now()
	if n.runNumber() == run {
		o.Run = run
	}
	cl.learn(&o)
	cl.ops = append(cl.ops, o)
	if o.Kind.isWrite() && o.Out == outOK && cl.rng.IntN(100) < 30 {
		return o.Key
	}
	return ""
}

// learn keeps the versions the client saw, for later If-Match and min_seq.
func (cl *client) learn(o *op) {
	switch {
	case o.Kind.isWrite() && o.Out == outOK:
		cl.versions[o.Key] = o.Version
		cl.written = max(cl.written, o.Version)
	case !o.Kind.isWrite() && o.Out == outOK:
		cl.versions[o.Key] = o.Version
	case !o.Kind.isWrite() && o.Out == outNotFound:
		delete(cl.versions, o.Key)
	}
}

// errorAnswer is the JSON of an error answer.
type errorAnswer struct {
	Code string `json:"code"`
}

// writeAnswer is the JSON of a successful write.
type writeAnswer struct {
	Key     string `json:"key"`
	Version uint64 `json:"version"`
}

func (cl *client) write(n *node, o *op) {
	method, body := http.MethodPut, io.Reader(strings.NewReader(o.Value))
	if o.Kind == kDelete {
		method, body = http.MethodDelete, nil
	}
	req, err := http.NewRequest(method, n.url+"/v1/kv/"+o.Key, body)
	if err != nil {
		panic(err)
	}
	if o.Kind == kCAS {
		req.Header.Set("If-Match", `"`+strconv.FormatUint(o.IfMatch, 10)+`"`)
	}
	resp, data, err := cl.do(req)
	if err != nil {
		o.Out, o.Err = outUnknown, err.Error()
		return
	}
	o.Status, o.Seq = resp.StatusCode, headerSeq(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		var a writeAnswer
		if err := json.Unmarshal(data, &a); err != nil || a.Version == 0 {
			o.Out, o.Err = outUnknown, fmt.Sprintf("bad write answer %q", data)
			return
		}
		o.Out, o.Version = outOK, a.Version
		return
	case http.StatusNotFound:
		if o.Kind == kDelete {
			o.Out = outNotFound
			return
		}
	case http.StatusPreconditionFailed:
		o.Out = outPrecond
		return
	}
	var e errorAnswer
	_ = json.Unmarshal(data, &e)
	o.Code = e.Code
	if resp.StatusCode == http.StatusServiceUnavailable && e.Code == "unavailable" {
		o.Out = outFailed
		return
	}
	o.Out = outUnknown
}

func (cl *client) read(n *node, o *op) {
	u := n.url + "/v1/kv/" + o.Key
	switch o.Kind {
	case kGetStrong:
		u += "?consistency=strong&timeout=" + readWait
	case kGetMinSeq:
		u += "?min_seq=" + strconv.FormatUint(o.MinSeq, 10) + "&timeout=" + readWait
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		panic(err)
	}
	resp, data, err := cl.do(req)
	if err != nil {
		o.Out, o.Err = outReadFailed, err.Error()
		return
	}
	o.Status, o.Seq = resp.StatusCode, headerSeq(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		v, err := parseETag(resp.Header.Get("ETag"))
		if err != nil {
			o.Out, o.Err = outReadFailed, err.Error()
			return
		}
		o.Out, o.Version, o.Got = outOK, v, string(data)
		return
	case http.StatusNotFound:
		o.Out = outNotFound
		return
	}
	var e errorAnswer
	_ = json.Unmarshal(data, &e)
	o.Code, o.Out = e.Code, outReadFailed
}

// do sends req and reads the whole answer.
func (cl *client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := cl.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, data, nil
}

func headerSeq(resp *http.Response) uint64 {
	s, _ := strconv.ParseUint(resp.Header.Get("Replikv-Seq"), 10, 64)
	return s
}

func parseETag(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.Trim(s, `"`), 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("bad ETag %q", s)
	}
	return v, nil
}
