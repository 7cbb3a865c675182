//! One attempt at one job, from delivery to ack.
//!
//! The order of effects is what makes redelivery harmless:
//! 1. claim the job record (compare-and-set, attempts + 1, and a lease the
//!    attempt renews while it works) — a job already final is not converted
//!    again, only its hand-off is completed; a job another live attempt
//!    holds is left to it, so two attempts never write the same file;
//! 2. spool the video, convert it into an audio spool and a waveform spool
//!    (renewing the lease and recording progress every second), then replace
//!    whatever an earlier attempt left under the job's pre-allocated audio
//!    id with them (the audio, then its waveform);
//! 3. mark the job final (guarded by state and attempt number);
//! 4. for a failed job, park its message in the dead-letter queue; publish
//!    the `mp3` message with a confirm; then record `notified`;
//! 5. only then ack the delivery.
//!
//! A crash between any two steps leaves the delivery unacked, so it comes
//! back, and each step is safe to repeat. Permanent failures (the input is
//! not media, has no audio) end the job at once; transient ones (storage,
//! broker, a stalled conversion) hand the delivery back, bounded by
//! `max_attempts`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::isolation::protocol::{Fault, Limits, Request};
use super::isolation::{self, ChildFiles, Converted, Converter, Sandbox, Standby};
use super::messages::JobDelivery;
use super::pipeline::{Output, Progress, Segment, TranscodeError, transcode_segment};
use super::segments::SplitPlan;
use super::split;
use super::spool::{Spool, Spools};
use crate::backends::{
    Backends, BlobStore, Bucket, Claim, FileMeta, SegmentClaim, StoreError, Turn, Upload,
    WAVEFORM_CONTENT_TYPE, chain, claim, claim_segment,
};
use crate::domain::{
    AudioSummary, FileId, JobEvent, JobId, JobRecord, JobState, Mp3Message, Owner,
};
use crate::metrics::Metrics;
use crate::settings::TranscoderSettings;

/// What every worker needs; shared by the pool's workers.
pub struct WorkerContext {
    pub backends: Backends,
    pub node_id: String,
    pub settings: TranscoderSettings,
    pub metrics: Arc<Metrics>,
    /// Panics still to inject (see `TranscoderSettings::inject_panics`).
    pub panics_left: AtomicU32,
    /// How conversions are isolated; `None`: in this process (debugging).
    pub sandbox: Option<Sandbox>,
    /// Child faults still to inject (`inject_child_crashes`, `_runaway`,
    /// `_escapes`).
    pub child_crashes_left: AtomicU32,
    pub child_runaways_left: AtomicU32,
    pub child_escapes_left: AtomicU32,
    /// `storage.quota_bytes_per_user` (0: none): the audio counts too.
    pub quota_bytes_per_user: u64,
}

impl WorkerContext {
    /// Starts an attempt on job `id` from this node (`backends::claim`).
    pub(super) async fn claim_job(&self, id: JobId) -> Result<Claim, StoreError> {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let jobs = self.backends.jobs.as_ref();
        claim(jobs, id, &self.node_id, self.settings.max_attempts, lease).await
    }

    /// Starts an attempt on segment `index` of job `id` from this node
    /// (`backends::claim_segment`).
    pub(super) async fn claim_segment(
        &self,
        (id, index): (JobId, u32),
    ) -> Result<SegmentClaim, StoreError> {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let segments = self.backends.segments.as_ref();
        let (node, max) = (&self.node_id, self.settings.max_attempts);
        claim_segment(segments, (id, index), node, max, lease).await
    }

    /// Failure injection: panics here while injected panics are left.
    fn maybe_panic(&self) {
        if take_one(&self.panics_left) {
            panic!("injected worker panic (transcoder.inject_panics)");
        }
    }

