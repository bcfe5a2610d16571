package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/workflow"
)

// Status is an instance's status in weft's own API.
type Status struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Status           string            `json:"status"`
	CreatedAt        time.Time         `json:"createdAt"`
	LastUpdatedAt    time.Time         `json:"lastUpdatedAt"`
	ScheduledStartAt *time.Time        `json:"scheduledStartAt,omitempty"`
	CompletedAt      *time.Time        `json:"completedAt,omitempty"`
	Input            json.RawMessage   `json:"input,omitempty"`
	Output           json.RawMessage   `json:"output,omitempty"`
	CustomStatus     json.RawMessage   `json:"customStatus,omitempty"`
	Failure          *workflow.Failure `json:"failure,omitempty"`
	ParentID         string            `json:"parentId,omitempty"`
	Generation       uint32            `json:"generation,omitempty"`
	// Version is the named version of the workflow's code the instance runs.
	Version string `json:"version,omitempty"`
	// Stall says why a STALLED instance waits.
	Stall *Stall `json:"stall,omitempty"`
	// WaitingOn lists what an unfinished instance waits on, as its history
	// shows it: activity calls (with the attempt a retried one is on, why the
	// last attempt failed and when the next starts), timers, child workflows,
	// event waits given a timeout.
	WaitingOn []workflow.Wait `json:"waitingOn,omitempty"`
}

// Stall says why an instance is STALLED: its history needs code (a version, a
// patch) that the node running it lacks.
type Stall struct {
	Reason      string `json:"reason"` // PATCH_MISMATCH or VERSION_NOT_AVAILABLE
	Description string `json:"description"`
}

// StartRequest is the body of POST /api/v1/instances.
type StartRequest struct {
	Name        string          `json:"name"`
	InstanceID  string          `json:"instanceId,omitempty"`
	Input       json.RawMessage `json:"input,omitempty"`
	StartAt     *time.Time      `json:"startAt,omitempty"`
	ReusePolicy string          `json:"reusePolicy,omitempty"` // error (default), ignore, terminate
	Version     string          `json:"version,omitempty"`     // a named version of the workflow (default: the registered default)
}

// RerunRequest is the body of POST /api/v1/instances/{id}/rerun: a new
// instance replays the finished instance's history up to the call scheduled
// as task FromEvent and runs again from there.
type RerunRequest struct {
	FromEvent          *int64          `json:"fromEvent"`
	NewInstanceID      string          `json:"newInstanceId,omitempty"`
	Input              json.RawMessage `json:"input,omitempty"` // replaces the call's input when set
	NewChildInstanceID string          `json:"newChildInstanceId,omitempty"`
}

// TerminateRequest is the body of POST /api/v1/instances/{id}/terminate.
type TerminateRequest struct {
	Reason    json.RawMessage `json:"reason,omitempty"`
	Recursive bool            `json:"recursive,omitempty"`
}

// ListResponse is the body of GET /api/v1/instances.
type ListResponse struct {
	Instances     []Summary `json:"instances"`
	NextPageToken string    `json:"nextPageToken,omitempty"`
}

// Summary is one instance in a listing.
type Summary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

// HistoryEvent is one history event in weft's API.
type HistoryEvent struct {
	Seq      int                   `json:"seq"`
	Kind     string                `json:"kind"`
	Time     time.Time             `json:"time"`
	TaskID   *int64                `json:"taskId,omitempty"`
	Name     string                `json:"name,omitempty"`
	Instance string                `json:"instance,omitempty"`
	Data     json.RawMessage       `json:"data,omitempty"`
	FireAt   *time.Time            `json:"fireAt,omitempty"`
	Failure  *workflow.Failure     `json:"failure,omitempty"`
	Retry    *workflow.RetryPolicy `json:"retry,omitempty"`
	Version  string                `json:"version,omitempty"`
}

// ClusterMembers is the body of GET /api/v1/cluster/members.
type ClusterMembers struct {
	Self    string               `json:"self"`
	Members []cluster.MemberView `json:"members"`
}

