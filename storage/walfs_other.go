//go:build !linux

package storage

import "errors"

// fallocateSized is Linux-only; elsewhere pebble's own preallocation stands.
func fallocateSized(fd uintptr, offset, length int64) error {
	return errors.ErrUnsupported
}
