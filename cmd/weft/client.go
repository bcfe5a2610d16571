package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftrt/weft/api"
)

// clientCommand runs one of the client subcommands against --server.
func clientCommand(cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := defineClientFlags(fs, cmd)
	pos, err := parseCommandArgs(fs, cmd, clientCmds[cmd], args, stdout)
	if err != nil {
		return err
	}
	c := api.NewClient(*f.server, *f.token, *f.insecure)
	ctx := context.Background()
	need := func(n int) error {
		if len(pos) != n {
			return usageErr("usage: weft %s %s (weft %s -h for more)", cmd, clientCmds[cmd].args, cmd)
		}
		return nil
	}
	// started prints the id of an instance a command started and, with
	// --wait, its final status.
	started := func(newID string, err error) error {
		if err != nil {
			return apiErr(err)
		}
		fmt.Fprintln(stdout, newID)
		if *f.wait {
			return waitAndPrint(ctx, c, newID, *f.timeout, stdout)
		}
		return nil
	}
	switch cmd {
	case "start":
		if err := need(1); err != nil {
			return err
		}
		in, err := payload(*f.input)
		if err != nil {
			return usageErr("--input: %v", err)
		}
		newID, err := c.Start(ctx, api.StartRequest{Name: pos[0], InstanceID: *f.id, Input: in, Version: *f.version})
		return started(newID, err)
	case "status":
		if err := need(1); err != nil {
			return err
		}
		if *f.wait {
			return waitAndPrint(ctx, c, pos[0], *f.timeout, stdout)
		}
		st, err := c.Status(ctx, pos[0])
		if err != nil {
			return apiErr(err)
		}
		return printJSON(stdout, st)
	case "raise":
		if err := need(2); err != nil {
			return err
		}
		d, err := payload(*f.data)
		if err != nil {
			return usageErr("--data: %v", err)
		}
		var opts []api.RaiseOption
		if *f.idem != "" {
			opts = append(opts, api.WithIdempotencyKey(*f.idem))
		}
		return apiErr(c.Raise(ctx, pos[0], pos[1], d, opts...))
	case "terminate":
		if err := need(1); err != nil {
			return err
		}
		var r json.RawMessage
		if *f.reason != "" {
			r, _ = json.Marshal(*f.reason)
		}
		return apiErr(c.Terminate(ctx, pos[0], api.TerminateRequest{Reason: r, Recursive: *f.recursive}))
	case "pause":
		if err := need(1); err != nil {
			return err
		}
		return apiErr(c.Suspend(ctx, pos[0], *f.reason))
	case "resume":
		if err := need(1); err != nil {
			return err
		}
		return apiErr(c.Resume(ctx, pos[0], *f.reason))
	case "purge":
		if *f.olderThan < 0 {
			return usageErr("weft purge: --all-older-than %s: want a positive duration such as 720h", *f.olderThan)
		}
		if *f.olderThan > 0 {
			if err := need(0); err != nil {
				return err
			}
			if *f.force {
				return usageErr("weft purge: --force purges one unfinished instance (weft purge ID --force); --all-older-than purges finished ones only")
			}
			n, err := c.PurgeFinishedBefore(ctx, time.Now().Add(-*f.olderThan), *f.recursive)
			if err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(stdout, "purged %d instance(s) that finished more than %s ago\n", n, *f.olderThan)
			return nil
		}
		if err := need(1); err != nil {
			return err
		}
		if *f.force {
			return apiErr(c.ForcePurge(ctx, pos[0], *f.recursive))
		}
		return apiErr(c.Purge(ctx, pos[0], *f.recursive))
	case "list":
		if err := need(0); err != nil {
			return err
		}
		if *f.limit < 1 {
			return usageErr("weft list: --limit %d: want at least 1", *f.limit)
		}
		if *f.maxAge < 0 {
			return usageErr("weft list: --max-age %s: want a positive duration such as 24h", *f.maxAge)
		}
		q := url.Values{}
		if *f.status != "" {
			q.Set("status", *f.status)
		}
		if *f.name != "" {
			q.Set("name", *f.name)
		}
		if *f.maxAge > 0 {
			q.Set("createdFrom", time.Now().Add(-*f.maxAge).UTC().Format(time.RFC3339Nano))
		}
		return list(ctx, c, q, *f.limit, *f.asJSON, stdout)
	case "rerun":
		if err := need(1); err != nil {
			return err
		}
		if *f.fromEvent < 0 {
			return usageErr("weft rerun: --from-event TASK is required (the TASK column of weft history %s)", pos[0])
		}
		req := api.RerunRequest{FromEvent: f.fromEvent, NewInstanceID: *f.id, NewChildInstanceID: *f.childID}
		if *f.input != "" {
			in, err := payload(*f.input)
			if err != nil {
				return usageErr("--input: %v", err)
			}
			req.Input = in
		}
		return started(c.Rerun(ctx, pos[0], req))
	case "history":
		if err := need(1); err != nil {
			return err
		}
		h, err := c.History(ctx, pos[0])
		if err != nil {
			return apiErr(err)
		}
		if *f.asJSON {
			return printJSON(stdout, h)
		}
		printTimeline(stdout, h)
		return nil
	case "cluster remove":
		if err := need(1); err != nil {
			return err
		}
		if err := c.RemoveNode(ctx, pos[0], *f.reason); err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(stdout, "node %s removed: the leaders of its partitions replace its replicas (weft cluster partitions shows the progress)\n", pos[0])
		return nil
	case "cluster leave":
		if err := need(0); err != nil {
			return err
		}
		if err := c.LeaveCluster(ctx, *f.timeout); err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(stdout, "the node at %s left the cluster: its partitions moved to the others; stop it now\n", *f.server)
		return nil
	case "cluster members", "cluster partitions":
		if err := need(0); err != nil {
			return err
		}
		return clusterCommand(ctx, c, cmd, *f.asJSON, stdout)
	}
	return usageErr("unknown command %q", cmd)
}

