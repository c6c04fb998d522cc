package local

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dropMapped drops the pages of the mapping at addr, n bytes long, from
// the process's page tables (madvise MADV_DONTNEED). The mapping must be a
// read-only shared file mapping (bbolt's): its pages stay in the page cache
// and the next access maps them again with the same content, so nothing is
// lost; only the process's resident set shrinks.
func dropMapped(addr uintptr, n int) error {
	if n <= 0 {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(n), unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// punchHole deallocates n bytes of f's blocks at off, keeping its size.
func punchHole(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("%w: %w", errNoPunch, err)
	}
	return err
}

// isHole reports whether f holds no data in [off, off+n).
func isHole(f *os.File, off, n int64) bool {
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	return err == nil && next >= off+n || errors.Is(err, unix.ENXIO)
}
