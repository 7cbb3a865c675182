// The vidaud page: log in, upload videos over tus with the output options
// the server offers (GET /options), and watch the jobs live (GET /events).
// It uses the public API only; the session is an HttpOnly cookie this
// script never sees, and every request that changes something carries the
// session's CSRF token (from GET /session) in X-CSRF-Token.

import { Upload, UploadRefused, remembered } from "./tus.js";

const $ = (selector) => document.querySelector(selector);

const state = {
  session: null,
  catalogue: null,
  jobs: new Map(),
  // The latest event of each job not (yet) in the list: its record, read
  // because of the event, may be older than the event itself.
  pending: new Map(),
  events: null,
  uploads: new Set(),
};

// ---- talking to the API -------------------------------------------------

/** An answer that was not a success, with its problem details. */
class Problem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

function csrfHeaders() {
  return state.session ? { "X-CSRF-Token": state.session.csrf_token } : {};
}

async function api(method, path, body) {
  const headers = { ...csrfHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new Problem(0, { type: "network", detail: "the service cannot be reached; check your connection" });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const problem = typeof data === "object" ? data : { detail: data };
    throw new Problem(response.status, problem, response.headers.get("Retry-After"));
  }
  return data;
}

const SLUG = "urn:vidaud:problem:";

/** What went wrong, in words a person understands (the API's own detail). */
function describe(error, context = "") {
  if (error instanceof DOMException && error.name === "AbortError") return "Stopped.";
  const problem = error.problem || { detail: error.message };
  const kind = (problem.type || "").replace(SLUG, "");
  const detail = sentence(problem.detail || problem.title || "something went wrong");
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  switch (kind) {
    case "unauthorized":
      if (context === "login") return "Wrong e-mail or password.";
      if (context === "password" || context === "delete") return "That is not your password.";
      return "Your session has ended. Please log in again.";
    case "token-revoked":
      return "Your session has ended. Please log in again.";
    case "invalid-option":
      return `The ${label(problem.field)} option was refused: ${detail}`;
    case "quota-exceeded":
      return `Your storage is full. ${detail}`;
    case "payload-too-large":
      return `This file is too large for this service. ${detail}`;
    case "too-many-jobs":
      return `You have too many conversions in progress. ${detail}${wait}`;
    case "rate-limited":
      return `Too many attempts. ${detail}${wait}`;
    case "registration-closed":
      return `Registration is closed. ${detail}`;
    case "conflict":
      return context === "register" ? `This e-mail address already has an account. ${detail}` : detail;
    case "unavailable":
      return `The service is busy or partly down. ${detail}${wait}`;
    case "csrf-rejected":
      return "This page is out of date. Please reload it.";
    default:
      return detail;
  }
}

function sentence(text) {
  const trimmed = String(text).trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function label(name) {
  return (name || "").replace(/_/g, " ");
}

function announce(message, kind = "error") {
  const alert = $("#alert");
  alert.textContent = message;
  alert.dataset.kind = kind;
  alert.hidden = !message;
}

// ---- screens ------------------------------------------------------------

function show(screen) {
  $("#auth-screen").hidden = screen !== "auth";
  $("#app-screen").hidden = screen !== "app";
  $("#account-screen").hidden = screen !== "account";
  $("#account").hidden = screen === "auth";
  $("#to-account").hidden = screen === "account";
}

async function boot() {
  wireAuthForms();
  wireUploadForm();
  $("#logout").addEventListener("click", logOut);
  wireAccount();
  try {
    state.session = await api("GET", "/session");
    await enterApp();
  } catch {
    show("auth");
  }
}

function wireAuthForms() {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    await logIn(form.get("email"), form.get("password"), "login");
  });
  $("#register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const email = form.get("email");
    const password = form.get("password");
    try {
      await api("POST", "/register", { email, password });
    } catch (error) {
      announce(describe(error, "register"));
      $("#register-email").focus();
      return;
    }
    await logIn(email, password, "login");
  });
}

async function logIn(email, password, context) {
  try {
    state.session = await api("POST", "/session", { email, password });
  } catch (error) {
    announce(describe(error, context));
    $("#login-password").focus();
    return;
  }
  announce("");
  for (const form of document.querySelectorAll("#auth-screen form")) form.reset();
  await enterApp();
}

