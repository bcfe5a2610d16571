package weft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/schedules"
	"github.com/weftrt/weft/workflow"
)

// Recurring schedules (package schedules): each is a workflow instance of
// weft's own, so this file only turns calls into starts, events and reads of
// those instances, and gives the schedules the activity that starts their
// runs.

// Schedule describes a recurring schedule: start Workflow on every tick of
// Cron or Every (see schedules.Spec).
type Schedule = schedules.Spec

// Overlap policies, for Schedule.Overlap.
const (
	OverlapSkip              = schedules.OverlapSkip
	OverlapBufferOne         = schedules.OverlapBufferOne
	OverlapAllowAll          = schedules.OverlapAllowAll
	OverlapTerminatePrevious = schedules.OverlapTerminatePrevious
)

// ErrScheduleNotFound: no schedule has that id (it wraps
// ErrInstanceNotFound); ErrScheduleExists: one has (it wraps
// ErrInstanceExists).
var (
	ErrScheduleNotFound = fmt.Errorf("schedule not found: %w", ErrInstanceNotFound)
	ErrScheduleExists   = fmt.Errorf("schedule exists: %w", ErrInstanceExists)
)

// ScheduleInfo is what a schedule is and has done.
type ScheduleInfo struct {
	ID string `json:"id"`
	// Instance is the id of the workflow instance that is the schedule (its
	// history shows every tick).
	Instance string `json:"instance"`
	// Status is that instance's: RUNNING while the schedule lives; anything
	// else says why it does not tick (STALLED, SUSPENDED, TERMINATED).
	Status RuntimeStatus `json:"status"`
	schedules.State
}

// commandWait bounds how long a command waits to see itself applied when
// its context has no deadline.
const commandWait = 30 * time.Second

func (r *Runtime) registerSchedules() error {
	if err := workflow.RegisterWorkflow(r.reg, schedules.Workflow, workflow.WithName(schedules.WorkflowName)); err != nil {
		return err
	}
	return workflow.RegisterActivity(r.reg, r.startScheduledRun, workflow.WithName(schedules.StartRunActivity))
}

// CreateSchedule creates a schedule; its first tick is the first of its
// timetable after now. A schedule with that id already there is refused with
// ErrInstanceExists.
func (r *Runtime) CreateSchedule(ctx context.Context, s Schedule) (*ScheduleInfo, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalidInput)
	}
	if err := r.validateWorkflowInput(s.Workflow, s.Version, s.Input); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", s.ID, err)
	}
	_, err := r.Schedule(ctx, schedules.WorkflowName, schedules.State{Spec: s, Paused: s.Paused}, WithInstanceID(schedules.InstanceID(s.ID)))
	if errors.Is(err, ErrInstanceExists) {
		return nil, fmt.Errorf("schedule %q already exists (delete it first to create it anew): %w", s.ID, ErrScheduleExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create schedule %q: %w", s.ID, err)
	}
	return r.awaitSchedule(ctx, s.ID, func(st *schedules.State) bool { return !st.CreatedAt.IsZero() })
}

// GetSchedule returns a schedule's state.
func (r *Runtime) GetSchedule(ctx context.Context, id string) (*ScheduleInfo, error) {
	if err := schedules.ValidateID(id); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalidInput)
	}
	st, err := r.Status(ctx, schedules.InstanceID(id))
	if errors.Is(err, ErrInstanceNotFound) {
		return nil, fmt.Errorf("schedule %q: %w", id, ErrScheduleNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", id, err)
	}
	return scheduleOf(id, st)
}

