"""Uploads one file with tuspy, retrying through dropped connections and
node restarts the way the library does by itself (HEAD for the offset,
then PATCH from there). Prints one JSON line: the upload's URL and the
Job-Id the final PATCH answered.

Usage: python3 tuspy_upload.py ENDPOINT TOKEN FILE CHUNK_BYTES METADATA_JSON CHECKSUM
(CHUNK_BYTES 0: the whole file in one request, tuspy's default; CHECKSUM 1:
every request carries its sha1 in Upload-Checksum)
"""

import json
import sys

from tusclient import client

endpoint, token, path, chunk, metadata, checksum = sys.argv[1:7]
tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
options = dict(metadata=json.loads(metadata), upload_checksum=checksum == "1", retries=40, retry_delay=1)
if int(chunk) > 0:
    options["chunk_size"] = int(chunk)
uploader = tus.uploader(path, **options)
uploader.upload()
print(json.dumps({"url": uploader.url, "job_id": uploader.request.response_headers.get("job-id")}))
