package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/journal"
)

func TestParse_NATSUsers(t *testing.T) {
	t.Run("Follower", func(t *testing.T) {
		c, err := ParseFollower(nil, env(map[string]string{"REPLIKV_NATS_USER": "f", "REPLIKV_NATS_PASSWORD": "pw"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.NATSUser != "f" || c.NATSPassword != "pw" {
			t.Fatalf("user %q password %q", c.NATSUser, c.NATSPassword)
		}
	})
	t.Run("LeaderEmbeddedAuth", func(t *testing.T) {
		c, err := ParseLeader([]string{"--nats-user", "l", "--nats-follower-user", "f", "--stream", "S"},
			env(map[string]string{"REPLIKV_NATS_PASSWORD": "lpw", "REPLIKV_NATS_FOLLOWER_PASSWORD": "fpw"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := []journal.User{
			{Name: "l", Password: "lpw", Permissions: journal.LeaderPermissions("S")},
			{Name: "f", Password: "fpw", Permissions: journal.FollowerPermissions("S")},
		}
		if got := c.EmbeddedNATSUsers(); !reflect.DeepEqual(got, want) {
			t.Fatalf("EmbeddedNATSUsers = %+v, want %+v", got, want)
		}
	})
	t.Run("LeaderOnly", func(t *testing.T) {
		c, err := ParseLeader([]string{"--nats-user", "l", "--nats-password", "lpw"}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.EmbeddedNATSUsers(); len(got) != 1 || got[0].Name != "l" {
			t.Fatalf("EmbeddedNATSUsers = %+v, want the leader alone", got)
		}
	})
	t.Run("NoAuth", func(t *testing.T) {
		c, err := ParseLeader(nil, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.EmbeddedNATSUsers(); got != nil {
			t.Fatalf("EmbeddedNATSUsers = %+v, want none", got)
		}
	})
	t.Run("ExternalLeader", func(t *testing.T) {
		c, err := ParseLeader([]string{"--nats-url", "nats://n:4222", "--nats-user", "l", "--nats-password", "lpw"}, env(nil),
			io.Discard)
		if err != nil || c.NATSUser != "l" {
			t.Fatalf("leader with --nats-url and --nats-user: %+v, %v", c.Common, err)
		}
	})
}

func TestParse_NATSUsersInvalid(t *testing.T) {
	const secret = "Secret-PW-7"
	creds := filepath.Join(t.TempDir(), "u.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		leader   bool
		args     []string
		wantFlag string
	}{
		{"UserWithoutPassword", false, []string{"--nats-user", "f"}, "--nats-user needs --nats-password"},
		{"PasswordWithoutUser", false, []string{"--nats-password", secret}, "--nats-password needs --nats-user"},
		{"LeaderUserWithoutPassword", true, []string{"--nats-user", "l"}, "--nats-user needs --nats-password"},
		{"UserWithSpace", false, []string{"--nats-user", "a b", "--nats-password", secret}, "--nats-user"},
		{"UserAndURLCredentials", false, []string{"--nats-url", "nats://x:" + secret + "@h:4222", "--nats-user", "f",
			"--nats-password", secret}, "--nats-url"},
		{"UserAndCreds", false, []string{"--nats-creds", creds, "--nats-user", "f", "--nats-password", secret}, "--nats-creds"},
		{"FollowerUserWithoutPassword", true, []string{"--nats-user", "l", "--nats-password", secret,
			"--nats-follower-user", "f"}, "--nats-follower-user needs --nats-follower-password"},
		{"FollowerPasswordWithoutUser", true, []string{"--nats-user", "l", "--nats-password", secret,
			"--nats-follower-password", secret}, "--nats-follower-password needs --nats-follower-user"},
		{"FollowerUserWithoutLeaderUser", true, []string{"--nats-follower-user", "f", "--nats-follower-password", secret},
			"needs --nats-user"},
		{"FollowerUserWithExternalNATS", true, []string{"--nats-url", "nats://h:4222", "--nats-user", "l", "--nats-password",
			secret, "--nats-follower-user", "f", "--nats-follower-password", secret}, "only with the embedded NATS server"},
		{"FollowerUserSameAsLeader", true, []string{"--nats-user", "u", "--nats-password", secret,
			"--nats-follower-user", "u", "--nats-follower-password", secret + "2"}, "must differ from --nats-user"},
		{"FollowerUserUnprintable", true, []string{"--nats-user", "l", "--nats-password", secret,
			"--nats-follower-user", "f\x07", "--nats-follower-password", secret}, "--nats-follower-user"},
		{"IDWithSpace", false, []string{"--id", "my follower"}, "--id"},
		{"IDWithControl", false, []string{"--id", "f\x1b[2J"}, "--id"},
		{"IDTooLong", false, []string{"--id", strings.Repeat("f", 257)}, "--id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.leader {
				_, err = ParseLeader(tt.args, env(nil), io.Discard)
			} else {
				_, err = ParseFollower(tt.args, env(nil), io.Discard)
			}
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want ErrUsage", err)
			}
			if !strings.Contains(err.Error(), tt.wantFlag) {
				t.Fatalf("error %q does not say %q", err, tt.wantFlag)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}
