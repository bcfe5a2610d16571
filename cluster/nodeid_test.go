package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeIDIsCreatedOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not created yet: the first start creates it
	id, err := LoadOrCreateNodeID(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateNodeID(id); err != nil {
		t.Fatalf("generated id %q: %v", id, err)
	}
	for range 2 {
		again, err := LoadOrCreateNodeID(dir, "")
		if err != nil || again != id {
			t.Fatalf("second start: %q, %v; want %q", again, err, id)
		}
	}
	if same, err := LoadOrCreateNodeID(dir, id); err != nil || same != id {
		t.Fatalf("requesting the stored id: %q, %v", same, err)
	}
	_, err = LoadOrCreateNodeID(dir, "node-b")
	if !errors.Is(err, ErrNodeIDConflict) || !strings.Contains(err.Error(), `"node-b"`) || !strings.Contains(err.Error(), id) {
		t.Fatalf("conflicting id: %v; want ErrNodeIDConflict naming both ids", err)
	}
	other, err := LoadOrCreateNodeID(t.TempDir(), "")
	if err != nil || other == id {
		t.Fatalf("another data directory got %q (%v); want a new id", other, err)
	}
}

func TestRequestedNodeIDIsStored(t *testing.T) {
	dir := t.TempDir()
	if id, err := LoadOrCreateNodeID(dir, "node-a"); err != nil || id != "node-a" {
		t.Fatalf("first start with --node-id: %q, %v", id, err)
	}
	if id, err := LoadOrCreateNodeID(dir, ""); err != nil || id != "node-a" {
		t.Fatalf("restart without --node-id: %q, %v", id, err)
	}
	if _, err := LoadOrCreateNodeID(t.TempDir(), "bad id"); err == nil {
		t.Fatal("an id with a space was accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != NodeIDFile {
		t.Fatalf("data directory holds %v; want only %s (no temporary files left)", entries, NodeIDFile)
	}
}

func TestCorruptNodeIDFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, NodeIDFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateNodeID(dir, ""); err == nil || !strings.Contains(err.Error(), NodeIDFile) {
		t.Fatalf("empty id file: %v; want an error naming the file", err)
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, ok := range []string{"n1", "node-1.eu_west", "ノード", strings.Repeat("x", MaxNodeIDLen)} {
		if err := ValidateNodeID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "tab\t", "nl\n", "nul\x00", "\xff", strings.Repeat("x", MaxNodeIDLen+1)} {
		if err := ValidateNodeID(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
