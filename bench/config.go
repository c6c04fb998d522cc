package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Workload names what a run does. Its string form is the CLI sub-command.
type Workload string

// The workloads.
const (
	Put       Workload = "put"       // PUT new objects of Config.Size
	Get       Workload = "get"       // GET prepared objects at random
	Mixed     Workload = "mixed"     // GET, PUT, HEAD and DELETE in Config.Mix proportions
	List      Workload = "list"      // page through a prepared bucket of Config.Objects keys
	Multipart Workload = "multipart" // multipart uploads with parts sent in parallel
)

// Workloads lists every workload, in the order the CLI documents them.
var Workloads = []Workload{Put, Get, Mixed, List, Multipart}

// Mix is the proportion of each operation in the mixed workload. Only the
// ratios matter.
type Mix struct {
	Get, Put, Head, Delete int
}

// DefaultMix is warp's default mix: 45% GET, 15% PUT, 30% HEAD, 10% DELETE.
var DefaultMix = Mix{Get: 45, Put: 15, Head: 30, Delete: 10}

// ParseMix parses "get=45,put=15,head=30,delete=10". Missing operations get 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for f := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("bench: mix %q: want op=weight,... with weights >= 0", s)
		}
		switch strings.ToLower(name) {
		case "get":
			m.Get = n
		case "put":
			m.Put = n
		case "head":
			m.Head = n
		case "delete":
			m.Delete = n
		default:
			return Mix{}, fmt.Errorf("bench: mix %q: unknown operation %q", s, name)
		}
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("bench: mix %q: all weights are zero", s)
	}
	return m, nil
}

func (m Mix) total() int { return m.Get + m.Put + m.Head + m.Delete }

// String formats m as ParseMix reads it.
func (m Mix) String() string {
	return fmt.Sprintf("get=%d,put=%d,head=%d,delete=%d", m.Get, m.Put, m.Head, m.Delete)
}

// Config describes one run. The zero value of every optional field means
// its default; Validate fills them in.
type Config struct {
	Endpoint  string // base URL, e.g. http://127.0.0.1:9000
	AccessKey string
	SecretKey string
	Region    string // default us-east-1

	Workload Workload
	Size     int64 // object size, bytes; default 1 MiB (4 KiB for list, 64 MiB for multipart)
	// Sizes, if set, is a distribution of object sizes for put, get and
	// mixed: each key's size is drawn from it by a hash of the key. Size
	// is then its weighted mean, for reports.
	Sizes       []SizeWeight
	Concurrency int           // workers, each with one operation in flight; default 16
	Duration    time.Duration // measured time after Warmup; default 10s unless Ops is set
	Ops         int64         // stop after this many measured operations; 0 = no limit
	Warmup      time.Duration // operations during warm-up are not measured

	// Objects is how many objects get, mixed and list prepare. Default:
	// 10,000 for list; for get and mixed 256 MiB worth, at least Concurrency
	// and at most 1,000.
	Objects int
	Mix     Mix // mixed workload proportions; default DefaultMix

	PartSize        int64 // multipart part size, bytes; default 8 MiB (S3 minimum 5 MiB)
	PartConcurrency int   // parts in flight per upload; default 4
	ListPage        int   // keys per LIST page; default 1000

	// Verify makes every GET compare the bytes with what was written, and
	// list compare the number of keys it saw with what it prepared. A
	// mismatch is counted as error code "VerifyFailed".
	Verify bool

	// Bucket, if set, is an existing bucket to use: the run then writes
	// under a unique prefix and deletes only its own objects. Otherwise the
	// run creates a bucket with a unique name and deletes it at the end.
	Bucket string

	// Payload is how uploads sign their bodies; default PayloadSigned.
	Payload Payload

	OpTimeout time.Duration // bound on one operation; default 5m
	Seed      uint64        // seeds the data pool and key choice; 0 = random

	// Progress, if not nil, receives a line each second while the run goes.
	Progress io.Writer

	// HTTPClient, if not nil, sends the requests (tests inject faults with
	// it). By default a transport with Concurrency×PartConcurrency idle
	// connections and no compression is used.
	HTTPClient *http.Client
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Endpoint == "" {
		return errors.New("bench: no endpoint")
	}
	if !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("bench: endpoint %q: want http:// or https://", c.Endpoint)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("bench: access key and secret key are required")
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	switch c.Workload {
	case Put, Get, Mixed, List, Multipart:
	default:
		return fmt.Errorf("bench: unknown workload %q", c.Workload)
	}
	if c.Size < 0 || c.Concurrency < 0 || c.Duration < 0 || c.Ops < 0 || c.Warmup < 0 ||
		c.Objects < 0 || c.PartSize < 0 || c.PartConcurrency < 0 || c.ListPage < 0 || c.OpTimeout < 0 {
		return errors.New("bench: negative size, count or duration")
	}
	if c.Size == 0 {
		switch c.Workload {
		case List:
			c.Size = 4 << 10
		case Multipart:
			c.Size = 64 << 20
		default:
			c.Size = 1 << 20
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Objects == 0 {
		switch c.Workload {
		case List:
			c.Objects = 10000
		default:
			c.Objects = int(min(max(256<<20/c.Size, int64(c.Concurrency)), 1000))
		}
	}
	if c.Workload == Mixed && c.Objects < 2*c.Concurrency {
		return fmt.Errorf("bench: mixed needs at least 2×concurrency objects (%d), have %d", 2*c.Concurrency, c.Objects)
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.Mix.Get < 0 || c.Mix.Put < 0 || c.Mix.Head < 0 || c.Mix.Delete < 0 || c.Mix.total() == 0 {
		return fmt.Errorf("bench: bad mix %v", c.Mix)
	}
	if c.PartSize == 0 {
		c.PartSize = 8 << 20
	}
	if c.Workload == Multipart && c.PartSize < 5<<20 && c.Size > c.PartSize {
		return fmt.Errorf("bench: part size %s is below the S3 minimum of 5 MiB", FormatSize(c.PartSize))
	}
	if c.Workload == Multipart && (c.Size+c.PartSize-1)/c.PartSize > 10000 {
		return errors.New("bench: more than 10,000 parts")
	}
	if c.PartConcurrency == 0 {
		c.PartConcurrency = 4
	}
	if c.ListPage == 0 {
		c.ListPage = 1000
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 5 * time.Minute
	}
	switch c.Payload {
	case "":
		c.Payload = PayloadSigned
	case PayloadSigned, PayloadUnsigned, PayloadStreaming:
	default:
		return fmt.Errorf("bench: unknown payload mode %q (want signed, unsigned or streaming)", c.Payload)
	}
	return nil
}

// ParseSize parses a byte size: a number with an optional unit B, KiB, MiB,
// GiB (powers of 1024; K, M, G and KB, MB, GB are read the same way).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bench: size %q: want a number with an optional unit (4KiB, 1MiB, 64MiB)", s)
	}
	var mult float64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	case "t", "tb", "tib":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("bench: size %q: unknown unit %q", s, unit)
	}
	n := v * mult
	if n > math.MaxInt64/2 || n != math.Trunc(n) {
		return 0, fmt.Errorf("bench: size %q: not a whole number of bytes in range", s)
	}
	return int64(n), nil
}

// FormatSize formats n bytes with the largest binary unit that divides it
// (4KiB, 1MiB, 1000B).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}
