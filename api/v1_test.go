package api

import (
	"encoding/json"
	"testing"
)

func TestJSONPayload(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{`{"a":1}`, `{"a":1}`},
		{`"text"`, `"text"`},
		{`42`, `42`},
		{`done-yes`, `"done-yes"`},       // a remote worker's plain-text custom status
		{`{"a":`, `"{\"a\":"`},           // truncated JSON is text, not a broken response
		{"line\nbreak", `"line\nbreak"`}, // escaped, not embedded raw
	}
	for _, c := range cases {
		got := jsonPayload([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("jsonPayload(%q) = %s, want %s", c.in, got, c.want)
		}
		if len(got) > 0 && !json.Valid(got) {
			t.Errorf("jsonPayload(%q) = %s is not JSON", c.in, got)
		}
	}
}
