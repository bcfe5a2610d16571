package main

import "testing"

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  int64
		limit bool
	}{
		{"max\n", 0, false},                 // cgroup v2, no limit
		{"9223372036854771712\n", 0, false}, // cgroup v1's "unlimited"
		{"536870912\n", 512 << 20, true},
		{"  1073741824  ", 1 << 30, true},
		{"", 0, false},
		{"0", 0, false},
		{"-1", 0, false},
		{"lots", 0, false},
	} {
		got, limit := parseMemoryLimit(c.in)
		if got != c.want || limit != c.limit {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, %v", c.in, got, limit, c.want, c.limit)
		}
	}
}
