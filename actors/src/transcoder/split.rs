//! A split job on the node: a long input converted in segments that any
//! worker on any node takes from the job queue, then joined into the job's
//! one audio file.
//!
//! 1. **Plan** (the attempt that claims the job, `plan` then `start`): the
//!    conversion child is asked to read first whether the audio is long
//!    enough to split (only for an input big enough to be long), and if
//!    so says how long instead of converting; `segments::plan` cuts it
//!    (made again here from the node's settings), a record per segment is written
//!    (`SegmentStore::replace`), the job is split (`JobStore::split`: it
//!    keeps no lease while its segments convert) and a message per segment
//!    is queued on `video`; then the job's delivery is acked.
//! 2. **Convert** (`run_segment`, any worker taking a segment's message):
//!    the segment is claimed (its own attempts and lease), its part of the
//!    input converted in a child, its audio and waveform stored under
//!    `domain::segment_file`, the segment marked done; the job's progress
//!    is the segments' together.
//! 3. **Join** (`after_segment` → `resume` → `join`, whoever finds every
//!    segment done): the job is claimed again (a lease, an attempt), the
//!    segments are copied one after another into one spool and joined in
//!    a child (they are what children made of an upload, so they are
//!    parsed where uploads are), the audio stored as a single pass's is
//!    (the owner's quota checked once, on the whole), the job finished and
//!    handed off; then the segments' files and records go (`clear`).
//!
//! Every step is safe to repeat: a redelivered segment message finds its
//! segment done and looks at the join; a join killed mid-way leaves the
//! job's lease to lapse and the segment delivery it held to come back; a
//! duplicated job message finds the job split and queues its unfinished
//! segments again. A segment that fails for good fails its job.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::attempt::{
    Failure, Hold, Settle, WorkerContext, announce, back_off, hand_off, holding, request_for,
    run_converter, spool_failed, spool_video, store_failed, store_output, store_spool, tenths,
    transient,
};
use super::isolation::{self, ChildFiles, Converted, Converter, Standby, protocol::JoinTask};
use super::pipeline::{AudioShape, Output, TranscodeError};
use super::segments::{self, Joined, Part, SplitPlan};
use super::spool::Spools;
use crate::backends::{Bucket, Claim, FileMeta, SegmentClaim, chain, segment_files};
use crate::domain::{
    AudioSummary, JobId, JobRecord, JobState, SegmentRecord, SegmentState, segment_file,
};

/// Inputs smaller than this many bytes per second of
/// `transcoder.split_above_secs` are not probed: their audio cannot be
/// longer unless its bitrate is below 16 kb/s (such a job converts in one
/// pass, as every job did before splitting).
const MIN_BYTES_PER_SEC: u64 = 2000;

/// What a segment converts, as its record keeps it (`work`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SegmentWork {
    input_rate: u32,
    output_rate: u32,
    part: Part,
}

/// Whether the job may be split, before anything parses its input: its
/// output can be joined and its input is big enough to be long.
pub(super) fn worth_probing(ctx: &WorkerContext, job: &JobRecord, input_len: u64) -> bool {
    let above = ctx.settings.split_above_secs;
    above > 0
        && ctx.settings.segment_secs > 0
        && segments::joinable(&job.output).is_ok()
        && input_len >= above.saturating_mul(MIN_BYTES_PER_SEC)
}

/// The plan of a job whose conversion child found its audio long enough
/// to split (`Converted::Long`). The child's word is checked as any
/// child's output is: the audio's length against the node's limit, and
/// the plan made here, from the node's settings.
pub(super) fn plan(
    ctx: &WorkerContext,
    job: &JobRecord,
    shape: AudioShape,
) -> Result<SplitPlan, Failure> {
    let limit = Duration::from_secs(ctx.settings.max_input_secs);
    if let Some(length) = shape.duration.filter(|&length| length > limit) {
        return Err(Failure::Permanent(
            TranscodeError::TooLong(length, limit).to_string(),
        ));
    }
    segments::plan(&job.output, shape, ctx.settings.split()).map_err(|why| {
        Failure::Permanent(format!(
            "the converter asked for a split its input does not need: {why}"
        ))
    })
}

