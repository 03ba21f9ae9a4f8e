package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

const (
	// pullBatch is how many messages one pull request asks for. The server delivers a pull in one go, and in the
	// meantime the stream's publishes wait: 4,096 made the leader's write p99 while followers caught up 36x idle,
	// 64 about 3-7x (BenchmarkPublishP99_CatchUpReaders). The client pulls again at half, so reads still stream.
	pullBatch = 64
	// defaultSubBuffer is the channel capacity when Subscribe gets buffer <= 0.
	defaultSubBuffer = 4096
	// consumerInactive is how long the server keeps an abandoned ordered consumer; consumerDeleteTimeout bounds the
	// deletion of a stopped one.
	consumerInactive      = time.Minute
	consumerDeleteTimeout = 2 * time.Second
	// Reopen backoff after the ordered consumer failed to recover by itself.
	reopenMinBackoff = 100 * time.Millisecond
	reopenMaxBackoff = 5 * time.Second
	// checkStreamTimeout bounds the check of the stream read after its consumer was recreated.
	checkStreamTimeout = 5 * time.Second
)

// Msg is one log entry as read from the stream.
type Msg struct {
	// Seq is the entry's stream sequence.
	Seq uint64
	// Data is the entry's payload. It is a fresh buffer per message, owned by the receiver: the journal never reuses
	// or modifies it, so it may be kept (no copy needed).
	Data []byte
	// Pending is how many entries the stream held after this one when it was delivered (the consumer's NumPending).
	Pending uint64
	// ID is the entry's message id (Nats-Msg-Id), "" when it was published without one.
	ID string
	// Stored is when the log's server stored the entry (its clock, not this host's): the leader's publish was
	// acknowledged right after.
	Stored time.Time
}

// Subscription reads the log with an ordered consumer. Messages arrive on C in stream order; C is closed after Stop,
// after the Conn closed, or after a fatal error (see Err). Transient outages do not close C: the consumer is
// recreated from the sequence after the last delivered one.
type Subscription struct {
	c      *Conn
	ch     chan Msg
	ctx    context.Context // cancelled by stop; bounds consumer (re)creation
	cancel context.CancelFunc
	quit   chan struct{}
	done   chan struct{}
	ended  chan struct{} // closed once err is final, before ch is closed
	once   sync.Once

	pacer   Pacer     // nil: unpaced
	stream  string    // the stream read: the log, or its catch-up mirror
	created time.Time // when that stream was created, as Subscribe found it: tells a recreated one apart

	mu   sync.Mutex
	it   jetstream.MessagesContext // current iterator; replaced on reopen
	cons jetstream.Consumer        // its ordered consumer
	why  error                     // the reason passed to stop

	err error // written by run before close(ch); read after done
}

// Pacer paces a subscription's reads. Wait is called on the subscription's goroutine before each entry is handed
// to C, with its sequence and Msg.Pending; it may block, and must return (with ctx's error) once ctx is done. While
// it blocks the subscription stops pulling from the server once its small prefetch is full, so pacing slows the
// server's reads too.
type Pacer interface {
	Wait(ctx context.Context, seq, pending uint64) error
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*Subscription)

// WithPacer paces the subscription's reads with p (see Pacer).
func WithPacer(p Pacer) SubscribeOption {
	return func(s *Subscription) { s.pacer = p }
}

// FromCatchUpMirror reads the log's catch-up mirror (see EnsureCatchUpMirror) instead of the log. The mirror keeps
// the log's sequence numbers, but it lags behind the log and may start later: the caller checks the first delivered
// Msg.Seq, and switches to the log itself to follow its tail. Errors: ErrNoStream when there is no mirror,
// ErrStreamConfig when a stream of the mirror's name is not a mirror of the log (another log named like it, whose
// entries must never be applied as this log's).
func FromCatchUpMirror() SubscribeOption {
	return func(s *Subscription) { s.stream = mirrorName(s.c.stream) }
}