async function logOut() {
  await api("DELETE", "/session").catch(() => {});
  leave();
}

/** Back to the login screen: the session is gone (logged out, or ended). */
function leave() {
  state.events?.close();
  for (const upload of state.uploads) upload.pause();
  state.session = null;
  state.jobs.clear();
  renderJobs();
  $("#uploads").replaceChildren();
  show("auth");
  $("#login-email").focus();
}

async function enterApp() {
  $("#who").textContent = state.session.username + (state.session.admin ? " (admin)" : "");
  $("#jobs-title").textContent = state.session.admin ? "Everyone's jobs" : "Your jobs";
  document.body.classList.toggle("admin", state.session.admin);
  show("app");
  // Focus moves now, not after the loads below: a keyboard user may
  // already be on the way through the form by then.
  $("#upload-title").focus();
  if (!state.catalogue) {
    try {
      state.catalogue = await api("GET", "/options");
      buildOptionForm(state.catalogue);
    } catch (error) {
      announce(describe(error));
    }
  }
  listUnfinished();
  watchJobs();
}

// ---- the account page ---------------------------------------------------

function bytes(n) {
  if (n === 0) return "0 bytes";
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  const power = Math.min(Math.floor(Math.log10(n) / 3), units.length - 1);
  const value = n / 1000 ** power;
  return `${power === 0 ? value : value.toFixed(1)} ${units[power]}`;
}

function ofLimit(used, limit, format) {
  return limit ? `${format(used)} of ${format(limit)}` : `${format(used)} (no limit)`;
}

async function openAccount() {
  show("account");
  $("#account-title").focus();
  try {
    const me = await api("GET", "/me");
    $("#account-email").textContent = me.email;
    $("#account-id").textContent = me.id;
    $("#account-stored").textContent = ofLimit(me.usage.stored_bytes, me.limits.quota_bytes, bytes);
    $("#account-active").textContent = ofLimit(me.usage.active_jobs, me.limits.max_active_jobs, String);
    $("#account-max-upload").textContent = bytes(me.limits.max_upload_bytes);
  } catch (error) {
    announce(describe(error));
  }
}

function wireAccount() {
  $("#to-account").addEventListener("click", () => {
    announce("");
    openAccount();
  });
  $("#to-jobs").addEventListener("click", () => {
    announce("");
    show("app");
    $("#upload-title").focus();
  });
  $("#password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const email = state.session.username;
    try {
      await api("POST", "/me/password", { current: form.get("current"), new: form.get("new") });
    } catch (error) {
      announce(describe(error, "password"));
      $("#current-password").focus();
      return;
    }
    // Every earlier token is revoked, this session's too: a new one.
    event.target.reset();
    try {
      state.session = await api("POST", "/session", { email, password: form.get("new") });
    } catch (error) {
      leave();
      announce(describe(error, "login"));
      return;
    }
    announce("Your password is changed; every other session is logged out.", "info");
  });
  $("#logout-all").addEventListener("click", async () => {
    try {
      await api("POST", "/me/logout-all");
    } catch (error) {
      announce(describe(error));
      return;
    }
    await api("DELETE", "/session").catch(() => {});
    leave();
    announce("You are logged out everywhere.", "info");
  });
  $("#delete-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await api("DELETE", "/me", { password: form.get("password") });
    } catch (error) {
      announce(describe(error, "delete"));
      $("#delete-password").focus();
      return;
    }
    event.target.reset();
    await api("DELETE", "/session").catch(() => {});
    leave();
    announce("Your account and everything in it are deleted.", "info");
  });
}

// ---- the option form, from the server's option table --------------------

function field(option, control, extra) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  wrap.dataset.option = option.name;
  const id = `option-${option.name}`;
  control.id = id;
  control.name = option.name;
  const lab = document.createElement("label");
  lab.htmlFor = id;
  lab.textContent = sentence(label(option.name)).replace(/\.$/, "");
  const help = document.createElement("p");
  help.className = "help";
  help.id = `${id}-help`;
  help.textContent = option.help;
  control.setAttribute("aria-describedby", help.id);
  wrap.append(lab, control, help);
  if (extra) wrap.append(extra);
  return wrap;
}

