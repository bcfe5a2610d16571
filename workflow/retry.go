package workflow

import (
	"math"
	"time"
)

// RetryPolicy says how the runtime retries a failed activity or child workflow. The
// runtime waits between attempts on a durable reminder, so a backoff of an hour
// survives a crash or an outage of the whole node.
//
// The seed's "exponential backoff that survives long outages" is
//
//	&workflow.RetryPolicy{MaxAttempts: 10, FirstRetryInterval: time.Minute,
//		BackoffCoefficient: 2, MaxRetryInterval: time.Hour}
type RetryPolicy struct {
	MaxAttempts        int           `msgpack:"a,omitempty" json:"maxAttempts,omitempty"`        // total attempts including the first; ≤ 1 means no retry
	FirstRetryInterval time.Duration `msgpack:"f,omitempty" json:"firstRetryInterval,omitempty"` // wait before the second attempt
	BackoffCoefficient float64       `msgpack:"b,omitempty" json:"backoffCoefficient,omitempty"` // multiplier per attempt; < 1 counts as 1
	MaxRetryInterval   time.Duration `msgpack:"m,omitempty" json:"maxRetryInterval,omitempty"`   // cap on one wait; 0 = none
	RetryTimeout       time.Duration `msgpack:"t,omitempty" json:"retryTimeout,omitempty"`       // no attempt starts later than this after the first; 0 = none
	// Handle decides whether a failure is worth retrying; nil retries every failure
	// that is not marked NonRetriable. It runs in the workflow's process, so it is not
	// stored in history.
	Handle func(*Failure) bool `msgpack:"-" json:"-"`
}

// NextDelay returns how long to wait before attempt+1, given that attempt (1-based)
// just failed with f, the first attempt started at first and it is now now. ok is
// false when the policy allows no further attempt.
func (p *RetryPolicy) NextDelay(attempt int, first, now time.Time, f *Failure) (delay time.Duration, ok bool) {
	if p == nil || attempt >= p.MaxAttempts {
		return 0, false
	}
	if f != nil && f.NonRetriable {
		return 0, false
	}
	if p.Handle != nil && !p.Handle(f) {
		return 0, false
	}
	coef := p.BackoffCoefficient
	if coef < 1 {
		coef = 1
	}
	d := float64(p.FirstRetryInterval) * math.Pow(coef, float64(attempt-1))
	if p.MaxRetryInterval > 0 && d > float64(p.MaxRetryInterval) {
		d = float64(p.MaxRetryInterval)
	}
	delay = time.Duration(math.MaxInt64)
	if d < float64(math.MaxInt64) { // float64(MaxInt64) is 2⁶³: converting it back would overflow
		delay = time.Duration(d)
	}
	if p.RetryTimeout > 0 && now.Add(delay).Sub(first) > p.RetryTimeout {
		return 0, false
	}
	return delay, true
}
