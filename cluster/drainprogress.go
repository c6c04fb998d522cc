package cluster

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// drainWindow is how far back drainRate looks to estimate a drain's rate;
// drainSamples bounds the samples it keeps within it.
const (
	drainWindow  = 10 * time.Minute
	drainSamples = 256
	// drainMinSpan is the shortest span of samples a rate is given for.
	drainMinSpan = time.Second
	// finishingETA is the ETA under which a drain not done is said to be
	// finishing: the bytes left are mostly the drives' indexes, which stay
	// until the older maps are dropped (once the new map has been current
	// on every node for a while), so the ETA would show a few seconds for
	// as long as that takes (probe F5 of session 17: "about 0s left" for
	// 10-20 s).
	finishingETA = 10 * time.Second
)

// drainSample is the bytes and PG slots left at one time.
type drainSample struct {
	at    time.Time
	bytes uint64
	pgs   int
}

// drainRate estimates a drain's rate and ETA from the bytes its draining
// drives hold over time. The migrator removes an artifact's old shards
// once it has moved them, so the bytes fall as the drain goes on, while
// the PG slots left only fall when a whole older map is retired: the rate
// is in bytes. Samples reset when the set of draining drives changes.
type drainRate struct {
	mu      sync.Mutex
	drives  string        // the draining drives the samples are of
	samples []drainSample // oldest first
}

// observe records ds (Drives, PGsLeft, BytesLeft and Unreachable set) as
// of now and sets its BytesPerSecond, ETASeconds and Finishing from the
// samples within drainWindow: -1 when unknown (fewer than drainMinSpan of
// samples, no bytes moved in the window, or a drive unreachable, whose
// bytes are not counted); ETASeconds is 0 once no PG slot is left.
func (r *drainRate) observe(ds *DrainStatus, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds.BytesPerSecond, ds.ETASeconds, ds.Finishing = -1, -1, false
	if key := strings.Join(ds.Drives, ","); key != r.drives {
		r.drives, r.samples = key, nil
	}
	if len(ds.Drives) == 0 {
		return
	}
	if ds.PGsLeft == 0 {
		ds.ETASeconds = 0
	}
	if len(ds.Unreachable) > 0 && ds.PGsLeft > 0 {
		// The bytes left leave a drive out: no rate from them, and none
		// mixed with them once it is back.
		r.samples = nil
		return
	}
	// Keep the newest sample older than the window, so a rate spans the
	// whole window even when samples are sparse.
	cut := 0
	for cut+1 < len(r.samples) && now.Sub(r.samples[cut+1].at) >= drainWindow {
		cut++
	}
	r.samples = append(r.samples[cut:], drainSample{at: now, bytes: ds.BytesLeft, pgs: ds.PGsLeft})
	if len(r.samples) > drainSamples {
		r.samples = r.samples[len(r.samples)-drainSamples:]
	}
	first := r.samples[0]
	span := now.Sub(first.at)
	if span < drainMinSpan || first.bytes <= ds.BytesLeft {
		return
	}
	ds.BytesPerSecond = float64(first.bytes-ds.BytesLeft) / span.Seconds()
	if ds.PGsLeft > 0 {
		ds.ETASeconds = float64(ds.BytesLeft) / ds.BytesPerSecond
		ds.Finishing = ds.ETASeconds < finishingETA.Seconds()
	}
}

// DrainProgress returns the drains in progress, or nil if there are none:
// the PG slots and maps left, the bytes the draining drives still hold
// (probed with Info within ctx; the drives that do not answer are listed
// as unreachable, with their nodes), and the rate and ETA estimated from
// this Topology's earlier calls (SampleDrains makes them regular).
func (t *Topology) DrainProgress(ctx context.Context) *DrainStatus {
	ds := t.store.Drains()
	if len(ds.Drives) == 0 {
		t.drain.observe(&ds, time.Now()) // forget the last drain's samples
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, id := range ds.Drives {
		d, err := t.Drive(placement.DriveID(id))
		if err == nil {
			var info driver.Info
			if info, err = d.Info(pctx); err == nil {
				ds.BytesLeft += info.Usage.Used
			}
		}
		if err != nil && ds.PGsLeft > 0 { // once done, no map reaches them: nothing to say
			ds.Unreachable = append(ds.Unreachable, id)
		}
	}
	ds.UnreachableNodes = t.store.nodesOf(ds.Unreachable)
	t.drain.observe(&ds, time.Now())
	return &ds
}

// SampleDrains calls DrainProgress every interval until ctx ends, so the
// rate and ETA of a drain are known when the status is asked for.
func (t *Topology) SampleDrains(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.DrainProgress(ctx)
		}
	}
}