// ListSchedules returns every schedule, by id.
func (r *Runtime) ListSchedules(ctx context.Context) ([]ScheduleInfo, error) {
	var out []ScheduleInfo
	q := ListQuery{Name: schedules.WorkflowName, PageSize: 1000}
	for {
		page, err := r.List(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		for _, in := range page.Instances {
			id, ok := schedules.ScheduleID(in.ID)
			if !ok {
				continue
			}
			info, err := r.GetSchedule(ctx, id)
			if errors.Is(err, ErrInstanceNotFound) {
				continue // deleted since the listing
			}
			if err != nil {
				return nil, err
			}
			out = append(out, *info)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	slices.SortFunc(out, func(a, b ScheduleInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// PauseSchedule stops a schedule's ticks until ResumeSchedule; runs already
// started go on. note says why (shown with the schedule).
func (r *Runtime) PauseSchedule(ctx context.Context, id, note string) (*ScheduleInfo, error) {
	info, _, err := r.scheduleCommand(ctx, id, "pause", note)
	return info, err
}

// ResumeSchedule lets a paused schedule tick again, from now: ticks that
// fell due while it was paused are not run.
func (r *Runtime) ResumeSchedule(ctx context.Context, id, note string) (*ScheduleInfo, error) {
	info, _, err := r.scheduleCommand(ctx, id, "resume", note)
	return info, err
}

// TriggerSchedule starts a run of the schedule now, outside its timetable
// (paused or not), under its overlap policy, and returns what became of it
// (started, skipped, buffered) and the run's id.
func (r *Runtime) TriggerSchedule(ctx context.Context, id string) (*schedules.Action, error) {
	info, cmd, err := r.scheduleCommand(ctx, id, "trigger", "")
	if err != nil {
		return nil, err
	}
	for i := len(info.Recent) - 1; i >= 0; i-- {
		if a := info.Recent[i]; a.Command == cmd {
			return &a, nil
		}
	}
	if b := info.Buffered; b != nil && b.Command == cmd {
		return b, nil
	}
	return nil, fmt.Errorf("schedule %q applied the trigger but no longer shows what it did", id)
}

// DeleteSchedule ends a schedule and deletes it; runs it started go on.
func (r *Runtime) DeleteSchedule(ctx context.Context, id string) error {
	if err := schedules.ValidateID(id); err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalidInput)
	}
	inst := schedules.InstanceID(id)
	err := r.Terminate(ctx, inst, TerminateOptions{Reason: "schedule deleted"})
	if errors.Is(err, ErrInstanceNotFound) {
		return fmt.Errorf("schedule %q: %w", id, ErrScheduleNotFound)
	}
	if err != nil && !errors.Is(err, ErrNotRunning) {
		return fmt.Errorf("delete schedule %q: %w", id, err)
	}
	if err := r.Purge(ctx, inst, PurgeOptions{Force: true}); err != nil && !errors.Is(err, ErrInstanceNotFound) {
		return fmt.Errorf("delete schedule %q: %w", id, err)
	}
	return nil
}

// scheduleCommand sends a command to a schedule and waits until the
// schedule shows it applied; it returns the schedule then and the command's
// id.
func (r *Runtime) scheduleCommand(ctx context.Context, id, kind, note string) (*ScheduleInfo, string, error) {
	info, err := r.GetSchedule(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if info.Status.Finished() {
		return nil, "", fmt.Errorf("schedule %q has ended (%s): delete it and create it anew: %w", id, info.Status, ErrNotRunning)
	}
	cmd := newInstanceID()[:16]
	if err := r.RaiseEvent(ctx, info.Instance, schedules.CommandEvent, schedules.Command{ID: cmd, Kind: kind, Note: note}); err != nil {
		return nil, "", fmt.Errorf("%s schedule %q: %w", kind, id, err)
	}
	info, err = r.awaitSchedule(ctx, id, func(st *schedules.State) bool { return slices.Contains(st.Commands, cmd) })
	if err != nil {
		return nil, "", fmt.Errorf("%s schedule %q: the command is queued and will apply once the schedule runs again, but %w", kind, id, err)
	}
	return info, cmd, nil
}

// awaitSchedule reads a schedule until applied says it shows what the caller
// is waiting for. The schedule updates its custom status within a step or
// two; nothing notifies a custom status, so this polls, quickly at first.
func (r *Runtime) awaitSchedule(ctx context.Context, id string, applied func(*schedules.State) bool) (*ScheduleInfo, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commandWait)
		defer cancel()
	}
	wait := 2 * time.Millisecond
	for {
		info, err := r.GetSchedule(ctx, id)
		if err != nil {
			return nil, err
		}
		if applied(&info.State) {
			return info, nil
		}
		if info.Status.Finished() {
			return nil, fmt.Errorf("schedule %q ended (%s)", id, info.Status)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("schedule %q did not show it in time: %w", id, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func scheduleOf(id string, st *InstanceStatus) (*ScheduleInfo, error) {
	info := &ScheduleInfo{ID: id, Instance: st.ID, Status: st.Status}
	state := st.CustomStatus
	if len(state) == 0 {
		state = st.Input // not yet run: its state is still only its input
	}
	if err := json.Unmarshal(state, &info.State); err != nil {
		return nil, fmt.Errorf("schedule %q: read its state: %w", id, err)
	}
	return info, nil
}

// startScheduledRun is the schedules.StartRunActivity: it applies the
// overlap policy to the runs still running and starts the tick's run, under
// an id of the tick's (so a retried attempt finds the run it started).
func (r *Runtime) startScheduledRun(ctx context.Context, in schedules.StartRun) (schedules.StartRunResult, error) {
	var running []string
	for _, id := range in.Running {
		st, err := r.Status(ctx, id)
		if errors.Is(err, ErrInstanceNotFound) {
			continue // purged
		}
		if err != nil {
			return schedules.StartRunResult{}, fmt.Errorf("status of the earlier run %s: %w", id, err)
		}
		if !st.Status.Finished() {
			running = append(running, id)
		}
	}
	if len(running) > 0 && !in.Force {
		list := strings.Join(running, ", ")
		switch in.Overlap {
		case schedules.OverlapSkip:
			return schedules.StartRunResult{Outcome: schedules.Skipped, Reason: "still running: " + list, Running: running}, nil
		case schedules.OverlapBufferOne:
			return schedules.StartRunResult{Outcome: schedules.Buffered, Reason: "waits for " + list, Running: running}, nil
		case schedules.OverlapTerminatePrevious:
			for _, id := range running {
				err := r.Terminate(ctx, id, TerminateOptions{Reason: fmt.Sprintf("terminated by its schedule: the run %s overlaps it", in.Run)})
				if err != nil && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrInstanceNotFound) {
					return schedules.StartRunResult{}, fmt.Errorf("terminate the earlier run %s: %w", id, err)
				}
			}
			running = nil
		}
	}
	_, err := r.Schedule(ctx, in.Workflow, []byte(in.Input), WithInstanceID(in.Run), WithVersion(in.Version),
		func(o *scheduleOptions) { o.notify = in.Schedule })
	if errors.Is(err, ErrInstanceExists) {
		// An earlier attempt of this activity may have started it.
		st, serr := r.Status(ctx, in.Run)
		if serr != nil {
			return schedules.StartRunResult{}, fmt.Errorf("start %s: %w", in.Run, serr)
		}
		if st.Name != in.Workflow {
			return schedules.StartRunResult{}, workflow.NonRetriable(fmt.Errorf("start %s: the id is taken by an instance of %s", in.Run, st.Name))
		}
		err = nil
	}
	if errors.Is(err, ErrWorkflowNotRegistered) || errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrInvalidInstanceID) {
		return schedules.StartRunResult{}, workflow.NonRetriable(fmt.Errorf("start %s: %w", in.Run, err))
	}
	if err != nil {
		return schedules.StartRunResult{}, fmt.Errorf("start %s: %w", in.Run, err)
	}
	return schedules.StartRunResult{Outcome: schedules.Started, Running: append(running, in.Run)}, nil
}