/// Records the plan's segments, splits the job and queues a message per
/// segment; the job's own delivery is then done with.
pub(super) async fn start(ctx: &WorkerContext, job: &JobRecord, plan: SplitPlan) -> Settle {
    let records: Result<Vec<SegmentRecord>, _> = (0u32..)
        .zip(&plan.parts)
        .map(|(index, &part)| {
            let work = SegmentWork {
                input_rate: plan.input_rate,
                output_rate: plan.output_rate,
                part,
            };
            serde_json::to_string(&work).map(|work| SegmentRecord::new(job.id, index, work))
        })
        .collect();
    let records = match records {
        Ok(records) => records,
        Err(e) => return give_back(ctx, job, &format!("recording its segments: {e}")).await,
    };
    let total = records.len() as u32;
    if let Err(e) = ctx.backends.segments.replace(job.id, &records).await {
        return give_back(ctx, job, &chain(&e)).await;
    }
    let split = match ctx.backends.jobs.split(job.id, job.attempts, total).await {
        Ok(Some(split)) => split,
        // Deleted or taken over meanwhile (a take-over plans afresh): the
        // records just written are nobody's if it was deleted.
        Ok(None) => {
            if let Ok(None)
            | Ok(Some(JobRecord {
                state: JobState::Deleted,
                ..
            })) = ctx.backends.jobs.get(job.id).await
                && let Err(e) = ctx.backends.segments.remove(job.id).await
            {
                debug!("could not remove the segments' records: {}", chain(&e));
            }
            return Settle::Ack;
        }
        Err(e) => return give_back(ctx, job, &chain(&e)).await,
    };
    info!(segments = total, "split");
    announce(ctx, &split, JobState::Converting, Some(0.0)).await;
    queue_segments(ctx, &split, &records).await
}

/// Hands the job back for another attempt.
async fn give_back(ctx: &WorkerContext, job: &JobRecord, reason: &str) -> Settle {
    warn!(%reason, "could not split the job; handing it back");
    super::attempt::hand_back(ctx, job, reason, false).await;
    back_off(job.attempts).await
}

/// Queues a message for each segment not done yet. When one cannot be
/// queued, the job's delivery goes back to the queue: its redelivery finds
/// the job split and comes here again (a segment queued twice is converted
/// once).
async fn queue_segments(
    ctx: &WorkerContext,
    job: &JobRecord,
    segments: &[SegmentRecord],
) -> Settle {
    for segment in segments.iter().filter(|s| !s.state.is_final()) {
        if let Err(e) = ctx
            .backends
            .publish_job(&job.segment_message(segment.index))
            .await
        {
            warn!("cannot queue segment {}: {}", segment.index, chain(&e));
            return back_off(1).await;
        }
    }
    Settle::Ack
}

/// A split job claimed again (by a redelivery of its message, or to be
/// joined): joined when every segment is done, failed when one failed,
/// else its unfinished segments queued again and the job let go.
pub(super) async fn resume(ctx: &WorkerContext, job: JobRecord) -> Settle {
    let segments = match ctx.backends.segments.list(job.id).await {
        Ok(segments) => segments,
        Err(e) => {
            warn!("cannot read the job's segments: {}", chain(&e));
            return let_go(ctx, &job).await;
        }
    };
    let total = job.segments.map_or(0, |s| s.total);
    if segments.len() != total as usize {
        let reason = format!(
            "{} of its {total} segments' records are left",
            segments.len()
        );
        return fail_job(ctx, job, &reason).await;
    }
    if let Some(failed) = segments.iter().find(|s| s.state == SegmentState::Failed) {
        let reason = failed
            .error
            .clone()
            .unwrap_or_else(|| "a segment failed".into());
        return fail_job(ctx, job, &reason).await;
    }
    if segments.iter().all(|s| s.state == SegmentState::Done) {
        let span = info_span!("join", segments = total);
        return join(ctx, job, &segments).instrument(span).await;
    }
    let settle = queue_segments(ctx, &job, &segments).await;
    match ctx.backends.jobs.split(job.id, job.attempts, total).await {
        Ok(_) => settle,
        Err(e) => {
            warn!("cannot let go of the split job: {}", chain(&e));
            back_off(1).await
        }
    }
}

