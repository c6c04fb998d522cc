package events

import (
	"encoding/base64"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vaultaire/vaultaire/s3"
)

// txnRecord is what the transaction log keeps of a mutation.
type txnRecord struct {
	Time       time.Time
	Node       string
	RequestID  string
	Tenant     string
	Operation  string
	Bucket     string
	Key        string
	VersionID  string
	ETag       string
	ObjectSize int64
	Source     string
	Keys       []string
}

func newTxnRecord(ev *s3.RequestEvent) *txnRecord {
	return &txnRecord{
		Time: ev.Time, Node: ev.Node, RequestID: ev.RequestID, Tenant: ev.Tenant,
		Operation: ev.Operation, Bucket: ev.Bucket, Key: ev.Key,
		VersionID: ev.VersionID, ETag: ev.ETag, ObjectSize: ev.ObjectSize,
		Source: ev.Source, Keys: slices.Clone(ev.Keys),
	}
}

// appendAccess appends ev's access-log line, newline included.
func appendAccess(b []byte, ev *s3.RequestEvent) []byte {
	b = appendTime(append(b, `{"time":`...), ev.Time)
	b = appendString(append(b, `,"node":`...), ev.Node)
	b = appendString(append(b, `,"request_id":`...), ev.RequestID)
	b = appendString(append(b, `,"tenant":`...), ev.Tenant)
	b = appendString(append(b, `,"operation":`...), ev.Operation)
	b = appendString(append(b, `,"bucket":`...), ev.Bucket)
	b = appendKey(b, ev.Key)
	b = strconv.AppendInt(append(b, `,"bytes_in":`...), ev.BytesIn, 10)
	b = strconv.AppendInt(append(b, `,"bytes_out":`...), ev.BytesOut, 10)
	b = strconv.AppendInt(append(b, `,"object_size":`...), ev.ObjectSize, 10)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(ev.Status), 10)
	b = appendString(append(b, `,"error_code":`...), ev.ErrorCode)
	b = strconv.AppendFloat(append(b, `,"latency_ms":`...), float64(ev.Latency)/float64(time.Millisecond), 'f', -1, 64)
	b = appendString(append(b, `,"client":`...), ev.RemoteAddr)
	b = appendString(append(b, `,"user_agent":`...), ev.UserAgent)
	b = strconv.AppendBool(append(b, `,"anonymous":`...), ev.Anonymous)
	return append(b, "}\n"...)
}

// appendTxn appends r's transaction-log line, newline included.
func appendTxn(b []byte, r *txnRecord) []byte {
	b = appendTime(append(b, `{"time":`...), r.Time)
	b = appendString(append(b, `,"node":`...), r.Node)
	b = appendString(append(b, `,"request_id":`...), r.RequestID)
	b = appendString(append(b, `,"tenant":`...), r.Tenant)
	b = appendString(append(b, `,"operation":`...), r.Operation)
	b = appendString(append(b, `,"bucket":`...), r.Bucket)
	b = appendKey(b, r.Key)
	b = appendString(append(b, `,"version_id":`...), r.VersionID)
	b = appendString(append(b, `,"etag":`...), r.ETag)
	b = strconv.AppendInt(append(b, `,"object_size":`...), r.ObjectSize, 10)
	if r.Source != "" {
		b = appendString(append(b, `,"source":`...), r.Source)
	}
	if len(r.Keys) > 0 {
		b = append(b, `,"keys":[`...)
		for i, k := range r.Keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

// appendDropped appends the transaction-log line that marks n lost
// mutations.
func appendDropped(b []byte, t time.Time, node string, n uint64) []byte {
	b = appendTime(append(b, `{"time":`...), t)
	b = appendString(append(b, `,"node":`...), node)
	b = append(b, `,"operation":"Dropped","dropped":`...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, "}\n"...)
}

// appendKey appends the key field, and key_base64 when the key is not
// valid UTF-8 and so cannot be given exactly as a JSON string.
func appendKey(b []byte, key string) []byte {
	b = appendString(append(b, `,"key":`...), key)
	if !utf8.ValidString(key) {
		b = append(b, `,"key_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(key))
		b = append(b, '"')
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Bytes that are not valid UTF-8
// become U+FFFD. Quote, backslash, C0 and C1 control characters, DEL,
// U+2028 and U+2029 are escaped, so the result holds no newline and
// nothing a terminal would act on.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u',
				hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
