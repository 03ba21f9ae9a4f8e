package config

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseLeader_Defaults(t *testing.T) {
	c, err := ParseLeader(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data/leader" || c.HTTPAddr != "127.0.0.1:8080" || c.NATSURL != "" || c.Stream != "REPLIKV" ||
		c.NATSListen != "127.0.0.1:4222" || c.SnapshotInterval != 5*time.Minute || c.SnapshotKeep != 3 ||
		c.SyncFollowers != 0 || c.SyncTimeout != 5*time.Second || c.LeaseTTL != 10*time.Second || c.S3Region != "us-east-1" || c.LogLevel != "info" ||
		c.StreamReplicas != 1 || c.NATSSyncAlways || c.NATSSyncInterval != 0 || c.SnapshotCPU != 0.1 ||
		c.CatchUpMirror {
		t.Fatalf("defaults: %+v", c)
	}
	if !strings.HasPrefix(c.Snapshots, "file:///") || !strings.HasSuffix(c.Snapshots, "/data/snapshots") {
		t.Fatalf("snapshots default %q", c.Snapshots)
	}
}

func TestParseFollower_Defaults(t *testing.T) {
	c, err := ParseFollower(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data/follower" || c.HTTPAddr != "127.0.0.1:8081" || c.NATSURL != "nats://127.0.0.1:4222" ||
		c.ReadyLag != 100 || c.ID == "" || c.CatchUpRate != 20000 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.ID != DefaultFollowerID("./data/follower") {
		t.Fatalf("id %q is not stable", c.ID)
	}
}

func TestParseLeader_Tags(t *testing.T) {
	c, err := ParseLeader([]string{"--catchup-mirror", "--catchup-mirror-tags", " catchup , az:b "}, env(map[string]string{
		"REPLIKV_STREAM_TAGS": "log,ssd"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.CatchUpMirrorTags, []string{"catchup", "az:b"}) || !slices.Equal(c.StreamTags, []string{"log", "ssd"}) {
		t.Fatalf("tags: mirror %q, stream %q", c.CatchUpMirrorTags, c.StreamTags)
	}
	c, err = ParseLeader([]string{"--stream-tags", ""}, env(nil), io.Discard)
	if err != nil || c.StreamTags != nil || c.CatchUpMirrorTags != nil {
		t.Fatalf("empty tags: %q %q %v", c.StreamTags, c.CatchUpMirrorTags, err)
	}
}

func TestParse_EnvAndPrecedence(t *testing.T) {
	e := env(map[string]string{"REPLIKV_DATA_DIR": "/env/dir", "REPLIKV_SNAPSHOT_KEEP": "5",
		"REPLIKV_HTTP_ADDR": "0.0.0.0:9000", "REPLIKV_NATS_SYNC_INTERVAL": "always", "REPLIKV_CATCHUP_MIRROR": "true",
		"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
	c, err := ParseLeader([]string{"--data-dir", "/flag/dir"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/flag/dir" {
		t.Fatalf("flag must win over env: %q", c.DataDir)
	}
	if c.SnapshotKeep != 5 || c.HTTPAddr != "0.0.0.0:9000" || !c.NATSSyncAlways || !c.CatchUpMirror {
		t.Fatalf("env not applied: %+v", c)
	}
	if c.AWSAccessKeyID != "AK" || c.AWSSecretAccessKey != "SK" {
		t.Fatal("AWS credentials not read from the environment")
	}
}

// A follower takes the flags of the leader's work, for when it is promoted, and --failover (manual by default).
func TestParseFollower_Duties(t *testing.T) {
	c, err := ParseFollower(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Failover != FailoverManual || c.LeaseTTL != 10*time.Second || c.SnapshotKeep != 3 || c.SyncTimeout != 5*time.Second ||
		c.IdempotencyTTL != DefaultIdempotencyTTL || c.CatchUpPacing != CatchUpPacingFixed {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = ParseFollower([]string{"--failover", "auto", "--lease-ttl", "4s", "--sync-followers", "2",
		"--snapshot-interval", "1m", "--catchup-mirror"}, env(map[string]string{"REPLIKV_STREAM_REPLICAS": "3"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Failover != FailoverAuto || c.LeaseTTL != 4*time.Second || c.SyncFollowers != 2 ||
		c.SnapshotInterval != time.Minute || !c.CatchUpMirror || c.StreamReplicas != 3 {
		t.Fatalf("parsed: %+v", c)
	}
}

func TestParse_Invalid(t *testing.T) {
	tests := []struct {
		name     string
		leader   bool
		args     []string
		env      map[string]string
		wantFlag string
	}{
		{"ReadyLagNegative", false, []string{"--ready-lag", "-1"}, nil, "ready-lag"},
		{"ReadyLagNotNumber", false, []string{"--ready-lag", "x"}, nil, "ready-lag"},
		{"CatchUpRateNegative", false, []string{"--catchup-rate", "-1"}, nil, "--catchup-rate"},
		{"CatchUpRateNaN", false, []string{"--catchup-rate", "NaN"}, nil, "--catchup-rate"},
		{"CatchUpPacing", false, []string{"--catchup-pacing", "aimd"}, nil, "--catchup-pacing"},
		{"CatchUpRateInf", false, []string{"--catchup-rate", "+Inf"}, nil, "--catchup-rate"},
		{"CatchUpRateTooSlow", false, []string{"--catchup-rate", "10"}, nil, "--catchup-rate"},
		{"Failover", false, []string{"--failover", "sometimes"}, nil, "--failover"},
		{"FailoverEnv", false, nil, map[string]string{"REPLIKV_FAILOVER": "AUTO"}, "--failover"},
		{"FollowerLeaseTTL", false, []string{"--lease-ttl", "10ms"}, nil, "--lease-ttl"},
		{"FollowerSnapshotKeep", false, []string{"--snapshot-keep", "0"}, nil, "--snapshot-keep"},
		{"HTTPAddr", true, []string{"--http-addr", "nonsense"}, nil, "--http-addr"},
		{"HTTPAddrPort", true, []string{"--http-addr", "127.0.0.1:99999"}, nil, "--http-addr"},
		{"SnapshotKeep", true, []string{"--snapshot-keep", "1"}, nil, "--snapshot-keep"},
		{"SnapshotCPUZero", true, []string{"--snapshot-cpu", "0"}, nil, "--snapshot-cpu"},
		{"SnapshotCPUAboveOne", true, []string{"--snapshot-cpu", "1.5"}, nil, "--snapshot-cpu"},
		{"SnapshotCPUNaN", true, []string{"--snapshot-cpu", "NaN"}, nil, "--snapshot-cpu"},
		{"SnapshotCPUEnv", true, nil, map[string]string{"REPLIKV_SNAPSHOT_CPU": "-0.5"}, "snapshot-cpu"},
		{"SnapshotInterval", true, []string{"--snapshot-interval", "-1s"}, nil, "--snapshot-interval"},
		{"CatchUpMirror", true, []string{"--catchup-mirror=maybe"}, nil, "catchup-mirror"},
		{"CatchUpMirrorEnv", true, nil, map[string]string{"REPLIKV_CATCHUP_MIRROR": "yes"}, "catchup-mirror"},
		{"CatchUpMirrorTagsAlone", true, []string{"--catchup-mirror-tags", "az:b"}, nil, "only with --catchup-mirror"},
		{"CatchUpMirrorTagsSpace", true, []string{"--catchup-mirror", "--catchup-mirror-tags", "a b"}, nil, "catchup-mirror-tags"},
		{"CatchUpMirrorTagsEmpty", true, []string{"--catchup-mirror", "--catchup-mirror-tags", "a,,b"}, nil, "catchup-mirror-tags"},
		{"StreamTagsTwice", true, []string{"--stream-tags", "ssd,ssd"}, nil, "stream-tags"},
		{"StreamTagsEnv", true, nil, map[string]string{"REPLIKV_STREAM_TAGS": "a\tb"}, "REPLIKV_STREAM_TAGS"},
		{"Snapshots", true, []string{"--snapshots", "ftp://x"}, nil, "--snapshots"},
		{"SnapshotsRelative", true, []string{"--snapshots", "file://rel/dir"}, nil, "--snapshots"},
		{"NATSURL", false, []string{"--nats-url", "http://x:1"}, nil, "--nats-url"},
		{"Stream", true, []string{"--stream", "bad.name"}, nil, "--stream"},
		{"LogLevel", true, []string{"--log-level", "loud"}, nil, "--log-level"},
		{"SyncTimeout", true, []string{"--sync-timeout", "0s"}, nil, "--sync-timeout"},
		{"HTTPBodyTimeout", true, []string{"--http-body-timeout", "0s"}, nil, "--http-body-timeout"},
		{"HTTPBodyBuffer", false, []string{"--http-body-buffer", "1000"}, nil, "--http-body-buffer"},
		{"SyncFollowers", true, []string{"--sync-followers", "-2"}, nil, "--sync-followers"},
		{"NATSSync", true, []string{"--nats-sync-interval", "sometimes"}, nil, "nats-sync-interval"},
		{"Replicas", true, []string{"--stream-replicas", "7"}, nil, "--stream-replicas"},
		{"LeaseTTLShort", true, []string{"--lease-ttl", "500ms"}, nil, "--lease-ttl"},
		{"LeaseTTLLong", true, nil, map[string]string{"REPLIKV_LEASE_TTL": "1h"}, "--lease-ttl"},
		{"IdempotencyTTLZero", true, []string{"--idempotency-ttl", "0"}, nil, "--idempotency-ttl"},
		{"IdempotencyTTLLong", false, nil, map[string]string{"REPLIKV_IDEMPOTENCY_TTL": "200h"}, "--idempotency-ttl"},
		{"AdvertiseURL", true, []string{"--advertise-url", "leader:8080"}, nil, "--advertise-url"},
		{"FollowerAdvertiseURL", false, []string{"--advertise-url", "ftp://f1:8081"}, nil, "--advertise-url"},
		{"AdvertiseURLCredentials", true, []string{"--advertise-url", "http://u:pw@leader:8080"}, nil, "--advertise-url"},
		{"UnknownFlag", true, []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"Positional", true, []string{"extra"}, nil, "extra"},
		{"NATSCertWithoutKey", true, []string{"--nats-cert", "/etc/hostname"}, nil, "--nats-key"},
		{"NATSCredsMissing", false, []string{"--nats-creds", "/nonexistent/x.creds"}, nil, "--nats-creds"},
		{"EnvValue", true, nil, map[string]string{"REPLIKV_SNAPSHOT_KEEP": "many"}, "REPLIKV_SNAPSHOT_KEEP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.leader {
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
		})
	}
}

func TestParse_Help(t *testing.T) {
	var out strings.Builder
	_, err := ParseLeader([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	if !strings.Contains(out.String(), "REPLIKV_SNAPSHOT_KEEP") {
		t.Fatalf("usage does not list env names:\n%s", out.String())
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("data-dir"); got != "REPLIKV_DATA_DIR" {
		t.Fatal(got)
	}
}

// A secret inside a URL flag is never echoed in its error: a password, a token as the user, or a URL that does not
// even parse.
func TestParse_URLErrorsRedactSecrets(t *testing.T) {
	for _, args := range [][]string{
		{"--nats-url", "http://alice:SecretPW2@127.0.0.1:4222"},
		{"--nats-url", "http://SecretPW2@127.0.0.1:4222"},
		{"--nats-url", "nats://alice:SecretPW2%zz@127.0.0.1:4222"},
		{"--nats-url", "nats://127.0.0.1:4222,ftp://bob:SecretPW2@h:1"},
		{"--snapshots", "ftp://alice:SecretPW2@host/dir"},
		{"--snapshots", "s3://alice:SecretPW2%zz@bucket/p"},
	} {
		_, err := ParseLeader(args, env(nil), io.Discard)
		if err == nil {
			t.Fatalf("%v: accepted", args)
		}
		if strings.Contains(err.Error(), "SecretPW2") {
			t.Errorf("%v: error echoes the secret: %v", args, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h:1":         "nats://REDACTED@h:1",
		"nats://tok@h:1":         "nats://REDACTED@h:1",
		"nats://h:1":             "nats://h:1",
		"nats://u:p%zz@h:1/x@y":  "nats://REDACTED@h:1/x@y",
		"s3://bucket/prefix":     "s3://bucket/prefix",
		"garbage %zz with no at": "garbage %zz with no at",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
