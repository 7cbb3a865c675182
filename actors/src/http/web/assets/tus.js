// A small tus 1.0 client (creation, resume by HEAD, termination) for the
// page: one upload per file, sent in chunks small enough for proxies that
// cap a request body, each chunk retried after a dropped connection from
// the offset the server says it has. Where an upload lives is remembered
// (its URL, never a token) so that it resumes after a page reload when the
// same file is chosen again.

const CHUNK_BYTES = 5 * 1024 * 1024;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];
const STORE_KEY = "vidaud.uploads";

/** A failure the server explained (problem details), not worth retrying. */
export class UploadRefused extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "the upload was refused");
    this.problem = problem;
  }
}

/** Unfinished uploads by file fingerprint: { url, name, size }. */
export const remembered = {
  all() {
    try {
      return JSON.parse(window.localStorage.getItem(STORE_KEY) || "{}");
    } catch {
      return {};
    }
  },
  get(key) {
    return this.all()[key];
  },
  set(key, value) {
    const all = this.all();
    all[key] = value;
    window.localStorage.setItem(STORE_KEY, JSON.stringify(all));
  },
  forget(key) {
    const all = this.all();
    delete all[key];
    window.localStorage.setItem(STORE_KEY, JSON.stringify(all));
  },
};

function encodeMetadata(metadata) {
  return Object.entries(metadata)
    .filter(([, value]) => value !== undefined && value !== "")
    .map(([key, value]) => {
      const bytes = new TextEncoder().encode(String(value));
      let binary = "";
      bytes.forEach((b) => (binary += String.fromCharCode(b)));
      return `${key} ${btoa(binary)}`;
    })
    .join(",");
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      window.removeEventListener("online", done);
      signal.removeEventListener("abort", done);
      resolve();
    }
    // Back online, or given up: no need to wait out the delay.
    window.addEventListener("online", done);
    signal.addEventListener("abort", done);
  });

/** Thrown for a request that never got an answer (offline, cut off). */
class NetworkError extends Error {}

export class Upload {
  /**
   * @param {File} file
   * @param {object} options endpoint, metadata, headers() (fresh headers
   *   per request), fingerprint, onProgress(sent, total), onStatus(text)
   */
  constructor(file, options) {
    this.file = file;
    this.options = options;
    this.controller = new AbortController();
    this.url = null;
    this.xhr = null;
  }

  /** Uploads to the end; resolves with the job id the server gave it. */
  async start() {
    const { fingerprint } = this.options;
    const known = fingerprint && remembered.get(fingerprint);
    let offset = null;
    if (known) {
      this.url = known.url;
      offset = await this.withRetries(() => this.head());
      if (offset === null) {
        remembered.forget(fingerprint);
        this.url = null;
      } else if (offset.jobId) {
        remembered.forget(fingerprint);
        return offset.jobId;
      }
    }
    if (!this.url) {
      await this.withRetries(() => this.create());
      if (fingerprint) {
        remembered.set(fingerprint, { url: this.url, name: this.file.name, size: this.file.size });
      }
      offset = { offset: 0 };
    }
    let at = offset.offset;
    for (;;) {
      const answer = await this.withRetries(async (retrying) => {
        if (retrying) {
          // After a failure, the server's offset is the truth.
          const now = await this.head();
          if (now === null) throw new UploadRefused({ detail: "this upload expired or was removed; upload the file again" });
          if (now.jobId || now.offset >= this.file.size) return now;
          at = now.offset;
        }
        return this.patch(at);
      });
      at = answer.offset;
      this.options.onProgress?.(at, this.file.size);
      if (answer.jobId || at >= this.file.size) {
        if (fingerprint) remembered.forget(fingerprint);
        return answer.jobId;
      }
    }
  }

  /** Stops sending; the server keeps what it has until it expires. */
  pause() {
    this.controller.abort();
    this.xhr?.abort();
  }

  /** Stops and removes the upload and its data from the server. */
  async cancel() {
    this.pause();
    if (this.options.fingerprint) remembered.forget(this.options.fingerprint);
    if (this.url) {
      await fetch(this.url, { method: "DELETE", headers: this.headers() }).catch(() => {});
    }
  }

  headers(extra = {}) {
    return { "Tus-Resumable": "1.0.0", ...this.options.headers(), ...extra };
  }

  async withRetries(step) {
    for (let attempt = 0; ; attempt++) {
      if (this.controller.signal.aborted) throw new DOMException("paused", "AbortError");
      try {
        return await step(attempt > 0);
      } catch (error) {
        if (!(error instanceof NetworkError) || this.controller.signal.aborted) throw error;
        const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];
        this.options.onStatus?.(
          navigator.onLine ? "Connection lost; retrying…" : "Offline; will resume when the network is back…",
        );
        await sleep(delay, this.controller.signal);
      }
    }
  }

  async create() {
    const response = await this.send("POST", this.options.endpoint, null, {
      "Upload-Length": String(this.file.size),
      "Upload-Metadata": encodeMetadata(this.options.metadata),
    });
    if (response.status !== 201) throw await refusal(response);
    this.url = new URL(response.header("Location"), window.location.href).pathname;
  }

  /** The server's offset (and job id once complete); null if it is gone. */
  async head() {
    const response = await this.send("HEAD", this.url);
    if (response.status === 404 || response.status === 410) return null;
    if (response.status !== 200 && response.status !== 204) throw await refusal(response);
    return { offset: Number(response.header("Upload-Offset")), jobId: response.header("Job-Id") };
  }

  async patch(offset) {
    const chunk = this.file.slice(offset, offset + CHUNK_BYTES);
    const response = await this.send("PATCH", this.url, chunk, {
      "Upload-Offset": String(offset),
      "Content-Type": "application/offset+octet-stream",
    }, (sent) => this.options.onProgress?.(offset + sent, this.file.size));
    // Another request of ours still holds it (423) or the offsets crossed
    // (409): ask where it is and go on from there.
    if (response.status === 409 || response.status === 423 || response.status >= 500) {
      throw new NetworkError(`${response.status}`);
    }
    if (response.status !== 204) throw await refusal(response);
    this.options.onStatus?.("Uploading…");
    return { offset: Number(response.header("Upload-Offset")), jobId: response.header("Job-Id") };
  }

  /** One request by XMLHttpRequest (fetch reports no upload progress). */
  send(method, url, body = null, extra = {}, onSent = null) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(method, url);
      for (const [name, value] of Object.entries(this.headers(extra))) xhr.setRequestHeader(name, value);
      if (onSent) xhr.upload.onprogress = (event) => onSent(event.loaded);
      xhr.onload = () =>
        resolve({
          status: xhr.status,
          header: (name) => xhr.getResponseHeader(name),
          json: () => JSON.parse(xhr.responseText || "{}"),
        });
      xhr.onerror = () => reject(new NetworkError("network"));
      xhr.ontimeout = () => reject(new NetworkError("timeout"));
      xhr.onabort = () => reject(new DOMException("paused", "AbortError"));
      xhr.send(body);
    });
  }
}

async function refusal(response) {
  try {
    return new UploadRefused({ status: response.status, ...response.json() });
  } catch {
    return new UploadRefused({ status: response.status, detail: `the server answered ${response.status}` });
  }
}
