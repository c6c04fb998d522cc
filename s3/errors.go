package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
	"github.com/vaultaire/vaultaire/tenant"
)

// Error is an S3 error response: an HTTP status, an S3 code and a message.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return "s3: " + e.Code + ": " + e.Message }

// Errors produced by the protocol layer itself.
var (
	ErrAccessDenied          = &Error{http.StatusForbidden, "AccessDenied", "Access Denied."}
	ErrInvalidBucketName     = &Error{http.StatusBadRequest, "InvalidBucketName", "The specified bucket is not valid."}
	ErrKeyTooLong            = &Error{http.StatusBadRequest, "KeyTooLongError", "Your key is too long."}
	ErrInvalidArgument       = &Error{http.StatusBadRequest, "InvalidArgument", "Invalid argument."}
	ErrInvalidRequest        = &Error{http.StatusBadRequest, "InvalidRequest", "Invalid request."}
	ErrInvalidDigest         = &Error{http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid."}
	ErrMalformedXML          = &Error{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema."}
	ErrMethodNotAllowed      = &Error{http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource."}
	ErrNotImplemented        = &Error{http.StatusNotImplemented, "NotImplemented", "A header or query you provided implies functionality that is not implemented."}
	ErrEntityTooLarge        = &Error{http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."}
	ErrMissingContentLength  = &Error{http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header."}
	ErrPreconditionFailed    = &Error{http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."}
	ErrInvalidRange          = &Error{http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable."}
	ErrInternal              = &Error{http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again."}
	ErrServiceUnavailable    = &Error{http.StatusServiceUnavailable, "ServiceUnavailable", "Please reduce your request rate or try again later."}
	ErrSlowDown              = &Error{http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."}
	ErrInsufficientStorage   = &Error{http.StatusInsufficientStorage, "InsufficientStorage", "There is not enough storage space left to store the object. Delete objects or add capacity."}
	ErrRequestTimeout        = &Error{http.StatusBadRequest, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period."}
	ErrIncompleteBody        = &Error{http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	ErrNoSuchBucket          = &Error{http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist."}
	ErrNoSuchKey             = &Error{http.StatusNotFound, "NoSuchKey", "The specified key does not exist."}
	ErrBucketAlreadyOwned    = &Error{http.StatusConflict, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it."}
	ErrBucketNotEmpty        = &Error{http.StatusConflict, "BucketNotEmpty", "The bucket you tried to delete is not empty."}
	ErrBadDigest             = &Error{http.StatusBadRequest, "BadDigest", "The Content-MD5 or checksum you specified did not match what we received."}
	ErrMetadataTooLarge      = &Error{http.StatusBadRequest, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size."}
	ErrTooManyBuckets        = &Error{http.StatusBadRequest, "TooManyBuckets", "You have attempted to create more buckets than allowed."}
	ErrSignatureDoesNotMatch = &Error{http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	ErrInvalidAccessKeyID    = &Error{http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."}
	ErrRequestTimeTooSkewed  = &Error{http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."}
	ErrExpiredRequest        = &Error{http.StatusForbidden, "AccessDenied", "Request has expired."}
	ErrAuthHeaderMalformed   = &Error{http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed."}
	ErrAuthQueryMalformed    = &Error{http.StatusBadRequest, "AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter."}
	ErrContentSHA256Mismatch = &Error{http.StatusBadRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	ErrMalformedChunk        = &Error{http.StatusBadRequest, "IncompleteBody", "The aws-chunked body is malformed or truncated."}
	ErrNoSuchUpload          = &Error{http.StatusNotFound, "NoSuchUpload", "The specified multipart upload does not exist."}
	ErrInvalidPart           = &Error{http.StatusBadRequest, "InvalidPart", "One or more of the specified parts could not be found or its entity tag did not match."}
	ErrInvalidPartOrder      = &Error{http.StatusBadRequest, "InvalidPartOrder", "The list of parts was not in ascending order."}
	ErrEntityTooSmall        = &Error{http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size."}
	ErrInvalidVersion        = &Error{http.StatusBadRequest, "InvalidArgument", "Invalid version id specified"}
	ErrHeadersTooLarge       = &Error{http.StatusBadRequest, "RequestHeaderSectionTooLarge", "Your request header section exceeds the maximum allowed size."}

	errQuota                    = &Error{http.StatusForbidden, "QuotaExceeded", "The tenant's quota is exceeded."} // with the Quota's message
	errFraming                  = &Error{http.StatusBadRequest, "InvalidRequest", "A request may not have both Content-Length and Transfer-Encoding."}
	errMissingMD5               = &Error{http.StatusBadRequest, "InvalidRequest", "Missing required header for this request: Content-MD5"}
	errCopyToItself             = &Error{http.StatusBadRequest, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."}
	errCopyTooLarge             = &Error{http.StatusBadRequest, "InvalidRequest", "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120. Use UploadPartCopy."}
	errChecksumType             = &Error{http.StatusBadRequest, "InvalidRequest", "The checksum type cannot be used with this algorithm."}
	errPartChecksum             = &Error{http.StatusBadRequest, "InvalidRequest", "A part was uploaded without the upload's checksum."}
	errInvalidPartNumber        = &Error{http.StatusRequestedRangeNotSatisfiable, "InvalidPartNumber", "The requested partnumber is not satisfiable."}
	errPartNumberRange          = &Error{http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive."}
	errVersionIDMarker          = &Error{http.StatusBadRequest, "InvalidArgument", "A version-id marker cannot be specified without a key marker."}
	errACLNotSupported          = &Error{http.StatusBadRequest, "AccessControlListNotSupported", "The bucket does not allow ACLs: only an ACL granting the owner FULL_CONTROL (and public-read on a bucket) is supported."} // as S3 answers with ACLs disabled, its default since 2023
	errSSENotImplemented        = &Error{http.StatusNotImplemented, "NotImplemented", "Server-side encryption headers are not supported: objects are stored as sent."}
	errObjectLockNotImplemented = &Error{http.StatusNotImplemented, "NotImplemented", "Object lock is not supported yet: the object would not be protected."}
	errConditionalWrite         = &Error{http.StatusNotImplemented, "NotImplemented", "DeleteObject is conditional on If-Match only."}
	errUnexpectedContent        = &Error{http.StatusBadRequest, "UnexpectedContent", "This request does not support content."}
	errInvalidTag               = &Error{http.StatusBadRequest, "InvalidTag", "The tag provided was not a valid tag."}
	errTaggingHeader            = &Error{http.StatusBadRequest, "InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."}
	errNoSuchTagSet             = &Error{http.StatusNotFound, "NoSuchTagSet", "The TagSet does not exist"}
	errTaggingDirective         = &Error{http.StatusBadRequest, "InvalidArgument", "Unknown tagging directive."}
	errIfNoneMatchValue         = &Error{http.StatusNotImplemented, "NotImplemented", "If-None-Match on a write takes only the value *."}
	errConditionConflict        = &Error{http.StatusConflict, "ConditionalRequestConflict", "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part."}
	errInvalidAttribute         = &Error{http.StatusBadRequest, "InvalidArgument", "Invalid attribute name specified."}
	errNoSuchVersion            = &Error{http.StatusNotFound, "NoSuchVersion", "The specified version does not exist."}
	errIllegalVersioning        = &Error{http.StatusBadRequest, "IllegalVersioningConfigurationException", "The Versioning element must be specified: Status Enabled or Suspended."}
	errMFADeleteNotImplemented  = &Error{http.StatusNotImplemented, "NotImplemented", "MFA delete is not supported."}
	errInvalidBucketState       = &Error{http.StatusConflict, "InvalidBucketState", "Object lock needs versioning enabled, for good."}
	errInvalidStorageClass      = &Error{http.StatusBadRequest, "InvalidStorageClass", "The storage class you specified is not valid."}
	errNoObjectRetention        = &Error{http.StatusNotFound, "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock configuration."}
	errNoLockConfig             = &Error{http.StatusNotFound, "ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket or object."}
	errNoBucketLock             = &Error{http.StatusBadRequest, "InvalidRequest", "Bucket is missing Object Lock Configuration"}
	errLocked                   = &Error{http.StatusForbidden, "AccessDenied", "Access Denied because object protected by object lock."}
)

// POST Object (browser form upload) errors, as AWS answers them.
var (
	errPostNotForm          = &Error{http.StatusPreconditionFailed, "PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data"}
	errPostNoFile           = &Error{http.StatusBadRequest, "InvalidArgument", "POST requires exactly one file upload per request."}
	errPostNoKey            = &Error{http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."}
	errPostFields           = &Error{http.StatusBadRequest, "MaxPostPreDataLengthExceededError", "Your POST request fields preceding the upload file were too large."}
	errPostPolicy           = &Error{http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."}
	errPublicNameTaken      = &Error{http.StatusConflict, "OperationAborted", "Another account's bucket of this name is already public: public bucket names are unique across accounts."}
	errConfigConflict       = &Error{http.StatusConflict, "OperationAborted", "A conflicting conditional operation is currently in progress against this resource. Please try again."}
	errMalformedPolicy      = &Error{http.StatusBadRequest, "MalformedPolicy", "Policies must be valid JSON with a Statement."}
	errPolicyTooLarge       = &Error{http.StatusBadRequest, "MalformedPolicy", "Policies cannot exceed 20 KB."}
	errPolicyPrincipal      = &Error{http.StatusBadRequest, "MalformedPolicy", `Invalid principal in policy: only Principal "*" (anonymous read) is supported. A tenant reaches only its own buckets (bucket names are per tenant), so a grant naming another tenant or account could not be used.`}
	errNoSuchBucketPolicy   = &Error{http.StatusNotFound, "NoSuchBucketPolicy", "The bucket policy does not exist"}
	errPolicyNotImplemented = &Error{http.StatusNotImplemented, "NotImplemented", `Only policies allowing anonymous s3:GetObject are supported: Effect "Allow", Principal "*", Action "s3:GetObject", Resource "arn:aws:s3:::BUCKET/*", no Condition.`}
	errPostAnonymous        = &Error{http.StatusForbidden, "AccessDenied", "Bucket POST must contain a policy and its signature: anonymous uploads are not allowed."}
	errPostExpired          = &Error{http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy expired."}
	errPostAlgorithm        = &Error{http.StatusBadRequest, "InvalidArgument", "Only the AWS4-HMAC-SHA256 algorithm is supported for POST policies."}
	errPostFieldAbsent      = &Error{http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain the fields x-amz-credential, x-amz-algorithm, x-amz-date and x-amz-signature with a policy."}
	errPostStatus           = &Error{http.StatusBadRequest, "InvalidArgument", "success_action_status must be 200, 201 or 204."}
	errPostRedirect         = &Error{http.StatusBadRequest, "InvalidArgument", "success_action_redirect must be an absolute http or https URL."}
	errMalformedPOST        = &Error{http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."}
)

// Lifecycle and delete-marker errors, as AWS answers them.
var (
	errNoSuchLifecycle = &Error{http.StatusNotFound, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"}
	errCopyFromMarker  = &Error{http.StatusBadRequest, "InvalidRequest", "The source of a copy request may not specifically refer to a delete marker by version id."}
)

// CORS errors, as AWS answers them.
var (
	errNoSuchCORS       = &Error{http.StatusNotFound, "NoSuchCORSConfiguration", "The CORS configuration does not exist"}
	errCORSNotAllowed   = &Error{http.StatusForbidden, "AccessForbidden", "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."}
	errCORSNotEnabled   = &Error{http.StatusForbidden, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket."}
	errCORSNoOrigin     = &Error{http.StatusBadRequest, "BadRequest", "Insufficient information. Origin request header needed."}
	errCORSNoMethod     = &Error{http.StatusBadRequest, "BadRequest", "Invalid Access-Control-Request-Method: null"}
	errCORSNotSupported = &Error{http.StatusNotImplemented, "NotImplemented", "Bucket configuration is not available on this server."}
)

// Admin API errors.
var (
	ErrTenantExists    = &Error{http.StatusConflict, "TenantAlreadyExists", "The tenant already exists."}
	ErrNoSuchTenant    = &Error{http.StatusNotFound, "NoSuchTenant", "The tenant does not exist."}
	ErrTenantNotEmpty  = &Error{http.StatusConflict, "TenantNotEmpty", "The tenant still owns buckets."}
	ErrInvalidTenant   = &Error{http.StatusBadRequest, "InvalidTenantName", "Tenant names are 3 to 63 characters of a-z, 0-9 and '-'."}
	ErrNotClustered    = &Error{http.StatusNotFound, "NotFound", "This node is not in cluster mode."}
	errNoAdminResource = &Error{http.StatusNotFound, "NotFound", "No such admin resource."}
	errInvalidLimits   = &Error{http.StatusBadRequest, "InvalidArgument", "Want a JSON object of non-negative limits."}
	errRootRate        = &Error{http.StatusBadRequest, "InvalidArgument", "The root tenant is never rate-limited: it is the operator's, and runs this admin API."}
	// errInvalidStoragePolicy refuses a malformed storage policy (ContainerAdmin).
	errInvalidStoragePolicy = &Error{http.StatusBadRequest, "InvalidArgument", `Want {"policy": "local", "hybrid" or "tier"}, and for tier optional non-negative "tier_after_days" and "tier_min_bytes".`}
	// ErrNoRemoteDrives refuses a storage policy that needs remote drives
	// on a cluster without any.
	ErrNoRemoteDrives = &Error{http.StatusBadRequest, "InvalidRequest", "Storage policies hybrid and tier need remote drives, and the cluster has none: start a node with --remote NAME=URL first."}
)

// withMessage returns e with a message saying more than its own.
func withMessage(e *Error, msg string) *Error { return &Error{e.Status, e.Code, msg} }

// errorTable maps the errors of the packages below s3 to S3 errors. It is
// the one place where engine, sigv4 and cluster (admin) errors become
// protocol errors.
var errorTable = []struct {
	err error
	s3  *Error
}{
	// Before ErrMetadataUnavailable, which it may wrap.
	{engine.ErrConditionConflict, errConditionConflict},
	{engine.ErrNoSuchContainer, ErrNoSuchBucket},
	{engine.ErrContainerExists, ErrBucketAlreadyOwned},
	{engine.ErrPublicNameTaken, errPublicNameTaken},
	{engine.ErrConfigChanged, errConfigConflict},
	{engine.ErrConfigTooLarge, ErrMalformedXML}, // as an oversized CORS document
	{engine.ErrTooManyContainers, ErrTooManyBuckets},
	{engine.ErrContainerNotEmpty, ErrBucketNotEmpty},
	{engine.ErrNoSuchArtifact, ErrNoSuchKey},
	{engine.ErrKeyTooLong, ErrKeyTooLong},
	{engine.ErrInvalidName, ErrInvalidArgument},
	{engine.ErrBadDigest, ErrBadDigest},
	{engine.ErrIncompleteBody, ErrIncompleteBody},
	{engine.ErrTooLarge, ErrEntityTooLarge},
	{engine.ErrInvalidRange, ErrInvalidRange},
	{engine.ErrMetadataTooLarge, ErrMetadataTooLarge},
	{engine.ErrNoSuchUpload, ErrNoSuchUpload},
	{engine.ErrInvalidPart, ErrInvalidPart},
	{engine.ErrInvalidPartOrder, ErrInvalidPartOrder},
	{engine.ErrEntityTooSmall, ErrEntityTooSmall},
	{engine.ErrNoSuchVersion, errNoSuchVersion},
	{engine.ErrInvalidVersion, ErrInvalidVersion},
	{engine.ErrLocked, errLocked},
	// A full drive is 507, not 503: SDKs (aws-sdk-go-v2, boto3, minio-go)
	// retry 503 and SlowDown with backoff, resending the whole body to
	// disks that refuse it again; they do not retry 507, so the client
	// learns at once (MinIO answers a full backend with 507 too). Before
	// ErrWriteQuorum, which wraps it.
	{driver.ErrNoSpace, ErrInsufficientStorage},
	{engine.ErrReadQuorum, ErrServiceUnavailable},
	{engine.ErrWriteQuorum, ErrServiceUnavailable},
	{engine.ErrMetadataUnavailable, ErrServiceUnavailable},
	{sigv4.ErrAccessDenied, ErrAccessDenied},
	{sigv4.ErrSignatureDoesNotMatch, ErrSignatureDoesNotMatch},
	{sigv4.ErrUnknownAccessKey, ErrInvalidAccessKeyID},
	{sigv4.ErrRequestTimeTooSkewed, ErrRequestTimeTooSkewed},
	{sigv4.ErrExpiredPresign, ErrExpiredRequest},
	{sigv4.ErrAuthorizationMalformed, ErrAuthHeaderMalformed},
	{sigv4.ErrAuthQueryMalformed, ErrAuthQueryMalformed},
	{sigv4.ErrInvalidContentSHA256, ErrInvalidRequest},
	{sigv4.ErrContentSHA256Mismatch, ErrContentSHA256Mismatch},
	{sigv4.ErrChunkSignature, ErrSignatureDoesNotMatch},
	{sigv4.ErrMalformedChunk, ErrMalformedChunk},
	{sigv4.ErrIncompleteBody, ErrIncompleteBody},
	{sigv4.ErrBadDigest, ErrBadDigest},
	{sigv4.ErrUnsupportedChecksum, ErrInvalidRequest},
	{tenant.ErrUnknownAccessKey, ErrInvalidAccessKeyID},
	{tenant.ErrTenantExists, ErrTenantExists},
	{tenant.ErrNoSuchTenant, ErrNoSuchTenant},
	{tenant.ErrTenantNotEmpty, ErrTenantNotEmpty},
	{tenant.ErrInvalidName, ErrInvalidTenant},
	{tenant.ErrInvalidLimits, ErrInvalidArgument},
	{context.DeadlineExceeded, ErrRequestTimeout},
}

// toS3 returns the S3 error for err, InternalError if it is unknown.
func toS3(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return m.s3
		}
	}
	return ErrInternal
}

// errorBody is the XML body of an error response.
type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}