// clusterCommand prints the members or the placement table as the server sees them.
func clusterCommand(ctx context.Context, c *api.Client, cmd string, asJSON bool, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if cmd == "cluster members" {
		m, err := c.ClusterMembers(ctx)
		if err != nil {
			return apiErr(err)
		}
		if asJSON {
			return printJSON(stdout, m)
		}
		fmt.Fprintln(tw, "NODE\tSTATE\tREGISTERED\tOWNS\tHOLDS\tHTTP\tGOSSIP\tACTOR")
		for _, x := range m.Members {
			self := ""
			if x.ID == m.Self {
				self = " (this node)"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%v\t%d\t%d\t%s\t%s\t%s\n", x.ID, self, x.State, x.Registered, x.Partitions, x.Held, x.HTTP, x.Gossip, x.Actor)
		}
		return nil
	}
	p, err := c.ClusterPartitions(ctx)
	if err != nil {
		return apiErr(err)
	}
	if asJSON {
		return printJSON(stdout, p)
	}
	replicated := false
	for _, x := range p.Partitions {
		replicated = replicated || len(x.Replicas) > 0
	}
	if !replicated {
		fmt.Fprintln(tw, "PARTITION\tOWNER\tHOLDER\tEPOCH\tSERVING")
		for _, x := range p.Partitions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%v\n", x.Partition, x.Owner, x.Holder, x.Epoch, x.Serving)
		}
		return nil
	}
	// Replicated: the holder is the group's leader, the epoch its term.
	fmt.Fprintln(tw, "PARTITION\tOWNER\tLEADER\tTERM\tSERVING\tREPLICAS\tAPPLIED\tSTATE")
	for _, x := range p.Partitions {
		replicas := strings.Join(x.Replicas, ",")
		if len(x.Learners) > 0 {
			replicas += " (+" + strings.Join(x.Learners, ",") + " catching up)"
		}
		state := "ok"
		switch {
		case len(x.Replicas) > 0 && !x.Quorum:
			state = "below quorum"
		case x.UnderReplicated:
			state = "under-replicated"
		case len(x.Replicas) == 0:
			state = "no replica here"
		}
		for _, sn := range x.Snapshots {
			state += fmt.Sprintf("; snapshot to %s: %s, %d keys", sn.To, humanBytes(sn.Bytes), sn.Keys)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%v\t%s\t%d\t%s\n", x.Partition, x.Owner, x.Holder, x.Epoch, x.Serving, replicas, x.Applied, state)
	}
	return nil
}

// humanBytes prints a byte count in KiB, MiB or GiB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseInterspersed lets flags come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// payload reads JSON given inline or as @file, and checks it is JSON.
func payload(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	b := []byte(s)
	if path, ok := strings.CutPrefix(s, "@"); ok {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%q is not valid JSON (strings need quotes: '\"text\"')", s)
	}
	return b, nil
}

// apiErr gives each kind of failure its exit code.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	var e *api.Error
	if errors.As(err, &e) {
		switch {
		case e.Status == http.StatusNotFound:
			return &exitError{3, err}
		case e.Status == http.StatusConflict:
			return &exitError{4, err}
		case e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge:
			return &exitError{2, err}
		}
		return &exitError{1, err}
	}
	return &exitError{5, err}
}