    /// Failure injection: the fault this job's children are to bring about.
    fn next_child_fault(&self) -> Option<Fault> {
        if take_one(&self.child_crashes_left) {
            Some(Fault::Segfault)
        } else if take_one(&self.child_runaways_left) {
            Some(Fault::Runaway)
        } else if take_one(&self.child_escapes_left) {
            Some(Fault::Escape)
        } else {
            None
        }
    }
}

/// A percentage to tenths: what job records and events show (a change
/// below that publishes nothing).
pub(super) fn tenths(percent: f64) -> f64 {
    (percent * 10.0).round() / 10.0
}

/// Takes one from an injection counter; false when none are left.
fn take_one(left: &AtomicU32) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

pub(super) enum Settle {
    Ack,
    Requeue,
}

pub(super) enum Failure {
    /// A fact about the input: the job fails now.
    Permanent(String),
    /// Storage, broker, or I/O trouble, or a stall: another attempt may succeed.
    Transient(String),
    /// No room to store (a full disk): the job waits for room, and the
    /// attempt is given back.
    NoRoom(String),
    /// The lease was lost: another attempt owns the job now.
    Lost,
}

/// How often an attempt renews its lease and records its progress (twice
/// a second: progress readers poll, and a short job still shows some).
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(500);

pub(super) fn transient(e: impl std::error::Error + 'static) -> Failure {
    Failure::Transient(chain(&e))
}

/// A spool's I/O failed: for want of room (the disk holding it is full),
/// or otherwise.
pub(super) fn spool_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::StorageFull {
        Failure::NoRoom(format!("the spool: {e}"))
    } else {
        transient(e)
    }
}

/// Runs one delivery; a job that is converted takes `standby` (the child
/// started ahead for this worker), one that is not leaves it.
pub async fn run_attempt(
    ctx: &WorkerContext,
    delivery: &JobDelivery,
    standby: &mut Option<Standby>,
) {
    let span = info_span!(
        "job",
        job_id = %delivery.message.job_id,
        node = %ctx.node_id,
        redelivered = delivery.redelivered
    );
    let settle = attempt(ctx, delivery, standby)
        .instrument(span.clone())
        .await;
    let _enter = span.enter();
    let result = match settle {
        Settle::Ack => delivery.settle.ack().await,
        Settle::Requeue => delivery.settle.requeue().await,
    };
    if let Err(e) = result {
        // The consumer is gone; the queue returns the delivery by itself.
        warn!("settling the delivery failed: {}", chain(&e));
    }
}

