module github.com/vaultaire/vaultaire

go 1.26.0

require (
	github.com/klauspost/reedsolomon v1.14.2
	github.com/zeebo/xxh3 v1.1.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.45.0
)

require (
	github.com/klauspost/cpuid/v2 v2.3.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
