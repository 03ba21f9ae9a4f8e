package snapshots

// Structured log field names used by this package. The caller names the component (log.With("component", ...)).
const (
	logStore  = "store"
	logStream = "stream"
	logSeq    = "seq"
	logPath   = "path"
	logBytes  = "bytes"
	logKeys   = "keys"
	logKey    = "key"
)
