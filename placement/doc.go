// Package placement defines the cluster map and the pure functions that map
// an artifact to the drives that store it: (tenant, container, key) → placement
// group (PG) → ordered drive set. It does no I/O and imports nothing of this
// module but the types of driver (DriveID, Class); the same inputs give the same map on every node, so the Raft FSM
// may call it.
//
// # Erasure-coding policy
//
// A [Policy] is k data shards plus m parity shards per stripe. Reads need k
// shards ([Policy.ReadQuorum]); writes need k, or k+1 when k == m, so that two
// write quorums always overlap ([Policy.WriteQuorum]). [DefaultPolicy] picks
// the policy for a cluster of n drives:
//
//	drives    policy    set size
//	1         1+0       1
//	2–3       1+1       2
//	4–5       2+2       4
//	6–7       4+2       6
//	8         4+4       8
//	9         5+4       9
//	10        6+4       10
//	...       (n-4)+4   n
//	16        12+4      16
//	> 16      12+4      16
//	< 1       error
//
// # Key → PG
//
// [PGOf] hashes the artifact's name with 64-bit XXH3 and reduces the hash
// modulo the PG count (a power of two, so this keeps the low bits). The hash
// input is
//
//	uvarint(len(tenant)) || tenant || uvarint(len(container)) || container || key
//
// where uvarint is [encoding/binary.AppendUvarint]. The length prefixes make the
// encoding injective for any byte strings, so ("a", "bc", "d") and
// ("ab", "c", "d") never share an input. The encoding and hash are part of the
// on-disk format: changing them moves every artifact.
//
// # PG → drives
//
// [NewMap] builds the PG → drive set table with rendezvous (highest random
// weight) hashing. Each drive gets a score per PG,
//
//	score(pg, drive) = XXH3-64(drive ID, seed = pg)
//
// and each PG walks the drives in descending score order (ties, which need a
// 64-bit collision, go to the smaller drive ID) and takes set size k+m of
// them, subject to failure-domain caps:
//
//   - with N distinct nodes, at most ceil((k+m)/N) drives of a set on one node;
//   - with Z distinct non-empty zones, at most ceil((k+m)/Z) drives of a set in
//     one zone. Drives with an empty zone are not counted against any zone.
//
// The caps are those of an even spread, so losing one node loses at most
// ceil((k+m)/N) shards of any stripe, and losing one zone at most
// ceil((k+m)/Z): with at least k+m nodes that is one shard, and with 3 nodes ×
// 2 drives under 4+2 it is exactly 2 = m. When the
// drives cannot meet the caps (for example one node holds most drives) the
// walk is repeated with both caps raised by one until the set is full, so
// NewMap never fails for lack of spread, only for lack of drives. When every
// node lies in a single zone, the greedy walk is optimal and the caps are only
// relaxed if no set at all could satisfy them.
//
// The chosen drives are ordered by descending score: slot i of the set holds
// shard i of every stripe in the PG, so slots 0..k-1 hold data and k..k+m-1
// parity. Since scores are independent per PG, every drive holds data and
// parity shards in proportion across PGs.
//
// The selection depends only on the set of drives (NewMap sorts them by ID),
// the policy and the PG count, never on input order. Adding one drive changes
// only the sets the new drive enters (about (k+m)/(n+1) of the PGs when the
// caps do not change), and in each of those exactly one member leaves. Slots
// are re-ordered by score, though, so a planner that migrates from an old map
// should keep surviving drives in their old slots.
//
// NewMap's sets are as random as the scores: with few (PG, slot) entries per
// drive some drives hold twice the mean and others half (at 12,000 drives and
// 16,384 PGs the fullest holds twice the mean). That is fine for the
// 256-PG maps of clusters up to a few hundred drives; larger clusters use
// Plan.
//
// # Growing: Plan, Split, PGCountFor
//
// [Plan] computes the next map from the current one when drives join or
// leave, keeping every surviving drive in its slot: a leaving drive's
// entries go to the least-loaded drives that keep each set within the caps,
// a joining drive takes entries from the fullest drives, and the drives are
// then balanced to within one entry of their target (the mean, or for zones
// whose share the caps fix, the zone's share spread over its drives). A join
// or leave moves about the ideal share of entries (1/N for N equal nodes).
// Plan's result depends on the map it starts from, so the Raft leader
// computes it once and ships it, or ships the [Delta] between the two maps
// (KBs where the map is MBs) for every node to [Map.Apply].
//
// The PG count grows by splitting, never by rehashing: [PGOf] keeps the low
// bits of the key's hash, so when the count doubles every key of PG p lands
// in p or p + n. [Map.Split] gives each child PG its ancestor's set
// ([AncestorPG]), so a split moves no data; the children then move away
// one entry at a time as Plan balances later joins and leaves.
// [PGCountFor] says how many PGs a cluster should have: DefaultPGCount up to
// a few hundred drives, then enough for SlotsPerDrive entries per drive
// (16,384 PGs for 12,000 drives under 12+4).//
// # Drive classes and layouts
//
// Each Drive has a class, local or remote (an S3-compatible bucket). The
// map's own table (PGs) mixes every drive. Containers place through a
// [Layout] instead: [Map.ForLayout] derives, per layout, a map with the
// same epoch, drives and PG hashing and its own policy and table, built by
// the same rendezvous walk over the drives of the classes the layout uses
// (local: local drives; hybrid: k local data slots then p remote parity
// slots, k <= p × local nodes (a single node: its drives); remote: remote drives). The derived tables
// are computed at lookup (and cached by the engine), not stored in the
// map, so the Raft log, Plan, Split and Delta are unchanged; a map without
// remote drives is its own local layout, so clusters without remote drives
// place exactly as before.
package placement
