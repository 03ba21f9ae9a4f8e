package apply

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

const (
	// MaxKeyLen is the longest key in bytes (the contract's limit).
	MaxKeyLen = 1024
	// MaxValueLen is the longest value in bytes (the contract's limit, 512 KiB).
	MaxValueLen = 524288
)

// ValidateKey reports whether k is a legal key: 1 to MaxKeyLen bytes, valid UTF-8, no NUL byte. The error wraps
// ErrInvalidKey and names the reason (never the key itself).
func ValidateKey(k []byte) error {
	if reason := keyProblem(k); reason != "" {
		return fmt.Errorf("apply: %w: %s", ErrInvalidKey, reason)
	}
	return nil
}

// keyProblem returns why k is not a legal key, or "" when it is.
func keyProblem(k []byte) string {
	switch {
	case len(k) == 0:
		return "empty"
	case len(k) > MaxKeyLen:
		return fmt.Sprintf("%d bytes, longer than %d", len(k), MaxKeyLen)
	case bytes.IndexByte(k, 0) >= 0:
		return "contains a NUL byte"
	case !utf8.Valid(k):
		return "not valid UTF-8"
	}
	return ""
}

// ValidateValue reports whether v fits the value limit. The error wraps ErrValueTooLarge.
func ValidateValue(v []byte) error {
	if len(v) > MaxValueLen {
		return fmt.Errorf("apply: %w: %d bytes, longer than %d", ErrValueTooLarge, len(v), MaxValueLen)
	}
	return nil
}
