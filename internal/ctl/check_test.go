package ctl

import (
	"errors"
	"slices"
	"testing"
)

func TestCheckArgs(t *testing.T) {
	ok := [][]string{
		{"status"},
		{"--url", "http://a:1,http://b:2", "-o", "json", "verify", "--rounds", "3", "--wait", "1m"},
		{"put", "greeting", "hello", "--if-absent"},
		{"put", "config", "--file", "-"},
		{"del", "greeting", "--if-match", "7"},
		{"txn", "--file", "ops.txt"},
		{"-o", "json", "txn", "--json", "-f", "-"},
		{"list", "user/", "--limit", "10", "--values"},
		{"snapshots", "create", "--wait", "5m"},
		{"watch", "http://127.0.0.1:8081", "--max-wait", "10m"},
		{"completion", "bash"},
		{"help", "status"},
		{"get", "--help"},
	}
	for _, args := range ok {
		if err := CheckArgs(args); err != nil {
			t.Errorf("CheckArgs(%q) = %v, want nil", args, err)
		}
	}
	bad := [][]string{
		{"stauts"},
		{"status", "--made-up-flag"},
		{"put", "k", "--if-match", "seven"},
		{"get"},
		{"verify", "extra"},
		{"txn", "put", "k", "v"},
		{"txn", "--json=maybe"},
		{"-o", "yaml", "status"},
		{"completion"},
	}
	for _, args := range bad {
		if err := CheckArgs(args); !errors.Is(err, ErrUsage) {
			t.Errorf("CheckArgs(%q) = %v, want a usage error", args, err)
		}
	}
}

func TestCommandFlags(t *testing.T) {
	got := CommandFlags()
	for cmd, flag := range map[string]string{
		"replikvctl":                  "url",
		"replikvctl put":              "if-absent",
		"replikvctl txn":              "json",
		"replikvctl snapshots create": "wait",
		"replikvctl completion bash":  "no-descriptions",
	} {
		if !slices.Contains(got[cmd], flag) {
			t.Errorf("CommandFlags()[%q] = %v, want it to hold %q", cmd, got[cmd], flag)
		}
	}
	if fs := got["replikvctl status"]; fs == nil || len(fs) != 0 {
		t.Errorf("status: %v, want no flags of its own (not nil)", fs)
	}
	if slices.Contains(got["replikvctl get"], "url") {
		t.Error("get lists the global --url as its own")
	}
}
