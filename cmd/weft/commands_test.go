package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// The CLI's usage surface: help on every command, refusals that name what was
// wrong. None of these reach a server (--server points nowhere that listens).
func TestCommandUsage(t *testing.T) {
	t.Setenv("WEFT_SERVER", "http://127.0.0.1:1")
	t.Setenv("WEFT_API_TOKEN", "s3cret-token")
	for _, c := range []struct {
		args        []string
		exit        int
		stdout      []string // each must appear
		stderr      []string
		notInOutput string
	}{
		{args: []string{"rerun", "-h"}, exit: 0,
			stdout: []string{"usage: weft rerun ID --from-event TASK", "--from-event TASK", "--child-id ID", "--timeout DURATION", "(default 5m0s)", "--server URL"}},
		{args: []string{"help", "schedule", "trigger"}, exit: 0, stdout: []string{"usage: weft schedule trigger ID", "--wait"}},
		{args: []string{"purge", "--help"}, exit: 0, stdout: []string{"--all-older-than DURATION", "--force"}},
		{args: []string{"cluster", "leave", "-h"}, exit: 0, stdout: []string{"usage: weft cluster leave", "(default 10m0s)"}},
		{args: []string{"cluster", "-h"}, exit: 0, stdout: []string{"weft cluster partitions [--json]", "weft cluster COMMAND -h"}},
		{args: []string{"schedule", "create", "-h"}, exit: 0, stdout: []string{"--catchup-window DURATION", "--overlap POLICY", "(default 1h)"}},
		{args: []string{"schedule", "-h"}, exit: 0, stdout: []string{"weft schedule trigger ID", "weft schedule COMMAND -h"}},
		// The token from the environment is a secret: help never prints it.
		{args: []string{"status", "-h"}, exit: 0, stdout: []string{"--token TOKEN"}, notInOutput: "s3cret-token"},

		{args: []string{"serve", "-h"}, exit: 0, stdout: []string{"usage: weft serve [flags]", "-grpc string", "WEFT_ACTIVITY_CONCURRENCY"}, notInOutput: "s3cret-token"},
		{args: []string{"help", "serve"}, exit: 0, stdout: []string{"usage: weft serve [flags]"}},
		{args: []string{"serve", "--nope"}, exit: 2, stderr: []string{"flag provided but not defined: -nope", "weft serve -h"}},
		{args: []string{"pause", "x", "--force"}, exit: 2, stderr: []string{"weft pause does not take --force", "weft pause -h"}},
		{args: []string{"status", "x", "--json", "--limit", "3"}, exit: 2, stderr: []string{"weft status does not take --json, --limit"}},
		{args: []string{"schedule", "delete", "x", "--json"}, exit: 2, stderr: []string{"weft schedule delete does not take --json"}},
		{args: []string{"list", "--bogus"}, exit: 2, stderr: []string{"flag provided but not defined: -bogus", "weft list -h"}},
		{args: []string{"status"}, exit: 2, stderr: []string{"usage: weft status ID"}},
		{args: []string{"purge", "--all-older-than", "720h", "--force"}, exit: 2, stderr: []string{"--all-older-than purges finished ones only"}},
		{args: []string{"purge", "--all-older-than", "-5h"}, exit: 2, stderr: []string{"want a positive duration"}},
		{args: []string{"list", "--limit", "0"}, exit: 2, stderr: []string{"--limit 0: want at least 1"}},
		{args: []string{"list", "--max-age", "-1h"}, exit: 2, stderr: []string{"--max-age -1h0m0s: want a positive duration"}},
		{args: []string{"raise", "x"}, exit: 2, stderr: []string{"usage: weft raise ID EVENT"}},
		{args: []string{"rerun", "x"}, exit: 2, stderr: []string{"--from-event TASK is required"}},
		{args: []string{"cluster", "join"}, exit: 2, stderr: []string{"usage:", "weft cluster members"}},
		{args: []string{"schedule", "nope"}, exit: 2, stderr: []string{`unknown command "schedule nope"`}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(c.args, &stdout, &stderr); got != c.exit {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, c.exit, &stdout, &stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, &stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, &stderr)
				}
			}
			if c.notInOutput != "" && strings.Contains(stdout.String()+stderr.String(), c.notInOutput) {
				t.Errorf("output shows %q:\n%s%s", c.notInOutput, &stdout, &stderr)
			}
		})
	}
}

// Every command's help lists each flag it takes, so the tables and the flag
// definitions cannot drift apart (a flag in a table but not defined panics
// here, not in front of a user).
func TestEveryCommandHasHelp(t *testing.T) {
	check := func(t *testing.T, args []string, flags []string) {
		var stdout, stderr bytes.Buffer
		if got := run(append(args, "-h"), &stdout, &stderr); got != 0 {
			t.Fatalf("weft %s -h: exit %d: %s", strings.Join(args, " "), got, &stderr)
		}
		for _, f := range append(slices.Clone(flags), clientFlagNames...) {
			if !strings.Contains(stdout.String(), "--"+f+" ") && !strings.Contains(stdout.String(), "--"+f+"\n") {
				t.Errorf("weft %s -h does not list --%s:\n%s", strings.Join(args, " "), f, &stdout)
			}
		}
	}
	for name, c := range clientCmds {
		t.Run(name, func(t *testing.T) { check(t, strings.Fields(name), c.flags) })
	}
	for name, c := range scheduleCmds {
		t.Run("schedule "+name, func(t *testing.T) { check(t, []string{"schedule", name}, c.flags) })
	}
}