/// Lets go of a split job this attempt took (its lease cleared, so the
/// next look at it need not wait for it to lapse), and hands the delivery
/// back after a pause.
async fn let_go(ctx: &WorkerContext, job: &JobRecord) -> Settle {
    let total = job.segments.map_or(0, |s| s.total);
    if let Err(e) = ctx.backends.jobs.split(job.id, job.attempts, total).await {
        debug!("could not let go of the split job: {}", chain(&e));
    }
    back_off(job.attempts).await
}

/// Fails a split job for good (a segment failed, or could not be made
/// sense of), as any attempt fails a job: then it is handed off.
async fn fail_job(ctx: &WorkerContext, job: JobRecord, reason: &str) -> Settle {
    ctx.metrics.job_result("error");
    info!(%reason, "failed");
    match ctx
        .backends
        .jobs
        .finish(job.id, job.attempts, JobState::Failed, Some(reason), None)
        .await
    {
        Ok(Some(failed)) => {
            announce(ctx, &failed, JobState::Failed, None).await;
            hand_off(ctx, &failed, &job_payload(&failed)).await
        }
        // Moved by someone else meanwhile: theirs to finish.
        Ok(None) => Settle::Ack,
        Err(e) => {
            warn!("cannot record the job's end: {}", chain(&e));
            back_off(1).await
        }
    }
}

/// The job's own message: what the dead-letter queue keeps of a failed
/// split job (an operator replaying it converts the job again).
fn job_payload(job: &JobRecord) -> Vec<u8> {
    serde_json::to_vec(&job.video_message()).unwrap_or_default()
}

/// One delivery of segment `index` of a job.
pub(super) async fn run_segment(
    ctx: &WorkerContext,
    (job_id, index): (JobId, u32),
    standby: &mut Option<Standby>,
) -> Settle {
    let segment = match ctx.claim_segment((job_id, index)).await {
        Err(e) => {
            warn!(index, "cannot claim the segment: {}", chain(&e));
            return back_off(1).await;
        }
        // Its job was deleted, joined, or planned again.
        Ok(SegmentClaim::Missing) => return Settle::Ack,
        Ok(SegmentClaim::Busy(_)) => {
            info!(
                index,
                "another attempt holds the segment; handing the message back"
            );
            return back_off(1).await;
        }
        Ok(SegmentClaim::Final(_) | SegmentClaim::Exhausted(_)) => {
            return after_segment(ctx, job_id).await;
        }
        Ok(SegmentClaim::Run(segment)) => segment,
    };
    let job = match ctx.backends.jobs.get(job_id).await {
        Ok(Some(job)) if job.state == JobState::Converting && job.segments.is_some() => job,
        // Deleted or finished: nothing of it to convert.
        Ok(_) => return Settle::Ack,
        Err(e) => {
            warn!("cannot read the segment's job: {}", chain(&e));
            return hand_back_segment(ctx, &segment, &chain(&e), false).await;
        }
    };
    info!(index, attempt = segment.attempts, "converting a segment");
    let converted = convert_segment(ctx, &job, &segment, standby.take()).await;
    let segments = ctx.backends.segments.as_ref();
    match converted {
        Ok(()) => match segments
            .finish(job_id, index, segment.attempts, SegmentState::Done, None)
            .await
        {
            Ok(true) => {
                // Deleted while its files were stored (after the deletion
                // removed the job's): they go now.
                remove_segment_output(ctx, &job, index).await;
                after_segment(ctx, job_id).await
            }
            Ok(false) => {
                remove_segment_output(ctx, &job, index).await;
                Settle::Ack
            }
            Err(e) => {
                warn!("cannot record the segment's end: {}", chain(&e));
                back_off(1).await
            }
        },
        Err(Failure::Permanent(reason)) => {
            info!(index, %reason, "the segment failed");
            let reason = format!("segment {index}: {reason}");
            match segments
                .finish(
                    job_id,
                    index,
                    segment.attempts,
                    SegmentState::Failed,
                    Some(&reason),
                )
                .await
            {
                Ok(true) => after_segment(ctx, job_id).await,
                Ok(false) => Settle::Ack,
                Err(e) => {
                    warn!("cannot record the segment's end: {}", chain(&e));
                    back_off(1).await
                }
            }
        }
        Err(Failure::Lost) => {
            info!(
                index,
                "the segment's job was deleted or the segment taken over; stopping"
            );
            Settle::Ack
        }
        Err(Failure::NoRoom(reason)) => {
            let space = &ctx.backends.space;
            space.note_full(&reason);
            warn!(%reason, "no room to store the segment; it waits for room");
            let settle = hand_back_segment(ctx, &segment, &reason, true).await;
            tokio::time::sleep(space.wait()).await;
            settle
        }
        Err(Failure::Transient(reason)) => {
            warn!(index, %reason, "segment attempt failed; handing it back");
            hand_back_segment(ctx, &segment, &reason, false).await
        }
    }
}

