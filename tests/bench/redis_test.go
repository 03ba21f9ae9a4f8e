//go:build bench

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/testutil/freeport"
)

// errRedis marks an error reply of Redis.
var errRedis = errors.New("redis error reply")

// redisServer is one redis-server process on a loopback port, without persistence (--save ” --appendonly no) and
// with diskless sync starting at once (--repl-diskless-sync-delay 0).
type redisServer struct {
	proc *proc
	addr string
	port int
}

// startRedis starts redis-server in dir and waits until it answers PING. A missing redis-server fails the benchmark
// (scripts/bench.sh installs it).
func startRedis(b testing.TB, dir, name string) *redisServer {
	b.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		b.Fatalf("redis-server not found (apt-get install -y redis-server, or run scripts/bench.sh): %v", err)
	}
	port := freeport.Must(b)
	p := startProc(b, dir, name, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", dir, "--daemonize", "no")
	r := &redisServer{proc: p, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port}
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := dialRedis(b.Context(), r.addr)
		if err == nil {
			_, err = c.do("PING")
			c.close()
			if err == nil {
				return r
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s does not answer: %v\n%s", name, err, tailFile(p.logPath, 20))
		}
		if err := ctxtime.Sleep(b.Context(), 20*time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
}

// redisConn is a RESP connection written by hand (no Redis client module). It is owned by one goroutine.
type redisConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

func dialRedis(ctx context.Context, addr string) (*redisConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: redis dial: %w", err)
	}
	return &redisConn{conn: c, br: bufio.NewReaderSize(c, 64<<10), bw: bufio.NewWriterSize(c, 64<<10)}, nil
}

func (c *redisConn) close() { _ = c.conn.Close() }

// send buffers one command as a RESP array of bulk strings.
func (c *redisConn) send(args ...[]byte) {
	c.bw.WriteByte('*')
	c.bw.WriteString(strconv.Itoa(len(args)))
	c.bw.WriteString("\r\n")
	for _, a := range args {
		c.bw.WriteByte('$')
		c.bw.WriteString(strconv.Itoa(len(a)))
		c.bw.WriteString("\r\n")
		c.bw.Write(a)
		c.bw.WriteString("\r\n")
	}
}

// do sends one command and reads its reply.
func (c *redisConn) do(args ...string) (string, error) {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c.send(bs...)
	if err := c.bw.Flush(); err != nil {
		return "", fmt.Errorf("bench: redis %s: %w", args[0], err)
	}
	r, err := c.reply()
	if err != nil {
		return "", fmt.Errorf("bench: redis %s: %w", args[0], err)
	}
	return r, nil
}

// reply reads one reply; simple strings, integers and bulk strings come back as text, errors as errRedis.
func (c *redisConn) reply() (string, error) {
	line, err := c.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%w: %s", errRedis, line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// loadRedis SETs n keys with random values of valueSize bytes over one connection, pipelined in batches of 1000
// commands.
func loadRedis(ctx context.Context, addr string, n int, key func(int) string, valueSize int) error {
	c, err := dialRedis(ctx, addr)
	if err != nil {
		return err
	}
	defer c.close()
	const batch = 1000
	set := []byte("SET")
	vals := newValues(7, valueSize)
	for i := 0; i < n; i += batch {
		end := min(i+batch, n)
		for j := i; j < end; j++ {
			c.send(set, []byte(key(j)), vals.next())
		}
		if err := c.bw.Flush(); err != nil {
			return fmt.Errorf("bench: redis load: %w", err)
		}
		for j := i; j < end; j++ {
			if _, err := c.reply(); err != nil {
				return fmt.Errorf("bench: redis load: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// redisInfo returns the key:value lines of INFO section.
func redisInfo(c *redisConn, section string) (map[string]string, error) {
	s, err := c.do("INFO", section)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// redisFullSync sends REPLICAOF master to a fresh replica and returns the time until INFO replication on the replica
// shows master_link_status:up and master_sync_in_progress:0 (polled every 5 ms), after checking it holds at least
// minKeys keys.
func redisFullSync(ctx context.Context, replica, master *redisServer, minKeys int) (time.Duration, error) {
	c, err := dialRedis(ctx, replica.addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	start := time.Now()
	if _, err := c.do("REPLICAOF", "127.0.0.1", strconv.Itoa(master.port)); err != nil {
		return 0, err
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := redisInfo(c, "replication")
		if err != nil {
			return 0, err
		}
		if info["master_link_status"] == "up" && info["master_sync_in_progress"] == "0" {
			elapsed := time.Since(start)
			n, err := c.do("DBSIZE")
			if err != nil {
				return 0, err
			}
			if k, _ := strconv.Atoi(n); k < minKeys {
				return 0, fmt.Errorf("bench: redis replica holds %s keys after sync, want >= %d", n, minKeys)
			}
			return elapsed, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// redisWriter writes to Redis with SET, one command at a time.
type redisWriter struct{ c *redisConn }

func (w redisWriter) write(key string, value []byte) error {
	w.c.send([]byte("SET"), []byte(key), value)
	if err := w.c.bw.Flush(); err != nil {
		return err
	}
	_, err := w.c.reply()
	return err
}

func (w redisWriter) serverTiming() time.Duration { return 0 } // Redis does not say
func (w redisWriter) close()                      { w.c.close() }
