package replay

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/workflow"
)

// Usage is the replay command's help.
const Usage = `replay: check this program's workflow code against the instances that already run

Replays the history of every running (and, with --finished, recently finished)
instance of the workflows this program registers, and says for each: ok, would
stall (a version or patch the code lacks), or would diverge (at which event,
what history has, what the code did). Runs nothing: no activity, no write.

  replay [--server URL | --data DIR] [--workflow NAME,...] [--finished 24h] [--json]

  --server URL     read instances through a live server's API (default $WEFT_SERVER or http://localhost:3500)
  --token TOKEN    the server's API token ($WEFT_API_TOKEN)
  --data DIR       read a stopped server's data directory instead (opened read-only)
  --workflow NAMES only these workflows (default: every workflow registered here)
  --finished D     also instances that finished within D
  --json           one JSON object: results and summary

Exit status: 0 when no instance would diverge or fail, 1 when one would, 2 when
the check could not run.
`

// Main runs the replay command with args (the flags above) against the code
// registered in reg, writes its report to stdout, and returns the exit status.
// A program embedding weft exposes it as a subcommand, e.g.
//
//	if len(os.Args) > 1 && os.Args[1] == "replay" {
//		os.Exit(replay.Main(rt.Registry(), os.Args[2:], os.Stdout, os.Stderr))
//	}
func Main(reg *workflow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", envOr("WEFT_SERVER", "http://localhost:3500"), "")
	token := fs.String("token", os.Getenv("WEFT_API_TOKEN"), "")
	insecure := fs.Bool("insecure", false, "")
	data := fs.String("data", "", "")
	workflows := fs.String("workflow", "", "")
	finished := fs.Duration("finished", 0, "")
	asJSON := fs.Bool("json", false, "")
	timeout := fs.Duration("timeout", 10*time.Minute, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			return 0
		}
		fmt.Fprintf(stderr, "replay: %v\n\n%s", err, Usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q\n\n%s", fs.Arg(0), Usage)
		return 2
	}
	opts := Options{Finished: *finished}
	for _, n := range strings.Split(*workflows, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !reg.HasWorkflow(n) {
			fmt.Fprintf(stderr, "replay: workflow %q is not registered in this program (registered: %s)\n", n, strings.Join(reg.Workflows(), ", "))
			return 2
		}
		opts.Workflows = append(opts.Workflows, n)
	}
	if len(reg.Workflows()) == 0 {
		fmt.Fprintln(stderr, "replay: this program registers no workflow: nothing to check against")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var src Source
	from := *server
	if *data != "" {
		s, closeData, err := FromData(*data)
		if err != nil {
			fmt.Fprintf(stderr, "replay: %v (stop the server that uses it, or check it with --server)\n", err)
			return 2
		}
		defer closeData()
		src, from = s, *data
	} else {
		src = FromServer(api.NewClient(*server, *token, *insecure))
	}
	results, err := Check(ctx, reg, src, opts)
	if err != nil {
		fmt.Fprintf(stderr, "replay: %s: %v\n", from, err)
		return 2
	}
	sum := Summary(results)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if results == nil {
			results = []Result{}
		}
		_ = enc.Encode(struct {
			Results []Result        `json:"results"`
			Summary map[Verdict]int `json:"summary"`
		}{results, sum})
	} else {
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tWORKFLOW\tVERSION\tSTATUS\tVERDICT\tDETAIL")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.InstanceID, r.Workflow, orDash(r.Version), r.Status, r.Verdict, detail(r))
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "\n%d checked: %d ok, %d would stall, %d would diverge, %d would fail\n",
			len(results), sum[OK], sum[Stall], sum[Diverge], sum[Fail])
	}
	if sum[Diverge] > 0 || sum[Fail] > 0 {
		return 1
	}
	return 0
}

func detail(r Result) string {
	switch r.Verdict {
	case Diverge:
		return fmt.Sprintf("at event %d (task %d): history has %s, the code made %s", r.Event, r.TaskID, r.Recorded, r.Replayed)
	case Stall:
		return r.Reason + ": " + r.Detail
	case Fail:
		return r.Detail
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
