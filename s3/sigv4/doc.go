// Package sigv4 verifies AWS Signature Version 4 on S3 requests, independent
// of any HTTP server library.
//
// The S3 front end adapts each request to a [Request] (method, raw path and
// query exactly as received, host, and a header lookup) and calls [Verify],
// which checks the Authorization header or the presigned query parameters
// against the secret returned by a [Credentials] implementation. On success
// the returned [Result] says who signed the request and how the payload is
// protected; [Result.Body] wraps the still-encoded request body in a
// [PayloadReader] that decodes aws-chunked framing and verifies, as it
// streams, whatever the signature covers:
//
//   - PayloadSignedHash: the SHA-256 of the whole body, checked at EOF.
//     Bytes are released before the check (the body can be 5 GiB), so the
//     caller must discard what it stored when Read returns an error.
//   - PayloadStreamingSigned and PayloadStreamingSignedTrailer: each chunk's
//     signature, chained from the seed signature. A chunk is buffered (at
//     most MaxChunkSize bytes) and released only after its signature has been
//     verified, so a PayloadReader never returns bytes it did not verify.
//     A chunk that fits in the caller's buffer is read straight into it
//     (Read reports it only once verified: after an error the buffer may
//     hold unverified bytes, which Read did not count); smaller reads go
//     through a chunk buffer, pooled with the header reader and given
//     back when Read returns io.EOF or an error.
//     The signed trailer's x-amz-trailer-signature is verified too.
//   - PayloadStreamingUnsignedTrailer: aws-chunked decoding only.
//
// In every mode a flexible checksum (x-amz-checksum-crc32, -crc32c,
// -crc64nvme, -sha1, -sha256) sent as a header or declared in x-amz-trailer
// is computed over the decoded payload and checked at EOF ([ErrBadDigest]).
//
// A typical handler:
//
//	res, err := sigv4.Verify(ctx, req, creds, time.Now())
//	if err != nil {
//		return err // mapped to an S3 error code by the s3 package
//	}
//	body, err := res.Body(bodyStream)
//	if err != nil {
//		return err
//	}
//	n, err := io.Copy(dst, body) // an error here means: discard what was stored
//
// Browser form uploads (S3 POST Object) are signed differently: the
// signature covers the form's base64 policy document, not the request.
// [VerifyPolicy] checks it with the same key derivation; the policy's
// expiration and conditions are the caller's to check.
//
// All errors wrap one of the exported sentinels (test with errors.Is); their
// messages never contain secrets or signing keys. A body that cannot be
// read to its end (broken HTTP chunked framing, closed connection) is
// [ErrIncompleteBody], a malformed aws-chunked body [ErrMalformedChunk],
// and a chunk or trailer signature that does not match [ErrChunkSignature].
//
// Derived signing keys are cached in memory per secret, day and region (at
// most 1024), saving four HMACs per request; a changed secret derives a
// new key, so rotating a secret never verifies with the old one.
//
// # For the HTTP front end
//
// Fill Request.Header and Request.HeaderNames from the header lines as
// received, with [HeaderList]: a repeated header is signed with all its
// values joined with commas (store that joined value, as AWS does, so that
// what is stored is what was signed), and a header sent with an empty
// value is present in the canonical request.
//
// A request refused here still has its body on the connection: the caller
// must drain it or close the connection before answering (fasthttp would
// otherwise parse the unread body as the next request). Bytes of a
// PayloadSignedHash body are handed out before the digest is checked at EOF,
// so whatever was stored must be discarded when Read returns an error. Strip
// "aws-chunked" from Content-Encoding before storing it, and take the
// artifact's size from Result.DecodedLength, not Content-Length.
//
// sigv4 imports nothing of this module and no HTTP server library; s3 is
// its user (and internal/testnode, for tests). Other packages take their
// access keys through s3's Keys interface and need not import it.
package sigv4
