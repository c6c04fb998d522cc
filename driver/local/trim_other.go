//go:build !linux

package local

import "os"

// dropMapped does nothing where MADV_DONTNEED's semantics on shared file
// mappings are not those of Linux.
func dropMapped(uintptr, int) error { return nil }

// allocatedBytes cannot tell here.
func allocatedBytes(string) int64 { return -1 }

// punchHole is not supported here: free index pages stay allocated.
func punchHole(*os.File, int64, int64) error { return errNoPunch }

func isHole(*os.File, int64, int64) bool { return false }

// fileResident cannot tell here: every trim runs.
func fileResident() int64 { return -1 }
