package storage

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// keyComparer orders keys byte-wise, like pebble's default, and tells pebble
// where an instance's keys begin: the prefix of p/<part>/i/<id>/<rest> is
// p/<part>/i/<id>/, every other key is its own prefix. Pebble builds its bloom
// filters over prefixes, so reading an instance (activation, history) seeks
// with SeekPrefixGE and skips every table that holds none of its keys: with a
// million instances spread over six levels, an activation reads the one or two
// levels that have the instance instead of all of them.
//
// Byte order of whole keys equals the order pebble derives from prefixes and
// suffixes (prefix first, then suffix), because an instance id never contains
// the '/' that ends its prefix: two keys of different instances differ inside
// both prefixes.
var keyComparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = "weft.keys.v1"
	c.Split = splitKey
	return &c
}()

// splitKey is keyComparer's Split.
func splitKey(k []byte) int {
	const idAt = 7 // len("p/") + 2 partition bytes + len("/i/")
	if len(k) <= idAt || k[0] != 'p' || k[1] != sep || k[4] != sep || k[5] != 'i' || k[6] != sep {
		return len(k)
	}
	if j := bytes.IndexByte(k[idAt:], sep); j >= 0 {
		return idAt + j + 1
	}
	return len(k)
}

// storeComparer returns the comparer the store in dir was created with:
// keyComparer for a new store, pebble's default for a store created before
// weft used instance prefixes (it opens as it was, without prefix filters).
func storeComparer(dir string) (*pebble.Comparer, error) {
	desc, err := pebble.Peek(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	if !desc.Exists || desc.OptionsFilename == "" {
		return keyComparer, nil
	}
	b, err := os.ReadFile(desc.OptionsFilename)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: read pebble options: %w", dir, err)
	}
	for line := range strings.Lines(string(b)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "comparer=")
		if !ok {
			continue
		}
		switch name {
		case keyComparer.Name:
			return keyComparer, nil
		case pebble.DefaultComparer.Name:
			return pebble.DefaultComparer, nil
		}
		return nil, fmt.Errorf("storage: open %s: the store was written with key comparer %q, which this weft does not know", dir, name)
	}
	return keyComparer, nil
}