// ClusterPartitions is the body of GET /api/v1/cluster/partitions.
type ClusterPartitions struct {
	Self       string                  `json:"self"`
	Partitions []cluster.PartitionView `json:"partitions"`
}

// RemoveNodeRequest is the body of POST /api/v1/cluster/members/{id}/remove.
type RemoveNodeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// HistoryResponse is the body of GET /api/v1/instances/{id}/history.
type HistoryResponse struct {
	ID     string         `json:"id"`
	Events []HistoryEvent `json:"events"`
}

// jsonPayload embeds a stored payload in a JSON response. Payloads are JSON, except
// what a remote worker set without encoding it (Dapr's SDKs send custom status as
// plain text): that is embedded as a JSON string rather than breaking the response.
func jsonPayload(b []byte) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

func toStatus(st *weft.InstanceStatus) Status {
	out := Status{ID: st.ID, Name: st.Name, Status: string(st.Status), CreatedAt: st.CreatedAt, LastUpdatedAt: st.LastUpdatedAt,
		Input: jsonPayload(st.Input), Output: jsonPayload(st.Output), CustomStatus: jsonPayload(st.CustomStatus),
		Failure: st.Failure, ParentID: st.ParentID, Generation: st.Generation, Version: st.Version}
	if st.Stall != nil {
		out.Stall = &Stall{Reason: string(st.Stall.Reason), Description: st.Stall.Description}
	}
	if !st.ScheduledStartAt.IsZero() {
		out.ScheduledStartAt = &st.ScheduledStartAt
	}
	if !st.CompletedAt.IsZero() {
		out.CompletedAt = &st.CompletedAt
	}
	return out
}

// weft serves /api/v1/...:
//
//	GET    workflows                          registered workflow names
//	GET    counts                             {"RUNNING": n, ...} instances per status
//	GET    instances?status=&name=&createdFrom=&createdTo=&pageSize=&pageToken=
//	POST   instances                          StartRequest → 202 {"id"}
//	GET    instances/{id}                     Status (with waitingOn while unfinished)
//	GET    instances/{id}/history             HistoryResponse
//	GET    instances/{id}/wait?timeout=30s&for=completion|start
//	                                          200 Status once reached, 202 Status if the timeout came first
//	POST   instances/{id}/events/{name}       body = data → 202 (header Idempotency-Key: applied once)
//	POST   instances/{id}/terminate           TerminateRequest → 202
//	POST   instances/{id}/suspend|resume      {"reason"} → 202
//	POST   instances/{id}/rerun               RerunRequest → 202 {"id"}
//	DELETE instances/{id}?recursive=true&force=true → 200
//	DELETE instances?finishedBefore=RFC3339&recursive=true → 200 {"purged": n}
//	…      schedules                          see schedules.go
//	GET    cluster/members | cluster/partitions
//	POST   cluster/members/{id}/remove        {"reason"} → 200 (a node lost for good)
//	POST   cluster/leave?timeout=10m          → 200 once this node's partitions moved to the others
func (s *server) weft(w http.ResponseWriter, r *http.Request, segs []string) {
	n := len(segs)
	switch {
	case n == 1 && segs[0] == "workflows":
		if s.method(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string][]string{"workflows": s.rt.Registry().Workflows()})
		}
	case n == 1 && segs[0] == "counts":
		if s.method(w, r, http.MethodGet) {
			counts, err := s.rt.CountByStatus(r.Context())
			if err != nil {
				s.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, counts)
		}
	case n == 2 && segs[0] == "cluster" && (segs[1] == "members" || segs[1] == "partitions"):
		if !s.method(w, r, http.MethodGet) {
			return
		}
		node := s.rt.Cluster()
		if node == nil {
			writeError(w, &Error{http.StatusNotFound, CodeNotClustered, "this node runs alone: start weft serve with --gossip (and --join) to form a cluster"})
			return
		}
		if segs[1] == "members" {
			writeJSON(w, http.StatusOK, ClusterMembers{Self: node.ID(), Members: node.Members()})
		} else {
			writeJSON(w, http.StatusOK, ClusterPartitions{Self: node.ID(), Partitions: node.Partitions()})
		}
	case n == 2 && segs[0] == "cluster" && segs[1] == "leave":
		if s.method(w, r, http.MethodPost) {
			s.leave(w, r)
		}
	case n == 4 && segs[0] == "cluster" && segs[1] == "members" && segs[3] == "remove":
		if s.method(w, r, http.MethodPost) {
			s.removeNode(w, r, segs[2])
		}
	case n == 1 && segs[0] == "instances":
		switch r.Method {
		case http.MethodGet:
			s.list(w, r)
		case http.MethodPost:
			s.start(w, r)
		case http.MethodDelete:
			s.purgeFinished(w, r)
		default:
			s.method(w, r, http.MethodGet+", "+http.MethodPost+", "+http.MethodDelete)
		}
	case n >= 1 && n <= 3 && segs[0] == "schedules":
		s.schedules(w, r, segs)
	case n >= 2 && segs[0] == "instances":
		id := segs[1]
		if e := idError(id); e != nil {
			writeError(w, e)
			return
		}
		s.instance(w, r, id, segs[2:])
	default:
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no route " + r.Method + " " + r.URL.Path})
	}
}

