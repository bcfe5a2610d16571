package actors

import "errors"

// Errors the runtime's callers branch on; the root package re-exports them.
var (
	ErrInstanceNotFound = errors.New("workflow instance not found")
	ErrInstanceExists   = errors.New("workflow instance already exists")
	ErrNotFinished      = errors.New("workflow instance has not finished")
	ErrNotRunning       = errors.New("workflow instance is not running")
	ErrClosed           = errors.New("runtime is closed")
)