function select(choices) {
  const element = document.createElement("select");
  setChoices(element, choices);
  return element;
}

function setChoices(element, choices) {
  element.replaceChildren(
    ...choices.map(([value, text]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      return option;
    }),
  );
}

function input(type, attributes = {}) {
  const element = document.createElement("input");
  element.type = type;
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

function buildOptionForm(catalogue) {
  const formats = new Map(catalogue.formats.map((f) => [f.name, f]));
  const builders = {
    format: () => select(catalogue.formats.map((f) => [f.name, `${f.name.toUpperCase()} (.${f.extension})`])),
    bitrate: () => select([]),
    quality: () =>
      select([
        ["", "None: constant bitrate"],
        ...range(catalogue.qualities[0], catalogue.qualities[1]).map((q) => [String(q), q === 0 ? "0 (best)" : String(q)]),
      ]),
    sample_rate: () => select([]),
    channels: () => select([["", "As the input"], ["1", "Mono"], ["2", "Stereo"]]),
    audio_track: () => input("number", { min: 0, max: catalogue.max_audio_track, inputmode: "numeric", placeholder: "default" }),
    title: () => input("text", { maxlength: catalogue.max_title_chars, placeholder: "the file's name" }),
    loudness: () =>
      select([
        ["", "As the input"],
        ...catalogue.loudness_targets.map((t) => [t.name, `${t.name} (${t.lufs} LUFS, ${t.source})`]),
      ]),
    true_peak: () =>
      input("number", {
        min: catalogue.true_peak_dbtp[0],
        max: catalogue.true_peak_dbtp[1],
        step: 0.1,
        placeholder: "-1",
      }),
    replaygain: () =>
      select([
        ["", "No"],
        ["true", "Tag the audio as it is (ReplayGain 2.0)"],
      ]),
  };
  const fieldset = $("#options");
  const fields = catalogue.options.map((option) => {
    const make = builders[option.name] || (() => input("text", { placeholder: `e.g. ${option.example}` }));
    return field(option, make());
  });
  fieldset.append(...fields);
  const control = (name) => fieldset.querySelector(`[name="${name}"]`);
  const format = control("format");
  const update = () => {
    const chosen = formats.get(format.value);
    const bitrate = control("bitrate");
    const previous = bitrate?.value;
    if (bitrate) {
      const values = !chosen.bitrates
        ? []
        : chosen.bitrate_choices
          ? chosen.bitrates
          : standardRates(chosen.bitrates[0], chosen.bitrates[1]);
      const none = chosen.bitrates ? `Default (${chosen.default_bitrate} kb/s)` : "None: lossless";
      setChoices(bitrate, [["", none], ...values.map((v) => [String(v), `${v} kb/s`])]);
      if (values.map(String).includes(previous)) bitrate.value = previous;
      bitrate.disabled = !chosen.bitrates;
    }
    const quality = control("quality");
    if (quality) {
      quality.closest(".field").hidden = !chosen.takes_quality;
      if (!chosen.takes_quality) quality.value = "";
      if (bitrate && quality.value !== "") bitrate.value = "";
      if (bitrate) bitrate.disabled = !chosen.bitrates || quality.value !== "";
    }
    const rate = control("sample_rate");
    if (rate) {
      const before = rate.value;
      setChoices(rate, [["", "As the input"], ...chosen.sample_rates.map((r) => [String(r), `${r} Hz`])]);
      if (chosen.sample_rates.map(String).includes(before)) rate.value = before;
    }
  };
  format.addEventListener("change", update);
  control("quality")?.addEventListener("change", update);
  update();
}

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Common bitrates within a format's range, for a list to pick from. */
function standardRates(min, max) {
  const common = [6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 510];
  return common.filter((r) => r >= min && r <= max);
}

function chosenOptions() {
  const values = {};
  for (const element of $("#options").querySelectorAll("[name]")) {
    if (!element.disabled && element.value.trim() !== "" && !element.closest("[hidden]")) {
      values[element.name] = element.value.trim();
    }
  }
  return values;
}

// ---- uploads ------------------------------------------------------------

function wireUploadForm() {
  const drop = $("#drop");
  const files = $("#files");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    startUploads([...event.dataTransfer.files]);
  });
  files.addEventListener("change", () => describeChosen());
  $("#upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [...files.files];
    if (chosen.length === 0) {
      announce("Choose at least one video file first.");
      files.focus();
      return;
    }
    startUploads(chosen);
    files.value = "";
    describeChosen();
  });
}

