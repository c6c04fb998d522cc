package events

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// exportT0 is the time of the first event of the export fixtures. Every
// event is i seconds and 123456789 ns later, so the export truncates it to
// ...123456 µs and the filters see nanoseconds.
var exportT0 = time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)

func exportTime(i int) time.Time {
	return exportT0.Add(time.Duration(i)*time.Second + 123456789*time.Nanosecond)
}

func micros(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// exportFixture is a log directory and the rows an export of all of it
// must give, with each row's exact time and the file it is in (0 and 1
// rotated, 2 current).
type exportFixture[R any] struct {
	dir   string
	rows  []R
	times []time.Time
	file  []int
}

// writeFixtureFiles writes the three files of a fixture: two rotated
// files (rotated a half second after their last line) and the current one.
func writeFixtureFiles(t *testing.T, dir, kind string, files [3]*bytes.Buffer, rotatedAt [2]time.Time) {
	t.Helper()
	for i, b := range files {
		name := kind + ".log"
		if i < 2 {
			name = rotatedName(kind, rotatedAt[i])
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// accessFixture writes an access log of 32 rows written by appendAccess
// (the log's own encoder) over two rotated files and the current one,
// with lines an export must cope with: one with unknown fields, one with
// only a few fields, one that is not JSON, one without a time, and an
// unterminated last line.
func accessFixture(t *testing.T) exportFixture[AccessRow] {
	t.Helper()
	fx := exportFixture[AccessRow]{dir: t.TempDir()}
	var files [3]*bytes.Buffer
	for i := range files {
		files[i] = new(bytes.Buffer)
	}
	for i := range 31 {
		ev := sampleEvent(i)
		ev.Time = exportTime(i)
		ev.Tenant = []string{"alice", "bob"}[i%2]
		ev.Anonymous = i%5 == 3 // an unsigned read of a public bucket of ev.Tenant's
		ev.Latency = time.Duration(i+1) * 250 * time.Microsecond
		switch {
		case i%3 == 1:
			ev.Operation, ev.BytesIn, ev.BytesOut, ev.ObjectSize = "PutObject", int64(1000+i), 0, int64(1000+i)
		case i == 7:
			ev.Status, ev.ErrorCode, ev.BytesOut, ev.ObjectSize = 404, "NoSuchKey", 0, -1
		case i == 12:
			ev.Key = "bad\xffkey\n"
		case i == 25:
			ev.Operation, ev.Bucket, ev.Key, ev.ObjectSize = "ListBuckets", "", "", -1
		}
		line := appendAccess(nil, &ev)
		if i == 30 { // a newer writer's line: fields this reader does not know
			line = append(line[:len(line)-2], `,"future":{"a":[1,"x",null]},"zz":null}`+"\n"...)
		}
		file := min(i/10, 2)
		files[file].Write(line)
		if i == 15 {
			files[file].WriteString("{not json\n")
			files[file].WriteString(`{"node":"n1","request_id":"NOTIME"}` + "\n")
		}
		row := AccessRow{
			Time: micros(ev.Time), Node: ptr(ev.Node), RequestID: ptr(ev.RequestID), Tenant: ptr(ev.Tenant),
			Operation: ptr(ev.Operation), Bucket: ptr(ev.Bucket), Key: ptr(wantKey(ev.Key)),
			BytesIn: ptr(ev.BytesIn), BytesOut: ptr(ev.BytesOut), ObjectSize: ptr(ev.ObjectSize),
			Status: ptr(int64(ev.Status)), ErrorCode: ptr(ev.ErrorCode),
			LatencyMS: ptr(float64(ev.Latency) / float64(time.Millisecond)),
			Client:    ptr(ev.RemoteAddr), UserAgent: ptr(ev.UserAgent), Anonymous: ptr(ev.Anonymous),
		}
		if i == 12 {
			row.KeyBase64 = ptr(base64.StdEncoding.EncodeToString([]byte(ev.Key)))
		}
		fx.rows = append(fx.rows, row)
		fx.times = append(fx.times, ev.Time)
		fx.file = append(fx.file, file)
	}
	// A line with only some fields: the others are null.
	old := exportTime(31)
	files[2].WriteString(`{"time":"` + old.Format(time.RFC3339Nano) + `","node":"n0","request_id":"OLD","status":500}` + "\n")
	fx.rows = append(fx.rows, AccessRow{Time: micros(old), Node: ptr("n0"), RequestID: ptr("OLD"), Status: ptr(int64(500))})
	fx.times = append(fx.times, old)
	fx.file = append(fx.file, 2)
	// The line being written (or cut by a crash): skipped.
	cut := sampleEvent(99)
	cut.Time = exportTime(32)
	line := appendAccess(nil, &cut)
	files[2].Write(line[:len(line)/2])
	writeFixtureFiles(t, fx.dir, "access", files, [2]time.Time{exportTime(9).Add(time.Second / 2), exportTime(19).Add(time.Second / 2)})
	return fx
}

// txnFixture writes a transaction log with every kind of line: plain
// mutations, a copy (source), a DeleteObjects (keys, one not UTF-8), a
// bucket operation, a "Dropped" line, one with an empty keys list and
// unknown fields, and an unterminated last line.
func txnFixture(t *testing.T) exportFixture[TxnRow] {
	t.Helper()
	fx := exportFixture[TxnRow]{dir: t.TempDir()}
	var files [3]*bytes.Buffer
	for i := range files {
		files[i] = new(bytes.Buffer)
	}
	add := func(file int, line string, at time.Time, row TxnRow) {
		files[file].WriteString(line)
		fx.rows = append(fx.rows, row)
		fx.times = append(fx.times, at)
		fx.file = append(fx.file, file)
	}
	for i := range 12 {
		ev := mutationEvent(i)
		ev.Time = exportTime(i)
		switch i % 4 {
		case 1:
			ev.Operation, ev.Source = "CopyObject", fmt.Sprintf("src/k/%d", i)
		case 2:
			ev.Operation, ev.Key, ev.VersionID, ev.ETag, ev.ObjectSize = "DeleteObjects", "", "", "", -1
			ev.Keys = []string{"a", fmt.Sprintf("b/%d", i), "c\xff"}
			if i == 10 { // a line longer than the reader's buffer
				for k := range 1000 {
					ev.Keys = append(ev.Keys, fmt.Sprintf("%04d/%s", k, strings.Repeat("long", 100)))
				}
			}
		case 3:
			ev.Operation, ev.Key, ev.VersionID, ev.ETag, ev.ObjectSize = "DeleteBucket", "", "", "", -1
		}
		rec := newTxnRecord(&ev)
		row := TxnRow{
			Time: micros(ev.Time), Node: ptr(ev.Node), RequestID: ptr(ev.RequestID), Tenant: ptr(ev.Tenant),
			Operation: ptr(ev.Operation), Bucket: ptr(ev.Bucket), Key: ptr(ev.Key),
			VersionID: ptr(ev.VersionID), ETag: ptr(ev.ETag), ObjectSize: ptr(ev.ObjectSize),
		}
		if ev.Source != "" {
			row.Source = ptr(ev.Source)
		}
		for _, k := range ev.Keys {
			row.Keys = append(row.Keys, wantKey(k))
		}
		add(i/4, string(appendTxn(nil, rec)), ev.Time, row)
		if i == 5 {
			at := exportTime(5).Add(time.Millisecond)
			add(1, string(appendDropped(nil, at, "n1", 12)), at,
				TxnRow{Time: micros(at), Node: ptr("n1"), Operation: ptr("Dropped"), Dropped: ptr(int64(12))})
		}
	}
	at := exportTime(12)
	add(2, `{"time":"`+at.Format(time.RFC3339Nano)+`","node":"n1","operation":"DeleteObjects","bucket":"b","keys":[],"new":true}`+"\n", at,
		TxnRow{Time: micros(at), Node: ptr("n1"), Operation: ptr("DeleteObjects"), Bucket: ptr("b"), Keys: []string{}})
	files[2].WriteString(`{"time":"` + exportTime(13).Format(time.RFC3339Nano) + `","node":"n1","oper`)
	writeFixtureFiles(t, fx.dir, "txn", files, [2]time.Time{exportTime(3).Add(time.Second / 2), exportTime(7).Add(time.Second / 2)})
	return fx
}

// exportCase is one export of a fixture and what it must give: the rows
// whose time is in [since, until), from the files read.
type exportCase struct {
	name         string
	opt          ExportOptions
	files        int // files read (rotated files older than Since are skipped)
	malformed    int64
	partial      int64
	rowGroupRows int // 0: one row group
}

func (c exportCase) want(times []time.Time, i int) bool {
	t := times[i]
	return (c.opt.Since.IsZero() || !t.Before(c.opt.Since)) && (c.opt.Until.IsZero() || t.Before(c.opt.Until))
}

// exportFile runs Export into a file and checks its stats.
func exportFile[R any](t *testing.T, fx exportFixture[R], c exportCase) (string, ExportStats) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.parquet")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Export(t.Context(), fx.dir, f, c.opt)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var rows, filtered int64
	for i := range fx.rows {
		switch {
		case c.want(fx.times, i):
			rows++
		case fx.file[i] >= 3-c.files:
			filtered++
		}
	}
	groups := 0
	if rows > 0 {
		groups = 1
		if c.rowGroupRows > 0 {
			groups = int((rows + int64(c.rowGroupRows) - 1) / int64(c.rowGroupRows))
		}
	}
	want := ExportStats{Files: c.files, Rows: rows, Filtered: filtered, Malformed: c.malformed, Partial: c.partial, RowGroups: groups}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	return out, st
}

// checkParquet reads out back with the library's reader and checks the
// schema, compression, row groups and every row.
func checkParquet[R any](t *testing.T, out string, fx exportFixture[R], c exportCase, schema string) {
	t.Helper()
	got, err := parquet.ReadFile[R](out)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	var want []R
	for i, r := range fx.rows {
		if c.want(fx.times, i) {
			want = append(want, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		// Times come back as the same instant; compare them in UTC.
		v := reflect.ValueOf(&got[i]).Elem().FieldByName("Time")
		v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("row %d:\n got %s\nwant %s", i, showRow(got[i]), showRow(want[i]))
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if s := pf.Schema().String(); s != schema {
		t.Errorf("schema:\n%s\nwant:\n%s", s, schema)
	}
	codec := format.Zstd
	if c.opt.Compression == "snappy" {
		codec = format.Snappy
	}
	md := pf.Metadata()
	if md.NumRows != int64(len(want)) {
		t.Errorf("file says %d rows, want %d", md.NumRows, len(want))
	}
	for _, rg := range md.RowGroups {
		if c.rowGroupRows > 0 && rg.NumRows > int64(c.rowGroupRows) {
			t.Errorf("row group of %d rows, want at most %d", rg.NumRows, c.rowGroupRows)
		}
		for _, col := range rg.Columns {
			if col.MetaData.Codec != codec {
				t.Errorf("column %v compressed with %v, want %v", col.MetaData.PathInSchema, col.MetaData.Codec, codec)
			}
		}
	}
}

// showRow prints a row with its pointers followed.
func showRow(r any) string {
	v := reflect.ValueOf(r)
	var b strings.Builder
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				fmt.Fprintf(&b, "%s=null ", v.Type().Field(i).Name)
				continue
			}
			f = f.Elem()
		}
		fmt.Fprintf(&b, "%s=%#v ", v.Type().Field(i).Name, f.Interface())
	}
	return b.String()
}

const accessSchema = `message AccessRow {
	required int64 time (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	optional binary node (STRING);
	optional binary request_id (STRING);
	optional binary tenant (STRING);
	optional binary operation (STRING);
	optional binary bucket (STRING);
	optional binary key (STRING);
	optional binary key_base64 (STRING);
	optional int64 bytes_in (INT(64,true));
	optional int64 bytes_out (INT(64,true));
	optional int64 object_size (INT(64,true));
	optional int64 status (INT(64,true));
	optional binary error_code (STRING);
	optional double latency_ms;
	optional binary client (STRING);
	optional binary user_agent (STRING);
	optional boolean anonymous;
}`

const txnSchema = `message TxnRow {
	required int64 time (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	optional binary node (STRING);
	optional binary request_id (STRING);
	optional binary tenant (STRING);
	optional binary operation (STRING);
	optional binary bucket (STRING);
	optional binary key (STRING);
	optional binary key_base64 (STRING);
	optional binary version_id (STRING);
	optional binary etag (STRING);
	optional int64 object_size (INT(64,true));
	optional binary source (STRING);
	optional group keys (LIST) {
		repeated group list {
			required binary element (STRING);
		}
	}
	optional int64 dropped (INT(64,true));
}`

func accessCases() []exportCase {
	return []exportCase{
		{name: "all", files: 3, malformed: 2, partial: 1},
		{name: "since and until at line times", opt: ExportOptions{Since: exportTime(10), Until: exportTime(20)}, files: 2, malformed: 2, partial: 1},
		{name: "a nanosecond later", opt: ExportOptions{Since: exportTime(10).Add(1), Until: exportTime(20).Add(1)}, files: 2, malformed: 2, partial: 1},
		{name: "since in the last file", opt: ExportOptions{Since: exportTime(21)}, files: 1, partial: 1},
		{name: "until only", opt: ExportOptions{Until: exportTime(5)}, files: 3, malformed: 2, partial: 1},
		{name: "nothing in range", opt: ExportOptions{Since: exportTime(100)}, files: 1, partial: 1},
		{name: "snappy, row groups of 7", opt: ExportOptions{Compression: "snappy", RowGroupRows: 7}, files: 3, malformed: 2, partial: 1, rowGroupRows: 7},
		{name: "row groups bounded by bytes", opt: ExportOptions{RowGroupSize: 1}, files: 3, malformed: 2, partial: 1, rowGroupRows: 1},
	}
}

func TestExportAccess(t *testing.T) {
	fx := accessFixture(t)
	for _, c := range accessCases() {
		t.Run(c.name, func(t *testing.T) {
			out, _ := exportFile(t, fx, c)
			checkParquet(t, out, fx, c, accessSchema)
		})
	}
}

func TestExportTxn(t *testing.T) {
	fx := txnFixture(t)
	for _, c := range []exportCase{
		{name: "all", opt: ExportOptions{Log: "txn"}, files: 3, partial: 1},
		{name: "since and until", opt: ExportOptions{Log: "txn", Since: exportTime(5), Until: exportTime(9)}, files: 2, partial: 1},
		{name: "snappy, row groups of 4", opt: ExportOptions{Log: "txn", Compression: "snappy", RowGroupRows: 4}, files: 3, partial: 1, rowGroupRows: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _ := exportFile(t, fx, c)
			checkParquet(t, out, fx, c, txnSchema)
		})
	}
}

// TestExportLiveLog exports what a running Log wrote, across rotations,
// and an empty directory.
func TestExportLiveLog(t *testing.T) {
	lineSize := len(appendAccess(nil, ptr(sampleEvent(100))))
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, MaxFileBytes: int64(10 * lineSize), MaxFiles: 100}, hooks{})
	for i := range 35 {
		ev := sampleEvent(100 + i)
		if i%2 == 0 {
			ev = mutationEvent(100 + i)
		}
		l.ObserveRequest(&ev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		log         string
		rows, files int
	}{{"access", 35, 4}, {"txn", 18, 2}} {
		var buf bytes.Buffer
		st, err := Export(t.Context(), dir, &buf, ExportOptions{Log: c.log})
		if err != nil {
			t.Fatal(err)
		}
		if st.Rows != int64(c.rows) || st.Files != c.files || st.Malformed+st.Partial+st.Filtered != 0 {
			t.Errorf("%s: stats %+v, want %d rows from %d files", c.log, st, c.rows, c.files)
		}
		pf, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if pf.NumRows() != int64(c.rows) {
			t.Errorf("%s: file has %d rows, want %d", c.log, pf.NumRows(), c.rows)
		}
	}

	var buf bytes.Buffer
	st, err := Export(t.Context(), t.TempDir(), &buf, ExportOptions{})
	if err != nil || st != (ExportStats{}) {
		t.Fatalf("empty directory: %+v, %v", st, err)
	}
	rows, err := parquet.Read[AccessRow](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || len(rows) != 0 {
		t.Fatalf("empty export read back: %d rows, %v", len(rows), err)
	}
}

func TestExportBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, opt := range []ExportOptions{
		{Log: "audit"},
		{Compression: "lzo"},
		{Since: exportTime(2), Until: exportTime(2)},
		{Since: exportTime(2), Until: exportTime(1)},
	} {
		var buf bytes.Buffer
		if _, err := Export(t.Context(), dir, &buf, opt); err == nil {
			t.Errorf("%+v: no error", opt)
		}
		if buf.Len() != 0 {
			t.Errorf("%+v: wrote %d bytes", opt, buf.Len())
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progressWriter notes, at each write, how much of the input had been
// read.
type progressWriter struct {
	in      *countingReader
	written int64
	at      []int64 // input bytes read when output byte written[i] was reached
	outs    []int64
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.written += int64(len(p))
	w.outs = append(w.outs, w.written)
	w.at = append(w.at, w.in.n)
	return len(p), nil
}

// TestExportStreams checks that Export writes each row group out while
// it reads the log, rather than holding the log: when half the output
// has been written, well under the whole input has been read.
func TestExportStreams(t *testing.T) {
	var log bytes.Buffer
	const n = 20000
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		ev := sampleEvent(i)
		ev.Time = exportTime(i)
		// Keys that do not compress away, so the output is large.
		ev.Key = fmt.Sprintf("k/%016x%016x%016x", rnd.Uint64(), rnd.Uint64(), rnd.Uint64())
		log.Write(appendAccess(nil, &ev))
	}
	in := &countingReader{r: bytes.NewReader(log.Bytes())}
	out := &progressWriter{in: in}
	e := &exporter[AccessRow, accessJSON]{opt: ExportOptions{RowGroupRows: 1000, RowGroupSize: DefaultRowGroupSize}, kind: "access", convert: accessRow}
	st, err := e.run(func() error { return e.readFile(t.Context(), in) },
		parquet.NewGenericWriter[AccessRow](out, parquet.Compression(&zstd.Codec{}), parquet.MaxRowsPerRowGroup(1000)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != n || st.RowGroups != n/1000 {
		t.Fatalf("stats %+v", st)
	}
	for i, o := range out.outs {
		if o >= out.written/2 {
			if read := out.at[i]; read > int64(log.Len())*3/4 {
				t.Errorf("half the output written only after reading %d of %d input bytes", read, log.Len())
			}
			return
		}
	}
}
