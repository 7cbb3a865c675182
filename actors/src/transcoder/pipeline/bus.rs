//! Running the graph: the bus loop (preroll deadline, progress, length
//! limit, cancellation, stalls) and what its errors mean.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::error::TranscodeError;
use super::graph::Graph;
use super::segment;
use super::{Control, NO_AUDIO, PROGRESS_EVERY, Progress, Summary};

impl Graph {
    pub(super) fn run(
        &self,
        control: &Control,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Summary, TranscodeError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| TranscodeError::Internal("pipeline without a bus".into()))?;
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| self.first_error(&bus).unwrap_or(TranscodeError::NotMedia))?;
        let mut input_duration = None;
        let started = Instant::now();
        let mut last_position = None;
        let mut last_moved = Instant::now();
        let mut prerolled = false;
        loop {
            // Decoded audio counts as proof of a playable stream: with a
            // trim starting late in a long input, everything before it is
            // decoded and dropped, and the sink prerolls only at the trim.
            if !prerolled
                && !self.tap.started.load(Ordering::SeqCst)
                && started.elapsed() > control.preroll_within
            {
                return Err(TranscodeError::Decode(format!(
                    "no playable stream found (nothing decodable within {:?})",
                    control.preroll_within
                )));
            }
            if control.cancel.load(Ordering::SeqCst) {
                return Err(TranscodeError::Cancelled);
            }
            if started.elapsed() > control.max_wall {
                return Err(TranscodeError::TimedOut(control.max_wall));
            }
            if last_moved.elapsed() > control.stall_after {
                return Err(TranscodeError::Stalled(control.stall_after));
            }
            let message = bus.timed_pop(gst::ClockTime::from_mseconds(
                PROGRESS_EVERY.as_millis() as u64
            ));
            if let Some(message) = message {
                match message.view() {
                    gst::MessageView::Eos(_) => break,
                    gst::MessageView::Element(element) if self.sink_ended(element) => break,
                    gst::MessageView::Error(err) => return Err(self.classify(err)),
                    gst::MessageView::StateChanged(change)
                        if change.src() == Some(self.pipeline.upcast_ref::<gst::Object>())
                            && change.current() >= gst::State::Paused =>
                    {
                        prerolled = true;
                        self.check_length(control, &mut input_duration)?;
                        continue;
                    }
                    gst::MessageView::Application(app) => match app.structure().map(|s| s.name()) {
                        Some(name) if name == segment::SEEK => {
                            if let Some(asked) = app.structure() {
                                segment::seek(&self.pipeline, &self.tap, asked);
                            }
                            continue;
                        }
                        Some(name) if name == NO_AUDIO => {
                            let found = self
                                .tap
                                .audio_tracks
                                .load(Ordering::SeqCst)
                                .max(self.tap.demuxed_audio.load(Ordering::SeqCst));
                            return Err(match found {
                                0 => TranscodeError::NoAudio,
                                found => TranscodeError::NoSuchTrack {
                                    asked: found.max(1),
                                    found,
                                },
                            });
                        }
                        _ => continue,
                    },
                    _ => continue,
                }
            }
            self.check_length(control, &mut input_duration)?;
            if self.tap.started.load(Ordering::SeqCst) {
                let input = self.tap.position.load(Ordering::SeqCst);
                if last_position != Some(input) {
                    last_position = Some(input);
                    last_moved = Instant::now();
                }
                let (position, duration) = self.progress(input_duration);
                progress(Progress { position, duration });
            }
        }
        self.check_length(control, &mut input_duration)?;
        let samples = self.tap.samples.load(Ordering::SeqCst);
        let sample_rate = self.tap.sample_rate.load(Ordering::SeqCst);
        if samples == 0 && self.trim.is_some() && self.tap.started.load(Ordering::SeqCst) {
            return Err(TranscodeError::EmptyTrim);
        }
        let duration =
            (sample_rate > 0).then(|| Duration::from_secs_f64(samples as f64 / sample_rate as f64));
        if let Some(d) = duration {
            progress(Progress {
                position: d,
                duration: Some(d),
            });
        }
        Ok(Summary {
            duration,
            bytes: 0,
            samples,
            sample_rate,
            loudness: None,
            replaygain: None,
        })
    }

    /// What the loudness stage measured, once the stream has ended.
    pub(super) fn measured(&self) -> Result<super::loudness::Measured, TranscodeError> {
        measured(self.loudness.as_ref())
    }

    /// What the input meter measured (a measuring pass).
    pub(super) fn measured_input(&self) -> Result<super::loudness::Measured, TranscodeError> {
        measured(self.input_meter.as_ref())
    }

    pub(super) fn first_error(&self, bus: &gst::Bus) -> Option<TranscodeError> {
        let message = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error],
        )?;
        match message.view() {
            gst::MessageView::Error(err) => Some(self.classify(err)),
            _ => None,
        }
    }

    /// Whether `message` is the sink's own end-of-stream, forwarded by the
    /// pipeline (`message-forward`). The sink posts it once it has handled
    /// the end (a filesink has written what it held), so the file is whole
    /// when the loop ends on it; the end merely reaching the sink's pad is
    /// not enough (tearing the pipeline down then can lose a filesink's
    /// last bytes, or all of a short file's). Not the pipeline's own EOS:
    /// that waits for every sink, and a dropped stream's (video after a
    /// trim's end) may go on long after the audio has ended.
    fn sink_ended(&self, message: &gst::message::Element) -> bool {
        message
            .structure()
            .filter(|s| s.name() == "GstBinForwarded")
            .and_then(|s| s.get::<gst::Message>("message").ok())
            .is_some_and(|forwarded| {
                matches!(forwarded.view(), gst::MessageView::Eos(_))
                    && forwarded.src() == Some(self.sink.upcast_ref::<gst::Object>())
            })
    }

    pub(super) fn classify(&self, err: &gst::message::Error) -> TranscodeError {
        let error = err.error();
        let detail = error.message().to_owned();
        if err.src() == Some(self.sink.upcast_ref::<gst::Object>())
            && error.kind::<gst::StreamError>().is_none()
        {
            return TranscodeError::Output(detail);
        }
        if let Some(stream) = error.kind::<gst::StreamError>() {
            return match stream {
                gst::StreamError::TypeNotFound | gst::StreamError::WrongType => {
                    TranscodeError::NotMedia
                }
                gst::StreamError::CodecNotFound => TranscodeError::Unsupported(detail),
                _ => TranscodeError::Decode(detail),
            };
        }
        if let Some(gst::CoreError::MissingPlugin) = error.kind::<gst::CoreError>() {
            return TranscodeError::Unsupported(detail);
        }
        if let Some(resource) = error.kind::<gst::ResourceError>() {
            return match resource {
                gst::ResourceError::NotFound
                | gst::ResourceError::OpenRead
                | gst::ResourceError::Read => TranscodeError::Input(detail),
                _ => TranscodeError::Internal(detail),
            };
        }
        TranscodeError::Internal(format!("{detail} ({:?})", err.debug()))
    }
}

fn measured(
    stage: Option<&super::loudness::LoudnessStage>,
) -> Result<super::loudness::Measured, TranscodeError> {
    stage
        .and_then(|stage| stage.measured())
        .ok_or_else(|| TranscodeError::Internal("the loudness stage measured nothing".into()))
}
