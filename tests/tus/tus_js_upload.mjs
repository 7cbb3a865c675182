// Uploads one file with tus-js-client (Node), retrying through dropped
// connections and node restarts the way the library does by itself (HEAD
// for the offset, then PATCH from there). Prints one JSON line: the
// upload's URL, the Job-Id the final PATCH answered, and how many times a
// request failed and was retried.
//
// Usage: node tus_js_upload.mjs ENDPOINT TOKEN FILE CHUNK_BYTES METADATA_JSON
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [endpoint, token, file, chunk, metadata] = process.argv.slice(2);
const size = fs.statSync(file).size;
let jobId = null;
let retries = 0;

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: Number(chunk),
  metadata: JSON.parse(metadata),
  headers: { Authorization: `Bearer ${token}` },
  // About a minute of patience: a node restarts in seconds, and a request
  // cut off by a killed node holds the upload for a few seconds more.
  retryDelays: [0, 500, 1000, 2000, 3000, 3000, 3000, 3000, 5000, 5000, 5000, 5000, 5000, 5000, 5000],
  onShouldRetry: (error) => {
    retries += 1;
    console.error(`retrying after: ${error}`);
    return true;
  },
  onAfterResponse: (_req, res) => {
    const job = res.getHeader('Job-Id');
    if (job) jobId = job;
  },
  onError: (error) => {
    console.error(`upload failed: ${error}`);
    process.exit(1);
  },
  onSuccess: () => {
    console.log(JSON.stringify({ url: upload.url, job_id: jobId, retries }));
  },
});
upload.start();
