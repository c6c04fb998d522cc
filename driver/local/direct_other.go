//go:build !linux

package local

import "os"

// oDirect is 0 where O_DIRECT does not exist: shards are written through
// the page cache.
const oDirect = 0

func clearDirect(*os.File) error { return nil }

// writev writes a then b at offset off of f.
func writev(f *os.File, off int64, a, b []byte) error {
	if _, err := f.WriteAt(a, off); err != nil {
		return err
	}
	_, err := f.WriteAt(b, off+int64(len(a)))
	return err
}