async fn attempt(
    ctx: &WorkerContext,
    delivery: &JobDelivery,
    standby: &mut Option<Standby>,
) -> Settle {
    let job_id = delivery.message.job_id;
    // While storage is full, one conversion at a time tries again after a
    // pause; the others hand their jobs back untouched (nothing claimed,
    // no attempt spent).
    if let Turn::Wait(pause) = ctx.backends.space.turn() {
        info!(?pause, "storage is full; the job waits for room");
        tokio::time::sleep(pause).await;
        return Settle::Requeue;
    }
    if let Some(index) = delivery.message.segment {
        return split::run_segment(ctx, (job_id, index), standby).await;
    }
    let job = match ctx.claim_job(job_id).await {
        Err(e) => {
            warn!("cannot claim the job: {}", chain(&e));
            return back_off(1).await;
        }
        Ok(Claim::Missing) => {
            warn!("no job record for this message; dead-lettering it");
            return dead_letter_only(ctx, delivery, "no job record for this message").await;
        }
        Ok(Claim::Final(job)) => return hand_off(ctx, &job, &delivery.payload).await,
        Ok(Claim::Exhausted(job)) => {
            ctx.metrics.job_result("error");
            return hand_off(ctx, &job, &delivery.payload).await;
        }
        Ok(Claim::Busy(_)) => {
            // Our copy came back while another attempt still works on the
            // job; once that attempt ends, this copy settles as `Final`.
            info!("another attempt holds the job; handing the message back");
            return back_off(1).await;
        }
        // A split job: its segments are seen to, or joined.
        Ok(Claim::Run(job)) if job.segments.is_some() => return split::resume(ctx, job).await,
        Ok(Claim::Run(job)) => job,
    };
    info!(attempt = job.attempts, "converting");
    announce(ctx, &job, JobState::Converting, None).await;
    let started = Instant::now();
    let result = convert(ctx, &job, standby.take()).await;
    ctx.metrics
        .converter_duration
        .observe(started.elapsed().as_secs_f64());
    let (state, error, audio) = match result {
        Ok(Outcome::Split(plan)) => return split::start(ctx, &job, plan).await,
        Ok(Outcome::Whole(audio)) => {
            ctx.metrics.job_result("success");
            info!(seconds = started.elapsed().as_secs_f64(), "done");
            (JobState::Done, None, Some(audio))
        }
        Err(Failure::Permanent(reason)) => {
            ctx.metrics.job_result("error");
            info!(%reason, "failed");
            (JobState::Failed, Some(reason), None)
        }
        Err(Failure::Lost) => {
            info!("the job was deleted or taken over by another attempt; stopping");
            return Settle::Ack;
        }
        Err(Failure::NoRoom(reason)) => {
            ctx.metrics.job_result("retry");
            let space = &ctx.backends.space;
            space.note_full(&reason);
            warn!(%reason, "no room to store; the job waits for room (its attempt given back)");
            let waiting = format!("waiting for room to store its audio ({reason})");
            hand_back(ctx, &job, &waiting, true).await;
            tokio::time::sleep(space.wait()).await;
            return Settle::Requeue;
        }
        Err(Failure::Transient(reason)) => {
            ctx.metrics.job_result("retry");
            warn!(%reason, attempt = job.attempts, "attempt failed; handing the job back");
            hand_back(ctx, &job, &reason, false).await;
            return back_off(job.attempts).await;
        }
    };
    match ctx
        .backends
        .jobs
        .finish(job.id, job.attempts, state, error.as_deref(), audio)
        .await
    {
        Ok(Some(job)) => {
            let progress = (job.state == JobState::Done).then_some(100.0);
            announce(ctx, &job, job.state, progress).await;
            hand_off(ctx, &job, &delivery.payload).await
        }
        // Deleted or moved by another attempt meanwhile: the audio just
        // stored belongs to nobody if the job was deleted.
        Ok(None) => {
            remove_output_if_deleted(ctx, job.id, job.mp3_fid).await;
            Settle::Ack
        }
        Err(e) => {
            warn!("cannot record the job's end: {}", chain(&e));
            back_off(1).await
        }
    }
}

/// Hands the job back to the queue (`converting → queued`), with `reason`
/// for the next attempt to report; `refund`: with its attempt given back.
pub(super) async fn hand_back(ctx: &WorkerContext, job: &JobRecord, reason: &str, refund: bool) {
    let jobs = &ctx.backends.jobs;
    let handed = if refund {
        jobs.requeue_refunded(job.id, job.attempts, reason).await
    } else {
        jobs.requeue(job.id, job.attempts, reason).await
    };
    match handed {
        Ok(true) => announce(ctx, job, JobState::Queued, None).await,
        // Deleted (or taken over) meanwhile: the redelivery settles it.
        Ok(false) => {}
        Err(e) => warn!("could not hand the job back: {}", chain(&e)),
    }
}

/// Publishes a job event; best effort: the record is the truth.
pub(super) async fn announce(
    ctx: &WorkerContext,
    job: &JobRecord,
    state: JobState,
    progress: Option<f64>,
) {
    let event = JobEvent {
        state,
        progress,
        error: job.error.clone().filter(|_| state == JobState::Failed),
        ..job.event(&ctx.node_id)
    };
    if let Err(e) = ctx.backends.events.publish(&event).await {
        debug!("job event not published: {}", chain(&e));
    }
}

/// Waits before a delivery is handed back, so a failing dependency is not
/// hammered by a hot redelivery loop.
pub(super) async fn back_off(attempt: u32) -> Settle {
    let secs = 2u64.saturating_pow(attempt.min(5)).min(30);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Settle::Requeue
}

