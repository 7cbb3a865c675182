"""A webhook receiver for tests/webhooks.rs. Verifies every request with
the `standardwebhooks` library from PyPI (nobody here wrote it) and logs it
as a JSON line: path, webhook-id, whether the signature verified (by one
of the secrets it was given), the
status it answered, the event's type and job, and when it arrived.

    receiver.py --port P --secret whsec_... [--secret ...] --log FILE
        [--fail-first N]   answer 500 to the first N requests of each webhook-id
        [--redirect]       answer 302 to /elsewhere (which logs a hit if reached)
        [--delay S]        take S seconds before answering (each line logs how
                           many requests were in flight when it arrived)
"""

import argparse
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", action="append", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--redirect", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()

    verifiers = [Webhook(secret) for secret in args.secret]
    seen = Counter()
    lock = threading.Lock()
    in_flight = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            received = time.time()
            with lock:
                in_flight[0] += 1
                concurrent = in_flight[0]
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            event, verified = {}, False
            for verifier in verifiers:
                try:
                    event = verifier.verify(body, headers)
                    verified = True
                    break
                except Exception:
                    pass
            message_id = headers.get("webhook-id", "")
            with lock:
                seen[message_id] += 1
                n = seen[message_id]
            if self.path == "/elsewhere":
                status = 200
            elif args.redirect:
                status = 302
            elif not verified:
                status = 400
            elif n <= args.fail_first:
                status = 500
            else:
                status = 204
            time.sleep(args.delay)
            with lock:
                in_flight[0] -= 1
            self.send_response(status)
            if status == 302:
                self.send_header("Location", f"http://127.0.0.1:{args.port}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            data = event.get("data", {}) if isinstance(event, dict) else {}
            line = {
                "path": self.path,
                "webhook_id": message_id,
                "verified": verified,
                "status": status,
                "type": event.get("type") if isinstance(event, dict) else None,
                "job_id": data.get("job_id"),
                "download_url": data.get("download_url"),
                "received_at": received,
                "in_flight": concurrent,
            }
            with lock, open(args.log, "a") as log:
                log.write(json.dumps(line) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
