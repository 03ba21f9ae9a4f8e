package apply

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		wantErr bool
	}{
		{"OK", "a", false},
		{"Path", "users/42/profile", false},
		{"Unicode", "ключ/鍵", false},
		{"Max", strings.Repeat("x", MaxKeyLen), false},
		{"MaxMultibyte", strings.Repeat("é", MaxKeyLen/2), false},
		{"Empty", "", true},
		{"TooLong", strings.Repeat("x", MaxKeyLen+1), true},
		{"NUL", "a\x00b", true},
		{"BadUTF8", "a\xffb", true},
		{"TruncatedUTF8", "\xe2\x82", true},
		{"Surrogate", "\xed\xa0\x80", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey([]byte(tt.key))
			if tt.wantErr != (err != nil) {
				t.Fatalf("ValidateKey err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey err = %v, does not wrap ErrInvalidKey", err)
			}
		})
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr bool
	}{{"Empty", 0, false}, {"Small", 128, false}, {"Max", MaxValueLen, false}, {"TooLarge", MaxValueLen + 1, true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateValue(make([]byte, tt.n))
			if tt.wantErr != (err != nil) {
				t.Fatalf("ValidateValue err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrValueTooLarge) {
				t.Fatalf("ValidateValue err = %v, does not wrap ErrValueTooLarge", err)
			}
		})
	}
}