function describeChosen() {
  const chosen = [...$("#files").files];
  $("#chosen").textContent =
    chosen.length === 0 ? "No file chosen." : `${chosen.length} file(s): ${chosen.map((f) => f.name).join(", ")}`;
}

function fingerprint(file) {
  return [state.session.username, file.name, file.size, file.lastModified].join("|");
}

function startUploads(files) {
  announce("");
  const options = chosenOptions();
  for (const file of files) startUpload(file, options);
}

function startUpload(file, options) {
  const key = fingerprint(file);
  document.querySelector(`#unfinished li[data-key="${CSS.escape(key)}"]`)?.remove();
  const item = uploadItem(file.name);
  const upload = new Upload(file, {
    endpoint: "/uploads",
    fingerprint: key,
    metadata: { filename: file.name, filetype: file.type, ...options },
    headers: csrfHeaders,
    onProgress: (sent, total) => item.progress(sent, total),
    onStatus: (text) => item.status(text),
  });
  state.uploads.add(upload);
  item.onCancel(async () => {
    await upload.cancel();
    item.done("Cancelled; nothing was kept.");
  });
  item.status(remembered.get(key) ? "Resuming…" : "Uploading…");
  upload
    .start()
    .then(async (jobId) => {
      item.done(`Uploaded; conversion queued.`);
      if (jobId) await loadJob(jobId);
    })
    .catch((error) => {
      const message = error instanceof UploadRefused ? describe(error) : describe(error);
      item.fail(`${file.name}: ${message}`);
    })
    .finally(() => state.uploads.delete(upload));
}

