package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

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

// allocatedBytes returns the bytes of blocks the file at path holds, or -1 if
// it cannot tell.
func allocatedBytes(path string) int64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return -1
	}
	return st.Blocks * 512
}

// isHole reports whether f holds no data in [off, off+n).
func isHole(f *os.File, off, n int64) bool {
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	return err == nil && next >= off+n || errors.Is(err, unix.ENXIO)
}

// statm is /proc/self/statm, opened once and read with pread.
var statm struct {
	once sync.Once
	f    *os.File
}

// fileResident returns the bytes of file-backed and shared memory the
// process holds resident (statm's third field: RssFile plus RssShmem),
// or -1 if it cannot tell.
func fileResident() int64 {
	statm.once.Do(func() { statm.f, _ = os.Open("/proc/self/statm") })
	if statm.f == nil {
		return -1
	}
	var buf [128]byte
	n, err := statm.f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return -1
	}
	fields := bytes.Fields(buf[:n])
	if len(fields) < 3 {
		return -1
	}
	pages, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
