package s3

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/vaultaire/vaultaire/engine"
)

// GetObjectAttributes: the attributes named by x-amz-object-attributes
// (ETag, Checksum, ObjectParts, StorageClass, ObjectSize) of an object,
// without its data. Checksum is the stored whole-object checksum (of a
// PutObject, or a multipart upload's COMPOSITE or FULL_OBJECT one);
// ObjectParts gives a multipart object's part count and, for an object
// of an upload with a checksum algorithm, lists its parts' numbers, sizes
// and checksums, paged by x-amz-max-parts and x-amz-part-number-marker.
// Without an additional checksum it lists no Part, as S3: "if an
// additional checksum ... isn't applied to the object specified in the
// request, the response doesn't return the Part element"
// (GetObjectAttributesParts, general purpose buckets; DIFF26 D3).

type attributesResult struct {
	XMLName      xml.Name         `xml:"GetObjectAttributesResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	ETag         string           `xml:"ETag,omitempty"`
	Checksum     *attributesSum   `xml:"Checksum,omitempty"`
	ObjectParts  *attributesParts `xml:"ObjectParts,omitempty"`
	StorageClass string           `xml:"StorageClass,omitempty"`
	ObjectSize   *int64           `xml:"ObjectSize,omitempty"`
}

type attributesSum struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
}

type attributesParts struct {
	IsTruncated          bool             `xml:"IsTruncated"`
	MaxParts             int              `xml:"MaxParts"`
	NextPartNumberMarker int              `xml:"NextPartNumberMarker"`
	PartNumberMarker     int              `xml:"PartNumberMarker"`
	Parts                []attributesPart `xml:"Part"`
	PartsCount           int              `xml:"PartsCount"`
}

type attributesPart struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
	checksumValues
}

// checksumValues are the checksum elements of an answer (a part's, a
// copy's), one of them set.
type checksumValues struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
}

// set sets the value of metadata entry name (x-amz-checksum-<alg>).
func (c *checksumValues) set(name, v string) {
	switch name {
	case checksumPrefix + "crc32":
		c.ChecksumCRC32 = v
	case checksumPrefix + "crc32c":
		c.ChecksumCRC32C = v
	case checksumPrefix + "crc64nvme":
		c.ChecksumCRC64NVME = v
	case checksumPrefix + "sha1":
		c.ChecksumSHA1 = v
	case checksumPrefix + "sha256":
		c.ChecksumSHA256 = v
	}
}

var objectAttributes = []string{"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"}

func (op *operation) getObjectAttributes() error {
	h := &op.r.fctx.Request.Header
	want := map[string]bool{}
	for name := range strings.SplitSeq(joinedHeader(h, "x-amz-object-attributes"), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		ok := false
		for _, a := range objectAttributes {
			ok = ok || a == name
		}
		if !ok {
			return errInvalidAttribute
		}
		want[name] = true
	}
	if len(want) == 0 {
		return withMessage(ErrInvalidArgument, "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty")
	}
	maxParts, marker := 1000, 0
	if v := string(h.Peek("x-amz-max-parts")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ErrInvalidArgument
		}
		maxParts = min(n, 1000)
	}
	if v := string(h.Peek("x-amz-part-number-marker")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ErrInvalidArgument
		}
		marker = min(n, engine.MaxPartNum) // as ListParts: marker+1 must not wrap
	}
	a, err := op.openObject() // versionId too (probe M4), delete markers as GET
	if err != nil {
		return err
	}
	info := a.Info
	op.r.ev.ObjectSize = info.Size
	res := attributesResult{Xmlns: s3Namespace}
	if want["ETag"] {
		res.ETag = info.ETag
	}
	if want["StorageClass"] {
		res.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		res.ObjectSize = &info.Size
	}
	if want["Checksum"] {
		res.Checksum = storedChecksum(info)
	}
	if n := a.PartCount(); want["ObjectParts"] && n > 0 {
		p := &attributesParts{MaxParts: maxParts, PartNumberMarker: marker, PartsCount: n}
		// An object completed before part checksums were kept with it
		// (session 27) has a checksum but none of its parts': its
		// parts are listed without them, as they were.
		name, sums := partChecksums(info.Metadata, n)
		listed := sums != nil || info.Metadata[checksumAlgorithmHeader] != ""
		for i := marker + 1; i <= n && listed; i++ {
			if len(p.Parts) == maxParts {
				p.IsTruncated = true
				break
			}
			_, size, _ := a.PartRange(i)
			part := attributesPart{PartNumber: i, Size: size}
			if sums != nil {
				part.set(name, sums[i-1])
			}
			p.Parts = append(p.Parts, part)
			p.NextPartNumberMarker = i
		}
		res.ObjectParts = p
	}
	rh := &op.r.fctx.Response.Header
	rh.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

// storedChecksum returns the whole-object checksum stored with an object,
// nil if it has none.
func storedChecksum(info engine.ArtifactInfo) *attributesSum {
	s := &attributesSum{}
	found := false
	for alg, field := range map[string]*string{
		"crc32": &s.ChecksumCRC32, "crc32c": &s.ChecksumCRC32C, "crc64nvme": &s.ChecksumCRC64NVME,
		"sha1": &s.ChecksumSHA1, "sha256": &s.ChecksumSHA256,
	} {
		if v, ok := info.Metadata[checksumPrefix+alg]; ok {
			// A COMPOSITE value without its "-<parts>", as S3 answers it here.
			*field, _, _ = strings.Cut(v, "-")
			found = true
		}
	}
	if !found {
		return nil
	}
	s.ChecksumType = info.Metadata[checksumTypeHeader]
	if s.ChecksumType == "" {
		s.ChecksumType = "FULL_OBJECT"
	}
	return s
}
