package storage

import "fmt"

// Status is the lifecycle state of a workflow instance as stored in its row and
// in the listing index. The numeric values are on disk: append, never reorder.
type Status uint8

const (
	Pending Status = iota
	Running
	Completed
	Failed
	Terminated
	Suspended
	ContinuedAsNew
	// Stalled: the instance's history needs code (a version, a patch) that the
	// node running it lacks; it holds its inputs and continues once it has it.
	Stalled
)

var statusNames = [...]string{
	Pending:        "PENDING",
	Running:        "RUNNING",
	Completed:      "COMPLETED",
	Failed:         "FAILED",
	Terminated:     "TERMINATED",
	Suspended:      "SUSPENDED",
	ContinuedAsNew: "CONTINUED_AS_NEW",
	Stalled:        "STALLED",
}

// String returns the upper-case name used by the HTTP API and the durabletask
// protocol, e.g. "RUNNING".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("STATUS(%d)", uint8(s))
}

// ParseStatus is the inverse of String.
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if n == s {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("storage: unknown status %q", s)
}

// Terminal reports whether an instance in this status will never run again.
func (s Status) Terminal() bool {
	switch s {
	case Completed, Failed, Terminated, ContinuedAsNew:
		return true
	}
	return false
}
