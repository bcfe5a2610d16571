package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/cluster"
)

// daprStatus is exactly the body of Dapr's GET /workflows/dapr/{instanceID}.
type daprStatus struct {
	InstanceID    string            `json:"instanceID"`
	WorkflowName  string            `json:"workflowName"`
	CreatedAt     string            `json:"createdAt"`
	LastUpdatedAt string            `json:"lastUpdatedAt"`
	RuntimeStatus string            `json:"runtimeStatus"`
	Properties    map[string]string `json:"properties"`
}

func toDapr(st *weft.InstanceStatus) daprStatus {
	props := map[string]string{}
	put := func(k string, v []byte) {
		if len(v) > 0 {
			props[k] = string(v)
		}
	}
	put("dapr.workflow.input", st.Input)
	put("dapr.workflow.output", st.Output)
	put("dapr.workflow.custom_status", st.CustomStatus)
	if st.Failure != nil {
		put("dapr.workflow.failure.error_type", []byte(st.Failure.Type))
		put("dapr.workflow.failure.error_message", []byte(st.Failure.Message))
	}
	return daprStatus{
		InstanceID: st.ID, WorkflowName: st.Name, RuntimeStatus: string(st.Status),
		CreatedAt: st.CreatedAt.UTC().Format(time.RFC3339Nano), LastUpdatedAt: st.LastUpdatedAt.UTC().Format(time.RFC3339Nano),
		Properties: props,
	}
}

// dapr serves /{version}/workflows/{component}/...:
//
//	POST {name}/start[?instanceID=]     raw body = input → 202 {"instanceID"}
//	GET  {instanceID}                    → 200 status
//	POST {instanceID}/raiseEvent/{event} raw body = data → 202 (header Idempotency-Key: applied once)
//	POST {instanceID}/terminate|pause|resume|purge      → 202
func (s *server) dapr(w http.ResponseWriter, r *http.Request, version string, segs []string) {
	if len(segs) < 2 {
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "expected /" + version + "/workflows/dapr/{instanceID} or /" + version + "/workflows/dapr/{workflowName}/start"})
		return
	}
	if segs[0] != "dapr" {
		writeError(w, badRequest(CodeComponentNotFound, "workflow component "+strconv.Quote(segs[0])+" not found: weft is the \"dapr\" component"))
		return
	}
	target, rest := segs[1], segs[2:]
	switch {
	case len(rest) == 0:
		if !s.method(w, r, http.MethodGet) {
			return
		}
		s.daprStatus(w, r, target)
	case len(rest) == 1 && rest[0] == "start":
		if !s.method(w, r, http.MethodPost) {
			return
		}
		s.daprStart(w, r, version, target)
	case rest[0] == "raiseEvent" && len(rest) <= 2:
		if !s.method(w, r, http.MethodPost) {
			return
		}
		event := ""
		if len(rest) == 2 {
			event = rest[1]
		}
		s.daprRaise(w, r, target, event)
	case len(rest) == 1 && (rest[0] == "terminate" || rest[0] == "pause" || rest[0] == "resume" || rest[0] == "purge"):
		if !s.method(w, r, http.MethodPost) {
			return
		}
		s.daprAction(w, r, target, rest[0])
	default:
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no workflow route " + r.Method + " " + r.URL.Path})
	}
}

func (s *server) method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want {
		return true
	}
	w.Header().Set("Allow", want)
	writeError(w, &Error{http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.URL.Path + " takes " + want + ", not " + r.Method})
	return false
}

func (s *server) daprStart(w http.ResponseWriter, r *http.Request, version, name string) {
	if name == "" {
		writeError(w, badRequest(CodeWorkflowNameMissing, "the workflow name is missing: POST /"+version+"/workflows/dapr/{workflowName}/start"))
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	opts := []weft.ScheduleOption{}
	if q := r.URL.Query(); q.Has("instanceID") {
		id := q.Get("instanceID")
		if e := idError(id); e != nil {
			writeError(w, e)
			return
		}
		opts = append(opts, weft.WithInstanceID(id))
	}
	if len(body) > 0 && !json.Valid(body) {
		writeError(w, badRequest(CodeInvalidInput, "the request body (the workflow input) is not valid JSON"))
		return
	}
	opts = append(opts, traceOption(r))
	id, err := s.rt.Schedule(r.Context(), name, json.RawMessage(body), opts...)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	location := "/" + version + "/workflows/dapr/" + id
	accepted(w, location, map[string]string{"instanceID": id})
}

func (s *server) daprStatus(w http.ResponseWriter, r *http.Request, id string) {
	if e := idError(id); e != nil {
		writeError(w, e)
		return
	}
	st, err := s.rt.Status(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDapr(st))
}

func (s *server) daprRaise(w http.ResponseWriter, r *http.Request, id, event string) {
	if e := idError(id); e != nil {
		writeError(w, e)
		return
	}
	if event == "" {
		writeError(w, badRequest(CodeEventNameMissing, "the event name is missing: POST .../{instanceID}/raiseEvent/{eventName}"))
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if len(body) > 0 && !json.Valid(body) {
		writeError(w, badRequest(CodeInvalidInput, "the request body (the event data) is not valid JSON"))
		return
	}
	var opts []weft.RaiseOption
	if key := r.Header.Get(IdempotencyKeyHeader); key != "" {
		if err := weft.ValidateIdempotencyKey(key); err != nil {
			writeError(w, badRequest(CodeInvalidInput, "the "+IdempotencyKeyHeader+" header must be 1 to 64 characters of [A-Za-z0-9_.:-] (a UUID will do)"))
			return
		}
		opts = append(opts, weft.WithIdempotencyKey(key))
	}
	if err := s.rt.RaiseEvent(r.Context(), id, event, json.RawMessage(body), opts...); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// daprAction: terminate and purge are recursive to child workflows, as in Dapr,
// unless ?non_recursive=true.
func (s *server) daprAction(w http.ResponseWriter, r *http.Request, id, action string) {
	if e := idError(id); e != nil {
		writeError(w, e)
		return
	}
	recursive := r.URL.Query().Get("non_recursive") != "true"
	ctx := r.Context()
	var err error
	switch action {
	case "terminate":
		var reason json.RawMessage
		if body, ok := s.readBody(w, r); !ok {
			return
		} else if len(body) > 0 {
			if !json.Valid(body) {
				writeError(w, badRequest(CodeInvalidInput, "the request body (the termination reason) is not valid JSON"))
				return
			}
			reason = body
		}
		err = s.rt.Terminate(ctx, id, weft.TerminateOptions{Reason: reason, Recursive: recursive})
	case "pause":
		err = s.rt.Suspend(ctx, id, "paused over HTTP")
	case "resume":
		err = s.rt.Resume(ctx, id, "resumed over HTTP")
	case "purge":
		err = s.rt.Purge(ctx, id, weft.PurgeOptions{Recursive: recursive})
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// accepted answers 202 the way the asynchronous request-reply pattern asks:
// where to poll, and how soon.
func accepted(w http.ResponseWriter, location string, body any) {
	w.Header().Set("Location", location)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := errorOf(err)
	if e.Status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Status == http.StatusServiceUnavailable {
		retry := time.Second
		var down *cluster.UnavailableError
		if errors.As(err, &down) && down.RetryAfter > 0 {
			retry = down.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, retry.Round(time.Second)/time.Second))))
	}
	writeError(w, e)
}
