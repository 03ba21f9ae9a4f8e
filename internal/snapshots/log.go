package snapshots

// Structured log field names used by this package.
const (
	logComponent = "component"
	logStore     = "store"
	logStream    = "stream"
	logSeq       = "seq"
	logKey       = "key"
	logPath      = "path"
	logBytes     = "bytes"
	logKeys      = "keys"
)
