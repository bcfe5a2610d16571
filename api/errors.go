package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/weftrt/weft"
)

// Error is the JSON body of every failed request.
type Error struct {
	Status    int    `json:"-"`
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

func (e *Error) Error() string { return e.ErrorCode + ": " + e.Message }

// Error codes. The ERR_INSTANCE_*, ERR_WORKFLOW_* ones are Dapr's.
const (
	CodeInstanceIDInvalid   = "ERR_INSTANCE_ID_INVALID"
	CodeInstanceIDTooLong   = "ERR_INSTANCE_ID_TOO_LONG"
	CodeInstanceIDNotFound  = "ERR_INSTANCE_ID_NOT_FOUND"
	CodeInstanceExists      = "ERR_INSTANCE_ID_ALREADY_EXISTS"
	CodeInstanceNotFinished = "ERR_INSTANCE_NOT_FINISHED"
	CodeInstanceNotRunning  = "ERR_INSTANCE_NOT_RUNNING"
	CodeWorkflowNameMissing = "ERR_WORKFLOW_NAME_MISSING"
	CodeWorkflowNotFound    = "ERR_WORKFLOW_NOT_REGISTERED"
	CodeEventNameMissing    = "ERR_WORKFLOW_EVENT_NAME_MISSING"
	CodeComponentNotFound   = "ERR_WORKFLOW_COMPONENT_NOT_FOUND"
	CodeInvalidInput        = "ERR_INVALID_INPUT"
	CodeBodyTooLarge        = "ERR_BODY_TOO_LARGE"
	CodeUnauthorized        = "ERR_UNAUTHORIZED"
	CodeBadRequest          = "ERR_BAD_REQUEST"
	CodeUnavailable         = "ERR_UNAVAILABLE"
	CodePartitionDown       = "ERR_PARTITION_UNAVAILABLE"
	CodeNotClustered        = "ERR_NOT_CLUSTERED"
	CodeNodeNotRemovable    = "ERR_NODE_NOT_REMOVABLE"
	CodeTimeout             = "ERR_TIMEOUT"
	CodeInternal            = "ERR_INTERNAL"
	CodeNotFound            = "ERR_NOT_FOUND"
	CodeMethodNotAllowed    = "ERR_METHOD_NOT_ALLOWED"
	CodeScheduleNotFound    = "ERR_SCHEDULE_NOT_FOUND"
	CodeScheduleExists      = "ERR_SCHEDULE_ALREADY_EXISTS"
)

func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

func badRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, ErrorCode: code, Message: msg}
}

// errorOf maps a runtime error to its HTTP status and code.
func errorOf(err error) *Error {
	msg := err.Error()
	switch {
	case errors.Is(err, weft.ErrScheduleNotFound):
		return &Error{http.StatusNotFound, CodeScheduleNotFound, msg}
	case errors.Is(err, weft.ErrScheduleExists):
		return &Error{http.StatusConflict, CodeScheduleExists, msg}
	case errors.Is(err, weft.ErrInstanceNotFound):
		return &Error{http.StatusNotFound, CodeInstanceIDNotFound, msg}
	case errors.Is(err, weft.ErrInstanceExists):
		return &Error{http.StatusConflict, CodeInstanceExists, msg}
	case errors.Is(err, weft.ErrNotFinished):
		return &Error{http.StatusConflict, CodeInstanceNotFinished, msg}
	case errors.Is(err, weft.ErrNotRunning):
		return &Error{http.StatusConflict, CodeInstanceNotRunning, msg}
	case errors.Is(err, weft.ErrWorkflowNotRegistered):
		return &Error{http.StatusBadRequest, CodeWorkflowNotFound, msg}
	case errors.Is(err, weft.ErrInvalidInput):
		return &Error{http.StatusBadRequest, CodeInvalidInput, msg}
	case errors.Is(err, weft.ErrEventNameMissing):
		return &Error{http.StatusBadRequest, CodeEventNameMissing, msg}
	case errors.Is(err, weft.ErrInvalidInstanceID):
		return &Error{http.StatusBadRequest, CodeInstanceIDInvalid, msg}
	case errors.Is(err, weft.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, CodePartitionDown, msg}
	case errors.Is(err, weft.ErrClosed), errors.Is(err, weft.ErrNotStarted):
		return &Error{http.StatusServiceUnavailable, CodeUnavailable, msg}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{http.StatusGatewayTimeout, CodeTimeout, msg}
	}
	return &Error{http.StatusInternalServerError, CodeInternal, msg}
}

// idError validates an instance id with Dapr's two codes.
func idError(id string) *Error {
	if err := weft.ValidateInstanceID(id); err != nil {
		if len(id) > weft.MaxInstanceIDLength {
			return badRequest(CodeInstanceIDTooLong, err.Error())
		}
		return badRequest(CodeInstanceIDInvalid, err.Error())
	}
	return nil
}