func waitAndPrint(ctx context.Context, c *api.Client, id string, timeout time.Duration, stdout io.Writer) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return &exitError{1, fmt.Errorf("instance %s still not finished after %s", id, timeout)}
		}
		st, done, err := c.Wait(ctx, id, min(left, 60*time.Second))
		if err != nil {
			return apiErr(err)
		}
		if done {
			if err := printJSON(stdout, st); err != nil {
				return err
			}
			if st.Status != "COMPLETED" {
				return &exitError{1, fmt.Errorf("instance %s finished %s", id, st.Status)}
			}
			return nil
		}
	}
}

// list prints up to limit instances matching q, oldest first: a table, or a
// JSON array.
func list(ctx context.Context, c *api.Client, q url.Values, limit int, asJSON bool, stdout io.Writer) error {
	var all []api.Summary
	for len(all) < limit {
		q.Set("pageSize", fmt.Sprint(min(limit-len(all), 1000)))
		page, err := c.List(ctx, q)
		if err != nil {
			return apiErr(err)
		}
		all = append(all, page.Instances...)
		if page.NextPageToken == "" {
			break
		}
		q.Set("pageToken", page.NextPageToken)
	}
	if asJSON {
		if all == nil {
			all = []api.Summary{}
		}
		return printJSON(stdout, all)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED")
	for _, in := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.ID, in.Name, in.Status, in.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTimeline prints a history as a readable timeline: when, offset from the
// start, what happened, to which task, how long the task took, and its outcome.
func printTimeline(w io.Writer, h *api.HistoryResponse) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOFFSET\tEVENT\tTASK\tNAME\tDURATION\tOUTCOME")
	if len(h.Events) == 0 {
		tw.Flush()
		return
	}
	start := h.Events[0].Time
	scheduled := map[int64]api.HistoryEvent{}
	attemptFrom := map[int64]time.Time{} // when a retried task's current attempt began
	for _, ev := range h.Events {
		task, name, dur, outcome := "", ev.Name, "", ""
		if ev.TaskID != nil {
			task = fmt.Sprint(*ev.TaskID)
		}
		switch ev.Kind {
		case "activity-scheduled", "child-scheduled", "timer-created":
			scheduled[*ev.TaskID] = ev
			if ev.Kind == "child-scheduled" {
				outcome = "instance " + ev.Instance
			}
			if ev.FireAt != nil {
				outcome = "fires at " + ev.FireAt.Format(time.RFC3339Nano)
			}
		case "activity-completed", "child-completed", "timer-fired", "activity-failed", "child-failed":
			if s, ok := scheduled[*ev.TaskID]; ok {
				name = s.Name
				dur = ev.Time.Sub(s.Time).Round(time.Microsecond).String()
			}
			outcome = "ok " + abbreviate(string(ev.Data), 40)
			if ev.Failure != nil {
				outcome = "failed " + ev.Failure.Type + ": " + abbreviate(ev.Failure.Message, 60)
			}
		case "activity-retrying":
			from, ok := attemptFrom[*ev.TaskID]
			if !ok {
				from = scheduled[*ev.TaskID].Time
			}
			if !from.IsZero() {
				dur = ev.Time.Sub(from).Round(time.Microsecond).String()
			}
			outcome = "attempt " + string(ev.Data) + " failed"
			if ev.Failure != nil {
				outcome += " " + ev.Failure.Type + ": " + abbreviate(ev.Failure.Message, 60)
			}
			if ev.FireAt != nil {
				attemptFrom[*ev.TaskID] = *ev.FireAt
				outcome += "; next attempt at " + ev.FireAt.Format("15:04:05.000")
			}
		case "event-raised":
			outcome = abbreviate(string(ev.Data), 40)
		case "workflow-completed", "continued-as-new":
			outcome = abbreviate(string(ev.Data), 60)
		case "workflow-failed":
			if ev.Failure != nil {
				outcome = ev.Failure.Type + ": " + abbreviate(ev.Failure.Message, 80)
			}
		case "workflow-terminated", "workflow-suspended", "workflow-resumed":
			outcome = abbreviate(string(ev.Data), 40)
		case "patch-recorded":
			outcome = map[string]string{"true": "patched", "false": "not patched (older history)"}[string(ev.Data)]
		case "execution-stalled":
			outcome = abbreviate(string(ev.Data), 100)
		case "workflow-started":
			if ev.Version != "" {
				outcome = "version " + ev.Version
			}
		}
		fmt.Fprintf(tw, "%s\t+%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Format("15:04:05.000"),
			ev.Time.Sub(start).Round(time.Microsecond), ev.Kind, task, name, dur, outcome)
	}
	tw.Flush()
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
