package snapshots

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.uber.org/zap"
)

// Repo manages the snapshots of one stream in a Store: Create (leader), List, Restore (followers) and Prune
// (leader). Its methods are safe for concurrent use; they coordinate only through the store's layout (the manifest is
// written last and deleted first), so a Restore racing a Prune fails cleanly with ErrNotFound.
type Repo struct {
	store  Store
	stream string
	log    *zap.Logger
	// createCPU is the share of one core Create's encoder may use (see WithCreateCPU); outside (0, 1) unpaced.
	createCPU float64
	// zstd keeps Create's compressor between snapshots; copies made by WithCreateCPU share it.
	zstd *zstdCache
}

// NewRepo returns the repo of stream in store. A stream name that cannot be a key segment makes every method fail
// with ErrInvalidKey. log may be nil.
func NewRepo(store Store, stream string, log *zap.Logger) *Repo {
	if log == nil {
		log = zap.NewNop()
	}
	return &Repo{
		store:  store,
		stream: stream,
		log:    log.With(zap.String(logStream, stream)),
		zstd:   &zstdCache{},
	}
}

// WithCreateCPU returns a copy of r whose Create keeps the snapshot encoder (reading the view, encoding, zstd and
// SHA-256) to about share of one core by pausing between short slices of work, so that a snapshot on a busy leader
// leaves the write path its CPU; it also compresses on the encoding goroutine instead of two. share >= 1 or <= 0
// means unpaced: as fast as the store takes the data, with zstd on two goroutines.
func (r *Repo) WithCreateCPU(share float64) *Repo {
	c := *r
	c.createCPU = share
	return &c
}

// List returns valid manifests, newest (highest seq) first. Directories without a manifest or with an invalid one are
// skipped (invalid ones are logged at warn). A manifest deleted between listing and reading is skipped too. A missing
// store root is ErrNotFound; a root without snapshots is an empty list.
func (r *Repo) List(ctx context.Context) ([]Manifest, error) {
	out, _, err := r.ListCounted(ctx)
	return out, err
}

// ListCounted is List that also counts the manifests it skipped because they are not valid (unreadable,
// malformed, out of range, or of another stream), so that a caller finding no valid snapshot can say why.
func (r *Repo) ListCounted(ctx context.Context) (valid []Manifest, invalid int, err error) {
	snaps, err := r.scan(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range snaps {
		switch {
		case s.valid:
			valid = append(valid, s.manifest)
		case s.hasManifest:
			invalid++
		}
	}
	return valid, invalid, nil
}

// snapshotEntry is one "<stream>/<seq>/" directory found in the store.
type snapshotEntry struct {
	seq         uint64
	keys        []string // every object in the directory, ascending
	hasManifest bool
	valid       bool
	manifest    Manifest // when valid
}

// scan lists the stream's directories, newest first, and reads every manifest.
func (r *Repo) scan(ctx context.Context) ([]*snapshotEntry, error) {
	if err := validStream(r.stream); err != nil {
		return nil, fmt.Errorf("snapshots: list: %w", err)
	}
	keys, err := r.store.List(ctx, r.stream+"/")
	if err != nil {
		return nil, fmt.Errorf("snapshots: list: %w", err)
	}
	bySeq := map[uint64]*snapshotEntry{}
	var snaps []*snapshotEntry
	for _, key := range keys {
		seq, name, ok := parseKey(r.stream, key)
		if !ok {
			continue
		}
		s := bySeq[seq]
		if s == nil {
			s = &snapshotEntry{seq: seq}
			bySeq[seq] = s
			snaps = append(snaps, s)
		}
		s.keys = append(s.keys, key)
		s.hasManifest = s.hasManifest || name == manifestName
	}
	slices.SortFunc(snaps, func(a, b *snapshotEntry) int { return cmp.Compare(b.seq, a.seq) })
	for _, s := range snaps {
		if !s.hasManifest {
			continue
		}
		m, err := r.readManifest(ctx, s.seq)
		switch {
		case errors.Is(err, ErrNotFound):
			s.hasManifest = false // deleted since List (retention)
		case errors.Is(err, ErrCorrupt):
			r.log.Warn("skipping invalid snapshot manifest", zap.Uint64(logSeq, s.seq), zap.Error(err))
		case err != nil:
			return nil, fmt.Errorf("snapshots: list: %w", err)
		default:
			s.valid, s.manifest = true, m
		}
	}
	return snaps, nil
}

// readManifest fetches and checks the manifest of seq; it must describe this stream and seq.
func (r *Repo) readManifest(ctx context.Context, seq uint64) (Manifest, error) {
	key := manifestKey(r.stream, seq)
	rc, err := r.store.Get(ctx, key)
	if err != nil {
		return Manifest{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("snapshots: read %s: %w", key, err)
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return Manifest{}, fmt.Errorf("snapshots: read %s: %w", key, err)
	}
	if m.Stream != r.stream || m.Seq != seq {
		return Manifest{}, fmt.Errorf("snapshots: read %s: %w: describes stream %q seq %d", key, ErrCorrupt, m.Stream, m.Seq)
	}
	return m, nil
}

// Prune keeps the newest keep snapshots (keep < 2 is treated as 2) and deletes the rest, each manifest first and
// then its data. It also deletes the objects of directories without a valid manifest whose seq is below the oldest
// kept snapshot; newer ones are left alone (an upload may be in progress). It returns the deleted manifests, newest
// first. On error, what was deleted so far stays deleted and the result lists it.
//
// ours, when not nil, tells the snapshots of the caller's log from others left in the store (by a history of the log
// that was deleted and recreated since): only ours count towards keep, and the others are never deleted (whoever
// left them decides), so that they cannot push the caller's own snapshots out.
func (r *Repo) Prune(ctx context.Context, keep int, ours func(Manifest) bool) ([]Manifest, error) {
	keep = max(keep, 2)
	snaps, err := r.scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshots: prune: %w", err)
	}
	var (
		deleted []Manifest
		kept    int
		oldest  uint64 // seq of the oldest kept snapshot; 0 = none kept
		foreign = map[uint64]bool{}
	)
	for _, s := range snaps {
		if !s.valid {
			continue
		}
		if ours != nil && !ours(s.manifest) {
			foreign[s.seq] = true
			continue
		}
		if kept < keep {
			kept++
			oldest = s.seq
		}
	}
	for _, s := range snaps {
		if s.seq >= oldest || foreign[s.seq] { // kept, newer than the oldest kept, or not ours
			continue
		}
		if err := r.deleteSnapshot(ctx, s); err != nil {
			return deleted, fmt.Errorf("snapshots: prune: %w", err)
		}
		if s.valid {
			deleted = append(deleted, s.manifest)
			r.log.Info("pruned snapshot", zap.Uint64(logSeq, s.seq))
		} else {
			r.log.Info("pruned orphan snapshot objects", zap.Uint64(logSeq, s.seq), zap.Int("objects", len(s.keys)))
		}
	}
	return deleted, nil
}

// deleteSnapshot removes the manifest first (the snapshot stops existing), then every other object.
func (r *Repo) deleteSnapshot(ctx context.Context, s *snapshotEntry) error {
	mkey := manifestKey(r.stream, s.seq)
	if s.hasManifest {
		if err := r.store.Delete(ctx, mkey); err != nil {
			return err
		}
	}
	for _, key := range s.keys {
		if key == mkey {
			continue
		}
		if err := r.store.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
