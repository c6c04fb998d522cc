package s3

import (
	"encoding/xml"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/engine"
)

// DeleteObjects deletes up to deleteParallelism keys at once. When the
// deletes take longer than keepAliveAfter, the answer starts at once
// with its XML declaration and a space every keepAliveEvery, as AWS does,
// so that clients with a read timeout (the aws cli's is 60 s) wait.
const (
	deleteParallelism = 16
	keepAliveAfter    = time.Second
	keepAliveEvery    = time.Second
)

type deleteRequest struct {
	XMLName xml.Name         `xml:"Delete"`
	Quiet   bool             `xml:"Quiet"`
	Objects []objectToDelete `xml:"Object"`
}

type objectToDelete struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId"`
	ETag      string `xml:"ETag"` // delete only if the newest version has it, as If-Match
}

type deleteResult struct {
	XMLName xml.Name        `xml:"DeleteResult"`
	Xmlns   string          `xml:"xmlns,attr"`
	Deleted []deletedObject `xml:"Deleted"`
	Errors  []deleteError   `xml:"Error"`
}

type deletedObject struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          bool   `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

type deleteError struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func (op *operation) deleteObjects() error {
	// S3 requires the body's integrity be checked: Content-MD5 or an
	// x-amz-checksum-* (checked by the body reader).
	if len(op.r.fctx.Request.Header.Peek("Content-MD5")) == 0 && op.auth.Checksum == "" {
		return errMissingMD5
	}
	var req deleteRequest
	if err := op.readXMLBody(&req); err != nil {
		return err
	}
	if len(req.Objects) == 0 || len(req.Objects) > maxDeleteObjects {
		return ErrMalformedXML
	}
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	errs := make([]error, len(req.Objects))
	dels := make([]engine.DeleteResult, len(req.Objects))
	versioning, err := op.versioning()
	if err != nil {
		return err
	}
	bypass := op.bypassGovernance()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		sem := make(chan struct{}, deleteParallelism)
		for _, g := range groupVersions(req.Objects) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if len(g) == 1 {
					i, o := g[0], req.Objects[g[0]]
					dels[i], errs[i] = op.s.cfg.Engine.DeleteVersion(op.ctx, op.tenant, op.bucket, o.Key,
						engine.DeleteOptions{Versioning: versioning, VersionID: o.VersionID, BypassGovernance: bypass, Condition: etagCondition(o.ETag)})
					return
				}
				vids := make([]string, len(g))
				for n, i := range g {
					vids[n] = req.Objects[i].VersionID
				}
				ds, es := op.s.cfg.Engine.DeleteVersions(op.ctx, op.tenant, op.bucket, req.Objects[g[0]].Key, vids, bypass)
				for n, i := range g {
					dels[i], errs[i] = ds[n], es[n]
				}
			})
		}
		wg.Wait()
	}()
	// result records the keys deleted in the event and returns the answer.
	result := func() deleteResult {
		res := deleteResult{Xmlns: s3Namespace}
		for i, o := range req.Objects {
			if errs[i] != nil {
				e := toS3(errs[i])
				res.Errors = append(res.Errors, deleteError{Key: o.Key, Code: e.Code, Message: e.Message})
				continue
			}
			op.r.ev.Keys = append(op.r.ev.Keys, o.Key)
			if !req.Quiet {
				d := deletedObject{Key: o.Key, VersionID: o.VersionID, DeleteMarker: dels[i].DeleteMarker}
				if o.VersionID == "" && dels[i].DeleteMarker {
					d.DeleteMarkerVersionID = dels[i].VersionID
				}
				res.Deleted = append(res.Deleted, d)
			}
		}
		return res
	}
	select {
	case <-done:
		writeXML(op.r.fctx, http.StatusOK, result())
		return nil
	case <-time.After(keepAliveAfter):
	}
	// The deletes own the request's context until the answer is sent.
	op.r.keepCtx = true
	ks := &keepAliveStream{pending: []byte(xml.Header), done: done, cancel: op.cancel}
	ks.result = func() []byte {
		out, err := xml.Marshal(result())
		if err != nil {
			return nil // unreachable: the result marshals
		}
		return out
	}
	op.r.sent = &sentCounter{Reader: ks, Closer: ks}
	op.r.fctx.SetStatusCode(http.StatusOK)
	op.r.fctx.SetContentType("application/xml")
	op.r.fctx.SetBodyStream(op.r.sent, -1)
	return nil
}

// keepAliveStream is the body of an answer whose work is still running:
// what is pending (the XML declaration), then a space every
// keepAliveEvery until done, then the result. Closing it ends the work's
// context and waits for the work, so the result, and the event, always
// say what was done.
type keepAliveStream struct {
	pending  []byte
	done     <-chan struct{}
	result   func() []byte // called once, when done
	finished bool
	cancel   func()
}

func (k *keepAliveStream) Read(p []byte) (int, error) {
	if len(k.pending) == 0 && !k.finished {
		select {
		case <-k.done:
			k.pending, k.finished = k.result(), true
		case <-time.After(keepAliveEvery):
			k.pending = []byte(" ")
		}
	}
	if len(k.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p, k.pending)
	k.pending = k.pending[n:]
	return n, nil
}

func (k *keepAliveStream) Close() error {
	k.cancel()
	<-k.done
	if !k.finished {
		k.finished = true
		k.result()
	}
	return nil
}

// groupVersions groups the entries of a DeleteObjects request (by index)
// for deletion: the entries naming a version (and no ETag condition) of
// one key form one group, deleted under one lock of the key
// (engine.DeleteVersions); every other entry is a group of its own.
func groupVersions(objs []objectToDelete) [][]int {
	var groups [][]int
	byKey := make(map[string]int) // key -> its group of versions
	for i, o := range objs {
		if o.VersionID == "" || o.ETag != "" {
			groups = append(groups, []int{i})
			continue
		}
		g, ok := byKey[o.Key]
		if !ok {
			g = len(groups)
			byKey[o.Key] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// etagCondition is the condition of a DeleteObjects entry's ETag: as
// DeleteObject's If-Match, the newest version must have it (a missing key
// matches); nil without one.
func etagCondition(etag string) engine.Condition {
	if etag == "" {
		return nil
	}
	return func(cur *engine.ArtifactInfo) error {
		if cur != nil && !strongMatch(etag, cur.ETag) {
			return ErrPreconditionFailed
		}
		return nil
	}
}
