package remote

import (
	"context"
	"fmt"
	"strings"

	"github.com/vaultaire/vaultaire/driver"
)

// PutRecord stores r unless a newer version is stored (driver.ErrStale).
// It returns once the log object holding it is in the bucket; concurrent
// calls share one.
func (d *Driver) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if err := driver.ValidateKey(r.Key); err != nil {
		return driver.Record{}, false, fmt.Errorf("driver/remote: put record: %w", err)
	}
	if err := d.refuseWrite("put record"); err != nil {
		return driver.Record{}, false, err
	}
	if err := d.begin(ctx); err != nil {
		return driver.Record{}, false, fmt.Errorf("driver/remote: put record: %w", err)
	}
	o := &op{e: entry{op: opRecPut, key: r.Key, version: r.Version, data: cloneData(r.Data)}}
	if err := d.submit(ctx, o); err != nil {
		return driver.Record{}, false, fmt.Errorf("driver/remote: put record version %v: %w", r.Version, err)
	}
	return o.prev, o.ok, nil
}

// GetRecord returns the record under key from the in-memory index (no
// request), or driver.ErrNotFound.
func (d *Driver) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	if err := driver.ValidateKey(key); err != nil {
		return driver.Record{}, fmt.Errorf("driver/remote: get record: %w", err)
	}
	if err := d.begin(ctx); err != nil {
		return driver.Record{}, fmt.Errorf("driver/remote: get record: %w", err)
	}
	done, err := d.fresh(ctx)
	if err != nil {
		return driver.Record{}, fmt.Errorf("driver/remote: get record: %w", err)
	}
	defer done()
	d.mu.RLock()
	it, ok := d.records.Get(recItem{key: key})
	d.mu.RUnlock()
	if !ok {
		return driver.Record{}, fmt.Errorf("driver/remote: get record: %w", driver.ErrNotFound)
	}
	return driver.Record{Key: key, Version: it.version, Data: cloneData(it.data)}, nil
}

// DeleteRecord removes the record under key if its version is v (any if v
// is zero), once the log object saying so is in the bucket.
func (d *Driver) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if err := driver.ValidateKey(key); err != nil {
		return fmt.Errorf("driver/remote: delete record: %w", err)
	}
	if err := d.refuseWrite("delete record"); err != nil {
		return err
	}
	if err := d.begin(ctx); err != nil {
		return fmt.Errorf("driver/remote: delete record: %w", err)
	}
	if err := d.submit(ctx, &op{e: entry{op: opRecDel, key: key, version: v}}); err != nil {
		return fmt.Errorf("driver/remote: delete record version %v: %w", v, err)
	}
	return nil
}

// ListRecords returns up to limit records whose keys start with prefix and
// sort after after, from the in-memory index (no request).
func (d *Driver) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("driver/remote: list records: limit %d is not positive", limit)
	}
	if err := d.begin(ctx); err != nil {
		return nil, fmt.Errorf("driver/remote: list records: %w", err)
	}
	done, err := d.fresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("driver/remote: list records: %w", err)
	}
	defer done()
	start := max(prefix, after)
	var out []driver.Record
	d.mu.RLock()
	d.records.AscendGreaterOrEqual(recItem{key: start}, func(it recItem) bool {
		if !strings.HasPrefix(it.key, prefix) || len(out) >= limit {
			return false
		}
		if it.key == after {
			return true
		}
		r := driver.Record{Key: it.key, Version: it.version, Data: it.data}.CutForList()
		r.Data = cloneData(r.Data)
		out = append(out, r)
		return true
	})
	d.mu.RUnlock()
	return out, nil
}
