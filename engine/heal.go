package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vaultaire/vaultaire/driver"
)

// Heal repairs key's newest version in place: every reachable drive of its
// placement group whose record is missing or stale, or whose shard fails
// verification, gets a rebuilt shard and a fresh record. It returns the
// shard indexes it repaired. Healing a deleted or missing key does nothing.
func (e *Engine) Heal(ctx context.Context, tenant, container, key string) ([]int, error) {
	item := HealItem{tenant, container, key}
	a, err := e.Open(ctx, tenant, container, key)
	if errors.Is(err, ErrNoSuchArtifact) {
		e.unqueueHeal(item)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var targets []int
	for j, d := range a.drives {
		if d == nil {
			continue
		}
		if a.holders[j] == nil || a.codec.Verify(ctx, a.Info.Size, j, a.open) != nil {
			targets = append(targets, j)
		}
	}
	if len(targets) == 0 {
		e.unqueueHeal(item)
		return nil, nil
	}
	// Targets are rebuilt from the other shards only.
	for _, j := range targets {
		a.holders[j] = nil
	}

	ws := make(map[int]io.Writer, len(targets))
	bufs := make(map[int]*bytes.Buffer)
	sws := make(map[int]driver.ShardWriter)
	defer func() {
		for _, sw := range sws {
			sw.Abort()
		}
	}()
	for _, j := range targets {
		if a.rec.IsInline {
			bufs[j] = new(bytes.Buffer)
			ws[j] = bufs[j]
			continue
		}
		sw, err := a.drives[j].CreateShard(ctx, a.shard())
		if err != nil {
			return nil, fmt.Errorf("engine: heal shard %d: %w", j, err)
		}
		sws[j], ws[j] = sw, sw
	}
	if _, err := a.codec.Rebuild(ctx, a.Info.Size, a.open, ws); err != nil {
		return nil, fmt.Errorf("engine: heal %s: %w", container, err)
	}
	ok := make([]bool, len(a.drives))
	var inline [][]byte
	if a.rec.IsInline {
		inline = make([][]byte, len(a.drives))
	}
	for _, j := range targets {
		if a.rec.IsInline {
			inline[j] = bufs[j].Bytes()
		} else if err := sws[j].Commit(ctx); err != nil {
			return nil, fmt.Errorf("engine: heal shard %d: %w", j, err)
		}
		ok[j] = true
	}
	if err := e.writeRecords(ctx, tenant, container, key, a.drives, a.rec, inline, ok, len(targets)); err != nil {
		return nil, fmt.Errorf("engine: heal: %w", err)
	}
	e.unqueueHeal(item)
	e.log.Info("healed artifact", "pg", a.rec.PG, "shards", targets)
	return targets, nil
}

func (e *Engine) unqueueHeal(it HealItem) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	delete(e.heal, it)
}
