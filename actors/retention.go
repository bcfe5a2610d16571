package actors

import (
	"fmt"
	"strings"
	"time"

	"github.com/weftrt/weft/storage"
)

// Retention says how long a finished instance is kept before it is purged,
// by its final status; zero keeps it for ever (the default). An instance
// that finishes gets a reminder due then, in the step that finishes it, so
// nothing ever scans for expired instances, and the purge survives restarts
// and moves like any timer. A child workflow gets none: it is purged with
// its parent (a purge is recursive), so a parent's history never names a
// child that is gone.
type Retention struct {
	Completed  time.Duration
	Failed     time.Duration
	Terminated time.Duration
}

// IsZero reports whether nothing is ever purged.
func (r Retention) IsZero() bool { return r == Retention{} }

// after is how long an instance that finished with status is kept.
func (r Retention) after(s storage.Status) time.Duration {
	switch s {
	case storage.Completed:
		return r.Completed
	case storage.Failed:
		return r.Failed
	case storage.Terminated:
		return r.Terminated
	}
	return 0
}

func (r Retention) String() string {
	var parts []string
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"completed", r.Completed}, {"failed", r.Failed}, {"terminated", r.Terminated}} {
		if p.d > 0 {
			parts = append(parts, p.name+"="+p.d.String())
		}
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ",")
}

// ParseRetention reads a retention policy as the --retention flag takes it:
// comma-separated status=duration pairs, the statuses completed, failed,
// terminated, or any (every status not named), the durations as Go writes
// them (720h, 90m); "" or "off" is no retention. As Dapr's
// stateRetentionPolicy (anyTerminal, completed, failed, terminated).
func ParseRetention(s string) (Retention, error) {
	var r Retention
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return r, nil
	}
	var anyD time.Duration
	set := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok {
			return Retention{}, fmt.Errorf("retention %q: want status=duration pairs, e.g. completed=720h,failed=2160h (statuses: completed, failed, terminated, any)", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil || d <= 0 {
			return Retention{}, fmt.Errorf("retention %q: %q is not a positive duration (e.g. 720h, 90m)", part, value)
		}
		if set[name] {
			return Retention{}, fmt.Errorf("retention %q: %s is given twice", s, name)
		}
		set[name] = true
		switch name {
		case "completed":
			r.Completed = d
		case "failed":
			r.Failed = d
		case "terminated":
			r.Terminated = d
		case "any", "anyterminal":
			anyD = d
		default:
			return Retention{}, fmt.Errorf("retention %q: unknown status %q (statuses: completed, failed, terminated, any)", part, name)
		}
	}
	for _, d := range []*time.Duration{&r.Completed, &r.Failed, &r.Terminated} {
		if *d == 0 {
			*d = anyD
		}
	}
	return r, nil
}

// purgeReminder is the name of the reminder that purges a finished instance.
const purgeReminder = "purge"

// purgeRetryAfter: a purge that could not finish (a child's node did not
// answer) is tried again this much later.
const purgeRetryAfter = time.Minute

// schedulePurge gives a top-level instance that is finishing with status
// its purge reminder, if the retention keeps such instances for a while.
func (w *workflowActor) schedulePurge(t *txn, status storage.Status) {
	if w.row.ParentID != "" {
		return // purged with its parent
	}
	if d := w.h.opts.Retention.after(status); d > 0 {
		w.putReminder(t, purgeReminder, w.now.Add(d))
	}
}

// purgeExpired purges an instance whose retention ran out, its children
// with it.
func (w *workflowActor) purgeExpired(r storage.Reminder) error {
	if !w.row.Status.Terminal() {
		t := w.newTxn() // it runs again (rerun from an event, a restart): stale
		w.deleteReminder(t, r)
		return w.commit(t)
	}
	err := w.purge(PurgeRequest{Recursive: true, Expired: true})
	if err == nil || w.row == nil {
		return err
	}
	w.h.log.Warn("purging an instance whose retention ran out failed; trying again later", "instance", w.id, "in", purgeRetryAfter, "err", err)
	t := w.newTxn()
	w.putReminder(t, purgeReminder, w.now.Add(purgeRetryAfter))
	return w.commit(t)
}
