package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Registry maps names to workflow and activity functions. It is safe for concurrent
// use; register everything before starting the runtime.
type Registry struct {
	mu         sync.RWMutex
	workflows  map[string]*workflowDef
	activities map[string]*activityDef
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workflows: map[string]*workflowDef{}, activities: map[string]*activityDef{}}
}

type workflowDef struct {
	name     string
	validate func(input []byte) error
	run      func(ctx *Context, input []byte) ([]byte, error)
}

type activityDef struct {
	name     string
	validate func(input []byte) error
	run      func(ctx context.Context, input []byte) ([]byte, error)
}

// RegisterOption changes how a function is registered.
type RegisterOption func(*registerOptions)

type registerOptions struct{ name string }

// WithName registers the function under name instead of its Go function name.
func WithName(name string) RegisterOption { return func(o *registerOptions) { o.name = name } }

// RegisterWorkflow registers a workflow function under its Go name (OrderProcessing
// for func OrderProcessing) or the name given WithName.
func RegisterWorkflow[I, O any](r *Registry, fn func(*Context, I) (O, error), opts ...RegisterOption) error {
	name, err := registeredName(fn, opts)
	if err != nil {
		return fmt.Errorf("register workflow: %w", err)
	}
	def := &workflowDef{
		name:     name,
		validate: func(input []byte) error { _, err := decodeInput[I]("workflow", name, input); return err },
		run: func(ctx *Context, input []byte) ([]byte, error) {
			in, err := decodeInput[I]("workflow", name, input)
			if err != nil {
				return nil, NonRetriable(err)
			}
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			return encodeOutput("workflow", name, out)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.workflows[name]; dup {
		return fmt.Errorf("register workflow: %q is already registered", name)
	}
	r.workflows[name] = def
	return nil
}

// RegisterActivity registers an activity function under its Go name or the name
// given WithName.
func RegisterActivity[I, O any](r *Registry, fn func(context.Context, I) (O, error), opts ...RegisterOption) error {
	name, err := registeredName(fn, opts)
	if err != nil {
		return fmt.Errorf("register activity: %w", err)
	}
	def := &activityDef{
		name:     name,
		validate: func(input []byte) error { _, err := decodeInput[I]("activity", name, input); return err },
		run: func(ctx context.Context, input []byte) ([]byte, error) {
			in, err := decodeInput[I]("activity", name, input)
			if err != nil {
				return nil, NonRetriable(err)
			}
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			return encodeOutput("activity", name, out)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.activities[name]; dup {
		return fmt.Errorf("register activity: %q is already registered", name)
	}
	r.activities[name] = def
	return nil
}

// HasWorkflow reports whether name is a registered workflow.
func (r *Registry) HasWorkflow(name string) bool { return r.workflow(name) != nil }

// HasActivity reports whether name is a registered activity.
func (r *Registry) HasActivity(name string) bool { return r.activity(name) != nil }

// Workflows returns the registered workflow names.
func (r *Registry) Workflows() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.workflows))
	for n := range r.workflows {
		names = append(names, n)
	}
	return names
}

// ValidateWorkflowInput checks that input decodes into the input type of workflow
// name. It wraps ErrNotRegistered or ErrInvalidInput.
func (r *Registry) ValidateWorkflowInput(name string, input []byte) error {
	def := r.workflow(name)
	if def == nil {
		return fmt.Errorf("workflow %q: %w", name, ErrNotRegistered)
	}
	return def.validate(input)
}

// RunActivity runs one attempt of activity name. A panic in the activity becomes a
// failure with its stack, never a crash of the process.
func (r *Registry) RunActivity(ctx context.Context, name string, input []byte) (out []byte, failure *Failure) {
	def := r.activity(name)
	if def == nil {
		return nil, &Failure{Type: "ActivityNotRegistered", Message: fmt.Sprintf("activity %q is not registered in this process", name), NonRetriable: true}
	}
	defer func() {
		if p := recover(); p != nil {
			out, failure = nil, &Failure{Type: "panic", Message: fmt.Sprintf("activity %s panicked: %v", name, p), Stack: string(debug.Stack())}
		}
	}()
	out, err := def.run(ctx, input)
	if err != nil {
		return nil, FailureOf(err)
	}
	return out, nil
}

func (r *Registry) workflow(name string) *workflowDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.workflows[name]
}

func (r *Registry) activity(name string) *activityDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.activities[name]
}

func registeredName(fn any, opts []RegisterOption) (string, error) {
	var o registerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.name != "" {
		return o.name, nil
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return "", fmt.Errorf("nil function")
	}
	full := runtime.FuncForPC(v.Pointer()).Name() // e.g. "github.com/acme/app.OrderProcessing"
	name := full[strings.LastIndexByte(full, '.')+1:]
	name = strings.TrimSuffix(name, "-fm") // method values
	if name == "" || strings.HasPrefix(name, "func") && strings.Trim(name[4:], "0123456789") == "" {
		return "", fmt.Errorf("cannot name the anonymous function %s: pass workflow.WithName", full)
	}
	return name, nil
}

func decodeInput[I any](kind, name string, input []byte) (I, error) {
	var in I
	if len(input) == 0 {
		return in, nil
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return in, fmt.Errorf("%s %s: decode input %s: %v: %w", kind, name, abbreviate(input), err, ErrInvalidInput)
	}
	return in, nil
}

func encodeOutput(kind, name string, out any) ([]byte, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return nil, NonRetriable(fmt.Errorf("%s %s: encode output: %w", kind, name, err))
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

func abbreviate(b []byte) string {
	const max = 64
	if len(b) <= max {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q…", b[:max])
}

// ActivityInfo describes the activity invocation a context belongs to.
type ActivityInfo struct {
	InstanceID string
	TaskID     int64
	Name       string
	Attempt    int // 1-based
}

type activityInfoKey struct{}

// WithActivityInfo returns ctx carrying info; the runtime calls it before running an
// activity.
func WithActivityInfo(ctx context.Context, info ActivityInfo) context.Context {
	return context.WithValue(ctx, activityInfoKey{}, info)
}

// ActivityInfoFrom returns the invocation an activity's context belongs to.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	info, ok := ctx.Value(activityInfoKey{}).(ActivityInfo)
	return info, ok
}