/// The owner deleted the job while its audio was being stored: remove it
/// (and its waveform).
pub(super) async fn remove_output_if_deleted(ctx: &WorkerContext, id: JobId, mp3_fid: FileId) {
    if let Ok(Some(job)) = ctx.backends.jobs.get(id).await
        && job.state == JobState::Deleted
    {
        for bucket in Bucket::OUTPUTS {
            if let Err(e) = ctx.backends.blobs.delete(bucket, mp3_fid).await {
                warn!(
                    "could not remove a deleted job's {}: {}",
                    bucket.name(),
                    chain(&e)
                );
            }
        }
    }
}

/// Completes a final job's hand-off unless that was done already: a failed
/// job's message goes to the dead-letter queue, then the `mp3` message goes
/// out, then `notified` is recorded.
pub(super) async fn hand_off(ctx: &WorkerContext, job: &JobRecord, payload: &[u8]) -> Settle {
    if job.segments.is_some() && job.state.is_final() {
        split::clear(ctx, job).await;
    }
    if job.notified || job.state == JobState::Deleted {
        return Settle::Ack;
    }
    if job.state == JobState::Failed {
        let reason = job.error.as_deref().unwrap_or("failed");
        if let Err(e) = ctx.backends.dead_letter(payload, reason).await {
            warn!("cannot dead-letter the failed job's message: {}", chain(&e));
            return back_off(1).await;
        }
    }
    if let Err(e) = ctx
        .backends
        .publish_finished(&Mp3Message::for_job(job))
        .await
    {
        warn!("cannot publish the mp3 message: {}", chain(&e));
        return back_off(1).await;
    }
    if let Err(e) = ctx.backends.jobs.mark_notified(job.id).await {
        // Worst case a redelivery publishes once more; the notifier
        // de-duplicates by job id.
        warn!("cannot record the notification: {}", chain(&e));
    }
    Settle::Ack
}

/// A message with no job behind it: park it where an operator sees it.
async fn dead_letter_only(ctx: &WorkerContext, delivery: &JobDelivery, reason: &str) -> Settle {
    match ctx.backends.dead_letter(&delivery.payload, reason).await {
        Ok(()) => Settle::Ack,
        Err(e) => {
            warn!("cannot dead-letter: {}", chain(&e));
            back_off(1).await
        }
    }
}

/// What converting a job came to: its audio, stored; or a plan to split
/// it (nothing stored yet).
enum Outcome {
    Whole(AudioSummary),
    Split(SplitPlan),
}

async fn convert(
    ctx: &WorkerContext,
    job: &JobRecord,
    standby: Option<Standby>,
) -> Result<Outcome, Failure> {
    let (spools, converter, length) = spool_video(ctx, job, standby).await?;
    ctx.maybe_panic();
    let request = Request {
        // The child first reads whether the audio is long enough to split
        // (an input big enough to be long only).
        split: split::worth_probing(ctx, job, length).then(|| ctx.settings.split()),
        ..request_for(ctx, job, None)
    };
    let mut keep = JobLease {
        ctx,
        job,
        published: None,
    };
    let summary = match run_converter(ctx, &spools, converter, &request, &mut keep).await? {
        Converted::Audio { summary, .. } => summary,
        Converted::Long { shape } => return split::plan(ctx, job, shape).map(Outcome::Split),
    };
    let bytes = match store_output(ctx, job, &spools).await {
        Ok(bytes) => {
            ctx.backends.space.note_room();
            bytes
        }
        Err(e) => return Err(store_failed(e)),
    };
    Ok(Outcome::Whole(AudioSummary {
        bytes,
        duration_ms: summary.length().as_millis().try_into().unwrap_or(u64::MAX),
        loudness: summary.loudness,
        replaygain: summary.replaygain,
    }))
}