function uploadItem(name) {
  const li = document.createElement("li");
  li.className = "upload";
  const title = document.createElement("span");
  title.className = "name";
  title.textContent = name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${name}`);
  const text = document.createElement("span");
  text.className = "status";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.setAttribute("aria-label", `Cancel the upload of ${name}`);
  li.append(title, bar, text, cancel);
  $("#uploads").prepend(li);
  let percent = 0;
  return {
    progress(sent, total) {
      percent = total ? Math.floor((sent / total) * 100) : 100;
      bar.value = percent;
      text.textContent = `${percent}% of ${size(total)}`;
    },
    status(message) {
      li.dataset.state = message.startsWith("Uploading") ? "uploading" : "waiting";
      text.textContent = message.startsWith("Uploading") ? `${percent}%` : message;
    },
    onCancel(handler) {
      cancel.addEventListener("click", handler, { once: true });
    },
    done(message) {
      li.dataset.state = "done";
      bar.value = 100;
      text.textContent = message;
      cancel.remove();
    },
    fail(message) {
      li.dataset.state = "failed";
      text.textContent = message;
      cancel.remove();
      announce(message);
    },
  };
}

/** Uploads a reload interrupted: they resume when the file is chosen again. */
function listUnfinished() {
  const list = $("#unfinished");
  const mine = Object.entries(remembered.all()).filter(([key]) => key.startsWith(`${state.session.username}|`));
  list.replaceChildren(
    ...mine.map(([key, upload]) => {
      const li = document.createElement("li");
      li.dataset.key = key;
      li.textContent = `${upload.name} (${size(upload.size)}): choose this file again to resume where it stopped.`;
      return li;
    }),
  );
  $("#unfinished-section").hidden = mine.length === 0;
}

function size(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

// ---- the job list, live -------------------------------------------------

function watchJobs() {
  state.events?.close();
  const events = new EventSource("/events");
  state.events = events;
  events.addEventListener("resync", () => loadJobs());
  events.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    const job = state.jobs.get(event.job_id);
    if (event.state === "deleted") {
      state.jobs.delete(event.job_id);
    } else if (!job) {
      const seen = state.pending.get(event.job_id);
      if (!seen || seen.sequence <= event.sequence) state.pending.set(event.job_id, event);
      loadJob(event.job_id);
      return;
    } else {
      apply(job, event);
    }
    renderJobs();
  });
  events.addEventListener("error", async () => {
    if (events.readyState !== EventSource.CLOSED) return; // reconnecting by itself
    try {
      state.session = await api("GET", "/session");
      setTimeout(watchJobs, 2000);
    } catch {
      announce("Your session has ended. Please log in again.");
      show("auth");
    }
  });
}

async function loadJobs() {
  try {
    const page = await api("GET", "/jobs?limit=100");
    const fresh = new Map(page.jobs.map((job) => [job.job_id, job]));
    // Events that came while the list was read may be newer than it.
    for (const [id, known] of state.jobs) {
      if (fresh.get(id)?.sequence < known.sequence) fresh.set(id, known);
    }
    state.jobs = fresh;
    renderJobs();
  } catch (error) {
    announce(describe(error));
  }
}

async function loadJob(id) {
  try {
    merge(await api("GET", `/jobs/${encodeURIComponent(id)}`));
  } catch {
    // Gone already (deleted), or not ours: nothing to show.
  }
}

/**
 * A job as an answer showed it, unless what is shown is newer: answers and
 * events arrive in any order, and a job's sequence only grows.
 */
function merge(job) {
  const known = state.jobs.get(job.job_id);
  if (known && known.sequence > job.sequence) return;
  state.jobs.set(job.job_id, job);
  const event = state.pending.get(job.job_id);
  state.pending.delete(job.job_id);
  if (event) apply(job, event);
  renderJobs();
}

/** An event onto the job it is about, if it is newer than what is shown. */
function apply(job, event) {
  if (event.sequence < job.sequence) return;
  Object.assign(job, {
    state: event.state,
    progress: event.progress,
    error: event.error,
    attempts: event.attempts,
    node: event.node,
    sequence: event.sequence,
  });
  // A finished job's file id comes with its record.
  if (event.state === "done" && !job.mp3_fid) loadJob(event.job_id);
}

const STATE_WORDS = {
  queued: "Queued",
  converting: "Converting",
  done: "Done",
  failed: "Failed",
};

/** Rows by job id, with what they show: a row is rebuilt only when that changes. */
const rows = new Map();

function renderJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  // Keep keyboard focus where it was across a re-render (a live list
  // must not throw a keyboard user back to the top of the page).
  const focused = document.activeElement;
  const focusRow = focused?.closest?.("#jobs tr")?.dataset.job;
  const focusAction = focused?.dataset?.action;
  const body = $("#jobs tbody");
  const wanted = jobs.map((job) => {
    const signature = JSON.stringify([job.state, job.progress, job.error, job.node, job.owner, job.mp3_fid]);
    const known = rows.get(job.job_id);
    if (known && known.signature === signature) return known.tr;
    const tr = jobRow(job);
    rows.set(job.job_id, { signature, tr });
    return tr;
  });
  for (const id of rows.keys()) if (!state.jobs.has(id)) rows.delete(id);
  const same = wanted.length === body.children.length && wanted.every((tr, i) => body.children[i] === tr);
  if (!same) body.replaceChildren(...wanted);
  if (focusRow && focusAction && document.activeElement !== focused) {
    body.querySelector(`tr[data-job="${CSS.escape(focusRow)}"] [data-action="${focusAction}"]`)?.focus();
  }
  $("#jobs").hidden = jobs.length === 0;
  $("#no-jobs").hidden = jobs.length > 0;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text instanceof Node) td.append(text);
  else td.textContent = text ?? "";
  return td;
}

function jobRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.job = job.job_id;
  tr.dataset.state = job.state;
  const name = cell(job.filename, "file");
  name.dataset.label = "File";
  const stateCell = document.createElement("td");
  stateCell.dataset.label = "State";
  const badge = document.createElement("span");
  badge.className = `badge ${job.state}`;
  badge.textContent = STATE_WORDS[job.state] || job.state;
  stateCell.append(badge);
  if (job.error) {
    const why = document.createElement("p");
    why.className = "why";
    why.textContent = sentence(job.error);
    stateCell.append(why);
  }
  const percent = job.state === "done" ? 100 : Math.floor(job.progress || 0);
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = percent;
  bar.setAttribute("aria-label", `Conversion of ${job.filename}`);
  const progress = cell(bar, "progress");
  progress.append(` ${percent}%`);
  progress.dataset.label = "Progress";
  if (job.state === "done") progress.append(waveformOf(job));
  const node = cell(job.node || "—", "node");
  node.dataset.label = "Node";
  const owner = cell(job.owner, "owner");
  owner.dataset.label = "Owner";
  const actions = cell("", "actions");
  if (job.state === "done") {
    const link = document.createElement("a");
    link.href = `/jobs/${encodeURIComponent(job.job_id)}/audio`;
    link.className = "button";
    link.textContent = "Download";
    link.setAttribute("download", "");
    link.dataset.action = "download";
    link.setAttribute("aria-label", `Download the audio of ${job.filename}`);
    actions.append(link);
  }
  if (job.state === "failed") {
    actions.append(actionButton("Retry", `Retry ${job.filename}`, () => act("POST", `/jobs/${job.job_id}/retry`, job)));
  }
  actions.append(actionButton("Delete", `Delete ${job.filename}`, () => act("DELETE", `/jobs/${job.job_id}`, job)));
  tr.append(name, stateCell, progress, node, owner, actions);
  return tr;
}

/** Each done job's waveform data, fetched once (GET /jobs/{id}/waveform). */
const waveforms = new Map();

/** A small picture of a done job's audio, drawn from its waveform data. */
function waveformOf(job) {
  const canvas = document.createElement("canvas");
  canvas.className = "waveform";
  canvas.width = 192;
  canvas.height = 32;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Waveform of ${job.filename}`);
  if (!waveforms.has(job.job_id)) {
    waveforms.set(job.job_id, api("GET", `/jobs/${encodeURIComponent(job.job_id)}/waveform`));
  }
  waveforms
    .get(job.job_id)
    .then((waveform) => drawWaveform(canvas, waveform))
    // A job converted before waveforms were kept has none: no picture.
    .catch(() => (canvas.hidden = true));
  return canvas;
}

