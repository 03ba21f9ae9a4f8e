package node

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/store"
)

// storeHolder owns the node's open store. A follower swaps it when it re-bootstraps from a snapshot. Each open
// store carries a count of open views, and a swapped-out store is closed only once its last view is closed.
type storeHolder struct {
	mu  sync.RWMutex
	cur *dbRef
}

type dbRef struct {
	db    *store.DB
	views sync.WaitGroup
}

// get returns the open store or nil.
func (h *storeHolder) get() *store.DB {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return nil
	}
	return h.cur.db
}

// view opens a point-in-time view of the current store, or api.ErrUnavailable when none is open.
func (h *storeHolder) view(_ context.Context) (api.View, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return nil, fmt.Errorf("node: no store open (restoring): %w", api.ErrUnavailable)
	}
	v, err := h.cur.db.View()
	if err != nil {
		return nil, fmt.Errorf("node: open view: %w", err)
	}
	h.cur.views.Add(1)
	return &heldView{View: v, done: h.cur.views.Done}, nil
}

// swap replaces the store (nil closes it), waiting until every open view of the old one is closed.
func (h *storeHolder) swap(db *store.DB) error {
	var next *dbRef
	if db != nil {
		next = &dbRef{db: db}
	}
	h.mu.Lock()
	old := h.cur
	h.cur = next
	h.mu.Unlock()
	if old == nil {
		return nil
	}
	old.views.Wait()
	if err := old.db.Close(); err != nil {
		return fmt.Errorf("node: close store: %w", err)
	}
	return nil
}

// heldView adapts *store.View to api.View and tells the holder when it is closed.
type heldView struct {
	*store.View
	once sync.Once
	done func()
}

func (v *heldView) List(prefix, after []byte, limit int, values bool) ([]api.Item, []byte, error) {
	items, next, err := v.View.List(prefix, after, limit, values)
	if err != nil {
		return nil, nil, err
	}
	out := make([]api.Item, len(items))
	for i, it := range items {
		out[i] = api.Item{Key: it.Key, Version: it.Version, Value: it.Value}
	}
	return out, next, nil
}

func (v *heldView) Get(key []byte) ([]byte, uint64, error) {
	val, ver, err := v.View.Get(key)
	if err != nil {
		return nil, 0, mapStoreErr(err)
	}
	return val, ver, nil
}

func (v *heldView) Close() error {
	err := v.View.Close()
	v.once.Do(v.done)
	return err
}

// mapStoreErr maps the store's not-found onto the apply sentinel the API understands.
func mapStoreErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w", apply.ErrNotFound)
	}
	return err
}
