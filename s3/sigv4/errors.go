package sigv4

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap exactly one of them
// with detail (ErrChunkSignature itself wraps ErrMalformedChunk); the s3
// package maps each to an S3 error code.
var (
	// ErrAccessDenied means the request carries no SigV4 authentication
	// (anonymous), or x-amz-* headers were sent without being signed.
	ErrAccessDenied = errors.New("sigv4: access denied")
	// ErrSignatureDoesNotMatch means the computed signature differs from
	// the one sent (S3 SignatureDoesNotMatch).
	ErrSignatureDoesNotMatch = errors.New("sigv4: signature does not match")
	// ErrUnknownAccessKey means the access key is not known (S3
	// InvalidAccessKeyId). Credentials implementations return it too.
	ErrUnknownAccessKey = errors.New("sigv4: unknown access key")
	// ErrRequestTimeTooSkewed means the request time is more than
	// MaxClockSkew away from the server's clock (S3 RequestTimeTooSkewed).
	ErrRequestTimeTooSkewed = errors.New("sigv4: request time too skewed")
	// ErrExpiredPresign means a presigned URL has expired (S3 AccessDenied,
	// "Request has expired").
	ErrExpiredPresign = errors.New("sigv4: request has expired")
	// ErrAuthorizationMalformed means the Authorization header cannot be
	// parsed or is unsupported (S3 AuthorizationHeaderMalformed).
	ErrAuthorizationMalformed = errors.New("sigv4: authorization header malformed")
	// ErrAuthQueryMalformed means the presigned query parameters are
	// missing or invalid (S3 AuthorizationQueryParametersError).
	ErrAuthQueryMalformed = errors.New("sigv4: authorization query parameters malformed")
	// ErrInvalidContentSHA256 means x-amz-content-sha256 is missing from a
	// header-authenticated request or has an unsupported value (S3
	// InvalidRequest / InvalidArgument).
	ErrInvalidContentSHA256 = errors.New("sigv4: invalid or missing x-amz-content-sha256")
	// ErrContentSHA256Mismatch means the payload's SHA-256 differs from
	// x-amz-content-sha256 (S3 XAmzContentSHA256Mismatch).
	ErrContentSHA256Mismatch = errors.New("sigv4: payload sha256 does not match x-amz-content-sha256")
	// ErrMalformedChunk means the aws-chunked body is malformed (chunk
	// size, CRLF, chunk header or trailer syntax, sizes over the limits),
	// truncated, has a bad chunk or trailer signature, or its decoded
	// length differs from x-amz-decoded-content-length (S3 IncompleteBody).
	ErrMalformedChunk = errors.New("sigv4: malformed aws-chunked body")
	// ErrChunkSignature means a well-formed chunk or trailer signature of
	// an aws-chunked body differs from the one computed (S3
	// SignatureDoesNotMatch). It wraps ErrMalformedChunk.
	ErrChunkSignature = fmt.Errorf("%w: chunk signature does not match", ErrMalformedChunk)
	// ErrIncompleteBody means the request body could not be read to its
	// end: the connection closed or timed out, or its HTTP framing
	// (Transfer-Encoding: chunked) is broken (S3 IncompleteBody). Read
	// errors of an aws-chunked body are ErrMalformedChunk instead.
	ErrIncompleteBody = errors.New("sigv4: request body incomplete")
	// ErrBadDigest means a flexible checksum (x-amz-checksum-*) does not
	// match the payload (S3 BadDigest).
	ErrBadDigest = errors.New("sigv4: checksum does not match payload")
	// ErrUnsupportedChecksum means a checksum algorithm is unknown or a
	// checksum value is not valid base64 of the right size (S3
	// InvalidRequest).
	ErrUnsupportedChecksum = errors.New("sigv4: unsupported checksum")
)
