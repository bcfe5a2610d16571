package limits

import (
	"reflect"
	"strings"
	"testing"
)

func h(task int64) Holder { return Holder{Instance: "fan", Task: task, Attempt: 1} }

// TestTakeAndGrant: requests beyond the limit wait in arrival order; a
// release frees a place for the first waiting; a request sent twice is
// kept once; a release of a waiting request withdraws it; the latest limit
// a request names applies.
func TestTakeAndGrant(t *testing.T) {
	st := State{}
	for i := range 5 {
		st.take(Request{Holder: h(int64(i)), Kind: KindActivity, Name: "A", Limit: 2})
	}
	if got := st.grant(); !reflect.DeepEqual(got, []Holder{h(0), h(1)}) || st.Name != "A" || st.Kind != KindActivity {
		t.Fatalf("first grant %v (%s %q); want tasks 0 and 1", got, st.Kind, st.Name)
	}
	st.take(Request{Holder: h(1)})                // asked again while it holds
	st.take(Request{Holder: h(3)})                // asked again while it waits
	st.take(Request{Holder: h(3), Release: true}) // withdrawn while it waits
	if got := st.grant(); len(got) != 0 || len(st.Queue) != 2 {
		t.Fatalf("nothing freed, yet granted %v; queue %v", got, st.Queue)
	}
	st.take(Request{Holder: h(0), Release: true})
	if got := st.grant(); !reflect.DeepEqual(got, []Holder{h(2)}) {
		t.Fatalf("after a release: %v; want task 2 (the first waiting)", got)
	}
	st.take(Request{Holder: h(9), Release: true}) // unknown: ignored
	st.take(Request{Holder: h(5), Limit: 4})      // a higher limit
	if got := st.grant(); !reflect.DeepEqual(got, []Holder{h(4), h(5)}) || st.Limit != 4 {
		t.Fatalf("with limit 4: %v (limit %d); want tasks 4 and 5", got, st.Limit)
	}
	if len(st.Holders) != 4 || len(st.Queue) != 0 {
		t.Fatalf("holders %v, queue %v", st.Holders, st.Queue)
	}
}

func TestInstanceID(t *testing.T) {
	if got := InstanceID(KindActivity, "ProcessWorkItem"); got != "limit:activity:ProcessWorkItem" {
		t.Errorf("InstanceID = %q", got)
	}
	if InstanceID(KindActivity, "Order") == InstanceID(KindWorkflow, "Order") {
		t.Error("an activity and a workflow of one name share a limiter")
	}
	for _, name := range []string{"send/email now", strings.Repeat("x", 100)} {
		id := InstanceID(KindActivity, name)
		if len(id) > 64 || strings.ContainsAny(id, "/ ") || !strings.HasPrefix(id, "limit:") {
			t.Errorf("InstanceID(%q) = %q: not a valid instance id", name, id)
		}
	}
	if InstanceID(KindActivity, "a/b") == InstanceID(KindActivity, "a_b") {
		t.Error("two names share a limiter")
	}
}
