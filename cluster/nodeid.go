package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NodeIDFile is the file in a node's data directory that holds its id. The id
// belongs to the data, not to the host: the partitions a node owns follow its
// id, so a data directory moved to another host keeps serving them.
const NodeIDFile = "weft-node-id"

// MaxNodeIDLen bounds a node id: it travels in every gossip message and in the
// node's metadata, which memberlist caps at 512 bytes.
const MaxNodeIDLen = 64

// ErrNodeIDConflict is returned (wrapped) when a requested node id differs from
// the one stored in the data directory.
var ErrNodeIDConflict = errors.New("cluster: node id conflicts with the stored one")

// ValidateNodeID checks that id can name a node: 1 to MaxNodeIDLen bytes of
// UTF-8, printable and without spaces (ids appear in logs, flags and URLs).
func ValidateNodeID(id string) error {
	if id == "" {
		return errors.New("cluster: node id is empty")
	}
	if len(id) > MaxNodeIDLen {
		return fmt.Errorf("cluster: node id %.16q... is %d bytes; at most %d", id, len(id), MaxNodeIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("cluster: node id %q is not UTF-8", id)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("cluster: node id %q contains %q; use printable characters without spaces", id, r)
		}
	}
	return nil
}

// LoadOrCreateNodeID returns the node id stored in dataDir, creating it on the
// first start: requested if given (a --node-id flag), a random one otherwise.
// A requested id that differs from the stored one is an ErrNodeIDConflict: the
// data directory holds that node's partitions, and renaming the node would
// silently move them.
func LoadOrCreateNodeID(dataDir, requested string) (string, error) {
	if requested != "" {
		if err := ValidateNodeID(requested); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dataDir, NodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if err := ValidateNodeID(stored); err != nil {
			return "", fmt.Errorf("cluster: read node id from %s: %w", path, err)
		}
		if requested != "" && requested != stored {
			return "", fmt.Errorf("%w: requested %q, but %s holds %q (a data directory belongs to one node: drop the flag or use another directory)",
				ErrNodeIDConflict, requested, path, stored)
		}
		return stored, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", fmt.Errorf("cluster: read node id: %w", err)
	}

	id := requested
	if id == "" {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", fmt.Errorf("cluster: generate node id: %w", err)
		}
		id = hex.EncodeToString(r[:])
	}
	if err := writeFileAtomic(dataDir, NodeIDFile, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("cluster: store node id: %w", err)
	}
	return id, nil
}

// writeFileAtomic writes name in dir through a synced temporary file and a
// rename, so a crash leaves either no file or the whole one: an empty id file
// would stop the node from starting.
func writeFileAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