/// What an attempt holds while it works, renewed twice a second with the
/// progress so far; `false` when it was lost (the job deleted or taken
/// over), which stops the work.
pub(super) trait Hold: Send {
    fn keep(&mut self, progress: Option<f64>) -> impl Future<Output = bool> + Send;
}

/// A job's lease, held by the attempt converting it: renewed with the
/// progress recorded and announced.
struct JobLease<'a> {
    ctx: &'a WorkerContext,
    job: &'a JobRecord,
    published: Option<f64>,
}

impl Hold for JobLease<'_> {
    async fn keep(&mut self, progress: Option<f64>) -> bool {
        let (ctx, job) = (self.ctx, self.job);
        if progress != self.published {
            self.published = progress;
            announce(ctx, job, JobState::Converting, progress).await;
        }
        // A failed renewal (storage away) is not a lost lease: keep going;
        // finishing will tell whether the job is still ours.
        let lease = Duration::from_secs(ctx.settings.lease_secs);
        let renewed = ctx
            .backends
            .jobs
            .renew_lease(job.id, job.attempts, lease, progress)
            .await;
        !matches!(renewed, Ok(false))
    }
}

/// Storing audio failed: for want of room, over the owner's quota
/// (trying again would not make room), or otherwise.
pub(super) fn store_failed(e: StoreError) -> Failure {
    match e {
        StoreError::Full(e) => Failure::NoRoom(chain(&e)),
        StoreError::TooLarge { limit } => Failure::Permanent(format!(
            "the audio is larger than the {limit} bytes left of your storage quota; \
             delete some jobs and retry"
        )),
        e => transient(e),
    }
}

/// Copies the job's video into a fresh spool (the standby's, if there is
/// one); the spools, the standby's child, and the video's length.
pub(super) async fn spool_video(
    ctx: &WorkerContext,
    job: &JobRecord,
    standby: Option<Standby>,
) -> Result<(Spools, Option<Converter>, u64), Failure> {
    let blobs = &ctx.backends.blobs;
    let info = blobs
        .info(Bucket::Videos, job.video_fid)
        .await
        .map_err(transient)?;
    let Some(info) = info else {
        return Err(Failure::Permanent(
            "the uploaded video is missing from storage".into(),
        ));
    };
    if info.length == 0 {
        return Err(Failure::Permanent("the uploaded file is empty".into()));
    }
    let body = blobs
        .read(Bucket::Videos, &info, None)
        .await
        .map_err(transient)?;
    let (spools, converter) = match standby {
        Some(Standby { converter, spools }) => (spools, Some(converter)),
        None => (
            Spools::new(&ctx.settings.spool_dir).map_err(spool_failed)?,
            None,
        ),
    };
    spools.input.fill(body).await.map_err(spool_failed)?;
    Ok((spools, converter, info.length))
}

/// The request converting the job (or `segment` of it) in a child.
pub(super) fn request_for(
    ctx: &WorkerContext,
    job: &JobRecord,
    segment: Option<Segment>,
) -> Request {
    let options = job
        .output
        .clone()
        .titled(job.output.title_for(&job.filename));
    Request {
        task: Default::default(),
        split: None,
        options,
        segment,
        limits: Limits {
            stall_after: Duration::from_secs(ctx.settings.stall_secs),
            max_wall: Duration::from_secs(ctx.settings.max_job_secs),
            max_input: Duration::from_secs(ctx.settings.max_input_secs),
        },
        confine: Default::default(),
        fault: ctx.next_child_fault(),
    }
}

/// Converts the input spool as `request` says, while `keep` renews what
/// the attempt holds (the job's lease, or its segment's) twice a second
/// with the progress so far; `keep` answering false (the hold is lost)
/// stops the conversion: `Lost`.
pub(super) async fn run_converter(
    ctx: &WorkerContext,
    spools: &Spools,
    converter: Option<Converter>,
    request: &Request,
    keep: &mut impl Hold,
) -> Result<Converted, Failure> {
    let cancel = CancellationToken::new();
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(None::<f64>);
    let conversion = convert_twice_at_most(ctx, spools, converter, request, &cancel, progress_tx);
    let converted = holding(conversion, &cancel, &progress_rx, keep).await?;
    converted.map_err(|e| {
        if e.is_permanent() {
            Failure::Permanent(e.to_string())
        } else {
            transient(e)
        }
    })
}

