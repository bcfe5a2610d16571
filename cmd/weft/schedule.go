package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/schedules"
)

const scheduleUsage = `usage:
  weft schedule create ID --workflow NAME (--cron EXPR | --every 10m) [--input JSON|@file] [--version V]
                          [--overlap skip|buffer-one|allow-all|terminate-previous] [--jitter 30s]
                          [--catchup-window 1h] [--paused]
  weft schedule list [--json]
  weft schedule show ID [--json]
  weft schedule pause ID [--note TEXT] | weft schedule resume ID [--note TEXT]
  weft schedule trigger ID [--wait]
  weft schedule delete ID`

// scheduleCommand runs `weft schedule …` against --server.
func scheduleCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErr("%s", scheduleUsage)
	}
	sub := args[0]
	if isHelp(sub) {
		fmt.Fprintln(stdout, scheduleUsage+"\n\nweft schedule COMMAND -h says more about each.")
		return errHelpShown
	}
	spec, known := scheduleCmds[sub]
	if !known {
		return usageErr("unknown command \"schedule %s\"\n%s", sub, scheduleUsage)
	}
	fs := flag.NewFlagSet("schedule "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server, token, insecure := defineConnFlags(fs)
	wf := fs.String("workflow", "", "the `NAME` of the workflow each run starts")
	input := fs.String("input", "", "each run's input: `JSON`, or @file to read it from a file")
	version := fs.String("version", "", "the workflow's named `VERSION` (default: the one registered as latest)")
	cronExpr := fs.String("cron", "", "a cron `EXPRESSION`: 5 fields, 6 with seconds first, or @hourly, @daily, @every 90s…; read in UTC unless it starts with CRON_TZ=<zone>")
	every := fs.Duration("every", 0, "a run every `DURATION` (at least 1s), counted from the creation")
	overlap := fs.String("overlap", "", "what a tick does while earlier runs still run: `POLICY` skip, buffer-one, allow-all or terminate-previous (default skip)")
	jitter := fs.Duration("jitter", 0, "each run starts up to `DURATION` after its tick (shorter than --every)")
	catchup := fs.Duration("catchup-window", 0, "after downtime, a tick due within `DURATION` still starts its run late; older ones are missed (default 1h)")
	paused := fs.Bool("paused", false, "create the schedule paused")
	note := fs.String("note", "", "`TEXT` saying why, kept with the schedule")
	wait := fs.Bool("wait", false, "wait until the run finishes and print its status")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait, a `DURATION` such as 30s or 10m")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseCommandArgs(fs, "schedule "+sub, spec, args[1:], stdout)
	if err != nil {
		return err
	}
	c := api.NewClient(*server, *token, *insecure)
	ctx := context.Background()
	id := ""
	switch {
	case sub == "list" && len(pos) == 0:
	case sub != "list" && len(pos) == 1:
		id = pos[0]
	default:
		return usageErr("%s", scheduleUsage)
	}
	switch sub {
	case "create":
		in, err := payload(*input)
		if err != nil {
			return usageErr("--input: %v", err)
		}
		spec := schedules.Spec{ID: id, Workflow: *wf, Version: *version, Input: in, Cron: *cronExpr, Every: *every,
			Overlap: schedules.Overlap(strings.ToLower(*overlap)), Jitter: *jitter, CatchupWindow: *catchup, Paused: *paused}
		s, err := c.CreateSchedule(ctx, spec)
		if err != nil {
			return apiErr(err)
		}
		return printSchedule(stdout, s, *asJSON)
	case "list":
		list, err := c.ListSchedules(ctx)
		if err != nil {
			return apiErr(err)
		}
		if *asJSON {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tWORKFLOW\tTIMETABLE\tOVERLAP\tSTATE\tNEXT\tRUNNING\tSTARTED\tSKIPPED\tMISSED\tFAILED")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.ID, s.Spec.Workflow, timetable(s.Spec), s.Spec.Overlap,
				scheduleState(&s), when(s.Next), len(s.Running), s.Counts.Started, s.Counts.Skipped, s.Counts.Missed, s.Counts.Failed)
		}
		return tw.Flush()
	case "show":
		s, err := c.GetSchedule(ctx, id)
		if err != nil {
			return apiErr(err)
		}
		return printSchedule(stdout, s, *asJSON)
	case "pause", "resume":
		s, err := c.ScheduleCommand(ctx, id, sub, *note)
		if err != nil {
			return apiErr(err)
		}
		return printSchedule(stdout, s, *asJSON)
	case "trigger":
		a, err := c.TriggerSchedule(ctx, id)
		if err != nil {
			return apiErr(err)
		}
		if a.Outcome != schedules.Started {
			fmt.Fprintf(stdout, "%s: %s\n", a.Outcome, a.Reason)
			return nil
		}
		fmt.Fprintln(stdout, a.Run)
		if *wait {
			return waitAndPrint(ctx, c, a.Run, *timeout, stdout)
		}
		return nil
	case "delete":
		return apiErr(c.DeleteSchedule(ctx, id))
	}
	return usageErr("unknown command \"schedule %s\"\n%s", sub, scheduleUsage)
}

