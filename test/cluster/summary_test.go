package cluster_test

import (
	"fmt"
	"strings"
	"testing"
)

// A stuck node's summary keeps the end of its log and, whole, the goroutines
// of its dump that matter: the first of them too, however long the log.
func TestSummaryKeepsTheWholeDump(t *testing.T) {
	p := &proc{}
	for i := range 1000 {
		p.lines = append(p.lines, fmt.Sprintf("log line %d", i))
	}
	p.lines = append(p.lines, "SIGQUIT: quit")
	goroutine := func(n int, state, frame string) []string {
		g := []string{fmt.Sprintf("goroutine %d gp=0x1 m=nil [%s]:", n, state)}
		for range 15 { // deep stacks: 59 of them are longer than the log kept
			g = append(g, frame+" fp=0x2 sp=0x3 pc=0x4", "\t/src/x.go:1 +0x5")
		}
		return append(g, "")
	}
	p.lines = append(p.lines, goroutine(1, "sync.Mutex.Lock", "github.com/weftrt/weft/cluster.(*replicaSet).receive(0x1)")...)
	for n := 2; n < 60; n++ {
		p.lines = append(p.lines, goroutine(n, "select, 3 minutes", "github.com/weftrt/weft/actors.(*Host).runDeliveries(0x1)")...)
	}
	p.lines = append(p.lines, goroutine(60, "running", "net/http.(*conn).serve(0x1)")...) // neither stuck nor ours
	s := p.summary()
	for _, want := range []string{"log line 999", "(700 earlier lines left out)", "goroutine 1 gp=", "cluster.(*replicaSet).receive(0x1)", "goroutine 59 gp="} {
		if !strings.Contains(s, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	for _, not := range []string{"log line 699\n", "goroutine 60 gp=", "fp=0x2"} {
		if strings.Contains(s, not) {
			t.Errorf("the summary has %q", not)
		}
	}
}