/// Runs `work` while `keep` is called every [`PROGRESS_EVERY`] with the
/// latest progress; when it answers false, `cancel` stops the work, which
/// is awaited, and the attempt is `Lost`.
pub(super) async fn holding<T>(
    work: impl Future<Output = T>,
    cancel: &CancellationToken,
    progress: &tokio::sync::watch::Receiver<Option<f64>>,
    keep: &mut impl Hold,
) -> Result<T, Failure> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = tick.tick() => {
                let now = *progress.borrow();
                if !keep.keep(now).await {
                    cancel.cancel();
                    let _ = work.await;
                    return Err(Failure::Lost);
                }
            }
        }
    }
}

/// Converts in a child (`ready`, started ahead, if it still runs), and
/// once more in a new one if the child crashed or broke a limit: a fluke
/// (the host's OOM killer, a cosmic ray) passes the second time; the same
/// input failing so twice is poison, and fails the job for good, within
/// this one attempt (the job's attempt counter moves once).
async fn convert_twice_at_most(
    ctx: &WorkerContext,
    spools: &Spools,
    mut ready: Option<Converter>,
    request: &Request,
    cancel: &CancellationToken,
    progress_tx: tokio::sync::watch::Sender<Option<f64>>,
) -> Result<Converted, TranscodeError> {
    // Tenths of a percent: the record and the events show the same figure,
    // and a change below that publishes nothing.
    let mut report = move |p: Progress| {
        if let Some(percent) = p.percent() {
            progress_tx.send_replace(Some(tenths(percent)));
        }
    };
    let Some(sandbox) = &ctx.sandbox else {
        return convert_here(spools, request, cancel, report).await;
    };
    let mut crashed = None;
    for run in ["first", "second"] {
        let converter = match ready.take_if(|c| c.alive()) {
            Some(converter) => converter,
            None => Converter::start(sandbox, &ChildFiles::of(spools))
                .map_err(|e| TranscodeError::Internal(format!("starting the converter: {e}")))?,
        };
        match isolation::convert(sandbox, converter, request, cancel, &mut report).await {
            Ok(converted) => {
                if let Converted::Audio { peak_rss_kib, .. } = &converted {
                    let peak = peak_rss_kib.saturating_mul(1024);
                    ctx.metrics.converter_child_peak.observe(peak as f64);
                }
                return Ok(converted);
            }
            Err(crash) if crash.is_crash() => {
                ctx.metrics.converter_crashes.inc();
                warn!(reason = %crash, run, "the converter failed on this input");
                crashed = Some(crash);
            }
            Err(other) => return Err(other),
        }
    }
    let last = crashed.unwrap_or(TranscodeError::Crashed("unknown".into()));
    Err(TranscodeError::Poison(Box::new(last)))
}

/// The conversion inside this process (`transcoder.isolate = false`): what
/// a child does with the request.
async fn convert_here(
    spools: &Spools,
    request: &Request,
    cancel: &CancellationToken,
    mut report: impl FnMut(Progress) + Send + 'static,
) -> Result<Converted, TranscodeError> {
    let control = request.limits.control();
    let stop = control.cancel.clone();
    let [input, audio, waveform] =
        [&spools.input, &spools.audio, &spools.waveform].map(|s| s.path().to_owned());
    let request = request.clone();
    let mut blocking = tokio::task::spawn_blocking(move || {
        if let Some(shape) = isolation::long_enough(&input, &request) {
            return Ok(Converted::Long { shape });
        }
        let output = Output {
            audio: &audio,
            waveform: Some(&waveform),
        };
        let (options, segment) = (&request.options, request.segment);
        transcode_segment(&input, options, segment, output, &control, &mut report).map(|summary| {
            Converted::Audio {
                summary: Box::new(summary),
                peak_rss_kib: 0,
            }
        })
    });
    let joined = tokio::select! {
        joined = &mut blocking => joined,
        () = cancel.cancelled() => {
            stop.store(true, Ordering::SeqCst);
            blocking.await
        }
    };
    match joined {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(TranscodeError::Internal(join.to_string())),
    }
}

