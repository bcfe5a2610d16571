package workflow

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestWorkflowVersions(t *testing.T) {
	fn := func(ctx *Context, in string) (string, error) { return in, nil }
	type reg struct {
		version   string
		isDefault bool
		err       string // "" when the registration is accepted
	}
	for _, tc := range []struct {
		name string
		regs []reg
		def  string
	}{
		{"unversioned only", []reg{{}}, ""},
		{"one version is the default", []reg{{version: "v1"}}, "v1"},
		{"the first of several", []reg{{version: "v1"}, {version: "v2"}}, "v1"},
		{"unversioned beats implied", []reg{{version: "v1"}, {}, {version: "v2"}}, ""},
		{"AsDefault beats all", []reg{{}, {version: "v2", isDefault: true}, {version: "v3"}}, "v2"},
		{"duplicate version", []reg{{version: "v1"}, {version: "v1", err: `"W" version "v1" is already registered`}}, "v1"},
		{"duplicate unversioned", []reg{{}, {err: `"W" is already registered`}}, ""},
		{"two defaults", []reg{{version: "a", isDefault: true}, {version: "b", isDefault: true, err: `version "a" and version "b" are both registered AsDefault`}}, "a"},
		{"spaces", []reg{{version: " v1", err: "leading or trailing spaces"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			for _, g := range tc.regs {
				opts := []RegisterOption{WithName("W"), WithVersion(g.version)}
				if g.isDefault {
					opts = append(opts, AsDefault())
				}
				err := RegisterWorkflow(r, fn, opts...)
				if g.err == "" && err != nil || g.err != "" && (err == nil || !strings.Contains(err.Error(), g.err)) {
					t.Fatalf("register %+v: %v, want %q", g, err, g.err)
				}
			}
			if def, ok := r.WorkflowVersion("W"); ok && def != tc.def {
				t.Errorf("default version %q, want %q", def, tc.def)
			}
		})
	}
}

func TestValidateWorkflowVersionInput(t *testing.T) {
	r := NewRegistry()
	if err := RegisterWorkflow(r, func(ctx *Context, in int) (int, error) { return in, nil }, WithName("W"), WithVersion("v1")); err != nil {
		t.Fatal(err)
	}
	if err := r.ValidateWorkflowVersionInput("W", "v1", []byte("1")); err != nil {
		t.Errorf("v1: %v", err)
	}
	if err := r.ValidateWorkflowVersionInput("W", "v1", []byte(`"x"`)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("v1 with a string: %v, want ErrInvalidInput", err)
	}
	err := r.ValidateWorkflowVersionInput("W", "v2", nil)
	if !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), `version "v2" (registered: "v1")`) {
		t.Errorf("v2: %v, want ErrNotRegistered naming the registered versions", err)
	}
	if err := RegisterActivity(r, func(_ context.Context, in int) (int, error) { return in, nil }, WithName("A"), WithVersion("v1")); err == nil {
		t.Error("an activity registered with a version: accepted")
	}
}
