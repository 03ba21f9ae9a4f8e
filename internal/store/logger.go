package store

import (
	"fmt"

	"go.uber.org/zap"
)

// pebbleLogger routes pebble's log lines into zap. Pebble's info lines are routine (WAL recovery, ingestion) and go
// to debug.
type pebbleLogger struct{ log *zap.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Core().Enabled(zap.DebugLevel) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }

// Fatalf is called by pebble on an unrecoverable invariant violation; pebble expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, zap.Bool("fatal", true))
	panic("store: pebble: " + msg)
}
