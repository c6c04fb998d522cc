package events

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// duckDump is what scripts/parquet_check.mjs dump prints.
type duckDump struct {
	Version string `json:"version"`
	Schema  []struct {
		Name          string  `json:"name"`
		Type          *string `json:"type"`
		ConvertedType *string `json:"converted_type"`
		LogicalType   *string `json:"logical_type"`
		Repetition    *string `json:"repetition_type"`
	} `json:"schema"`
	Meta []struct {
		RowGroup    string `json:"row_group_id"`
		Path        string `json:"path_in_schema"`
		Compression string `json:"compression"`
	} `json:"meta"`
	Rows []map[string]any `json:"rows"`
}

// readWithDuckDB reads a Parquet file with DuckDB through
// scripts/parquet_check.mjs. It skips the test when node or the npm
// module is missing, unless VAULT_REQUIRE_DUCKDB=1 (as in CI).
func readWithDuckDB(t *testing.T, path string) duckDump {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if os.Getenv("VAULT_REQUIRE_DUCKDB") == "1" {
			t.Fatal(why)
		}
		t.Skip(why + " (set VAULT_REQUIRE_DUCKDB=1 to make this a failure)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node not installed: the independent Parquet reader (DuckDB) cannot run")
	}
	cmd := exec.CommandContext(t.Context(), node, "../scripts/parquet_check.mjs", "dump", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 3 {
		skip(strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		t.Fatalf("parquet_check.mjs: %v\n%s", err, stderr.String())
	}
	var d duckDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("parquet_check.mjs output: %v", err)
	}
	return d
}

// duckRow is a row as DuckDB's to_json gives it: the time apart, every
// other column by name, null when the Go field is nil.
func duckRow(t *testing.T, row any) (time.Time, map[string]any) {
	t.Helper()
	v := reflect.ValueOf(row)
	m := map[string]any{}
	var at time.Time
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("parquet"), ",")
		f := v.Field(i)
		switch {
		case name == "time":
			at = f.Interface().(time.Time)
			continue
		case f.Kind() == reflect.Pointer && f.IsNil(), f.Kind() == reflect.Slice && f.IsNil():
			m[name] = nil
		case f.Kind() == reflect.Pointer:
			m[name] = f.Elem().Interface()
		default:
			m[name] = f.Interface()
		}
	}
	// Through JSON, so numbers and lists have the types a decoded row has.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var norm map[string]any
	if err := json.Unmarshal(b, &norm); err != nil {
		t.Fatal(err)
	}
	return at, norm
}

