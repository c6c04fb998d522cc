package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// ExportOptions says what Export writes. Zero fields take the defaults
// shown.
type ExportOptions struct {
	Log          string    // "access" (default) or "txn"
	Since        time.Time // first time exported (inclusive); zero: from the oldest line kept
	Until        time.Time // end of the times exported (exclusive); zero: to the newest line
	Compression  string    // "zstd" (default) or "snappy"
	RowGroupRows int       // rows per row group at most (default 32768)
	RowGroupSize int64     // bytes of log lines per row group at most (default 32 MiB)
}

// Export defaults.
const (
	DefaultRowGroupRows = 32768
	DefaultRowGroupSize = 32 << 20
)

// maxExportLine is the longest log line Export reads; a longer one is
// skipped as malformed.
const maxExportLine = 64 << 20

// ExportStats counts what Export read.
type ExportStats struct {
	Files     int   // log files read
	Rows      int64 // rows written
	Filtered  int64 // lines outside [Since, Until)
	Malformed int64 // lines skipped: not JSON, no valid time, or too long
	Partial   int64 // unterminated last lines skipped (a crash, or a line being written)
	RowGroups int   // row groups written
}

// AccessRow is one access-log line as a Parquet row. Every column but
// time is optional: null when the line lacks the field. Times are UTC
// microseconds (the logs have nanoseconds; they are truncated).
type AccessRow struct {
	Time       time.Time `parquet:"time,timestamp(microsecond:utc),delta"`
	Node       *string   `parquet:"node,optional,dict"`
	RequestID  *string   `parquet:"request_id,optional"`
	Tenant     *string   `parquet:"tenant,optional,dict"`
	Operation  *string   `parquet:"operation,optional,dict"`
	Bucket     *string   `parquet:"bucket,optional,dict"`
	Key        *string   `parquet:"key,optional"`
	KeyBase64  *string   `parquet:"key_base64,optional"`
	BytesIn    *int64    `parquet:"bytes_in,optional"`
	BytesOut   *int64    `parquet:"bytes_out,optional"`
	ObjectSize *int64    `parquet:"object_size,optional"`
	Status     *int64    `parquet:"status,optional"`
	ErrorCode  *string   `parquet:"error_code,optional,dict"`
	LatencyMS  *float64  `parquet:"latency_ms,optional"`
	Client     *string   `parquet:"client,optional"`
	UserAgent  *string   `parquet:"user_agent,optional,dict"`
	Anonymous  *bool     `parquet:"anonymous,optional"`
}

// TxnRow is one transaction-log line as a Parquet row, with the same
// conventions as AccessRow. Keys is null when the line has no keys
// field (every operation but DeleteObjects); Dropped is set only on
// "Dropped" lines.
type TxnRow struct {
	Time       time.Time `parquet:"time,timestamp(microsecond:utc),delta"`
	Node       *string   `parquet:"node,optional,dict"`
	RequestID  *string   `parquet:"request_id,optional"`
	Tenant     *string   `parquet:"tenant,optional,dict"`
	Operation  *string   `parquet:"operation,optional,dict"`
	Bucket     *string   `parquet:"bucket,optional,dict"`
	Key        *string   `parquet:"key,optional"`
	KeyBase64  *string   `parquet:"key_base64,optional"`
	VersionID  *string   `parquet:"version_id,optional"`
	ETag       *string   `parquet:"etag,optional"`
	ObjectSize *int64    `parquet:"object_size,optional"`
	Source     *string   `parquet:"source,optional"`
	Keys       []string  `parquet:"keys,list,optional"`
	Dropped    *int64    `parquet:"dropped,optional"`
}

// accessJSON and txnJSON are the JSON lines; pointers tell an absent
// field from a zero one.
type accessJSON struct {
	Time       *time.Time `json:"time"`
	Node       *string    `json:"node"`
	RequestID  *string    `json:"request_id"`
	Tenant     *string    `json:"tenant"`
	Operation  *string    `json:"operation"`
	Bucket     *string    `json:"bucket"`
	Key        *string    `json:"key"`
	KeyBase64  *string    `json:"key_base64"`
	BytesIn    *int64     `json:"bytes_in"`
	BytesOut   *int64     `json:"bytes_out"`
	ObjectSize *int64     `json:"object_size"`
	Status     *int64     `json:"status"`
	ErrorCode  *string    `json:"error_code"`
	LatencyMS  *float64   `json:"latency_ms"`
	Client     *string    `json:"client"`
	UserAgent  *string    `json:"user_agent"`
	Anonymous  *bool      `json:"anonymous"`
}

type txnJSON struct {
	Time       *time.Time `json:"time"`
	Node       *string    `json:"node"`
	RequestID  *string    `json:"request_id"`
	Tenant     *string    `json:"tenant"`
	Operation  *string    `json:"operation"`
	Bucket     *string    `json:"bucket"`
	Key        *string    `json:"key"`
	KeyBase64  *string    `json:"key_base64"`
	VersionID  *string    `json:"version_id"`
	ETag       *string    `json:"etag"`
	ObjectSize *int64     `json:"object_size"`
	Source     *string    `json:"source"`
	Keys       *[]string  `json:"keys"`
	Dropped    *int64     `json:"dropped"`
}