/// Hands a segment back (`converting → queued`) and its delivery after a
/// pause; `refund`: its attempt given back (no room, no fault of its own).
async fn hand_back_segment(
    ctx: &WorkerContext,
    segment: &SegmentRecord,
    reason: &str,
    refund: bool,
) -> Settle {
    let handed = ctx
        .backends
        .segments
        .requeue(
            segment.job_id,
            segment.index,
            segment.attempts,
            reason,
            refund,
        )
        .await;
    if let Err(e) = handed {
        warn!("could not hand the segment back: {}", chain(&e));
    }
    if refund {
        Settle::Requeue
    } else {
        back_off(segment.attempts).await
    }
}

/// Converts the segment's part of the job's input and stores its audio
/// and waveform under its own id.
async fn convert_segment(
    ctx: &WorkerContext,
    job: &JobRecord,
    segment: &SegmentRecord,
    standby: Option<Standby>,
) -> Result<(), Failure> {
    let work: SegmentWork = serde_json::from_str(&segment.work)
        .map_err(|e| Failure::Permanent(format!("its plan cannot be read ({e}); retry the job")))?;
    // Each step timed: what a segment costs beyond its share of a single
    // pass is the spool, the child and the store (`benches/split-nodes`).
    let started = std::time::Instant::now();
    let (spools, converter, _) = spool_video(ctx, job, standby).await?;
    let spooled = started.elapsed();
    let request = request_for(ctx, job, Some(work.part.segment));
    let mut keep = SegmentLease { ctx, job, segment };
    let converted = run_converter(ctx, &spools, converter, &request, &mut keep).await?;
    if let Converted::Long { .. } = converted {
        // Not asked whether to split: a child saying so is broken.
        return Err(Failure::Permanent(
            "the converter did not convert the segment".into(),
        ));
    }
    let converted = started.elapsed();
    let id = segment_file(job.mp3_fid, segment.index);
    let blobs = ctx.backends.blobs.as_ref();
    for (bucket, spool) in [
        (Bucket::Segments, &spools.audio),
        (Bucket::SegmentWaveforms, &spools.waveform),
    ] {
        blobs.delete(bucket, id).await.map_err(transient)?;
        let meta = FileMeta {
            filename: format!("{}.segment-{}", job.id, segment.index),
            owner: job.owner.clone(),
            content_type: None,
            job_id: Some(job.id),
        };
        store_spool(blobs, (bucket, id), meta, spool, u64::MAX)
            .await
            .map_err(store_failed)?;
    }
    ctx.backends.space.note_room();
    info!(
        index = segment.index,
        spool = spooled.as_secs_f64(),
        convert = (converted - spooled).as_secs_f64(),
        store = (started.elapsed() - converted).as_secs_f64(),
        "segment converted"
    );
    Ok(())
}