// checkDuckDB checks what DuckDB reads of an export: the Parquet types
// of every column, the compression of every column chunk, the row groups
// and every value of every row.
func checkDuckDB[R any](t *testing.T, path string, fx exportFixture[R], c exportCase, types map[string]string) {
	t.Helper()
	d := readWithDuckDB(t, path)
	cols := 0
	for _, s := range d.Schema {
		want, ok := types[s.Name]
		if !ok {
			continue // the root and the LIST's inner groups
		}
		cols++
		got := strings.Join([]string{deref(s.Type), deref(s.ConvertedType), deref(s.Repetition)}, " ")
		if got != want {
			t.Errorf("DuckDB: column %s is %q, want %q", s.Name, got, want)
		}
		if strings.Contains(want, "TIMESTAMP") && !strings.Contains(deref(s.LogicalType), "isAdjustedToUTC=1") {
			t.Errorf("DuckDB: column %s logical type %q is not adjusted to UTC", s.Name, deref(s.LogicalType))
		}
	}
	if cols != len(types) {
		t.Errorf("DuckDB sees %d of the %d columns: %+v", cols, len(types), d.Schema)
	}
	wantCodec := "ZSTD"
	if c.opt.Compression == "snappy" {
		wantCodec = "SNAPPY"
	}
	groups := map[string]bool{}
	for _, m := range d.Meta {
		groups[m.RowGroup] = true
		if m.Compression != wantCodec {
			t.Errorf("DuckDB: row group %s column %s compressed %s, want %s", m.RowGroup, m.Path, m.Compression, wantCodec)
		}
	}
	var want []R
	for i, r := range fx.rows {
		if c.want(fx.times, i) {
			want = append(want, r)
		}
	}
	if c.rowGroupRows > 0 {
		if n := (len(want) + c.rowGroupRows - 1) / c.rowGroupRows; len(groups) != n {
			t.Errorf("DuckDB: %d row groups, want %d", len(groups), n)
		}
	}
	if len(d.Rows) != len(want) {
		t.Fatalf("DuckDB read %d rows, want %d", len(d.Rows), len(want))
	}
	for i, got := range d.Rows {
		wantAt, wantCols := duckRow(t, want[i])
		s, _ := got["time"].(string)
		at, err := time.Parse("2006-01-02 15:04:05.999999-07", s)
		if err != nil || !at.Equal(wantAt) {
			t.Errorf("DuckDB row %d: time %q (%v), want %s", i, s, err, wantAt.Format(time.RFC3339Nano))
		}
		delete(got, "time")
		if !reflect.DeepEqual(got, wantCols) {
			t.Errorf("DuckDB row %d:\n got %v\nwant %v", i, got, wantCols)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

var (
	accessDuckTypes = map[string]string{
		"time": "INT64 TIMESTAMP_MICROS REQUIRED", "node": "BYTE_ARRAY UTF8 OPTIONAL", "request_id": "BYTE_ARRAY UTF8 OPTIONAL",
		"tenant": "BYTE_ARRAY UTF8 OPTIONAL", "operation": "BYTE_ARRAY UTF8 OPTIONAL", "bucket": "BYTE_ARRAY UTF8 OPTIONAL",
		"key": "BYTE_ARRAY UTF8 OPTIONAL", "key_base64": "BYTE_ARRAY UTF8 OPTIONAL", "bytes_in": "INT64 INT_64 OPTIONAL",
		"bytes_out": "INT64 INT_64 OPTIONAL", "object_size": "INT64 INT_64 OPTIONAL", "status": "INT64 INT_64 OPTIONAL",
		"error_code": "BYTE_ARRAY UTF8 OPTIONAL", "latency_ms": "DOUBLE - OPTIONAL", "client": "BYTE_ARRAY UTF8 OPTIONAL",
		"user_agent": "BYTE_ARRAY UTF8 OPTIONAL", "anonymous": "BOOLEAN - OPTIONAL",
	}
	txnDuckTypes = map[string]string{
		"time": "INT64 TIMESTAMP_MICROS REQUIRED", "node": "BYTE_ARRAY UTF8 OPTIONAL", "request_id": "BYTE_ARRAY UTF8 OPTIONAL",
		"tenant": "BYTE_ARRAY UTF8 OPTIONAL", "operation": "BYTE_ARRAY UTF8 OPTIONAL", "bucket": "BYTE_ARRAY UTF8 OPTIONAL",
		"key": "BYTE_ARRAY UTF8 OPTIONAL", "key_base64": "BYTE_ARRAY UTF8 OPTIONAL", "version_id": "BYTE_ARRAY UTF8 OPTIONAL",
		"etag": "BYTE_ARRAY UTF8 OPTIONAL", "object_size": "INT64 INT_64 OPTIONAL", "source": "BYTE_ARRAY UTF8 OPTIONAL",
		"keys": "- LIST OPTIONAL", "element": "BYTE_ARRAY UTF8 REQUIRED", "dropped": "INT64 INT_64 OPTIONAL",
	}
)

// TestExportDuckDB reads exports back with DuckDB, a reader independent
// of the library that wrote them.
func TestExportDuckDB(t *testing.T) {
	afx, tfx := accessFixture(t), txnFixture(t)
	for _, c := range []exportCase{
		accessCases()[0],
		accessCases()[1],
		{name: "access snappy, row groups of 5", opt: ExportOptions{Compression: "snappy", RowGroupRows: 5}, files: 3, malformed: 2, partial: 1, rowGroupRows: 5},
		{name: "txn", opt: ExportOptions{Log: "txn"}, files: 3, partial: 1},
		{name: "txn snappy, row groups of 4", opt: ExportOptions{Log: "txn", Compression: "snappy", RowGroupRows: 4}, files: 3, partial: 1, rowGroupRows: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opt.Log == "txn" {
				out, _ := exportFile(t, tfx, c)
				checkDuckDB(t, out, tfx, c, txnDuckTypes)
				return
			}
			out, _ := exportFile(t, afx, c)
			checkDuckDB(t, out, afx, c, accessDuckTypes)
		})
	}
}