// traceOption starts an instance in the W3C trace context of the request
// (its traceparent and tracestate headers), if it has a valid one.
func traceOption(r *http.Request) weft.ScheduleOption {
	return weft.WithTraceContext(r.Header.Get("traceparent"), r.Header.Get("tracestate"))
}

// rerun starts a new instance from one of a finished instance's calls.
func (s *server) rerun(w http.ResponseWriter, r *http.Request, id string) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req RerunRequest
	if err := json.Unmarshal(body, &req); err != nil || req.FromEvent == nil {
		writeError(w, badRequest(CodeInvalidInput, `the body must be {"fromEvent": <task id of an activity or child workflow call>, "newInstanceId", "input", "newChildInstanceId"}`))
		return
	}
	opts := weft.RerunOptions{InstanceID: req.NewInstanceID, ChildInstanceID: req.NewChildInstanceID}
	if req.Input != nil {
		opts.Input, opts.OverwriteInput = req.Input, true
	}
	newID, err := s.rt.Rerun(r.Context(), id, *req.FromEvent, opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	accepted(w, "/api/v1/instances/"+newID, map[string]string{"id": newID})
}

// purgeFinished purges the instances that finished before ?finishedBefore.
func (s *server) purgeFinished(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := q.Get("finishedBefore")
	if v == "" {
		writeError(w, badRequest(CodeInvalidInput, `purge of many instances needs ?finishedBefore=<RFC 3339 time> (weft purge --all-older-than 720h computes it)`))
		return
	}
	before, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		writeError(w, badRequest(CodeInvalidInput, `"finishedBefore" must be an RFC 3339 time, not `+strconv.Quote(v)))
		return
	}
	n, err := s.rt.PurgeFinished(r.Context(), before, weft.PurgeOptions{Recursive: q.Get("recursive") == "true"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

func (s *server) instance(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		st, err := s.rt.Status(ctx, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := toStatus(st)
		if out.WaitingOn, err = s.waits(ctx, st); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	case len(rest) == 0 && r.Method == http.MethodDelete:
		q := r.URL.Query()
		err := s.rt.Purge(ctx, id, weft.PurgeOptions{Recursive: q.Get("recursive") == "true", Force: q.Get("force") == "true"})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"purged": id})
	case len(rest) == 0:
		s.method(w, r, http.MethodGet+", "+http.MethodDelete)
	case len(rest) == 1 && rest[0] == "history":
		if s.method(w, r, http.MethodGet) {
			s.history(w, r, id)
		}
	case len(rest) == 1 && rest[0] == "wait":
		if s.method(w, r, http.MethodGet) {
			s.wait(w, r, id)
		}
	case len(rest) == 1 && rest[0] == "rerun":
		if s.method(w, r, http.MethodPost) {
			s.rerun(w, r, id)
		}
	case rest[0] == "events" && len(rest) <= 2:
		if !s.method(w, r, http.MethodPost) {
			return
		}
		if len(rest) == 1 || rest[1] == "" {
			writeError(w, badRequest(CodeEventNameMissing, "the event name is missing: POST /api/v1/instances/{id}/events/{name}"))
			return
		}
		s.daprRaise(w, r, id, rest[1])
	case len(rest) == 1 && (rest[0] == "terminate" || rest[0] == "suspend" || rest[0] == "resume"):
		if !s.method(w, r, http.MethodPost) {
			return
		}
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		var req struct {
			TerminateRequest
			Reason json.RawMessage `json:"reason,omitempty"`
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				writeError(w, badRequest(CodeInvalidInput, "the request body is not the expected JSON object: "+err.Error()))
				return
			}
		}
		var err error
		switch rest[0] {
		case "terminate":
			err = s.rt.Terminate(ctx, id, weft.TerminateOptions{Reason: req.Reason, Recursive: req.Recursive})
		case "suspend":
			err = s.rt.Suspend(ctx, id, reasonText(req.Reason))
		case "resume":
			err = s.rt.Resume(ctx, id, reasonText(req.Reason))
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no route " + r.Method + " " + r.URL.Path})
	}
}

func reasonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req StartRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, badRequest(CodeInvalidInput, `the body must be {"name": ..., "instanceId": ..., "input": ...}: `+err.Error()))
		return
	}
	if req.Name == "" {
		writeError(w, badRequest(CodeWorkflowNameMissing, `"name" (the workflow to start) is missing`))
		return
	}
	var opts []weft.ScheduleOption
	if req.InstanceID != "" {
		if e := idError(req.InstanceID); e != nil {
			writeError(w, e)
			return
		}
		opts = append(opts, weft.WithInstanceID(req.InstanceID))
	}
	if req.StartAt != nil {
		opts = append(opts, weft.WithStartTime(*req.StartAt))
	}
	if req.Version != "" {
		opts = append(opts, weft.WithVersion(req.Version))
	}
	switch req.ReusePolicy {
	case "", "error":
	case "ignore":
		opts = append(opts, weft.WithReusePolicy(weft.ReuseIgnore))
	case "terminate":
		opts = append(opts, weft.WithReusePolicy(weft.ReuseTerminate))
	default:
		writeError(w, badRequest(CodeInvalidInput, `"reusePolicy" must be "error", "ignore" or "terminate", not `+strconv.Quote(req.ReusePolicy)))
		return
	}
	opts = append(opts, traceOption(r))
	id, err := s.rt.Schedule(r.Context(), req.Name, req.Input, opts...)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	accepted(w, "/api/v1/instances/"+id, map[string]string{"id": id})
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := weft.ListQuery{Name: q.Get("name"), PageToken: q.Get("pageToken")}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			lq.Statuses = append(lq.Statuses, weft.RuntimeStatus(strings.ToUpper(strings.TrimSpace(st))))
		}
	}
	for key, dst := range map[string]*time.Time{"createdFrom": &lq.CreatedFrom, "createdTo": &lq.CreatedTo} {
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, badRequest(CodeBadRequest, key+" must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z: "+err.Error()))
				return
			}
			*dst = t
		}
	}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, badRequest(CodeBadRequest, "pageSize must be a number from 1 to 1000"))
			return
		}
		lq.PageSize = n
	}
	page, err := s.rt.List(r.Context(), lq)
	if errors.Is(err, weft.ErrInvalidInput) { // a bad status or page token
		writeError(w, badRequest(CodeBadRequest, err.Error()))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := ListResponse{Instances: make([]Summary, len(page.Instances)), NextPageToken: page.NextPageToken}
	for i, in := range page.Instances {
		resp.Instances[i] = Summary{ID: in.ID, Name: in.Name, Status: string(in.Status), CreatedAt: in.CreatedAt}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) history(w http.ResponseWriter, r *http.Request, id string) {
	evs, err := s.rt.History(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := HistoryResponse{ID: id, Events: make([]HistoryEvent, len(evs))}
	for i, ev := range evs {
		he := HistoryEvent{Seq: i, Kind: ev.Kind.String(), Time: ev.Time, Name: ev.Name, Instance: ev.Instance, Data: jsonPayload(ev.Data), Failure: ev.Failure, Retry: ev.Retry, Version: ev.Version}
		if ev.Kind != workflow.WorkflowStarted && !ev.Kind.IsTerminal() && ev.Kind != workflow.EventRaised &&
			ev.Kind != workflow.WorkflowSuspended && ev.Kind != workflow.WorkflowResumed &&
			ev.Kind != workflow.PatchRecorded && ev.Kind != workflow.ExecutionStalled {
			task := ev.TaskID
			he.TaskID = &task
		}
		if !ev.FireAt.IsZero() {
			fire := ev.FireAt
			he.FireAt = &fire
		}
		if len(he.Data) > 0 && !json.Valid(he.Data) {
			he.Data, _ = json.Marshal(string(ev.Data))
		}
		resp.Events[i] = he
	}
	writeJSON(w, http.StatusOK, resp)
}

// wait long-polls until the instance finished (or started, with for=start).
func (s *server) wait(w http.ResponseWriter, r *http.Request, id string) {
	timeout := 30 * time.Second
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 10*time.Minute {
			writeError(w, badRequest(CodeBadRequest, "timeout must be a duration up to 10m, e.g. 30s"))
			return
		}
		timeout = d
	}
	waitFn := s.rt.WaitForCompletion
	switch r.URL.Query().Get("for") {
	case "", "completion":
	case "start":
		waitFn = s.rt.WaitForStart
	default:
		writeError(w, badRequest(CodeBadRequest, `"for" must be "completion" or "start"`))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	st, err := waitFn(ctx, id)
	code := http.StatusOK
	switch {
	case err == nil:
	case st != nil && ctx.Err() != nil:
		w.Header().Set("Retry-After", "1")
		code = http.StatusAccepted
	default:
		s.fail(w, r, err)
		return
	}
	out := toStatus(st)
	// Best effort: the status is what was waited for, and an instance purged
	// since the wait ended has no history left to read.
	out.WaitingOn, _ = s.waits(r.Context(), st)
	writeJSON(w, code, out)
}

// waits returns what an unfinished instance waits on (nil for a finished one,
// without reading its history).
func (s *server) waits(ctx context.Context, st *weft.InstanceStatus) ([]workflow.Wait, error) {
	if st.Status.Finished() {
		return nil, nil
	}
	return s.rt.Waits(ctx, st.ID)
}

// removeNode removes a node lost for good from the cluster.
func (s *server) removeNode(w http.ResponseWriter, r *http.Request, id string) {
	node := s.rt.Cluster()
	if node == nil {
		writeError(w, &Error{http.StatusNotFound, CodeNotClustered, "this node runs alone: there is no cluster to remove a node from"})
		return
	}
	var req RemoveNodeRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalidInput, "body: want {\"reason\": \"...\"}: " + err.Error()})
			return
		}
	}
	if err := node.RemoveNode(id, req.Reason); err != nil {
		status := http.StatusConflict
		if !node.Known(id) {
			status = http.StatusNotFound
		}
		writeError(w, &Error{status, CodeNodeNotRemovable, err.Error()})
		return
	}
	s.log.Warn("node removed from the cluster by an API call", "removed", id, "reason", req.Reason)
	writeJSON(w, http.StatusOK, map[string]string{"removed": id})
}

// leave makes the node that serves the request leave the cluster for good:
// its partitions move to the others; it answers once they have.
func (s *server) leave(w http.ResponseWriter, r *http.Request) {
	node := s.rt.Cluster()
	if node == nil {
		writeError(w, &Error{http.StatusNotFound, CodeNotClustered, "this node runs alone: there is no cluster to leave"})
		return
	}
	timeout := 10 * time.Minute
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("timeout %q: want a positive duration such as 10m", v)})
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := node.Leave(ctx); err != nil {
		if errors.Is(err, cluster.ErrLastNode) {
			writeError(w, &Error{http.StatusConflict, CodeNodeNotRemovable, err.Error()})
			return
		}
		writeError(w, &Error{http.StatusGatewayTimeout, CodeTimeout, err.Error() + "; what did not move stays on this node, which serves it again if it starts again"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"left": node.ID()})
}
