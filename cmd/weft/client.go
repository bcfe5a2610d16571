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
	server := fs.String("server", envOr("WEFT_SERVER", "http://localhost:3500"), "")
	token := fs.String("token", envOr("WEFT_API_TOKEN", ""), "")
	insecure := fs.Bool("insecure", false, "")
	id := fs.String("id", "", "")
	input := fs.String("input", "", "")
	data := fs.String("data", "", "")
	wait := fs.Bool("wait", false, "")
	timeout := fs.Duration("timeout", 5*time.Minute, "")
	reason := fs.String("reason", "", "")
	recursive := fs.Bool("recursive", false, "")
	status := fs.String("status", "", "")
	name := fs.String("name", "", "")
	limit := fs.Int("limit", 100, "")
	asJSON := fs.Bool("json", false, "")
	version := fs.String("version", "", "")
	force := fs.Bool("force", false, "")
	fromEvent := fs.Int64("from-event", -1, "")
	childID := fs.String("child-id", "", "")
	olderThan := fs.Duration("all-older-than", 0, "")
	idemKey := fs.String("idempotency-key", "", "")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr("%s: %v", cmd, err)
	}
	c := api.NewClient(*server, *token, *insecure)
	ctx := context.Background()
	need := func(n int, what string) error {
		if len(pos) != n {
			return usageErr("usage: weft %s %s", cmd, what)
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
		if *wait {
			return waitAndPrint(ctx, c, newID, *timeout, stdout)
		}
		return nil
	}
	switch cmd {
	case "start":
		if err := need(1, "NAME [--id ID] [--input JSON|@file] [--version V] [--wait]"); err != nil {
			return err
		}
		in, err := payload(*input)
		if err != nil {
			return usageErr("--input: %v", err)
		}
		newID, err := c.Start(ctx, api.StartRequest{Name: pos[0], InstanceID: *id, Input: in, Version: *version})
		return started(newID, err)
	case "status":
		if err := need(1, "ID [--wait] [--timeout 5m]"); err != nil {
			return err
		}
		if *wait {
			return waitAndPrint(ctx, c, pos[0], *timeout, stdout)
		}
		st, err := c.Status(ctx, pos[0])
		if err != nil {
			return apiErr(err)
		}
		return printJSON(stdout, st)
	case "raise":
		if err := need(2, "ID EVENT [--data JSON|@file] [--idempotency-key KEY]"); err != nil {
			return err
		}
		d, err := payload(*data)
		if err != nil {
			return usageErr("--data: %v", err)
		}
		var opts []api.RaiseOption
		if *idemKey != "" {
			opts = append(opts, api.WithIdempotencyKey(*idemKey))
		}
		return apiErr(c.Raise(ctx, pos[0], pos[1], d, opts...))
	case "terminate":
		if err := need(1, "ID [--reason TEXT] [--recursive]"); err != nil {
			return err
		}
		var r json.RawMessage
		if *reason != "" {
			r, _ = json.Marshal(*reason)
		}
		return apiErr(c.Terminate(ctx, pos[0], api.TerminateRequest{Reason: r, Recursive: *recursive}))
	case "pause":
		if err := need(1, "ID"); err != nil {
			return err
		}
		return apiErr(c.Suspend(ctx, pos[0], *reason))
	case "resume":
		if err := need(1, "ID"); err != nil {
			return err
		}
		return apiErr(c.Resume(ctx, pos[0], *reason))
	case "purge":
		const purgeUsage = "ID [--recursive] [--force], or weft purge --all-older-than 720h [--recursive]"
		if *olderThan > 0 {
			if err := need(0, purgeUsage); err != nil {
				return err
			}
			n, err := c.PurgeFinishedBefore(ctx, time.Now().Add(-*olderThan), *recursive)
			if err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(stdout, "purged %d instance(s) that finished more than %s ago\n", n, *olderThan)
			return nil
		}
		if err := need(1, purgeUsage); err != nil {
			return err
		}
		if *force {
			return apiErr(c.ForcePurge(ctx, pos[0], *recursive))
		}
		return apiErr(c.Purge(ctx, pos[0], *recursive))
	case "list":
		if err := need(0, "[--status RUNNING,FAILED] [--name NAME] [--limit N]"); err != nil {
			return err
		}
		return list(ctx, c, *status, *name, *limit, stdout)
	case "rerun":
		if err := need(1, "ID --from-event TASK [--id NEW] [--input JSON|@file] [--child-id ID] [--wait]"); err != nil {
			return err
		}
		if *fromEvent < 0 {
			return usageErr("weft rerun: --from-event TASK is required (the TASK column of weft history %s)", pos[0])
		}
		req := api.RerunRequest{FromEvent: fromEvent, NewInstanceID: *id, NewChildInstanceID: *childID}
		if *input != "" {
			in, err := payload(*input)
			if err != nil {
				return usageErr("--input: %v", err)
			}
			req.Input = in
		}
		return started(c.Rerun(ctx, pos[0], req))
	case "history":
		if err := need(1, "ID [--json]"); err != nil {
			return err
		}
		h, err := c.History(ctx, pos[0])
		if err != nil {
			return apiErr(err)
		}
		if *asJSON {
			return printJSON(stdout, h)
		}
		printTimeline(stdout, h)
		return nil
	case "cluster remove":
		if err := need(1, "NODE [--reason TEXT]"); err != nil {
			return err
		}
		if err := c.RemoveNode(ctx, pos[0], *reason); err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(stdout, "node %s removed: the leaders of its partitions replace its replicas (weft cluster partitions shows the progress)\n", pos[0])
		return nil
	case "cluster leave":
		if err := need(0, "[--timeout 10m] (the node at --server leaves)"); err != nil {
			return err
		}
		if err := c.LeaveCluster(ctx, *timeout); err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(stdout, "the node at %s left the cluster: its partitions moved to the others; stop it now\n", *server)
		return nil
	case "cluster members", "cluster partitions":
		if err := need(0, "[--json]"); err != nil {
			return err
		}
		return clusterCommand(ctx, c, cmd, *asJSON, stdout)
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

func list(ctx context.Context, c *api.Client, status, name string, limit int, stdout io.Writer) error {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if name != "" {
		q.Set("name", name)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED")
	shown := 0
	for shown < limit {
		q.Set("pageSize", fmt.Sprint(min(limit-shown, 1000)))
		page, err := c.List(ctx, q)
		if err != nil {
			return apiErr(err)
		}
		for _, in := range page.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.ID, in.Name, in.Status, in.CreatedAt.Format(time.RFC3339))
			shown++
		}
		if page.NextPageToken == "" {
			break
		}
		q.Set("pageToken", page.NextPageToken)
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
