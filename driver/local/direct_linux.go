package local

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// oDirect is the open flag for writes that bypass the page cache.
const oDirect = syscall.O_DIRECT

// clearDirect turns O_DIRECT off on f, for the unaligned tail of a shard.
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		var flags int
		if flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr == nil {
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// writev writes a then b at offset off of f in one system call.
func writev(f *os.File, off int64, a, b []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	iovs := [][]byte{a, b}
	if len(b) == 0 {
		iovs = iovs[:1]
	}
	var n int
	var werr error
	err = rc.Control(func(fd uintptr) {
		for {
			n, werr = unix.Pwritev(int(fd), iovs, off)
			if werr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("pwritev %s: %w", f.Name(), werr)
	}
	if n != len(a)+len(b) {
		// The file system took part of it: out of space (the next
		// write would say ENOSPC; an O_DIRECT write cannot go on from
		// an unaligned offset to hear it).
		return fmt.Errorf("pwritev %s: %d of %d bytes written: %w", f.Name(), n, len(a)+len(b), unix.ENOSPC)
	}
	return nil
}