// scheduleCmds are the `weft schedule` subcommands (see clientCmd).
var scheduleCmds = map[string]clientCmd{
	"create": {"ID --workflow NAME (--cron EXPR | --every 10m) [--input JSON|@file] [--version V] [--overlap POLICY] [--jitter 30s] [--catchup-window 1h] [--paused] [--json]",
		"Creates a schedule: recurring starts of a workflow (docs/schedules.md).",
		[]string{"workflow", "cron", "every", "input", "version", "overlap", "jitter", "catchup-window", "paused", "json"}},
	"list":    {"[--json]", "Lists the schedules.", []string{"json"}},
	"show":    {"ID [--json]", "Prints a schedule, its next tick and its recent runs.", []string{"json"}},
	"pause":   {"ID [--note TEXT] [--json]", "Pauses a schedule: no tick starts a run until weft schedule resume.", []string{"note", "json"}},
	"resume":  {"ID [--note TEXT] [--json]", "Resumes a paused schedule.", []string{"note", "json"}},
	"trigger": {"ID [--wait [--timeout 5m]]", "Starts a run now, as a tick would (its overlap policy applies); prints the run's id.", []string{"wait", "timeout"}},
	"delete":  {"ID", "Deletes a schedule; runs it started keep running.", nil},
}

func printSchedule(w io.Writer, s *api.Schedule, asJSON bool) error {
	if asJSON {
		return printJSON(w, s)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "schedule\t%s (instance %s, %s)\n", s.ID, s.Instance, s.Status)
	fmt.Fprintf(tw, "workflow\t%s\n", strings.TrimSuffix(s.Spec.Workflow+" "+s.Spec.Version, " "))
	fmt.Fprintf(tw, "timetable\t%s, overlap %s, jitter %s, catch-up window %s\n", timetable(s.Spec), s.Spec.Overlap, s.Spec.Jitter, s.Spec.CatchupWindow)
	fmt.Fprintf(tw, "state\t%s\n", scheduleState(s))
	fmt.Fprintf(tw, "next\t%s\n", when(s.Next))
	fmt.Fprintf(tw, "counts\tstarted %d, skipped %d, buffered %d, missed %d, failed %d\n", s.Counts.Started, s.Counts.Skipped, s.Counts.Buffered, s.Counts.Missed, s.Counts.Failed)
	if len(s.Running) > 0 {
		fmt.Fprintf(tw, "running\t%s\n", strings.Join(s.Running, ", "))
	}
	if b := s.Buffered; b != nil {
		fmt.Fprintf(tw, "buffered\t%s (tick %s)\n", b.Run, b.Tick.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Recent) > 0 {
		fmt.Fprintln(w, "\nrecent:")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TICK\tOUTCOME\tRUN\tREASON")
		for _, a := range s.Recent {
			tick := a.Tick.Format(time.RFC3339)
			if a.Manual {
				tick += " (trigger)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", tick, a.Outcome, a.Run, a.Reason)
		}
		return tw.Flush()
	}
	return nil
}

func timetable(s schedules.Spec) string {
	if s.Every > 0 {
		return "every " + s.Every.String()
	}
	return "cron " + s.Cron
}

func scheduleState(s *api.Schedule) string {
	switch {
	case s.Status != "RUNNING":
		return "ended (" + string(s.Status) + ")"
	case s.Paused && s.Note != "":
		return "paused: " + s.Note
	case s.Paused:
		return "paused"
	}
	return "active"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
