package local

import (
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