/// A segment's lease, held by the attempt converting it: renewed, and the
/// job's progress (its segments' together) recorded and announced. A job
/// no longer converting was deleted (or failed by another segment): the
/// segment is lost too.
struct SegmentLease<'a> {
    ctx: &'a WorkerContext,
    job: &'a JobRecord,
    segment: &'a SegmentRecord,
}

impl Hold for SegmentLease<'_> {
    async fn keep(&mut self, progress: Option<f64>) -> bool {
        let (ctx, job, segment) = (self.ctx, self.job, self.segment);
        let lease = Duration::from_secs(ctx.settings.lease_secs);
        let segments = &ctx.backends.segments;
        let renewed = segments
            .renew(job.id, segment.index, segment.attempts, lease, progress)
            .await;
        if let Ok(false) = renewed {
            return false;
        }
        let Ok(all) = segments.list(job.id).await else {
            return true;
        };
        let (done, percent) = tally(&all);
        match ctx.backends.jobs.note_segments(job.id, done, percent).await {
            Ok(false) => false,
            Ok(true) => {
                announce(ctx, job, JobState::Converting, Some(percent)).await;
                true
            }
            Err(_) => true,
        }
    }
}

/// A split job's lease, held by the attempt joining it.
struct JoinLease<'a> {
    ctx: &'a WorkerContext,
    job: &'a JobRecord,
}

impl Hold for JoinLease<'_> {
    async fn keep(&mut self, _: Option<f64>) -> bool {
        let lease = Duration::from_secs(self.ctx.settings.lease_secs);
        let jobs = &self.ctx.backends.jobs;
        let renewed = jobs
            .renew_lease(self.job.id, self.job.attempts, lease, None)
            .await;
        !matches!(renewed, Ok(false))
    }
}

/// How many of `segments` are done, and the percent of the whole they
/// make together (tenths of a percent, as a job's progress is kept).
fn tally(segments: &[SegmentRecord]) -> (u32, f64) {
    let done = segments
        .iter()
        .filter(|s| s.state == SegmentState::Done)
        .count() as u32;
    let sum: f64 = segments
        .iter()
        .map(|s| match s.state {
            SegmentState::Done => 100.0,
            _ => s.progress.unwrap_or(0.0),
        })
        .sum();
    (done, tenths(sum / segments.len().max(1) as f64))
}

/// A segment the attempt stored for a job deleted meanwhile: its files
/// go (the deletion may have removed the job's files before they were
/// written). Nothing is done for a job that is not deleted.
async fn remove_segment_output(ctx: &WorkerContext, job: &JobRecord, index: u32) {
    if let Ok(Some(now)) = ctx.backends.jobs.get(job.id).await
        && now.state != JobState::Deleted
    {
        return;
    }
    let id = segment_file(job.mp3_fid, index);
    for bucket in Bucket::SEGMENT_OUTPUTS {
        if let Err(e) = ctx.backends.blobs.delete(bucket, id).await {
            warn!("could not remove a deleted job's segment: {}", chain(&e));
        }
    }
}