// Subscribe starts reading the log at startSeq (0 is read as 1) with an ordered consumer, delivering on a channel of
// capacity buffer (<= 0 means 4096). If startSeq was purged the server silently starts at the first entry still
// present: the journal does not hide that, the caller must check Msg.Seq. ctx bounds the creation of the consumer
// only; the subscription lives until Stop or Conn.Close. Errors: ErrNoStream, ErrUnavailable, ErrClosed.
func (c *Conn) Subscribe(ctx context.Context, startSeq uint64, buffer int, opts ...SubscribeOption) (*Subscription, error) {
	if startSeq == 0 {
		startSeq = 1
	}
	if buffer <= 0 {
		buffer = defaultSubBuffer
	}
	if c.isClosed() {
		return nil, fmt.Errorf("journal: subscribe: %w", ErrClosed)
	}
	s := &Subscription{
		c:      c,
		ch:     make(chan Msg, buffer),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		ended:  make(chan struct{}),
		stream: c.stream,
	}
	for _, o := range opts {
		o(s)
	}
	info, err := c.streamToRead(ctx, s.stream)
	if err != nil {
		return nil, err
	}
	s.created = info.Created
	it, cons, err := c.openIterator(ctx, s.stream, startSeq)
	if err != nil {
		return nil, wrapErr("subscribe", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.it, s.cons = it, cons
	if err := c.track(s); err != nil {
		s.cancel()
		it.Stop()
		return nil, fmt.Errorf("journal: subscribe: %w", err)
	}
	go s.run(it, startSeq, consumerName(cons))
	return s, nil
}

// streamToRead returns the info of the stream a subscription reads: the log, or its catch-up mirror, which is read
// as the mirror only when it is a mirror of this log (another log named like it must never be applied as this
// one's). Errors: ErrNoStream, ErrStreamConfig, ErrUnavailable, ErrClosed.
func (c *Conn) streamToRead(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	stream, err := c.jetStream().Stream(ctx, name)
	if err != nil {
		return nil, wrapErr("subscribe", err)
	}
	info := stream.CachedInfo()
	if name != c.stream && !isMirrorOf(info.Config, c.stream) {
		return nil, fmt.Errorf("journal: subscribe: %w: stream %s is not a mirror of %s", ErrStreamConfig, name, c.stream)
	}
	return info, nil
}

// openIterator creates an ordered consumer starting at start and its message iterator. The consumer tries to
// recover from a missed heartbeat or a reconnect once by itself; when that fails its Next returns the error and run
// takes over with backoff, so that Stop is never stuck behind the library's own retry loop.
func (c *Conn) openIterator(ctx context.Context, stream string, start uint64) (jetstream.MessagesContext, jetstream.Consumer, error) {
	cons, err := c.jetStream().OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		MaxResetAttempts:  1,
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return nil, nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pullBatch))
	if err != nil {
		return nil, nil, err
	}
	return it, cons, nil
}

// consumerName is the name of an ordered consumer's current server-side consumer, or "" if it has none yet.
func consumerName(cons jetstream.Consumer) string {
	if info := cons.CachedInfo(); info != nil {
		return info.Name
	}
	return ""
}

// C returns the channel of log entries, in stream order. It is closed after Stop, Conn.Close or a fatal error.
func (s *Subscription) C() <-chan Msg { return s.ch }

// Err returns why C was closed: nil after Stop, ErrClosed after Conn.Close, ErrNoStream when the stream was deleted
// (also when it was then recreated: see checkStream), ErrStreamConfig when a stream that is not a mirror of the log
// replaced the catch-up mirror read (see FromCatchUpMirror). It returns nil while C is open.
func (s *Subscription) Err() error {
	select {
	case <-s.ended:
		return s.err
	default:
		return nil
	}
}

// Stop stops the subscription and waits for its goroutine; C is closed when it returns. It then deletes the
// consumer on the server (waiting at most 2 s for that). Idempotent and safe for concurrent use.
func (s *Subscription) Stop() {
	s.stopWith(nil)
	s.c.untrack(s)
}

// stop is called by Conn.Close.
func (s *Subscription) stop() { s.stopWith(fmt.Errorf("journal: subscription: %w", ErrClosed)) }

func (s *Subscription) stopWith(why error) {
	first := false
	s.once.Do(func() {
		first = true
		s.mu.Lock()
		s.why = why
		close(s.quit)
		it := s.it
		s.mu.Unlock()
		s.cancel()
		it.Stop()
	})
	<-s.done
	if first && why == nil {
		s.deleteConsumer()
	}
}

// deleteConsumer removes the subscription's consumer from the server after a Stop instead of leaving it to expire
// (consumerInactive). Failing to is harmless: the server still drops it then.
func (s *Subscription) deleteConsumer() {
	s.mu.Lock()
	cons := s.cons
	s.mu.Unlock()
	if cons == nil || !s.c.conn().IsConnected() { // cut off: do not hold Stop up for nothing
		return
	}
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumerDeleteTimeout)
	defer cancel()
	if err := s.c.jetStream().DeleteConsumer(ctx, s.stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.c.log.Debug("could not delete a stopped subscription's consumer; the server drops it when inactive",
			zap.String("consumer", info.Name), zap.Error(err))
	}
}

