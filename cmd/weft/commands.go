package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A clientCmd is what `weft NAME -h` says about one client command, and which
// flags it takes: a flag it does not take is a usage error, never silently
// ignored (`weft pause ID --force` must not look like it did something).
type clientCmd struct {
	args  string   // the positional arguments and flags, as the usage line shows them
	about string   // what the command does
	flags []string // its own flags, beyond clientFlagNames
}

// clientCmds lists the client commands; run dispatches "cluster X" as one name.
var clientCmds = map[string]clientCmd{
	"start": {"NAME [--id ID] [--input JSON|@file] [--version V] [--wait [--timeout 5m]]",
		"Starts an instance of workflow NAME and prints its id.",
		[]string{"id", "input", "version", "wait", "timeout"}},
	"status": {"ID [--wait [--timeout 5m]]",
		"Prints an instance's status as JSON; while it runs, waitingOn lists what it waits on (calls, with a retried activity's attempt, last failure and next attempt; timers; children; event waits: with a timeout, and without one for workflows whose code runs in weft).",
		[]string{"wait", "timeout"}},
	"raise": {"ID EVENT [--data JSON|@file] [--idempotency-key KEY]",
		"Delivers event EVENT to an instance; returns once it is durable.",
		[]string{"data", "idempotency-key"}},
	"terminate": {"ID [--reason TEXT] [--recursive]",
		"Ends a running instance as TERMINATED.",
		[]string{"reason", "recursive"}},
	"pause": {"ID [--reason TEXT]",
		"Suspends an instance: events are kept, nothing runs until weft resume.",
		[]string{"reason"}},
	"resume": {"ID [--reason TEXT]",
		"Resumes a suspended instance.",
		[]string{"reason"}},
	"purge": {"ID [--recursive] [--force], or weft purge --all-older-than 720h [--recursive]",
		"Deletes a finished instance and its history, or every instance that finished longer ago than --all-older-than.",
		[]string{"recursive", "force", "all-older-than"}},
	"list": {"[--status RUNNING,FAILED] [--name NAME] [--max-age 24h] [--limit N] [--json]",
		"Lists instances, oldest first.",
		[]string{"status", "name", "max-age", "limit", "json"}},
	"history": {"ID [--json]",
		"Prints an instance's history as a timeline.",
		[]string{"json"}},
	"rerun": {"ID --from-event TASK [--id NEW] [--input JSON|@file] [--child-id ID] [--wait [--timeout 5m]]",
		"Starts a new instance from a finished one's history up to its call TASK (the TASK column of weft history), and runs that call again.",
		[]string{"from-event", "id", "input", "child-id", "wait", "timeout"}},
	"cluster members": {"[--json]",
		"Lists the cluster's nodes as the server at --server sees them.",
		[]string{"json"}},
	"cluster partitions": {"[--json]",
		"Lists the partitions: who owns and leads each, its replicas and their state.",
		[]string{"json"}},
	"cluster remove": {"NODE [--reason TEXT]",
		"Removes a node lost for good: the leaders of its partitions replace its replicas now.",
		[]string{"reason"}},
	"cluster leave": {"[--timeout 10m]",
		"The node at --server leaves the cluster for good: its replicas move to the others; stop it afterwards.",
		[]string{"timeout"}},
}

// clientFlagNames are taken by every client command.
var clientFlagNames = []string{"server", "token", "insecure"}

// clientFlags defines every client command's flags on fs (flags before or
// after the positional arguments, see parseInterspersed).
type clientFlags struct {
	server, token               *string
	insecure                    *bool
	id, input, data, reason     *string
	status, name, version, idem *string
	childID                     *string
	wait, recursive, asJSON     *bool
	force                       *bool
	timeout, olderThan, maxAge  *time.Duration
	limit                       *int
	fromEvent                   *int64
}

