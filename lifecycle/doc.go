// Package lifecycle applies containers' lifecycle rules: the
// LifecycleConfiguration documents of the S3 API (Parse checks one as
// AWS's PutBucketLifecycleConfiguration does), and a Worker that, on one
// node at a time (the Raft leader; Config.Active), walks every tenant's
// containers that have rules and
//
//   - expires current versions Days after they were written or from Date
//     on (a delete marker in a versioned container, as S3),
//   - deletes noncurrent versions NoncurrentDays after they stopped being
//     current, keeping the NewerNoncurrentVersions newest,
//   - removes expired delete markers (ExpiredObjectDeleteMarker: a marker
//     that is the only version of its key left),
//   - aborts multipart uploads DaysAfterInitiation days after they began,
//
// for the keys a rule's filter selects (prefix, tags, size bounds). Days
// are counted as AWS counts them: the time is rounded up to the next day
// boundary (midnight UTC). Config.Day shortens a day for tests.
//
// A version that object lock protects is never deleted: the Store refuses
// (ErrProtected) and the worker counts and skips it. Every action is
// conditional on what was listed (the current version must still be the
// one listed), so a pass repeated after a crash or by a new leader acts
// at most once on each version. Progress through a container is saved
// every few hundred keys through the Store (replicated), so a restart
// resumes where the last save left off. Actions and listing pages are
// paced at Config.Rate per second.
//
// The package imports nothing of this module: s3 provides the Store
// (bucket, object and tag semantics, transaction log records) and
// cmd/vaultd wires the Worker.
package lifecycle
