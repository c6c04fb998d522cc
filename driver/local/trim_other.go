//go:build !linux

package local

// dropMapped does nothing where MADV_DONTNEED's semantics on shared file
// mappings are not those of Linux.
func dropMapped(uintptr, int) error { return nil }
