// The AWS SDK for JavaScript v3 with its default integrity settings
// (request checksums and response validation "when supported") against
// billet: single PUTs with each checksum algorithm, lib-storage multipart
// uploads with the defaults and with each algorithm, each read back with
// GetObject (ChecksumMode ENABLED, which makes the SDK check the body
// against any whole-object checksum) and compared byte for byte.
//
//   node checksums.mjs ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
//
// Prints one JSON line per object; exits non-zero on the first failure.

import { createHash } from "node:crypto";
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [endpoint, accessKeyId, secretAccessKey, bucket] = process.argv.slice(2);
const s3 = new S3Client({
  endpoint,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey },
  maxAttempts: 1,
});

const MIB = 1 << 20;

// Deterministic bytes that differ from object to object.
function bytes(n, seed) {
  const out = Buffer.alloc(n);
  let block = Buffer.from(seed);
  for (let at = 0; at < n; at += 32) {
    block = createHash("sha256").update(block).digest();
    block.copy(out, at);
  }
  return out;
}

async function readBack(key, want) {
  const got = await s3.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }),
  );
  // The SDK validates while the body streams: a mismatch throws here.
  const body = Buffer.from(await got.Body.transformToByteArray());
  if (!body.equals(want)) {
    throw new Error(`${key}: read back ${body.length} bytes that differ from the ${want.length} written`);
  }
  const head = await s3.send(
    new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }),
  );
  const checksums = Object.fromEntries(
    Object.entries(got).filter(([k, v]) => k.startsWith("Checksum") && v !== undefined),
  );
  const headChecksums = Object.fromEntries(
    Object.entries(head).filter(([k, v]) => k.startsWith("Checksum") && v !== undefined),
  );
  return { checksums, headChecksums };
}

const ALGORITHMS = [undefined, "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

for (const algo of ALGORITHMS) {
  const key = `single/${algo ?? "default"}`;
  const data = bytes(3 * MIB + 17, key);
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: data,
      ...(algo && { ChecksumAlgorithm: algo }),
    }),
  );
  const back = await readBack(key, data);
  console.log(JSON.stringify({ key, algo: algo ?? null, put: put.ChecksumType ?? null, ...back }));
}

const multipart = [
  ...ALGORITHMS.map((algo) => ({ algo })),
  { algo: "CRC32", type: "FULL_OBJECT" },
  { algo: "CRC32C", type: "FULL_OBJECT" },
];
for (const { algo, type } of multipart) {
  const key = `multipart/${algo ?? "default"}${type ? "-" + type : ""}`;
  const data = bytes(23 * MIB, key);
  const upload = new Upload({
    client: s3,
    params: {
      Bucket: bucket,
      Key: key,
      Body: data,
      ...(algo && { ChecksumAlgorithm: algo }),
      ...(type && { ChecksumType: type }),
    },
    partSize: 5 * MIB,
    queueSize: 2,
  });
  const done = await upload.done();
  const back = await readBack(key, data);
  console.log(
    JSON.stringify({
      key,
      algo: algo ?? null,
      type: type ?? null,
      etag: done.ETag,
      complete: Object.fromEntries(
        Object.entries(done).filter(([k, v]) => k.startsWith("Checksum") && v !== undefined),
      ),
      ...back,
    }),
  );
}