// Export writes the lines of dir's access or transaction log whose time
// is in [opt.Since, opt.Until) to w as one Parquet file (schema AccessRow
// or TxnRow), oldest file first: the rotated files, then the current
// one up to its size when Export opened it. It streams: it holds at most
// one row group (opt.RowGroupRows rows, opt.RowGroupSize bytes of lines)
// in memory. Lines that do not parse or have no valid time are skipped
// and counted, as is an unterminated last line; unknown fields are
// ignored. Rows keep the order of the lines, which is the order the node
// wrote them, not strictly time order.
func Export(ctx context.Context, dir string, w io.Writer, opt ExportOptions) (ExportStats, error) {
	return export(w, opt, func(r lineReader) error { return r.readAll(ctx, dir) })
}

// exportOne writes one log file, of kind opt.Log, as Parquet to w.
func exportOne(ctx context.Context, path string, w io.Writer, opt ExportOptions) (ExportStats, error) {
	return export(w, opt, func(r lineReader) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("events: export: %w", err)
		}
		defer f.Close()
		if err := r.readFile(ctx, f); err != nil {
			return fmt.Errorf("events: export %s: %w", filepath.Base(path), err)
		}
		return nil
	})
}

// lineReader is an exporter, whatever its row type.
type lineReader interface {
	readAll(ctx context.Context, dir string) error
	readFile(ctx context.Context, r io.Reader) error
}

func export(w io.Writer, opt ExportOptions, read func(lineReader) error) (ExportStats, error) {
	var codec compress.Codec
	switch opt.Compression {
	case "", "zstd":
		codec = &zstd.Codec{}
	case "snappy":
		codec = &snappy.Codec{}
	default:
		return ExportStats{}, fmt.Errorf("events: export: unknown compression %q (want zstd or snappy)", opt.Compression)
	}
	if opt.RowGroupRows <= 0 {
		opt.RowGroupRows = DefaultRowGroupRows
	}
	if opt.RowGroupSize <= 0 {
		opt.RowGroupSize = DefaultRowGroupSize
	}
	if !opt.Since.IsZero() && !opt.Until.IsZero() && !opt.Until.After(opt.Since) {
		return ExportStats{}, fmt.Errorf("events: export: until %s is not after since %s", opt.Until.Format(time.RFC3339Nano), opt.Since.Format(time.RFC3339Nano))
	}
	options := []parquet.WriterOption{
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(opt.RowGroupRows)),
		parquet.CreatedBy("vaultaire", "", ""),
	}
	switch opt.Log {
	case "", "access":
		e := &exporter[AccessRow, accessJSON]{opt: opt, kind: "access", convert: accessRow}
		return e.run(func() error { return read(e) }, parquet.NewGenericWriter[AccessRow](w, options...))
	case "txn":
		e := &exporter[TxnRow, txnJSON]{opt: opt, kind: "txn", convert: txnRow}
		return e.run(func() error { return read(e) }, parquet.NewGenericWriter[TxnRow](w, options...))
	}
	return ExportStats{}, fmt.Errorf("events: export: unknown log %q (want access or txn)", opt.Log)
}

// exporter converts the JSON lines L of one log into rows R.
type exporter[R, L any] struct {
	opt     ExportOptions
	kind    string
	convert func(*L) (R, time.Time, bool) // the row and its line's time; false if it has none
	stats   ExportStats
	pw      *parquet.GenericWriter[R]
	batch   []R
	inGroup int   // rows in the current row group
	bytes   int64 // bytes of lines in the current row group
}

// exportBatch is how many rows are handed to the Parquet writer at once.
const exportBatch = 256

// run writes the rows of the lines read by read to pw, and closes pw.
func (e *exporter[R, L]) run(read func() error, pw *parquet.GenericWriter[R]) (ExportStats, error) {
	e.pw = pw
	e.batch = make([]R, 0, exportBatch)
	if err := read(); err != nil {
		return e.stats, err
	}
	if err := e.flushBatch(); err != nil {
		return e.stats, err
	}
	if e.inGroup > 0 {
		e.stats.RowGroups++
	}
	if err := pw.Close(); err != nil {
		return e.stats, fmt.Errorf("events: export: %w", err)
	}
	return e.stats, nil
}

