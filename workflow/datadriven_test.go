package workflow

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs every script under testdata/scripts/. A script drives one workflow
// through events and shows the actions it produced:
//
//	run name=Chain [id=i1] [deadlock=50ms] [version=v]  a fresh instance and a live executor
//	apply [at=5s]                            input lines are events, at the given offset
//	replay [name=Other] [version=v] [keep]   a fresh executor replays the recorded history;
//	                                         with keep, its actions are recorded and it
//	                                         becomes the live executor (a restart)
//	record                                   input lines are appended to history, not run
//	history                                  the recorded history
//
// Event lines read `<kind> id=N name=X data=JSON instance=I type=T msg=M`; values
// with spaces are double-quoted. Rewrite expectations with -rewrite.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		h := &harness{reg: testRegistry()}
		defer h.close()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := h.do(d)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			return out
		})
	})
}

var scriptEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	reg      *Registry
	id       string
	opts     ExecutorOptions
	exec     *Executor
	logs     bytes.Buffer
	history  []Event
	at       time.Duration
	closers  []*Executor
	replayed []*Executor
	last     []Event // the actions of the last Execute
}

func (h *harness) close() {
	for _, e := range h.closers {
		e.Close()
	}
}

func (h *harness) newExecutor() *Executor {
	opts := h.opts
	opts.Logger = slog.New(slog.NewTextHandler(&h.logs, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == "instance" || a.Key == "workflow" {
				return slog.Attr{}
			}
			return a
		},
	}))
	e := NewExecutor(h.reg, h.id, opts)
	h.closers = append(h.closers, e)
	return e
}

func (h *harness) do(d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "run":
		h.id = "i1"
		h.history, h.at = nil, 0
		h.opts = ExecutorOptions{}
		for _, arg := range d.CmdArgs {
			switch arg.Key {
			case "id":
				h.id = arg.Vals[0]
			case "deadlock":
				dur, err := time.ParseDuration(arg.Vals[0])
				if err != nil {
					return "", err
				}
				h.opts.DeadlockTimeout = dur
			}
		}
		h.exec = h.newExecutor()
		var name, version string
		if arg, ok := d.Arg("name"); ok {
			name = arg.Vals[0]
		}
		if arg, ok := d.Arg("version"); ok {
			version = arg.Vals[0]
		}
		return h.execute(h.exec, nil, []Event{{Kind: WorkflowStarted, Name: name, Version: version, Data: []byte(d.Input), Time: scriptEpoch}})
	case "apply":
		if arg, ok := d.Arg("at"); ok {
			dur, err := time.ParseDuration(arg.Vals[0])
			if err != nil {
				return "", err
			}
			h.at = dur
		} else {
			h.at += time.Second
		}
		var evs []Event
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			ev, err := parseEvent(line)
			if err != nil {
				return "", err
			}
			ev.Time = scriptEpoch.Add(h.at)
			evs = append(evs, ev)
		}
		return h.execute(h.exec, nil, evs)
	case "replay":
		e := h.newExecutor()
		hist := append([]Event(nil), h.history...)
		if arg, ok := d.Arg("name"); ok {
			hist[0].Name = arg.Vals[0]
		}
		if arg, ok := d.Arg("version"); ok {
			hist[0].Version = arg.Vals[0]
		}
		if !d.HasArg("keep") {
			return h.execute(e, hist, nil)
		}
		h.exec = e
		out, err := h.execute(e, hist, nil)
		h.history = append(hist, h.last...)
		return out, err
	case "record":
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			ev, err := parseEvent(line)
			if err != nil {
				return "", err
			}
			h.at += time.Second
			ev.Time = scriptEpoch.Add(h.at)
			h.history = append(h.history, ev)
		}
		return "", nil
	case "history":
		var b strings.Builder
		for i, ev := range h.history {
			fmt.Fprintf(&b, "%d %s\n", i, formatEvent(ev))
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

// execute runs one Execute and records what the runtime would append to history.
func (h *harness) execute(e *Executor, past, new []Event) (string, error) {
	h.logs.Reset()
	o := e.Execute(past, new)
	h.last = o.Actions
	if past == nil {
		h.history = append(h.history, new...)
		h.history = append(h.history, o.Actions...)
	}
	var b strings.Builder
	for _, a := range o.Actions {
		fmt.Fprintf(&b, "%s\n", formatEvent(a))
	}
	if o.CustomStatusSet {
		fmt.Fprintf(&b, "custom-status %s\n", o.CustomStatus)
	}
	if o.Stall != nil {
		fmt.Fprintf(&b, "stalled %s\n", o.Stall)
	}
	for _, c := range o.Carry {
		fmt.Fprintf(&b, "carry %s\n", formatEvent(c))
	}
	for _, ig := range o.Ignored {
		fmt.Fprintf(&b, "ignored %s\n", formatEvent(ig))
	}
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "log %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(no actions)\n", nil
	}
	return b.String(), nil
}

func formatEvent(ev Event) string {
	var b strings.Builder
	b.WriteString(ev.Kind.String())
	if ev.Kind != WorkflowStarted && !ev.Kind.IsTerminal() && ev.Kind != EventRaised {
		fmt.Fprintf(&b, " id=%d", ev.TaskID)
	}
	if ev.Name != "" {
		fmt.Fprintf(&b, " name=%s", ev.Name)
	}
	if ev.Instance != "" {
		fmt.Fprintf(&b, " instance=%s", ev.Instance)
	}
	if ev.Version != "" {
		fmt.Fprintf(&b, " version=%s", ev.Version)
	}
	if len(ev.Data) > 0 {
		fmt.Fprintf(&b, " data=%s", ev.Data)
	}
	if !ev.FireAt.IsZero() {
		fmt.Fprintf(&b, " fire=+%s", ev.FireAt.Sub(scriptEpoch))
	}
	if ev.Failure != nil {
		fmt.Fprintf(&b, " failure=%q", ev.Failure.String())
	}
	if ev.Retry != nil {
		fmt.Fprintf(&b, " retry=%d×%s", ev.Retry.MaxAttempts, ev.Retry.FirstRetryInterval)
	}
	return b.String()
}

func parseEvent(line string) (Event, error) {
	fields, err := splitFields(line)
	if err != nil || len(fields) == 0 {
		return Event{}, fmt.Errorf("event line %q: %v", line, err)
	}
	kind, ok := ParseEventKind(fields[0])
	if !ok {
		return Event{}, fmt.Errorf("event line %q: unknown kind %q", line, fields[0])
	}
	ev := Event{Kind: kind}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Event{}, fmt.Errorf("event line %q: %q is not key=value", line, f)
		}
		switch k {
		case "id":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Event{}, err
			}
			ev.TaskID = n
		case "name":
			ev.Name = v
		case "data":
			ev.Data = []byte(v)
		case "instance":
			ev.Instance = v
		case "type", "msg":
			if ev.Failure == nil {
				ev.Failure = &Failure{}
			}
			if k == "type" {
				ev.Failure.Type = v
			} else {
				ev.Failure.Message = v
			}
		default:
			return Event{}, fmt.Errorf("event line %q: unknown key %q", line, k)
		}
	}
	return ev, nil
}

// splitFields splits on spaces outside double quotes and unquotes quoted values.
func splitFields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"' && (i == 0 || line[i-1] != '\\'):
			inQuote = !inQuote
			cur.WriteByte(c)
		case c == ' ' && !inQuote:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	for i, f := range out {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(v, `"`) {
			u, err := strconv.Unquote(v)
			if err != nil {
				return nil, err
			}
			out[i] = k + "=" + u
		}
	}
	return out, nil
}
