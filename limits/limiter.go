package limits

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/workflow"
)

// The names under which package weft registers a limiter's code, and the
// events between limiters and the instances they serve.
const (
	WorkflowName = "weft.Limiter"
	// CheckActivity reports which holders no longer need their permits.
	CheckActivity = "weft.CheckPermitHolders"
	// RequestEvent carries a Request to a limiter.
	RequestEvent = "weft.limit.request"
	// PermitEvent carries a Permit to the instance that asked for it.
	PermitEvent = "weft.limit.permit"
)

// checkEvery is how often, while requests wait, a limiter checks that its
// holders still need their permits.
const checkEvery = 30 * time.Second

// drainPerStep bounds the requests one generation takes in before it
// continues as new.
const drainPerStep = 500

// What a limiter limits: the attempts of an activity running at once, or
// the instances of a workflow running at once.
const (
	KindActivity = "activity"
	KindWorkflow = "workflow"
)

// InstanceID is the id of the limiter of the activity or workflow name
// (kind KindActivity or KindWorkflow): the name itself where it can be part of an
// instance id, else a readable part of it and a hash.
func InstanceID(kind, name string) string {
	prefix := "limit:" + kind + ":"
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':' {
			return r
		}
		return '_'
	}, name)
	if clean == name && len(prefix)+len(name) <= 64 {
		return prefix + name
	}
	sum := sha1.Sum([]byte(name))
	return prefix + clean[:min(len(clean), 64-len(prefix)-17)] + "-" + hex.EncodeToString(sum[:8])
}

// Holder names one attempt of one activity call, or (Task -1) an instance
// of a limited workflow: the permit it holds or waits for.
type Holder struct {
	Instance string `json:"i"`
	// Incarnation tells apart instances that had the same id (the creation
	// time in unix nanoseconds), for a workflow's permit.
	Incarnation int64  `json:"c,omitempty"`
	Gen         uint32 `json:"g,omitempty"`
	Task        int64  `json:"t"`
	Attempt     int    `json:"a"`
}

func (h Holder) String() string {
	return fmt.Sprintf("%s/%d/%d/%d", h.Instance, h.Gen, h.Task, h.Attempt)
}

// Request asks a limiter for a permit (Release false) or gives one back, or
// withdraws a request that waits (Release true). Limit is the limit the
// sender is configured with: the latest one a limiter hears applies.
type Request struct {
	Holder
	Kind    string `json:"k,omitempty"`
	Name    string `json:"n,omitempty"`
	Release bool   `json:"r,omitempty"`
	Limit   int    `json:"l,omitempty"`
}

// WorkflowTask is the task of a Holder that is a workflow instance.
const WorkflowTask = -1

// Grant gives permits to holders of one instance.
type Grant struct {
	Holders []Holder `json:"h"`
	Limiter string   `json:"from"`
}

// State is a limiter's whole state, the input of each generation; its
// custom status shows Limit, Running and Waiting.
type State struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Limit   int      `json:"limit"`
	Holders []Holder `json:"holders,omitempty"`
	Queue   []Holder `json:"queue,omitempty"`
	// CheckedAt is when the holders were last checked.
	CheckedAt time.Time `json:"checkedAt,omitzero"`
}

// Status is a limiter's custom status.
type Status struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Limit   int    `json:"limit"`
	Running int    `json:"running"`
	Waiting int    `json:"waiting"`
}

// Workflow is a limiter: each generation takes in the requests that came,
// grants what the limit allows, and continues as new.
func Workflow(ctx *workflow.Context, st State) (struct{}, error) {
	if err := ctx.SetCustomStatus(st.status()); err != nil {
		return struct{}{}, err
	}
	request := ctx.WaitForExternalEvent(RequestEvent, 0)
	waits := []*workflow.Task{request}
	var check *workflow.Task
	if len(st.Queue) > 0 && len(st.Holders) > 0 {
		check = ctx.CreateTimerUntil(st.CheckedAt.Add(checkEvery))
		waits = append(waits, check)
	}
	if _, err := workflow.WhenAny(waits...); err != nil {
		return struct{}{}, err
	}
	for n := 0; request.Done() && n < drainPerStep; n++ {
		var rs []Request // an instance sends the requests of one of its steps together
		if err := request.Await(&rs); err != nil {
			return struct{}{}, fmt.Errorf("limiter %s: request: %w", ctx.InstanceID(), err)
		}
		for _, r := range rs {
			st.take(r)
		}
		request = ctx.WaitForExternalEvent(RequestEvent, 0)
	}
	if !request.Done() {
		request.Cancel() // left to the next generation
	}
	if check != nil && check.Done() {
		var gone []Holder
		if err := ctx.CallActivity(CheckActivity, st.Holders).Await(&gone); err == nil {
			for _, h := range gone {
				st.take(Request{Holder: h, Release: true})
			}
		} else {
			ctx.Logger().Warn("checking the holders of permits failed; trying again later", "limiter", ctx.InstanceID(), "err", err)
		}
		st.CheckedAt = ctx.Now()
	}
	if len(st.Queue) == 0 || st.CheckedAt.IsZero() {
		st.CheckedAt = ctx.Now() // the check is due checkEvery after requests start waiting
	}
	granted := st.grant()
	byInstance := map[string][]Holder{}
	var order []string
	for _, h := range granted {
		if _, ok := byInstance[h.Instance]; !ok {
			order = append(order, h.Instance)
		}
		byInstance[h.Instance] = append(byInstance[h.Instance], h)
	}
	for _, id := range order {
		if err := ctx.SendEvent(id, PermitEvent, Grant{Holders: byInstance[id], Limiter: ctx.InstanceID()}); err != nil {
			return struct{}{}, err
		}
	}
	if err := ctx.SetCustomStatus(st.status()); err != nil {
		return struct{}{}, err
	}
	ctx.ContinueAsNew(st, true)
	return struct{}{}, nil
}

// take applies a request to the state; grant hands out what it allows.
func (st *State) take(r Request) {
	if r.Limit > 0 {
		st.Limit = r.Limit
	}
	if st.Name == "" {
		st.Kind, st.Name = r.Kind, r.Name
	}
	same := func(h Holder) bool { return h == r.Holder }
	if r.Release {
		st.Holders = slices.DeleteFunc(st.Holders, same)
		st.Queue = slices.DeleteFunc(st.Queue, same)
		return
	}
	if slices.ContainsFunc(st.Holders, same) || slices.ContainsFunc(st.Queue, same) {
		return // asked again (after the instance restarted): it holds or waits already
	}
	st.Queue = append(st.Queue, r.Holder)
}

func (st *State) status() Status {
	return Status{Kind: st.Kind, Name: st.Name, Limit: st.Limit, Running: len(st.Holders), Waiting: len(st.Queue)}
}

// grant moves waiting requests to the holders while the limit allows, and
// returns them.
func (st *State) grant() []Holder {
	n := min(len(st.Queue), max(st.Limit-len(st.Holders), 0))
	granted := slices.Clone(st.Queue[:n])
	st.Holders = append(st.Holders, granted...)
	st.Queue = slices.Delete(st.Queue, 0, n)
	return granted
}