// readAll reads the rotated files, then the current one. The current
// file is opened first so that a rotation meanwhile is seen: it then
// appears among the rotated files and is read once, as the current one.
func (e *exporter[R, L]) readAll(ctx context.Context, dir string) error {
	cur, err := os.Open(filepath.Join(dir, e.kind+".log"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("events: export: %w", err)
	}
	var curSt fs.FileInfo
	if cur != nil {
		defer cur.Close()
		if curSt, err = cur.Stat(); err != nil {
			return fmt.Errorf("events: export: %w", err)
		}
	}
	rotated, err := listRotated(dir, e.kind)
	if err != nil && cur == nil {
		return fmt.Errorf("events: export: %w", err)
	}
	for _, name := range rotated {
		// Every line of a rotated file was written, so its request had
		// arrived, before the rotation time in its name.
		if stamp, _ := rotatedStamp(e.kind, name); !e.opt.Since.IsZero() && stamp.Before(e.opt.Since) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted by retention meanwhile
			}
			return fmt.Errorf("events: export: %w", err)
		}
		if st, err := f.Stat(); err == nil && curSt != nil && os.SameFile(st, curSt) {
			f.Close()
			continue
		}
		err = e.readFile(ctx, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("events: export %s: %w", name, err)
		}
	}
	if cur != nil {
		if err := e.readFile(ctx, io.LimitReader(cur, curSt.Size())); err != nil {
			return fmt.Errorf("events: export %s.log: %w", e.kind, err)
		}
	}
	return nil
}

// readFile converts every complete line of r.
func (e *exporter[R, L]) readFile(ctx context.Context, r io.Reader) error {
	e.stats.Files++
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte // a line longer than br's buffer, gathered
	tooLong := false
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong {
				if len(long)+len(chunk) > maxExportLine {
					tooLong, long = true, nil
				} else {
					long = append(long, chunk...)
				}
			}
			continue
		case errors.Is(err, io.EOF):
			if len(chunk) > 0 || len(long) > 0 || tooLong {
				e.stats.Partial++
			}
			return nil
		case err != nil:
			return err
		}
		line := chunk
		if tooLong {
			tooLong = false
			e.stats.Malformed++
			continue
		}
		if len(long) > 0 {
			line = append(long, chunk...)
			long = long[:0]
			if len(line) > maxExportLine {
				e.stats.Malformed++
				continue
			}
		}
		if err := e.line(line); err != nil {
			return err
		}
		if long != nil && cap(long) > 1<<20 {
			long = nil // do not keep a huge buffer for ordinary lines
		}
	}
}

// line converts one complete line.
func (e *exporter[R, L]) line(line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	var l L
	if err := json.Unmarshal(line, &l); err != nil {
		e.stats.Malformed++
		return nil
	}
	row, t, ok := e.convert(&l)
	if !ok {
		e.stats.Malformed++
		return nil
	}
	if (!e.opt.Since.IsZero() && t.Before(e.opt.Since)) || (!e.opt.Until.IsZero() && !t.Before(e.opt.Until)) {
		e.stats.Filtered++
		return nil
	}
	e.batch = append(e.batch, row)
	e.stats.Rows++
	e.inGroup++
	e.bytes += int64(len(line))
	if len(e.batch) == cap(e.batch) || e.inGroup >= e.opt.RowGroupRows || e.bytes >= e.opt.RowGroupSize {
		if err := e.flushBatch(); err != nil {
			return err
		}
	}
	if e.inGroup >= e.opt.RowGroupRows || e.bytes >= e.opt.RowGroupSize {
		if err := e.pw.Flush(); err != nil {
			return fmt.Errorf("events: export: %w", err)
		}
		e.stats.RowGroups++
		e.inGroup, e.bytes = 0, 0
	}
	return nil
}

func (e *exporter[R, L]) flushBatch() error {
	if len(e.batch) == 0 {
		return nil
	}
	if _, err := e.pw.Write(e.batch); err != nil {
		return fmt.Errorf("events: export: %w", err)
	}
	clear(e.batch)
	e.batch = e.batch[:0]
	return nil
}

func accessRow(l *accessJSON) (AccessRow, time.Time, bool) {
	if l.Time == nil || l.Time.IsZero() {
		return AccessRow{}, time.Time{}, false
	}
	return AccessRow{
		Time: l.Time.UTC().Truncate(time.Microsecond), Node: l.Node, RequestID: l.RequestID,
		Tenant: l.Tenant, Operation: l.Operation, Bucket: l.Bucket, Key: l.Key, KeyBase64: l.KeyBase64,
		BytesIn: l.BytesIn, BytesOut: l.BytesOut, ObjectSize: l.ObjectSize, Status: l.Status,
		ErrorCode: l.ErrorCode, LatencyMS: l.LatencyMS, Client: l.Client, UserAgent: l.UserAgent,
		Anonymous: l.Anonymous,
	}, *l.Time, true
}

func txnRow(l *txnJSON) (TxnRow, time.Time, bool) {
	if l.Time == nil || l.Time.IsZero() {
		return TxnRow{}, time.Time{}, false
	}
	r := TxnRow{
		Time: l.Time.UTC().Truncate(time.Microsecond), Node: l.Node, RequestID: l.RequestID,
		Tenant: l.Tenant, Operation: l.Operation, Bucket: l.Bucket, Key: l.Key, KeyBase64: l.KeyBase64,
		VersionID: l.VersionID, ETag: l.ETag, ObjectSize: l.ObjectSize, Source: l.Source, Dropped: l.Dropped,
	}
	if l.Keys != nil {
		r.Keys = *l.Keys // "keys":[] decodes to an empty list, written as one (not null)
	}
	return r, *l.Time, true
}
