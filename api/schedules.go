package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/schedules"
)

// weft serves /api/v1/schedules/...:
//
//	GET    schedules                    {"schedules": [Schedule...]}
//	POST   schedules                    schedules.Spec → 201 Schedule
//	GET    schedules/{id}               Schedule
//	DELETE schedules/{id}               → 200 (runs it started go on)
//	POST   schedules/{id}/pause|resume  {"note"} → 200 Schedule
//	POST   schedules/{id}/trigger       → 200 schedules.Action (the run, started or not)

// Schedule is a schedule as the API shows it (weft.ScheduleInfo).
type Schedule = weft.ScheduleInfo

// ScheduleList is the body of GET /api/v1/schedules.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

func (s *server) schedules(w http.ResponseWriter, r *http.Request, segs []string) {
	ctx := r.Context()
	if len(segs) == 1 {
		switch r.Method {
		case http.MethodGet:
			list, err := s.rt.ListSchedules(ctx)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if list == nil {
				list = []weft.ScheduleInfo{}
			}
			writeJSON(w, http.StatusOK, ScheduleList{list})
		case http.MethodPost:
			body, ok := s.readBody(w, r)
			if !ok {
				return
			}
			var spec schedules.Spec
			if err := json.Unmarshal(body, &spec); err != nil {
				writeError(w, badRequest(CodeInvalidInput, `the body must be a schedule: {"id", "workflow", "input", "cron" or "every", "overlap", "jitter", "catchupWindow", "paused"}: `+err.Error()))
				return
			}
			info, err := s.rt.CreateSchedule(ctx, spec)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			w.Header().Set("Location", "/api/v1/schedules/"+url.PathEscape(info.ID))
			writeJSON(w, http.StatusCreated, info)
		default:
			s.method(w, r, http.MethodGet+", "+http.MethodPost)
		}
		return
	}
	id := segs[1]
	switch rest := segs[2:]; {
	case len(rest) == 0 && r.Method == http.MethodGet:
		info, err := s.rt.GetSchedule(ctx, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	case len(rest) == 0 && r.Method == http.MethodDelete:
		if err := s.rt.DeleteSchedule(ctx, id); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
	case len(rest) == 0:
		s.method(w, r, http.MethodGet+", "+http.MethodDelete)
	case len(rest) == 1 && (rest[0] == "pause" || rest[0] == "resume"):
		if !s.method(w, r, http.MethodPost) {
			return
		}
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		var req struct {
			Note string `json:"note"`
		}
		if len(body) > 0 && json.Unmarshal(body, &req) != nil {
			writeError(w, badRequest(CodeInvalidInput, `the body must be {"note": "why"} or empty`))
			return
		}
		command := s.rt.PauseSchedule
		if rest[0] == "resume" {
			command = s.rt.ResumeSchedule
		}
		info, err := command(ctx, id, req.Note)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	case len(rest) == 1 && rest[0] == "trigger":
		if !s.method(w, r, http.MethodPost) {
			return
		}
		action, err := s.rt.TriggerSchedule(ctx, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, action)
	default:
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no route " + r.Method + " " + r.URL.Path})
	}
}

// ListSchedules returns every schedule.
func (c *Client) ListSchedules(ctx context.Context) ([]Schedule, error) {
	var out ScheduleList
	_, err := c.do(ctx, http.MethodGet, "/api/v1/schedules", nil, &out)
	return out.Schedules, err
}

// CreateSchedule creates a schedule.
func (c *Client) CreateSchedule(ctx context.Context, spec schedules.Spec) (*Schedule, error) {
	var out Schedule
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/schedules", spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSchedule returns a schedule.
func (c *Client) GetSchedule(ctx context.Context, id string) (*Schedule, error) {
	var out Schedule
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/schedules/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ScheduleCommand pauses or resumes a schedule (command "pause" or "resume").
func (c *Client) ScheduleCommand(ctx context.Context, id, command, note string) (*Schedule, error) {
	var out Schedule
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/schedules/"+url.PathEscape(id)+"/"+command, map[string]string{"note": note}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TriggerSchedule starts a run of a schedule now.
func (c *Client) TriggerSchedule(ctx context.Context, id string) (*schedules.Action, error) {
	var out schedules.Action
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/schedules/"+url.PathEscape(id)+"/trigger", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/api/v1/schedules/"+url.PathEscape(id), nil, nil)
	return err
}
