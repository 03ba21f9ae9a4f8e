package config

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/testutil/testca"
)

func TestParse_TLSAndReadToken(t *testing.T) {
	tf := testca.WriteFiles(t)
	e := env(map[string]string{"REPLIKV_TLS_CERT": tf.CertFile, "REPLIKV_TLS_KEY": tf.KeyFile,
		"REPLIKV_TLS_CLIENT_CA": tf.CAFile, "REPLIKV_AUTH_TOKEN": "all", "REPLIKV_READ_TOKEN": "reads"})
	c, err := ParseFollower(nil, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSCert != tf.CertFile || c.TLSKey != tf.KeyFile || c.TLSClientCA != tf.CAFile || c.AuthToken != "all" ||
		c.ReadToken != "reads" {
		t.Fatalf("from the environment: %+v", c.Common)
	}
	if f := c.TLSFiles(); f.CertFile != tf.CertFile || f.KeyFile != tf.KeyFile || f.ClientCAFile != tf.CAFile {
		t.Fatalf("TLSFiles() = %+v", f)
	}
	l, err := ParseLeader([]string{"--tls-cert", tf.CertFile, "--tls-key", tf.KeyFile}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if l.TLSClientCA != "" || l.ReadToken != "" {
		t.Fatalf("defaults: %+v", l.Common)
	}
}

func TestParse_TLSAndReadTokenInvalid(t *testing.T) {
	tf := testca.WriteFiles(t)
	other := tf.CA.Issue(t)
	dir := t.TempDir()
	otherKey := filepath.Join(dir, "other.key")
	testca.WriteFile(t, otherKey, other.KeyPEM)
	notPEM := filepath.Join(dir, "not.pem")
	testca.WriteFile(t, notPEM, []byte("nothing here"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantFlag string
	}{
		{"CertWithoutKey", []string{"--tls-cert", tf.CertFile}, nil, "--tls-key"},
		{"KeyWithoutCert", []string{"--tls-key", tf.KeyFile}, nil, "--tls-cert"},
		{"ClientCAWithoutCert", []string{"--tls-client-ca", tf.CAFile}, nil, "--tls-client-ca"},
		{"CertMissing", []string{"--tls-cert", missing, "--tls-key", tf.KeyFile}, nil, "--tls-cert"},
		{"KeyOfAnotherCert", []string{"--tls-cert", tf.CertFile, "--tls-key", otherKey}, nil, "--tls-key"},
		{"CertNotPEM", []string{"--tls-cert", notPEM, "--tls-key", tf.KeyFile}, nil, "--tls-cert"},
		{"ClientCANotPEM", []string{"--tls-cert", tf.CertFile, "--tls-key", tf.KeyFile, "--tls-client-ca", notPEM},
			nil, "--tls-client-ca"},
		{"ClientCAMissingEnv", []string{"--tls-cert", tf.CertFile, "--tls-key", tf.KeyFile},
			map[string]string{"REPLIKV_TLS_CLIENT_CA": missing}, "--tls-client-ca"},
		{"ReadTokenWithoutAuthToken", []string{"--read-token", "reads"}, nil, "--auth-token"},
		{"ReadTokenIsAuthToken", []string{"--read-token", "s4me-secret", "--auth-token", "s4me-secret"}, nil,
			"--read-token"},
	}
	for _, tt := range tests {
		for _, leader := range []bool{true, false} {
			t.Run(tt.name, func(t *testing.T) {
				var err error
				if leader {
					_, err = ParseLeader(tt.args, env(tt.env), io.Discard)
				} else {
					_, err = ParseFollower(tt.args, env(tt.env), io.Discard)
				}
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want ErrUsage", err)
				}
				if !strings.Contains(err.Error(), tt.wantFlag) {
					t.Fatalf("error %q does not name %q", err, tt.wantFlag)
				}
				if strings.Contains(err.Error(), "s4me-secret") || strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Fatalf("error %q echoes a secret", err)
				}
			})
		}
	}
}
