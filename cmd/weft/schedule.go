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
	fs := flag.NewFlagSet("schedule "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", envOr("WEFT_SERVER", "http://localhost:3500"), "")
	token := fs.String("token", envOr("WEFT_API_TOKEN", ""), "")
	insecure := fs.Bool("insecure", false, "")
	wf := fs.String("workflow", "", "")
	input := fs.String("input", "", "")
	version := fs.String("version", "", "")
	cronExpr := fs.String("cron", "", "")
	every := fs.Duration("every", 0, "")
	overlap := fs.String("overlap", "", "")
	jitter := fs.Duration("jitter", 0, "")
	catchup := fs.Duration("catchup-window", 0, "")
	paused := fs.Bool("paused", false, "")
	note := fs.String("note", "", "")
	wait := fs.Bool("wait", false, "")
	timeout := fs.Duration("timeout", 5*time.Minute, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return usageErr("schedule %s: %v\n%s", sub, err, scheduleUsage)
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