/// A segment is final: the job's tally is recorded, and when every
/// segment is done (or one failed) the job is claimed to be joined (or
/// failed). Another attempt holding the job (a join under way) is waited
/// for: its delivery is ours to settle once the job is final.
async fn after_segment(ctx: &WorkerContext, job_id: JobId) -> Settle {
    let segments = match ctx.backends.segments.list(job_id).await {
        Ok(segments) => segments,
        Err(e) => {
            warn!("cannot read the job's segments: {}", chain(&e));
            return back_off(1).await;
        }
    };
    let (done, percent) = tally(&segments);
    if let Err(e) = ctx.backends.jobs.note_segments(job_id, done, percent).await {
        debug!("cannot record the job's progress: {}", chain(&e));
    }
    let failed = segments.iter().any(|s| s.state == SegmentState::Failed);
    if !failed && (segments.is_empty() || (done as usize) < segments.len()) {
        return Settle::Ack;
    }
    match ctx.claim_job(job_id).await {
        Ok(Claim::Run(job)) if job.segments.is_some() => resume(ctx, job).await,
        // Planned again meanwhile (a retry): its own message converts it.
        Ok(Claim::Run(job)) => {
            super::attempt::hand_back(ctx, &job, "planned again", true).await;
            Settle::Ack
        }
        Ok(Claim::Final(job) | Claim::Exhausted(job)) => {
            hand_off(ctx, &job, &job_payload(&job)).await
        }
        Ok(Claim::Busy(_)) => back_off(1).await,
        Ok(Claim::Missing) => Settle::Ack,
        Err(e) => {
            warn!("cannot claim the job to join it: {}", chain(&e));
            back_off(1).await
        }
    }
}

