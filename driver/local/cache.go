package local

import "strings"

// The record cache holds the values of records GetRecord read from
// index.db, so that a key read again (a hot object's GET and HEAD: every
// read asks each drive of the set) costs a map lookup instead of a bbolt
// read transaction, and for a record whose data a pack holds, a pread.
//
// A reader looks in mem, then flushing, then the cache, then index.db
// (committer.lookupCached). The cache only ever holds what index.db held
// for the key as of the last flush that committed, which mem and
// flushing override:
//
//   - a reader fills it only with what it read from index.db, and only if
//     no flush committed since it looked in mem and flushing (gen, taken
//     then): a flush committing between its lookup and its bbolt read
//     could have written the key, and the read may have seen the index
//     before it;
//   - a flush that commits drops the keys it wrote from the cache and
//     advances gen, under memMu, at the moment it clears flushing: from
//     then on a reader that finds neither finds no cached value of those
//     keys older than index.db's;
//   - a flush that fails leaves its mutations held (flushing, then mem),
//     in front of whatever the cache holds for their keys, until one that
//     commits drops them.
//
// index.db's records change only in flushes (and the replay at Open,
// before the cache exists), so nothing else needs to drop anything. A
// drive brought back online by Probe (probe.go: reopen) is such an Open:
// its replay, or a replaced disk, changed index.db, so it takes that
// open's new cache; setOffline drops the old one.

// Cache bounds. Values of more than cacheValueMax bytes are not cached
// (their reads are rare and each would take a large share); the cache
// evicts entries at random once it holds cacheBytes.
var (
	cacheBytes    = 8 << 20
	cacheValueMax = 64 << 10
)

// cacheEntryOverhead approximates what an entry costs beyond its key and
// value (the map slot, the key's string header, the value's slice header).
const cacheEntryOverhead = 64

// recordCache is the committer's record cache (see above). Its fields are
// guarded by committer.memMu.
type recordCache struct {
	vals  map[string][]byte // key → logical value (Version, then data)
	bytes int               // of vals, with cacheEntryOverhead each
	gen   uint64            // flushes committed
}

func newRecordCache() *recordCache {
	return &recordCache{vals: make(map[string][]byte)}
}

// add caches val under key, evicting entries at random (Go's map order)
// until it fits.
func (rc *recordCache) add(key string, val []byte) {
	size := len(key) + len(val) + cacheEntryOverhead
	if len(val) > cacheValueMax || size > cacheBytes {
		return
	}
	// The old entry goes first: left in the map, the loop below could
	// evict it after its bytes were taken off, counting them off twice.
	rc.drop(key)
	key = strings.Clone(key) // not the caller's string: it may pin a larger one
	for k, v := range rc.vals {
		if rc.bytes+size <= cacheBytes {
			break
		}
		delete(rc.vals, k)
		rc.bytes -= len(k) + len(v) + cacheEntryOverhead
	}
	rc.vals[key] = val
	rc.bytes += size
}

// drop removes key.
func (rc *recordCache) drop(key string) {
	if v, ok := rc.vals[key]; ok {
		delete(rc.vals, key)
		rc.bytes -= len(key) + len(v) + cacheEntryOverhead
	}
}

// lookupCached is get (mem, then flushing) followed by the cache: m and
// found as get's; otherwise val is the cached value (nil if none), and
// gen what remember needs for a value read from index.db after this call.
func (c *committer) lookupCached(key string) (m mutation, found bool, val []byte, gen uint64) {
	c.memMu.RLock()
	defer c.memMu.RUnlock()
	if m, found = lookup(c.mem, c.flushing, key); found || c.cache == nil {
		return m, found, nil, 0
	}
	return m, false, c.cache.vals[key], c.cache.gen
}

// remember caches val, read from index.db for key after a lookupCached
// that returned gen, unless a flush has committed since (or the log now
// holds the key, whose value then is newer).
func (c *committer) remember(key string, val []byte, gen uint64) {
	if c.beforeRemember != nil {
		c.beforeRemember(key)
	}
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.cache == nil || c.cache.gen != gen {
		return
	}
	if _, held := lookup(c.mem, c.flushing, key); held {
		return
	}
	c.cache.add(key, val)
}

// flushedKeys drops the keys of fl, which a flush has just committed to
// index.db, from the cache and advances its generation. memMu held.
func (c *committer) flushedKeys(fl *held) {
	if c.cache == nil {
		return
	}
	c.cache.gen++
	if len(c.cache.vals) == 0 {
		return
	}
	for k := range fl.byKey {
		c.cache.drop(k)
	}
}