func defineClientFlags(fs *flag.FlagSet, cmd string) *clientFlags {
	timeoutDefault := 5 * time.Minute
	if cmd == "cluster leave" {
		timeoutDefault = 10 * time.Minute
	}
	f := &clientFlags{
		id:        fs.String("id", "", "the new instance's `ID` (default: generated)"),
		input:     fs.String("input", "", "the input: `JSON`, or @file to read it from a file"),
		data:      fs.String("data", "", "the event's data: `JSON`, or @file to read it from a file"),
		wait:      fs.Bool("wait", false, "wait until the instance finishes and print its status"),
		timeout:   fs.Duration("timeout", timeoutDefault, "how long to wait, a `DURATION` such as 30s or 10m"),
		reason:    fs.String("reason", "", "`TEXT` saying why, kept with the instance"),
		recursive: fs.Bool("recursive", false, "also the instance's child workflows, and theirs"),
		status:    fs.String("status", "", "only instances in these `STATUSES`, comma-separated (PENDING, RUNNING, SUSPENDED, STALLED, COMPLETED, FAILED, TERMINATED, CONTINUED_AS_NEW)"),
		name:      fs.String("name", "", "only instances of this workflow `NAME`"),
		limit:     fs.Int("limit", 100, "at most `N` instances"),
		asJSON:    fs.Bool("json", false, "print JSON instead of a table"),
		version:   fs.String("version", "", "the workflow's named `VERSION` (default: the one registered as latest)"),
		force:     fs.Bool("force", false, "purge even an instance that has not finished"),
		fromEvent: fs.Int64("from-event", -1, "the call to run again: its `TASK` id (weft history's TASK column)"),
		childID:   fs.String("child-id", "", "the `ID` of the child workflow a rerun from a child's start runs (default: derived from the new instance's id)"),
		olderThan: fs.Duration("all-older-than", 0, "every instance that finished more than `DURATION` ago (e.g. 720h)"),
		maxAge:    fs.Duration("max-age", 0, "only instances created within the last `DURATION` (e.g. 24h)"),
		idem:      fs.String("idempotency-key", "", "the same `KEY` sent again delivers the event once"),
	}
	f.server, f.token, f.insecure = defineConnFlags(fs)
	return f
}

// defineConnFlags defines the flags that say which server to talk to, and how
// (clientFlagNames), for every client command.
func defineConnFlags(fs *flag.FlagSet) (server, token *string, insecure *bool) {
	return fs.String("server", envOr("WEFT_SERVER", "http://localhost:3500"), "the weft server's `URL` (env WEFT_SERVER)"),
		fs.String("token", envOr("WEFT_API_TOKEN", ""), "the API `TOKEN` (env WEFT_API_TOKEN)"),
		fs.Bool("insecure", false, "skip TLS certificate verification")
}

// parseCommandArgs parses the arguments of command name (e.g. "rerun",
// "schedule create"), described by spec. A help flag prints the command's
// help to stdout and returns errHelpShown; a flag the command does not take is
// a usage error that names it.
func parseCommandArgs(fs *flag.FlagSet, name string, spec clientCmd, args []string, stdout io.Writer) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(stdout, fs, "weft "+name+" "+spec.args, spec.about, spec.flags, clientFlagNames)
		return nil, errHelpShown
	}
	if err != nil {
		return nil, usageErr("%s: %v (weft %s -h lists its flags)", name, err, name)
	}
	if err := onlyFlags(fs, name, append(slices.Clone(spec.flags), clientFlagNames...)); err != nil {
		return nil, err
	}
	return pos, nil
}

// isHelp reports whether a command's first argument asks for its help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// errHelpShown ends a command whose help was asked for: exit status 0.
var errHelpShown = errors.New("help shown")

// onlyFlags refuses a flag that was set but is not one of allowed.
func onlyFlags(fs *flag.FlagSet, cmd string, allowed []string) error {
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(allowed, f.Name) {
			wrong = append(wrong, "--"+f.Name)
		}
	})
	if len(wrong) == 0 {
		return nil
	}
	return usageErr("weft %s does not take %s (weft %s -h lists its flags)", cmd, strings.Join(wrong, ", "), cmd)
}

// printCommandHelp prints a command's usage line, what it does, and its flags
// as `weft help` spells them (--name).
func printCommandHelp(w io.Writer, fs *flag.FlagSet, usageLine, about string, own, common []string) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", usageLine, about)
	section := func(title string, names []string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, n := range names {
			f := fs.Lookup(n)
			arg, text := flag.UnquoteUsage(f)
			if arg != "" {
				arg = " " + arg
			}
			if arg != "" && n != "token" && f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "-1" {
				text += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(tw, "  --%s%s\t%s\n", n, arg, text)
		}
		tw.Flush()
	}
	section("Flags", own)
	section("Client flags", common)
}