/// Joins the job's segments (all done) into its audio and waveform, in a
/// child, and finishes the job as a single pass does.
async fn join(ctx: &WorkerContext, job: JobRecord, segments: &[SegmentRecord]) -> Settle {
    let started = std::time::Instant::now();
    let pause = ctx.settings.inject_join_pause_ms;
    if pause > 0 {
        info!(pause, "joining after an injected pause");
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    match joined(ctx, &job, segments).await {
        Ok(audio) => {
            ctx.metrics.job_result("success");
            info!(seconds = started.elapsed().as_secs_f64(), "joined; done");
            let finished = ctx
                .backends
                .jobs
                .finish(job.id, job.attempts, JobState::Done, None, Some(audio))
                .await;
            match finished {
                Ok(Some(done)) => {
                    announce(ctx, &done, JobState::Done, Some(100.0)).await;
                    hand_off(ctx, &done, &job_payload(&done)).await
                }
                Ok(None) => {
                    super::attempt::remove_output_if_deleted(ctx, job.id, job.mp3_fid).await;
                    Settle::Ack
                }
                Err(e) => {
                    warn!("cannot record the job's end: {}", chain(&e));
                    back_off(1).await
                }
            }
        }
        Err(Failure::Permanent(reason)) => fail_job(ctx, job, &reason).await,
        Err(Failure::Lost) => Settle::Ack,
        Err(Failure::NoRoom(reason)) => {
            let space = &ctx.backends.space;
            space.note_full(&reason);
            warn!(%reason, "no room to store the joined audio; the job waits for room");
            let settle = let_go(ctx, &job).await;
            tokio::time::sleep(space.wait()).await;
            settle
        }
        Err(Failure::Transient(reason)) => {
            warn!(%reason, "the join failed; it is tried again");
            let_go(ctx, &job).await
        }
    }
}

/// The join itself: the segments spooled one after another, joined in a
/// child into the audio and waveform spools, stored.
async fn joined(
    ctx: &WorkerContext,
    job: &JobRecord,
    records: &[SegmentRecord],
) -> Result<AudioSummary, Failure> {
    let mut parts = Vec::with_capacity(records.len());
    let mut rates = None;
    for record in records {
        let work: SegmentWork = serde_json::from_str(&record.work)
            .map_err(|e| Failure::Permanent(format!("its plan cannot be read ({e})")))?;
        rates = Some((work.input_rate, work.output_rate));
        parts.push(work.part);
    }
    let Some((input_rate, output_rate)) = rates else {
        return Err(Failure::Permanent("a split job without segments".into()));
    };
    let plan = SplitPlan {
        format: job.output.options().format,
        input_rate,
        output_rate,
        parts,
    };
    let spools = Spools::new(&ctx.settings.spool_dir).map_err(spool_failed)?;
    let mut stretches = [Vec::new(), Vec::new()];
    let mut at = 0u64;
    for (stretch, bucket) in stretches.iter_mut().zip(Bucket::SEGMENT_OUTPUTS) {
        for record in records {
            let id = segment_file(job.mp3_fid, record.index);
            let blobs = &ctx.backends.blobs;
            let Some(info) = blobs.info(bucket, id).await.map_err(transient)? else {
                return Err(Failure::Permanent(format!(
                    "segment {}'s {} is missing from storage; retry the job",
                    record.index,
                    bucket.name()
                )));
            };
            let body = blobs.read(bucket, &info, None).await.map_err(transient)?;
            let len = spools.input.fill(body).await.map_err(spool_failed)?;
            stretch.push((at, len));
            at += len;
        }
    }
    let [audio, waveforms] = stretches;
    let task = JoinTask {
        plan,
        audio,
        waveforms,
    };
    let joined = join_in_child(ctx, job, &spools, task).await?;
    let bytes = store_output(ctx, job, &spools)
        .await
        .map_err(store_failed)?;
    ctx.backends.space.note_room();
    let millis = u128::from(joined.samples) * 1000 / u128::from(joined.rate.max(1));
    Ok(AudioSummary {
        bytes,
        duration_ms: u64::try_from(millis).unwrap_or(u64::MAX),
        loudness: None,
        replaygain: None,
    })
}

/// Runs the join in a child (in this process only when isolation is off),
/// holding the job's lease meanwhile.
async fn join_in_child(
    ctx: &WorkerContext,
    job: &JobRecord,
    spools: &Spools,
    task: JoinTask,
) -> Result<Joined, Failure> {
    let mut keep = JoinLease { ctx, job };
    let cancel = CancellationToken::new();
    let (_, progress) = tokio::sync::watch::channel(None::<f64>);
    let request = request_for(ctx, job, None);
    let joining = async {
        let Some(sandbox) = &ctx.sandbox else {
            return join_here(spools, task).await;
        };
        let converter = Converter::start(sandbox, &ChildFiles::of(spools))
            .map_err(|e| TranscodeError::Internal(format!("starting the converter: {e}")))?;
        isolation::join(sandbox, converter, &request, task, &cancel).await
    };
    let joined = holding(joining, &cancel, &progress, &mut keep).await?;
    joined.map_err(|e| {
        if e.is_permanent() {
            Failure::Permanent(e.to_string())
        } else {
            transient(e)
        }
    })
}

/// The join in this process (`transcoder.isolate = false`).
async fn join_here(spools: &Spools, task: JoinTask) -> Result<Joined, TranscodeError> {
    let [input, audio, waveform] =
        [&spools.input, &spools.audio, &spools.waveform].map(|s| s.path().to_owned());
    let joining = tokio::task::spawn_blocking(move || {
        let output = Output {
            audio: &audio,
            waveform: Some(&waveform),
        };
        isolation::join_segments(&task, &input, output)
    });
    joining
        .await
        .map_err(|e| TranscodeError::Internal(e.to_string()))?
}

/// Removes a final split job's segments: their files and records (safe to
/// repeat; a deleted job's go with `Backends::delete_job_and_files`).
pub(super) async fn clear(ctx: &WorkerContext, job: &JobRecord) {
    for (bucket, id) in segment_files(job) {
        if let Err(e) = ctx.backends.blobs.delete(bucket, id).await {
            warn!(
                "could not remove a segment's {}: {}",
                bucket.name(),
                chain(&e)
            );
            return;
        }
    }
    if let Err(e) = ctx.backends.segments.remove(job.id).await {
        warn!("could not remove the job's segments: {}", chain(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(state: SegmentState, progress: Option<f64>) -> SegmentRecord {
        SegmentRecord {
            state,
            progress,
            ..SegmentRecord::new(JobId::new(), 0, String::new())
        }
    }

    #[test]
    fn a_jobs_progress_is_its_segments_together() {
        let segments = [
            segment(SegmentState::Done, Some(100.0)),
            segment(SegmentState::Converting, Some(50.0)),
            segment(SegmentState::Queued, None),
            segment(SegmentState::Done, None),
        ];
        assert_eq!(tally(&segments), (2, 62.5));
        assert_eq!(tally(&[]), (0, 0.0));
    }
}
