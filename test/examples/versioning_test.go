package examples_test

import (
	"strings"
	"testing"
)

// TestVersioning: the replay check passes the patched change and catches the
// one made in place, naming the event; after the deploy the instance that was
// running finishes on the old branch and the new one on the patched branch.
func TestVersioning(t *testing.T) {
	t.Parallel()
	out, code := run(t, build(t, "versioning"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"fraud check under a patch:  order-1 (OrderWorkflow): ok",
		`fraud check in place:       order-1 (OrderWorkflow): would diverge at event 3: history has activity-scheduled "Charge", the code made activity-scheduled "FraudCheck"`,
		`order-1 COMPLETED: "order-1 shipped as TRACK-1, not fraud-checked (started before the patch)"`,
		`order-2 COMPLETED: "order-2 shipped as TRACK-2, fraud-checked for order-2"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}
