package storage

import "golang.org/x/sys/unix"

// fallocateSized allocates [offset, offset+length) and extends the file's size
// to cover it (mode 0, unlike pebble's FALLOC_FL_KEEP_SIZE).
func fallocateSized(fd uintptr, offset, length int64) error {
	return unix.Fallocate(int(fd), 0, offset, length)
}
