//go:build !linux

package snapshots

import (
	"errors"
	"os"
)

// startWriteback is only implemented on Linux; elsewhere the fsync at the end writes everything.
func startWriteback(*os.File, int64, int64) error { return errors.ErrUnsupported }