/// The owner's storage quota: theirs if an administrator set one, else
/// the node's (`jobs::limits_of`). While the user directory is away (a
/// cluster's MySQL), conversions go on, as logins are what it serves: the
/// node's default binds meanwhile, and the log says so.
async fn owner_quota(ctx: &WorkerContext, owner: &Owner) -> u64 {
    let default = ctx.quota_bytes_per_user;
    match crate::jobs::limits_of(&ctx.backends, owner).await {
        Ok(limits) => limits.quota_bytes_or(default),
        Err(e) => {
            warn!(
                "cannot read the owner's quota; the node's default binds until it can be: {}",
                chain(&e)
            );
            default
        }
    }
}

/// Streams the finished audio, then its waveform, from their spools to the
/// blob store under the job's audio id, replacing whatever an interrupted
/// attempt left there; how many bytes of audio it stored. Both count
/// against the owner's quota.
pub(super) async fn store_output(
    ctx: &WorkerContext,
    job: &JobRecord,
    spools: &Spools,
) -> Result<u64, StoreError> {
    let blobs = ctx.backends.blobs.as_ref();
    for bucket in Bucket::OUTPUTS {
        blobs.delete(bucket, job.mp3_fid).await?;
    }
    // Checked as it is written: the owner's quota, less what they keep
    // (this job's earlier output was just deleted) and what their
    // unfinished resumable uploads declared.
    let room = match owner_quota(ctx, &job.owner).await {
        0 => u64::MAX,
        quota => {
            let kept = blobs.usage(&job.owner).await?;
            let unfinished = ctx.backends.uploads.reserved(&job.owner).await?;
            quota.saturating_sub(kept.saturating_add(unfinished))
        }
    };
    let meta = |filename: String, content_type: &str| FileMeta {
        filename,
        owner: job.owner.clone(),
        content_type: Some(content_type.to_owned()),
        job_id: Some(job.id),
    };
    let audio = meta(
        job.output.audio_filename(&job.filename),
        job.output.format.content_type(),
    );
    let bytes = store_spool(
        blobs,
        (Bucket::Audio, job.mp3_fid),
        audio,
        &spools.audio,
        room,
    )
    .await?;
    let waveform = meta(
        job.output.waveform_filename(&job.filename),
        WAVEFORM_CONTENT_TYPE,
    );
    let room = room.saturating_sub(bytes);
    store_spool(
        blobs,
        (Bucket::Waveforms, job.mp3_fid),
        waveform,
        &spools.waveform,
        room,
    )
    .await?;
    Ok(bytes)
}

/// Streams a spool into a new file, refused past `limit` bytes; how many
/// bytes it stored.
pub(super) async fn store_spool(
    blobs: &dyn BlobStore,
    (bucket, id): (Bucket, FileId),
    meta: FileMeta,
    spool: &Spool,
    limit: u64,
) -> Result<u64, StoreError> {
    let mut upload = Upload::open(blobs, bucket, id, meta, limit).await?;
    let mut reader = spool.reader().await?;
    let mut chunk = vec![0u8; 255 * 1024];
    loop {
        let read = reader.read(&mut chunk).await;
        let written = match read {
            Ok(0) => break,
            Ok(n) => upload.write(&chunk[..n]).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = written {
            let _ = upload.abort().await;
            return Err(e);
        }
    }
    let bytes = upload.written();
    upload.finish().await.map(|_| bytes)
}
