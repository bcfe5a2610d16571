// Command weft is the weft server and its command-line client.
//
//	weft serve                       run a node (HTTP API on :3500, data in ./weft-data)
//	weft start NAME [--id ID] [--input JSON|@file] [--version V]
//	weft status ID [--wait]
//	weft raise ID EVENT [--data JSON|@file] [--idempotency-key KEY]
//	weft terminate|pause|resume|purge ID
//	weft list [--status S] [--name N]
//	weft history ID
//
// Client commands talk to --server (WEFT_SERVER, default http://localhost:3500).
// Exit codes: 0 ok; 1 the request failed or the workflow failed; 2 usage error;
// 3 instance not found; 4 conflict (id taken, not finished, not running);
// 5 server unreachable.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/weftrt/weft/examples/seed"
	"github.com/weftrt/weft/replay"
	"github.com/weftrt/weft/workflow"
)

const usage = `weft — a durable workflow runtime

Usage:
  weft serve [flags]                          run a node (weft serve -h for flags)
  weft start NAME [--id ID] [--input JSON|@file] [--version V] [--wait]
  weft status ID [--wait] [--timeout 5m]
  weft raise ID EVENT [--data JSON|@file] [--idempotency-key KEY]
  weft terminate ID [--reason TEXT] [--recursive]
  weft pause ID | weft resume ID [--reason TEXT]
  weft purge ID [--recursive] [--force]    --force: also an unfinished instance
  weft purge --all-older-than 720h [--recursive]   every instance finished that long ago
  weft list [--status RUNNING,FAILED] [--name NAME] [--max-age 24h] [--limit N] [--json]
  weft history ID [--json]
  weft rerun ID --from-event TASK [--id NEW] [--input JSON|@file] [--child-id ID] [--wait]
                                              a new instance from a finished one's call (TASK: weft history's column)
  weft replay [--server URL | --data DIR] [--workflow NAME,...] [--finished 24h] [--json]
                                              check this binary's workflows against running instances
  weft schedule create ID --workflow NAME (--cron EXPR | --every 10m) [--input JSON|@file]
                [--overlap skip|buffer-one|allow-all|terminate-previous] [--jitter 30s] [--catchup-window 1h] [--paused]
  weft schedule list | show ID | pause ID | resume ID | trigger ID [--wait] | delete ID
                                              recurring starts of a workflow (docs/schedules.md)
  weft cluster members | partitions [--json]  the cluster as the server sees it
  weft cluster remove NODE [--reason TEXT]    remove a node lost for good (its replicas are replaced now)
  weft cluster leave [--timeout 10m]          the node at --server leaves for good (its replicas move; then stop it)

weft COMMAND -h (or weft help COMMAND) says what a command does and lists its
flags; a flag a command does not take is an error (exit 2).

Client flags (any command but serve):
  --server URL   the weft server (env WEFT_SERVER, default http://localhost:3500)
  --token TOKEN  the API token (env WEFT_API_TOKEN)
  --insecure     skip TLS certificate verification

Exit codes: 0 ok; 1 request or workflow failed; 2 usage; 3 not found;
4 conflict (id taken, not finished, not running); 5 server unreachable.
`

const clusterUsage = `usage:
  weft cluster members [--json]        the cluster's nodes as the server at --server sees them
  weft cluster partitions [--json]     who owns and leads each partition, its replicas and their state
  weft cluster remove NODE [--reason TEXT]
                                       remove a node lost for good (its replicas are replaced now)
  weft cluster leave [--timeout 10m]   the node at --server leaves for good (its replicas move; then stop it)

weft cluster COMMAND -h says more about each.
`

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func usageErr(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[0] == "help" {
		return run(append(slices.Clone(args[1:]), "-h"), stdout, stderr) // weft help rerun = weft rerun -h
	}
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(rest, stdout, stderr)
	case "start", "status", "raise", "terminate", "pause", "resume", "purge", "list", "history", "rerun":
		err = clientCommand(cmd, rest, stdout)
	case "replay":
		// The code this binary has is the seed's samples (weft serve --samples).
		reg := workflow.NewRegistry()
		if err := seed.RegisterIn(reg, seed.Config{}); err != nil {
			fmt.Fprintln(stderr, "weft:", err)
			return 2
		}
		return replay.Main(reg, rest, stdout, stderr)
	case "schedule":
		err = scheduleCommand(rest, stdout)
	case "cluster":
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprint(stdout, clusterUsage)
			return 0
		}
		if len(rest) == 0 || (rest[0] != "members" && rest[0] != "partitions" && rest[0] != "remove" && rest[0] != "leave") {
			err = usageErr("%s", strings.TrimSpace(clusterUsage))
		} else {
			err = clientCommand("cluster "+rest[0], rest[1:], stdout)
		}
	default:
		err = usageErr("unknown command %q (weft help lists them)", cmd)
	}
	if err == nil || errors.Is(err, errHelpShown) {
		return 0
	}
	fmt.Fprintln(stderr, "weft:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
