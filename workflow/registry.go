package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Registry maps names to workflow and activity functions. It is safe for concurrent
// use; register everything before starting the runtime.
type Registry struct {
	mu         sync.RWMutex
	workflows  map[string]*workflowVersions
	activities map[string]*activityDef
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workflows: map[string]*workflowVersions{}, activities: map[string]*activityDef{}}
}

type workflowDef struct {
	name     string
	version  string // "": registered without a version
	validate func(input []byte) error
	run      func(ctx *Context, input []byte) ([]byte, error)
}

// workflowVersions is every registered version of one workflow name. An
// instance runs the version it started on for its whole generation; new
// instances (and a continue-as-new) take the default.
type workflowVersions struct {
	byName   map[string]*workflowDef
	def      string // the version new instances take
	explicit bool   // def was chosen with AsDefault, not implied
}

type activityDef struct {
	name     string
	validate func(input []byte) error
	run      func(ctx context.Context, input []byte) ([]byte, error)
}

// RegisterOption changes how a function is registered.
type RegisterOption func(*registerOptions)

type registerOptions struct {
	name      string
	version   string
	isDefault bool
}

// WithName registers the function under name instead of its Go function name.
func WithName(name string) RegisterOption { return func(o *registerOptions) { o.name = name } }

// WithVersion registers a workflow function as the named version of its
// workflow (see RegisterWorkflow). Version names are case-sensitive.
func WithVersion(version string) RegisterOption {
	return func(o *registerOptions) { o.version = version }
}

// AsDefault makes a workflow version the one new instances take.
func AsDefault() RegisterOption { return func(o *registerOptions) { o.isDefault = true } }

// RegisterWorkflow registers a workflow function under its Go name (OrderProcessing
// for func OrderProcessing) or the name given WithName.
//
// One name may have several versions, each registered WithVersion: a running
// instance always continues on the version it started on, so its history keeps
// replaying against the code that wrote it, while new instances take the
// default version (the one registered AsDefault; else the one registered
// without WithVersion; else the first registered). An instance whose version is not registered
// in a process stalls there (status STALLED) until it is.
func RegisterWorkflow[I, O any](r *Registry, fn func(*Context, I) (O, error), opts ...RegisterOption) error {
	name, err := registeredName(fn, opts)
	if err != nil {
		return fmt.Errorf("register workflow: %w", err)
	}
	o := collect(opts)
	if o.version != "" && strings.TrimSpace(o.version) != o.version {
		return fmt.Errorf("register workflow %s: version %q has leading or trailing spaces", name, o.version)
	}
	def := &workflowDef{
		name:     name,
		version:  o.version,
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
	vs := r.workflows[name]
	if vs == nil {
		vs = &workflowVersions{byName: map[string]*workflowDef{}}
		r.workflows[name] = vs
	}
	if _, dup := vs.byName[o.version]; dup {
		if o.version == "" {
			return fmt.Errorf("register workflow: %q is already registered", name)
		}
		return fmt.Errorf("register workflow: %q version %q is already registered", name, o.version)
	}
	if o.isDefault && vs.explicit {
		return fmt.Errorf("register workflow %s: version %q and version %q are both registered AsDefault", name, vs.def, o.version)
	}
	vs.byName[o.version] = def
	switch {
	case o.isDefault:
		vs.def, vs.explicit = o.version, true
	case vs.explicit:
	case len(vs.byName) == 1 || o.version == "":
		vs.def = o.version
	}
	return nil
}

// WorkflowVersion returns the version new instances of workflow name take, and
// whether name is registered here.
func (r *Registry) WorkflowVersion(name string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.workflows[name]
	if vs == nil {
		return "", false
	}
	return vs.def, true
}

// WorkflowVersions returns the registered versions of workflow name, sorted
// ("" for the code registered without a version).
func (r *Registry) WorkflowVersions(name string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.workflows[name]
	if vs == nil {
		return nil
	}
	names := make([]string, 0, len(vs.byName))
	for v := range vs.byName {
		names = append(names, v)
	}
	slices.Sort(names)
	return names
}

// RegisterActivity registers an activity function under its Go name or the name
// given WithName.
func RegisterActivity[I, O any](r *Registry, fn func(context.Context, I) (O, error), opts ...RegisterOption) error {
	name, err := registeredName(fn, opts)
	if err != nil {
		return fmt.Errorf("register activity: %w", err)
	}
	if o := collect(opts); o.version != "" || o.isDefault {
		return fmt.Errorf("register activity %s: activities have no versions (give a changed activity a new name)", name)
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

// SystemPrefix begins the names of weft's own workflows and activities
// (such as the one that is a recurring schedule).
const SystemPrefix = "weft."

// Workflows returns the registered workflow names, weft's own left out.
func (r *Registry) Workflows() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.workflows))
	for n := range r.workflows {
		if !strings.HasPrefix(n, SystemPrefix) {
			names = append(names, n)
		}
	}
	return names
}

// ValidateWorkflowInput checks that input decodes into the input type of workflow
// name. It wraps ErrNotRegistered or ErrInvalidInput.
func (r *Registry) ValidateWorkflowInput(name string, input []byte) error {
	return r.ValidateWorkflowVersionInput(name, "", input)
}

// ValidateWorkflowVersionInput is ValidateWorkflowInput for a named version
// ("": the default).
func (r *Registry) ValidateWorkflowVersionInput(name, version string, input []byte) error {
	def := r.workflow(name)
	if def == nil {
		return fmt.Errorf("workflow %q: %w", name, ErrNotRegistered)
	}
	if version != "" {
		if def = r.workflowVersion(name, version); def == nil {
			return fmt.Errorf("workflow %q version %q (registered: %s): %w", name, version, quoteVersions(r.WorkflowVersions(name)), ErrNotRegistered)
		}
	}
	return def.validate(input)
}

func quoteVersions(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
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

// workflow returns the default version of workflow name, or nil.
func (r *Registry) workflow(name string) *workflowDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if vs := r.workflows[name]; vs != nil {
		return vs.byName[vs.def]
	}
	return nil
}

// workflowVersion returns version of workflow name, or nil.
func (r *Registry) workflowVersion(name, version string) *workflowDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if vs := r.workflows[name]; vs != nil {
		return vs.byName[version]
	}
	return nil
}

func (r *Registry) activity(name string) *activityDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.activities[name]
}

func collect(opts []RegisterOption) registerOptions {
	var o registerOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func registeredName(fn any, opts []RegisterOption) (string, error) {
	o := collect(opts)
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
