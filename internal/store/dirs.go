package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// StoreDir returns the live store's directory inside dataDir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "store") }

// RestoreDir returns the directory a restore is loaded into inside dataDir.
func RestoreDir(dataDir string) string { return filepath.Join(dataDir, "restore") }

// oldDir is where Install moves the previous store while it swaps the new one in.
func oldDir(dataDir string) string { return filepath.Join(dataDir, "store.old") }

// CleanStale removes a leftover <dataDir>/restore (a crash mid-restore or before Install) and <dataDir>/store.old (a
// crash mid-Install), so a half-loaded store can never be opened. Call it before Open at start-up, never while a
// Loader runs. A missing dataDir is fine.
func CleanStale(dataDir string) error {
	for _, dir := range []string{RestoreDir(dataDir), oldDir(dataDir)} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("store: clean stale: %w", err)
		}
	}
	return nil
}

// Install atomically replaces <dataDir>/store with the finished <dataDir>/restore: it renames store to store.old (if
// any), renames restore to store, fsyncs dataDir and removes store.old. The caller has closed any DB open on store.
// A crash at any point leaves the old store, the new one, or no store (CleanStale then removes the leftovers), never
// a partial one. A missing restore directory returns an error wrapping os.ErrNotExist.
func Install(dataDir string) error {
	store, restore, old := StoreDir(dataDir), RestoreDir(dataDir), oldDir(dataDir)
	if _, err := os.Stat(restore); err != nil {
		return fmt.Errorf("store: install: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("store: install: %w", err)
	}
	hadOld := true
	if err := os.Rename(store, old); errors.Is(err, os.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return fmt.Errorf("store: install: %w", err)
	}
	if err := os.Rename(restore, store); err != nil {
		if hadOld {
			_ = os.Rename(old, store) // best effort: put the old store back
		}
		return fmt.Errorf("store: install: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return fmt.Errorf("store: install: %w", err)
	}
	if hadOld {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("store: install: remove old store: %w", err)
		}
	}
	return nil
}

// syncDir fsyncs a directory so that renames and new entries in it survive a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
