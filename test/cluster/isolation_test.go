package cluster_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIsolation: two nodes started with different cluster names, or different
// gossip keys, never see each other, even when the second is told to --join the
// first. The second may refuse to start (with an error that says the join
// failed) or start as a cluster of its own; either way neither lists the other
// as a member or gives it partitions.
func TestIsolation(t *testing.T) {
	key := func() string {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b[:])
	}
	k1, k2 := key(), key()
	for _, tc := range []struct {
		name string
		a, b []string
	}{
		{"cluster name", []string{"--cluster-name", "alpha"}, []string{"--cluster-name", "beta"}},
		{"gossip key", []string{"--gossip-key", k1}, []string{"--gossip-key", k2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // two cases of two processes each: four at most
			isolated(t, tc.a, tc.b)
		})
	}
}

func isolated(t *testing.T, flagsA, flagsB []string) {
	a := newNode(t, "a1", nil, flagsA...)
	a.start()
	awaitSettled(t, 30*time.Second, []*node{a}, nil)
	b := newNode(t, "b1", []string{a.Gossip}, flagsB...)
	bUp := b.tryStart(45 * time.Second)
	if !bUp {
		p := b.cur()
		log := strings.Join(p.Lines(), "\n")
		t.Logf("b1 refused to start (%v); its last lines:\n%s", p.exitErr, tail(log, 5))
		if p.exitErr == nil {
			t.Errorf("b1 did not start yet exited with status 0")
		}
		// ASSUMPTION: a clear error says that joining failed (or names the address).
		if !strings.Contains(strings.ToLower(log), "join") && !strings.Contains(log, a.Gossip) {
			t.Errorf("b1's error does not say that joining %s failed:\n%s", a.Gossip, tail(log, 10))
		}
	} else {
		t.Logf("b1 started as a cluster of its own")
	}

	// For a few seconds (memberlist would have merged them within a gossip round
	// or two), each lists only itself; a1, the founder, still owns and serves
	// every partition. (b1, told to join, may hold none: only its members list is
	// checked.)
	alone := func(n *node, other string, ownsAll bool) string {
		md, err := n.members()
		if err != nil {
			return err.Error()
		}
		if _, seen := md.find(other); seen || len(md.Members) != 1 || md.Members[0].ID != n.ID || md.Members[0].State != "alive" {
			return fmt.Sprintf("node %s lists %+v, want only itself alive", n.ID, md.Members)
		}
		if !ownsAll {
			return ""
		}
		pd, err := n.partitions()
		if err != nil {
			return err.Error()
		}
		for _, r := range pd.Partitions {
			if r.Owner != n.ID || r.Holder != n.ID || !r.Serving {
				return fmt.Sprintf("node %s: partition %+v, want all its own", n.ID, r)
			}
		}
		return ""
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if p := alone(a, "b1", true); p != "" {
			t.Fatal(p)
		}
		if bUp {
			if p := alone(b, "a1", false); p != "" {
				t.Fatal(p)
			}
		}
	}
	for _, n := range []*node{a, b} {
		other := map[string]string{"a1": "b1", "b1": "a1"}[n.ID]
		for _, l := range n.allLines() {
			if strings.Contains(l, `msg="cluster membership changed"`) && strings.Contains(l, other) {
				t.Errorf("node %s logged a membership change involving %s: %s", n.ID, other, l)
			}
		}
	}
}

// tail is the last k lines of s.
func tail(s string, k int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "\n")
}
