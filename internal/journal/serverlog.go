package journal

import (
	"fmt"

	"go.uber.org/zap"
)

// serverLogger adapts a zap logger to nats-server's Logger interface. Fatalf never exits the process: it logs at
// error level and reports the first fatal message on fatal, so StartEmbedded can fail instead of hanging.
type serverLogger struct {
	log   *zap.SugaredLogger
	fatal chan string // buffered 1; only the first fatal message is kept
	// writeFailed, when not nil, is called with every error message that says a store failed a write. It must not
	// block.
	writeFailed func(msg string)
}

// plaintextPasswordsWarning is the format of the warning nats-server logs at start when its users' passwords are not
// bcrypt hashes.
const plaintextPasswordsWarning = "Plaintext passwords detected, use nkeys or bcrypt"

func newServerLogger(log *zap.Logger) *serverLogger {
	return &serverLogger{log: log.Sugar(), fatal: make(chan string, 1)}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Infof(format, v...) }
func (l *serverLogger) Warnf(format string, v ...any) {
	if format == plaintextPasswordsWarning {
		// The embedded server's users are the leader's own flags, held in its memory only: there is no file to
		// hash them in, and bcrypt would cost every connection's login a hash.
		l.log.Debugf(format, v...)
		return
	}
	l.log.Warnf(format, v...)
}
func (l *serverLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	if l.writeFailed != nil && isWriteFailure(msg) {
		l.writeFailed(msg)
	}
}
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debugf(format, v...) }
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Debugf(format, v...) }

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
