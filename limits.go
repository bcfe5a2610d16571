package weft

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weftrt/weft/limits"
	"github.com/weftrt/weft/workflow"
)

// Cluster-wide activity limits (package limits): the limiters are instances
// of weft's own workflow; this file registers it, with the activity a
// limiter runs to find permits held by instances that are gone.

func (r *Runtime) registerLimiters() error {
	for name, n := range r.opts.ActivityLimits {
		if strings.TrimSpace(name) == "" || n < 1 {
			return fmt.Errorf("activity limit %q=%d: want a non-empty activity name and a limit of at least 1", name, n)
		}
	}
	for name, n := range r.opts.WorkflowLimits {
		if strings.TrimSpace(name) == "" || n < 1 {
			return fmt.Errorf("workflow limit %q=%d: want a non-empty workflow name and a limit of at least 1", name, n)
		}
	}
	if err := workflow.RegisterWorkflow(r.reg, limits.Workflow, workflow.WithName(limits.WorkflowName)); err != nil {
		return err
	}
	return workflow.RegisterActivity(r.reg, r.checkPermitHolders, workflow.WithName(limits.CheckActivity))
}

// checkPermitHolders returns the holders whose instance is gone or
// finished: their permits are not coming back (an instance purged by force
// gives nothing back; a finished one has sent its permits back, and a
// second release is harmless).
func (r *Runtime) checkPermitHolders(ctx context.Context, holders []limits.Holder) ([]limits.Holder, error) {
	var gone []limits.Holder
	for _, h := range holders {
		st, err := r.Status(ctx, h.Instance)
		switch {
		case errors.Is(err, ErrInstanceNotFound):
			gone = append(gone, h)
		case err != nil:
			return nil, err
		case st.Status.Finished():
			gone = append(gone, h)
		case h.Task == limits.WorkflowTask && st.CreatedAt.UnixNano() != h.Incarnation:
			gone = append(gone, h) // the id was reused: the instance that held it is gone
		case h.Task != limits.WorkflowTask && st.Generation != h.Gen:
			gone = append(gone, h) // continued as new: the call was dropped
		}
	}
	return gone, nil
}

// ParseActivityLimits reads limits as --activity-limit and --workflow-limit
// take them: comma-separated name=limit pairs, e.g.
// "ProcessWorkItem=20,SendEmail=5".
func ParseActivityLimits(s string) (map[string]int, error) {
	out := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if !ok || name == "" || err != nil || n < 1 {
			return nil, fmt.Errorf("limit %q: want name=limit with a limit of at least 1, e.g. ProcessWorkItem=20", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("limit %q: %s is given twice", part, name)
		}
		out[name] = n
	}
	return out, nil
}
