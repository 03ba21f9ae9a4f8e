package snapshots

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

const (
	// ManifestFormat is the only manifest and data format this build writes and reads.
	ManifestFormat = 1
	// maxManifestSize caps what DecodeManifest (and Repo, when downloading) accepts.
	maxManifestSize = 64 << 10
	manifestName    = "manifest.json"
	dataName        = "data"
	seqDigits       = 20
)

// Manifest is manifest.json: it describes one snapshot and is written after its data, so a snapshot exists exactly
// when a valid manifest does. Bytes and SHA256 describe the stored (compressed) data object; Digest and Keys are the
// state digest and live key count at Seq, as GET /v1/digest reports them.
type Manifest struct {
	// Format is ManifestFormat.
	Format int `json:"format"`
	// Stream is the JetStream stream the snapshot belongs to.
	Stream string `json:"stream"`
	// Seq is the last log sequence the snapshot contains (at least 1).
	Seq uint64 `json:"seq"`
	// Keys is the number of live keys.
	Keys uint64 `json:"keys"`
	// IdempotencyRecords is the number of idempotency records the data holds after its keys (see IdemSource). It is
	// omitted when 0: such a snapshot holds none.
	IdempotencyRecords uint64 `json:"idempotency_records,omitempty"`
	// Bytes is the size of the data object.
	Bytes int64 `json:"bytes"`
	// SHA256 is the lowercase hex SHA-256 of the data object.
	SHA256 string `json:"sha256"`
	// Digest is the lowercase hex state digest at Seq.
	Digest string `json:"digest"`
	// CreatedAt is when the leader finished writing the data (UTC).
	CreatedAt time.Time `json:"created_at"`
	// Leader is the id of the leader that created the snapshot.
	Leader string `json:"leader"`
	// EntryMark is the apply.EntryMark of the log entry at Seq, as 32 lowercase hex digits, or "" when the leader's
	// store did not know it. It tells a snapshot of another history of the log (one deleted and recreated since) from
	// a snapshot of this one. Optional: manifests written before it existed have none.
	EntryMark string `json:"entry_mark,omitempty"`
	// CheckpointSeq is the log sequence of the checkpoint result entry that vouches for Keys and Digest at Seq (an
	// apply.CheckpointResult for Seq, published by the leader before it wrote this manifest), or 0 when there is
	// none. It is a pointer, not a proof: a reader checks that the log's entry there says the same. Optional:
	// manifests written before it existed have none.
	CheckpointSeq uint64 `json:"checkpoint_seq,omitempty"`
}

// Mark returns the decoded EntryMark, and false when the manifest has none.
func (m Manifest) Mark() (apply.Mark, bool) {
	var mark apply.Mark
	if m.EntryMark == "" {
		return mark, false
	}
	if n, err := hex.Decode(mark[:], []byte(m.EntryMark)); err != nil || n != apply.MarkSize {
		return apply.Mark{}, false // validate refuses such a manifest
	}
	return mark, true
}

// DecodeManifest parses and checks manifest.json strictly: at most 64 KiB, one JSON object and nothing after it,
// format 1, a valid stream name, seq > 0, bytes > 0, keys and idempotency_records within what bytes can hold, 64
// lowercase hex digits for sha256 and digest, a created_at, and, when present, an entry_mark of 32 lowercase hex
// digits and a checkpoint_seq after seq.
// Unknown fields are ignored (they may be added without a format change). Any failure wraps ErrCorrupt.
func DecodeManifest(b []byte) (Manifest, error) {
	if len(b) > maxManifestSize {
		return Manifest{}, manifestCorrupt(fmt.Errorf("%d bytes, more than %d", len(b), maxManifestSize))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, manifestCorrupt(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, manifestCorrupt(errors.New("data after the JSON object"))
	}
	if err := m.validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// encode is the manifest.json body.
func (m Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshots: manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// MaxSnapshotBytes is the largest data object a manifest may describe (16 TiB): a larger claim is corrupt.
const MaxSnapshotBytes = 1 << 44

// maxKeysPerByte bounds the key count (and the idempotency record count) a manifest may claim for its data size:
// zstd compresses a run of tiny records far, but not beyond about a thousand records per byte.
const maxKeysPerByte = 1 << 12

// validate checks the fields and their ranges, so that nothing derived from them can overflow; the error wraps
// ErrCorrupt.
func (m Manifest) validate() error {
	var problem string
	switch {
	case m.Format != ManifestFormat:
		problem = fmt.Sprintf("format %d, want %d", m.Format, ManifestFormat)
	case validStream(m.Stream) != nil:
		problem = "invalid stream name"
	case m.Seq == 0:
		problem = "seq 0"
	case m.Bytes <= 0 || m.Bytes > MaxSnapshotBytes:
		problem = fmt.Sprintf("bytes %d, want 1 to %d", m.Bytes, int64(MaxSnapshotBytes))
	case m.Seq > math.MaxInt64:
		problem = fmt.Sprintf("seq %d beyond any log", m.Seq)
	case m.Keys > uint64(m.Bytes)*maxKeysPerByte:
		problem = fmt.Sprintf("keys %d in %d bytes", m.Keys, m.Bytes)
	case m.IdempotencyRecords > uint64(m.Bytes)*maxKeysPerByte:
		problem = fmt.Sprintf("idempotency_records %d in %d bytes", m.IdempotencyRecords, m.Bytes)
	case !isHex64(m.SHA256):
		problem = "sha256 is not 64 lowercase hex digits"
	case !isHex64(m.Digest):
		problem = "digest is not 64 lowercase hex digits"
	case m.CreatedAt.IsZero():
		problem = "created_at missing"
	case m.EntryMark != "" && !isHex(m.EntryMark, 2*apply.MarkSize):
		problem = fmt.Sprintf("entry_mark is not %d lowercase hex digits", 2*apply.MarkSize)
	case m.CheckpointSeq != 0 && (m.CheckpointSeq <= m.Seq || m.CheckpointSeq > math.MaxInt64):
		problem = fmt.Sprintf("checkpoint_seq %d, want after seq %d", m.CheckpointSeq, m.Seq)
	default:
		return nil
	}
	return manifestCorrupt(errors.New(problem))
}

func manifestCorrupt(err error) error {
	return fmt.Errorf("snapshots: manifest: %w: %w", ErrCorrupt, err)
}

// isHex64 reports whether s is a lowercase hex SHA-256.
func isHex64(s string) bool { return isHex(s, 64) }

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validStream checks a stream name can be one key segment.
func validStream(stream string) error {
	if strings.Contains(stream, "/") {
		return fmt.Errorf("%w: stream %q contains '/'", ErrInvalidKey, stream)
	}
	return ValidKey(stream)
}

// snapshotDir is "<stream>/<seq as 20 digits>".
func snapshotDir(stream string, seq uint64) string {
	return fmt.Sprintf("%s/%0*d", stream, seqDigits, seq)
}

func dataKey(stream string, seq uint64) string { return snapshotDir(stream, seq) + "/" + dataName }
func manifestKey(stream string, seq uint64) string {
	return snapshotDir(stream, seq) + "/" + manifestName
}

// parseKey splits "<stream>/<20 digits>/<name>" into seq and name; ok is false for any other key.
func parseKey(stream, key string) (seq uint64, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, stream+"/")
	if !ok {
		return 0, "", false
	}
	digits, name, ok := strings.Cut(rest, "/")
	if !ok || len(digits) != seqDigits || name == "" || strings.Contains(name, "/") {
		return 0, "", false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, "", false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, "", false
	}
	return seq, name, true
}