// run is the subscription's only goroutine: it moves messages from the iterator to ch and reopens the consumer
// after failures. consumer is the name of the server-side consumer Subscribe created ("" if unknown: its first
// message is then taken as from that one); a message from any other was read by a recreated one.
func (s *Subscription) run(it jetstream.MessagesContext, next uint64, consumer string) {
	defer close(s.done)
	defer close(s.ch)
	defer s.cancel()
	defer close(s.ended) // first: a receiver that saw ch closed must find err final
	for {
		m, err := it.Next()
		if err == nil {
			r, ok := parseAckReply(m.Reply())
			switch {
			case !ok:
				// Cannot happen with a JetStream consumer; do not guess a sequence, start over instead.
				err = fmt.Errorf("%w: delivery reply subject %q", ErrMalformed, m.Reply())
			case r.consumer != consumer && consumer != "":
				// The consumer was recreated: by reopen, or by the library itself after a reconnect, a missed
				// heartbeat or a deleted consumer. It reads whatever stream now has the name.
				if err = s.checkStream(s.ctx); err != nil {
					break
				}
				fallthrough
			default:
				consumer = r.consumer
				if s.pacer != nil {
					if perr := s.pacer.Wait(s.ctx, r.seq, r.pending); perr != nil {
						// Only a stop ends the wait early (s.ctx is cancelled by stop).
						s.finish(it)
						return
					}
				}
				select {
				case s.ch <- Msg{Seq: r.seq, Data: m.Data(), Pending: r.pending, ID: m.Headers().Get(jetstream.MsgIDHeader),
					Stored: time.Unix(0, r.stored)}:
					next = r.seq + 1
					continue
				case <-s.quit:
					s.finish(it)
					return
				}
			}
		}
		it.Stop()
		if s.stopping() {
			s.finish(nil)
			return
		}
		if fatal := s.fatalErr(err); fatal != nil {
			s.err = fatal
			s.c.log.Error("log subscription failed", zap.Error(err))
			return
		}
		s.c.log.Warn("log subscription interrupted, reopening", zap.Uint64(fieldSeq, next), zap.Error(err))
		if it = s.reopen(next); it == nil {
			return
		}
	}
}

// checkStream checks, before the first message of a recreated consumer is handed on, that the stream read is still
// the one Subscribe started on. A stream deleted and recreated under the same name (its creation time differs)
// numbers its entries from 1 again and holds another history: reading on from the next sequence would splice the two,
// so the subscription ends with ErrNoStream, as it does when the stream is gone. A subscription of the catch-up mirror
// must also not go on reading a stream that replaced the mirror under its name (ErrStreamConfig). When the check
// cannot be made, the error is transient: the consumer is reopened and the check made again.
func (s *Subscription) checkStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkStreamTimeout)
	defer cancel()
	info, err := s.c.streamToRead(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("recheck after the consumer was recreated: %w", err)
	}
	if created := info.Created; !created.Equal(s.created) {
		return fmt.Errorf("%w: stream %s was deleted and recreated (created %s, subscribed to the one created %s)",
			ErrNoStream, s.stream, created.Format(time.RFC3339Nano), s.created.Format(time.RFC3339Nano))
	}
	return nil
}

// finish records why the subscription stopped and stops it if not nil.
func (s *Subscription) finish(it jetstream.MessagesContext) {
	if it != nil {
		it.Stop()
	}
	s.mu.Lock()
	s.err = s.why
	s.mu.Unlock()
}

func (s *Subscription) stopping() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// fatalErr returns the error that ends the subscription, or nil when reopening may help. A closed connection ends
// it only when the Conn was closed: one that nats.go closed by itself is replaced (see Conn.redial), and the
// consumer is then reopened on the new one.
func (s *Subscription) fatalErr(err error) error {
	closed := classify(err) == ErrClosed || errors.Is(err, jetstream.ErrConnectionClosed)
	switch {
	case closed && s.c.isClosed():
		return fmt.Errorf("journal: subscription: %w: %w", ErrClosed, err)
	case closed:
		return nil
	case classify(err) == ErrNoStream:
		return fmt.Errorf("journal: subscription: %w: %w", ErrNoStream, err)
	case errors.Is(err, ErrStreamConfig) || errors.Is(err, ErrNoStream):
		return fmt.Errorf("journal: subscription: %w", err)
	}
	return nil
}

// rebind stops the current iterator, which lives on a connection the Conn replaced (see Conn.redial): run then
// reopens the consumer, on the new connection, after the last entry it delivered.
func (s *Subscription) rebind() {
	s.mu.Lock()
	it := s.it
	s.mu.Unlock()
	it.Stop()
}

// reopen recreates the ordered consumer at next with capped exponential backoff. It returns nil when the
// subscription is stopping or failed (s.err set).
func (s *Subscription) reopen(next uint64) jetstream.MessagesContext {
	backoff := reopenMinBackoff
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	for {
		select {
		case <-s.quit:
			s.finish(nil)
			return nil
		case <-timer.C:
		}
		it, cons, err := s.c.openIterator(s.ctx, s.stream, next)
		if err == nil {
			s.mu.Lock()
			if s.stopping() {
				s.mu.Unlock()
				s.finish(it)
				return nil
			}
			s.it, s.cons = it, cons
			s.mu.Unlock()
			return it
		}
		if s.stopping() {
			s.finish(nil)
			return nil
		}
		if fatal := s.fatalErr(err); fatal != nil {
			s.err = fatal
			s.c.log.Error("log subscription failed", zap.Error(err))
			return nil
		}
		s.c.log.Debug("reopening log subscription failed", zap.Uint64(fieldSeq, next), zap.Error(err))
		backoff = min(2*backoff, reopenMaxBackoff)
		timer.Reset(backoff)
	}
}
