// The AWS SDK for JavaScript v3 leg of scripts/clients.sh.
//
//   node sdk.mjs ENDPOINT ENDPOINT2 ACCESS SECRET BUCKET BIGFILE LISTBUCKET LISTCOUNT
//
// Runs the client-matrix sequence in BUCKET (created and removed here)
// with @aws-sdk/client-s3 and @aws-sdk/lib-storage, reading back through
// ENDPOINT2 (another node on a cluster), and lists the LISTCOUNT keys of
// LISTBUCKET page by page. Prints one "PASS name" or "FAIL name: why" line
// per check; exits 0 (the caller counts the lines).
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import {
  S3Client, CreateBucketCommand, PutObjectCommand, HeadObjectCommand, GetObjectCommand,
  CopyObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, DeleteBucketCommand,
  HeadBucketCommand, paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const [endpoint, endpoint2, accessKeyId, secretAccessKey, bucket, bigFile, listBucket, listCount] = process.argv.slice(2);
const mk = (ep) => new S3Client({
  endpoint: ep, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
  // The SDK checks response checksums when the server sends them; ask it
  // to send them only when required, as for any non-AWS endpoint.
  requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED",
});
const s3 = mk(endpoint), s3b = mk(endpoint2);

const sha = (buf) => createHash("sha256").update(buf).digest("hex");
async function body(out) { return Buffer.from(await out.Body.transformToByteArray()); }
function assert(cond, msg) { if (!cond) throw new Error(msg); }

async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${(e && (e.name + ": " + e.message)) || e}`.replace(/\n/g, " "));
  }
}

const big = readFileSync(bigFile);
const bigSum = sha(big);
const small = Buffer.from("hello from the AWS SDK for JavaScript\n");

await check("js CreateBucket", () => s3.send(new CreateBucketCommand({ Bucket: bucket })));
await check("js PutObject with metadata and content type", () => s3.send(new PutObjectCommand({
  Bucket: bucket, Key: "small.txt", Body: small, ContentType: "text/plain", Metadata: { color: "blue" },
})));
await check("js HeadObject: metadata and content type round trip", async () => {
  const h = await s3b.send(new HeadObjectCommand({ Bucket: bucket, Key: "small.txt" }));
  assert(h.ContentType === "text/plain" && h.Metadata?.color === "blue", `got ${h.ContentType} ${JSON.stringify(h.Metadata)}`);
});
await check(`js lib-storage Upload ${big.length >> 20} MiB (multipart)`, async () => {
  const up = new Upload({ client: s3, params: { Bucket: bucket, Key: "big.bin", Body: createReadStream(bigFile) }, partSize: 5 << 20, queueSize: 4 });
  await up.done();
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "big.bin" }));
  assert(/-\d+"$/.test(h.ETag), `ETag ${h.ETag} has no part count`);
});
await check("js GetObject from another node, sha256 matches", async () => {
  const got = await body(await s3b.send(new GetObjectCommand({ Bucket: bucket, Key: "big.bin" })));
  assert(sha(got) === bigSum, `sha256 ${sha(got)} want ${bigSum}`);
});
await check("js GetObject Range", async () => {
  const got = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "big.bin", Range: "bytes=1000000-1000999" })));
  assert(got.equals(big.subarray(1000000, 1001000)), `range: ${got.length} bytes, not the file's`);
});
await check("js CopyObject (small, metadata kept)", async () => {
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "small-copy.txt", CopySource: `${bucket}/small.txt` }));
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "small-copy.txt" }));
  assert(h.Metadata?.color === "blue" && h.ContentType === "text/plain", `copy lost metadata: ${JSON.stringify(h.Metadata)}`);
});
await check("js CopyObject of the multipart object", async () => {
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "big-copy.bin", CopySource: `${bucket}/big.bin` }));
  const got = await body(await s3b.send(new GetObjectCommand({ Bucket: bucket, Key: "big-copy.bin" })));
  assert(sha(got) === bigSum, "copy differs");
});
await check("js move (copy + delete)", async () => {
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "moved.txt", CopySource: `${bucket}/small-copy.txt` }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "small-copy.txt" }));
  const got = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "moved.txt" })));
  assert(got.equals(small), "moved object differs");
  let gone = false;
  try { await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "small-copy.txt" })); } catch (e) { gone = e.$metadata?.httpStatusCode === 404; }
  assert(gone, "source still there");
});
await check(`js ListObjectsV2 paginated: ${listCount} keys`, async () => {
  let n = 0, pages = 0;
  for await (const page of paginateListObjectsV2({ client: s3b, pageSize: 1000 }, { Bucket: listBucket })) {
    n += page.Contents?.length ?? 0;
    pages++;
  }
  assert(n === Number(listCount) && pages >= 2, `${n} keys in ${pages} pages`);
});
await check("js presigned GET fetched with curl", async () => {
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: "small.txt" }), { expiresIn: 300 });
  const got = execFileSync("curl", ["-fsS", url]);
  assert(Buffer.from(got).equals(small), "presigned GET body differs");
});
await check("js presigned PUT uploaded with curl", async () => {
  const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: "presigned-put.txt" }), { expiresIn: 300 });
  execFileSync("curl", ["-fsS", "-X", "PUT", "--data-binary", "presigned put body", url]);
  const got = await body(await s3b.send(new GetObjectCommand({ Bucket: bucket, Key: "presigned-put.txt" })));
  assert(got.toString() === "presigned put body", `got ${got}`);
});
await check("js DeleteObjects (multi-delete)", async () => {
  const keys = ["small.txt", "moved.txt", "presigned-put.txt", "no-such-key"];
  const out = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
  assert((out.Errors ?? []).length === 0 && (out.Deleted ?? []).length === keys.length, `deleted ${out.Deleted?.length}, errors ${JSON.stringify(out.Errors)}`);
});
await check("js empty and DeleteBucket", async () => {
  const keys = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket })) keys.push(...(page.Contents ?? []).map((o) => ({ Key: o.Key })));
  if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  let gone = false;
  try { await s3.send(new HeadBucketCommand({ Bucket: bucket })); } catch (e) { gone = e.$metadata?.httpStatusCode === 404; }
  assert(gone, "bucket still there");
});