/** Draws min/max pairs (audiowaveform JSON, 8 bits, one channel) as one
 * bar per pixel column, each the extremes of the pairs it covers, scaled so
 * that the loudest peak fills the height (a quiet recording keeps its shape). */
function drawWaveform(canvas, waveform) {
  const { width, height } = canvas;
  const context = canvas.getContext("2d");
  context.fillStyle = getComputedStyle(canvas).color;
  const pairs = waveform.length;
  const loudest = waveform.data.reduce((most, value) => Math.max(most, Math.abs(value)), 1);
  const middle = height / 2;
  for (let x = 0; x < width && pairs > 0; x++) {
    const from = Math.floor((x * pairs) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * pairs) / width));
    let low = 127;
    let high = -128;
    for (let i = from; i < to && i < pairs; i++) {
      low = Math.min(low, waveform.data[2 * i]);
      high = Math.max(high, waveform.data[2 * i + 1]);
    }
    const top = middle - (high / loudest) * middle;
    const bottom = middle - (low / loudest) * middle;
    context.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
  canvas.dataset.drawn = "true";
}

function actionButton(text, description, handler) {
  const button = document.createElement("button");
  button.dataset.action = text.toLowerCase();
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", description);
  button.addEventListener("click", handler);
  return button;
}

async function act(method, path, job) {
  try {
    const answer = await api(method, path);
    if (method === "DELETE") {
      state.jobs.delete(job.job_id);
      announce(`Deleted ${job.filename}.`, "info");
    } else if (answer && answer.job_id) {
      merge(answer);
    }
    renderJobs();
    $("#jobs-title").focus();
  } catch (error) {
    announce(`${job.filename}: ${describe(error)}`);
  }
}

boot();
