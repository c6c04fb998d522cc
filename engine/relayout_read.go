package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// WriteRange writes bytes [off, off+length) of the artifact to w, verifying
// every block. A degraded read succeeds and queues the artifact for healing.
//
// A read that runs while its version is moved to another set (a storage
// policy change's re-layout, migration after a map change, a tier move)
// can find the shard files it was reading gone: the move removes them
// once the new set serves the version. It then looks the version up
// again and, if the set that now serves it holds the very same version
// (same version, size and ETag: the same bytes), goes on from there at
// the byte it had reached; otherwise it fails as before. So a read is
// never served a mix of two versions, and a move never fails it.
func (a *Artifact) WriteRange(ctx context.Context, w io.Writer, off, length int64) error {
	cw := &resumeWriter{w: w}
	cur := a
	err := cur.writeRange(ctx, cw, off, length)
	for range maxReadResumes {
		if err == nil || !errors.Is(err, ErrReadQuorum) || ctx.Err() != nil || cw.failed {
			break
		}
		next, rerr := cur.reopen(ctx)
		if rerr != nil || next == nil {
			break
		}
		cur = next
		err = cur.writeRange(ctx, cw, off+cw.n, length-cw.n)
	}
	return err
}

// maxReadResumes bounds how often one read follows its version to a new
// set.
const maxReadResumes = 3

// reopen returns a's version as the set that serves it now holds it, if
// that is another placement of the same bytes than a's; nil if it is not
// (the version is gone, was replaced, or is where a read it).
func (a *Artifact) reopen(ctx context.Context) (*Artifact, error) {
	e, in := a.e, a.Info
	loc, rec, err := e.locate(ctx, in.Tenant, in.Container, a.rkey)
	if err != nil {
		return nil, fmt.Errorf("engine: resume read: %w", err)
	}
	if rec == nil || rec.Deleted || rec.Pointer || rec.Version != a.rec.Version || rec.Size != a.rec.Size || rec.ETag != a.rec.ETag {
		return nil, nil
	}
	if sameData(rec, a.rec) && rec.PG == a.rec.PG && rec.Data == a.rec.Data && rec.Parity == a.rec.Parity && slices.Equal(loc.drives, a.drives) {
		return nil, nil // where a read it: another try finds the same shards missing
	}
	b, err := e.artifactAt(in.Tenant, in.Container, a.rkey, loc, rec)
	if err != nil {
		return nil, fmt.Errorf("engine: resume read: %w", err)
	}
	b.Info = a.Info // the same version, as the caller was told (VersionID, key)
	return b, nil
}

// resumeWriter counts the bytes written through it, and whether a
// write failed (the caller's writer: no resume helps).
type resumeWriter struct {
	w      io.Writer
	n      int64
	failed bool
}

func (c *resumeWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.failed = c.failed || err != nil
	return n, err
}
