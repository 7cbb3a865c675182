//! Building the graph: source, parsebin, the chosen audio track's decoder,
//! the tap (and the chapters' watch beside it), conversion, the loudness
//! stage when normalising, and the encoder end (or, in a measuring pass, a
//! fakesink); other streams end in fakesinks.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;

use super::aac_gapless;
use super::chapters::{self, ChapterMarks};
use super::encoders::{encode_mp3, encoder_chain, output_caps};
use super::error::TranscodeError;
use super::loudness::{LoudnessStage, Mode};
use super::tap::{Tap, Trim, count_samples, dropped_as_handled, tap_audio};
use super::tracks::{is_audio, is_demuxer, link_decoder, stream_start};
use super::waveform::Waveform;
use super::{AUDIO_DONE, Control, NO_AUDIO, Output};
use crate::output::{Format, ResolvedOutput};
use crate::transcoder::gapless::InputGapless;
use crate::transcoder::mp3_output::Mp3Output;

pub(super) struct Graph {
    pub(super) pipeline: gst::Pipeline,
    pub(super) tap: Arc<Tap>,
    pub(super) trim: Option<Trim>,
    pub(super) sink: gst::Element,
    /// The MP3 encoder and file, fed by a probe on `sink` (MP3 only).
    pub(super) mp3: Arc<Mutex<Option<Mp3Output>>>,
    /// The waveform, fed by the probe on the encoder's input (when asked).
    pub(super) waveform: Arc<Mutex<Option<Waveform>>>,
    /// The chapters the output carries (settled at the first audio).
    pub(super) chapters: Arc<ChapterMarks>,
    /// The loudness stage, when there is one.
    pub(super) loudness: Option<LoudnessStage>,
    /// The meter of the input as it is (a measuring pass only).
    pub(super) input_meter: Option<LoudnessStage>,
}

/// Where the audio goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum End<'a> {
    /// Encoded into a file (and its waveform into another).
    File(Output<'a>),
    /// Nowhere: a measuring pass.
    Measure,
}

impl Graph {
    pub(super) fn build(
        input: &Path,
        options: &ResolvedOutput,
        end: End<'_>,
        gapless: Option<InputGapless>,
        loudness: Option<Mode>,
    ) -> Result<Self, TranscodeError> {
        let pipeline = gst::Pipeline::new();
        let make = |name: &str| gst::ElementFactory::make(name).build();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", input.to_string_lossy().as_ref())
            .build()?;
        let parse = make("parsebin")?;
        // A demuxed stream that is not audio goes to a fakesink as it is:
        // parsing it (h264parse copies every video frame) is wasted work.
        // Whatever typefind finds (the container itself) is plugged.
        parse.connect("autoplug-continue", false, |values| {
            // The pad is parsebin's ghost of the element's own.
            let from_demuxer = values
                .get(1)
                .and_then(|v| v.get::<gst::Pad>().ok())
                .map(|pad| match pad.downcast_ref::<gst::GhostPad>() {
                    Some(ghost) => ghost.target().unwrap_or(pad),
                    None => pad,
                })
                .and_then(|pad| pad.parent_element())
                .is_some_and(|element| is_demuxer(&element));
            let audio = values
                .get(2)
                .and_then(|v| v.get::<gst::Caps>().ok())
                .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("audio/")))
                .unwrap_or(true);
            Some((audio || !from_demuxer).to_value())
        });
        let convert = plain_audioconvert()?;
        let resample = make("audioresample")?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", output_caps(options, None))
            .build()?;
        let (output, waveform) = match end {
            End::File(output) => (Some(output.audio), output.waveform),
            End::Measure => (None, None),
        };
        let waveform = match waveform {
            Some(path) => Some(
                Waveform::create(path)
                    .map_err(|e| TranscodeError::Output(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        let waveform = Arc::new(Mutex::new(waveform));
        // An MP4's chapters are read from the file (its demuxer reports
        // none); other containers' come as the demuxer's table of contents.
        let chapters = ChapterMarks::new(match output {
            Some(_) => chapters::mp4::read(input)
                .map_err(|e| TranscodeError::Input(format!("reading its chapters: {e}")))?,
            None => Vec::new(),
        });
        let chain = match output {
            Some(_) => encoder_chain(options)?,
            None => Vec::new(),
        };
        // The stage works on floats; a converter after it gives the
        // encoder what it takes (for MP3, floats already: a pass-through).
        let stage = loudness.map(LoudnessStage::new);
        let mut stage_chain = Vec::new();
        if let Some(stage) = &stage {
            stage_chain.push(stage.clone().upcast::<gst::Element>());
            if output.is_some() {
                stage_chain.push(plain_audioconvert()?);
            }
        }
        // A measuring pass also meters the input as it is (its own rate
        // and channels), ahead of the resampler and the downmix.
        let input_meter = match (loudness, output) {
            (Some(Mode::Measure), None) => Some(LoudnessStage::new(Mode::Measure)),
            _ => None,
        };
        let meter_chain = match &input_meter {
            Some(meter) => vec![
                gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst_audio::AudioCapsBuilder::new_interleaved()
                            .format(gst_audio::AUDIO_FORMAT_F32)
                            .build(),
                    )
                    .build()?,
                meter.clone().upcast::<gst::Element>(),
                plain_audioconvert()?,
            ],
            None => Vec::new(),
        };
        // The muxer (last) writes the tags where it has one.
        let tag_setter = chain
            .iter()
            .rev()
            .find_map(|e| e.clone().dynamic_cast::<gst::TagSetter>().ok());
        if let Some(title) = options.title.as_deref().filter(|t| !t.is_empty())
            && !chain.is_empty()
        {
            let setter = tag_setter
                .as_ref()
                .ok_or_else(|| TranscodeError::Internal("no element takes tags".into()))?;
            // Our title wins over one the container may carry.
            setter.set_tag_merge_mode(gst::TagMergeMode::Keep);
            setter.add_tag::<gst::tags::Title>(&title, gst::TagMergeMode::Replace);
        }
        // Opus and FLAC carry chapters (and ReplayGain) as Vorbis comments,
        // given as tags.
        let comment_setter =
            tag_setter.filter(|_| matches!(options.format, Format::Opus | Format::Flac));
        if let Some(setter) = comment_setter.as_ref().filter(|_| options.replaygain) {
            for comment in super::replaygain::placeholder_comments(options.format) {
                setter.add_tag::<gst::tags::ExtendedComment>(
                    &comment.as_str(),
                    gst::TagMergeMode::Append,
                );
            }
        }
        let mp3 = match (options.format, output) {
            (Format::Mp3, Some(output)) => Some(
                Mp3Output::create(output, options, chapters.clone())
                    .map_err(|e| TranscodeError::Output(format!("{}: {e}", output.display())))?,
            ),
            _ => None,
        };
        let is_mp3 = mp3.is_some();
        let mp3 = Arc::new(Mutex::new(mp3));
        let sink = if let Some(output) = output.filter(|_| !is_mp3) {
            gst::ElementFactory::make("filesink")
                .property("location", output.to_string_lossy().as_ref())
                .property("sync", false)
                .build()?
        } else {
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("enable-last-sample", false)
                .build()?
        };

        pipeline.add_many([&src, &parse, &convert, &resample, &caps])?;
        pipeline.add_many(&meter_chain)?;
        pipeline.add_many(&stage_chain)?;
        pipeline.add_many(&chain)?;
        pipeline.add(&sink)?;
        src.link(&parse)?;
        let mut branch = vec![&convert];
        branch.extend(meter_chain.iter());
        branch.extend([&resample, &caps]);
        branch.extend(stage_chain.iter());
        branch.extend(chain.iter());
        branch.push(&sink);
        gst::Element::link_many(branch)?;

        let trim = Trim::new(options, gapless);
        let tap = Arc::new(Tap::default());
        let _ = tap
            .caps_filter
            .set((caps.downgrade(), options.options().clone()));
        let audio_in = convert
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("audioconvert has no sink pad".into()))?;
        if output.is_some() {
            // Ahead of the tap, so that it sees the first audio even where
            // a trim drops it.
            let marks = chapters.clone();
            let options = options.clone();
            audio_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let ret = chapters::watch(pad, info, &marks, &options, comment_setter.as_ref());
                    dropped_as_handled(info, ret)
                },
            );
        }
        {
            let tap = tap.clone();
            audio_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let ret = tap_audio(pad, info, &tap, trim);
                    dropped_as_handled(info, ret)
                },
            );
        }
        let encoder_in = chain
            .first()
            .unwrap_or(&sink)
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("the encoder has no sink pad".into()))?;
        {
            let tap = tap.clone();
            let waveform = waveform.clone();
            let pads_the_end = options.format == Format::Aac;
            encoder_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    // Our own silence after the audio is not counted.
                    if tap.padding.load(Ordering::SeqCst) {
                        return gst::PadProbeReturn::Ok;
                    }
                    if pads_the_end {
                        open_the_end(info);
                        if is_eos(info) {
                            pad_the_end(pad, &tap);
                        }
                    }
                    count_samples(info, &tap);
                    if let Ok(mut slot) = waveform.lock()
                        && let Some(waveform) = slot.as_mut()
                    {
                        feed_waveform(info, waveform);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let sink_in = sink
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("the sink has no sink pad".into()))?;
        if is_mp3 {
            let mp3 = mp3.clone();
            sink_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let ret = encode_mp3(pad, info, &mp3);
                    dropped_as_handled(info, ret)
                },
            );
        }
        sink_in.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |pad, info| {
            if is_eos(info)
                && let Some(parent) = pad.parent_element()
            {
                post(&parent, AUDIO_DONE);
            }
            gst::PadProbeReturn::Ok
        });

        let asked = options.audio_track;
        let wanted = asked.unwrap_or(0);
        let weak_pipeline = pipeline.downgrade();
        let tracks = tap.clone();
        let linked = audio_in.clone();
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak_pipeline.upgrade() else {
                return;
            };
            if is_audio(pad) {
                let index = tracks.audio_tracks.fetch_add(1, Ordering::SeqCst);
                let default = tracks.default_audio.lock().ok().and_then(|d| d.clone());
                let chosen = match (asked, default) {
                    (Some(asked), _) => index == asked,
                    (None, Some(default)) => stream_start(pad).is_some_and(|(id, _)| id == default),
                    (None, None) => index == 0,
                };
                if chosen && link_decoder(&pipeline, pad, &linked).is_ok() {
                    if let Ok(mut exposure) = tracks.exposure.lock() {
                        exposure.decoding = true;
                    }
                    return;
                }
            }
            // Every other stream (video, the other audio tracks) is dropped
            // still encoded, on this same thread.
            if let Ok(fakesink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                && pipeline.add(&fakesink).is_ok()
            {
                let _ = fakesink.sync_state_with_parent();
                if let Some(sinkpad) = fakesink.static_pad("sink") {
                    // The last word on "no audio" where no demuxer speaks
                    // (one stream, not the track asked for): its end came
                    // and no audio stream went to a decoder. A small file's dropped
                    // stream can end before parsebin has even exposed the
                    // audio (pads come one by one on another thread): then
                    // the verdict waits for the exposure to complete.
                    let tracks = tracks.clone();
                    sinkpad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
                        if is_eos(info)
                            && let Some(parent) = pad.parent_element()
                            && let Ok(mut exposure) = tracks.exposure.lock()
                        {
                            if !exposure.complete {
                                exposure.dropped_ended = true;
                            } else if !exposure.decoding {
                                post(&parent, NO_AUDIO);
                            }
                        }
                        gst::PadProbeReturn::Ok
                    });
                    let _ = pad.link(&sinkpad);
                }
            }
        });
        let exposed = tap.clone();
        parse.connect_no_more_pads(move |parse| {
            if let Ok(mut exposure) = exposed.exposure.lock() {
                exposure.complete = true;
                if exposure.dropped_ended && !exposure.decoding {
                    post(parse, NO_AUDIO);
                }
            }
        });
        // parsebin (1.22) says nothing when a container has no audio, but
        // its demuxer does: once it has made all its pads, count the audio ones.
        let demuxed = tap.clone();
        pipeline.connect_deep_element_added(move |_, _, element| {
            if !is_demuxer(element) {
                return;
            }
            let demuxed = demuxed.clone();
            element.connect_no_more_pads(move |demuxer| {
                let pads = demuxer.src_pads();
                let audio: Vec<_> = pads.iter().filter(|p| is_audio(p)).collect();
                // parsebin exposes its pads after this (once the group is
                // complete), so the choice is made before any is linked.
                let default = audio.iter().find_map(|pad| {
                    let (id, flags) = stream_start(pad)?;
                    flags.contains(gst::StreamFlags::SELECT).then_some(id)
                });
                if let Ok(mut slot) = demuxed.default_audio.lock() {
                    *slot = default;
                }
                let audio = audio.len() as u32;
                demuxed.demuxed_audio.store(audio, Ordering::SeqCst);
                if audio <= wanted {
                    post(demuxer, NO_AUDIO);
                }
            });
        });

        Ok(Self {
            pipeline,
            tap,
            trim,
            sink,
            mp3,
            waveform,
            chapters,
            loudness: stage,
            input_meter,
        })
    }

    /// Refuses an input longer than the limit: by its duration once known,
    /// and by the position reached when no duration is known.
    pub(super) fn check_length(
        &self,
        control: &Control,
        input_duration: &mut Option<Duration>,
    ) -> Result<(), TranscodeError> {
        if input_duration.is_none() {
            *input_duration = self
                .pipeline
                .query_duration::<gst::ClockTime>()
                .map(|d| Duration::from_nanos(d.nseconds()));
        }
        let reached = Duration::from_nanos(self.tap.position.load(Ordering::SeqCst));
        let length = input_duration.unwrap_or(reached).max(reached);
        if length > control.max_input {
            return Err(TranscodeError::TooLong(length, control.max_input));
        }
        Ok(())
    }

    /// Output position and total, from the tap and the trim.
    pub(super) fn progress(
        &self,
        input_duration: Option<Duration>,
    ) -> (Duration, Option<Duration>) {
        let (start, stop) = self.trim.map(|t| (t.start, t.stop)).unwrap_or((0, None));
        let input = self.tap.position.load(Ordering::SeqCst);
        let total = match (input_duration, stop) {
            (Some(d), Some(stop)) => Some((d.as_nanos() as u64).min(stop)),
            (None, Some(stop)) => Some(stop),
            (Some(d), None) => Some(d.as_nanos() as u64),
            (None, None) => None,
        }
        .map(|end| Duration::from_nanos(end.saturating_sub(start)));
        let position = Duration::from_nanos(input.saturating_sub(start));
        let position = total.map_or(position, |t| position.min(t));
        (position, total)
    }
}

/// An audioconvert without dither or noise shaping. No dither where an
/// encoder wants integers (voaacenc, flacenc): it costs CPU (random numbers
/// per sample), an AAC encoder cannot keep noise at -96 dB anyway, and FLAC
/// of a 16-bit source stays exact.
fn plain_audioconvert() -> Result<gst::Element, gst::glib::BoolError> {
    gst::ElementFactory::make("audioconvert")
        .property_from_str("dithering", "none")
        .property_from_str("noise-shaping", "none")
        .build()
}

/// Hands the encoder's input to the waveform.
fn feed_waveform(info: &gst::PadProbeInfo, waveform: &mut Waveform) {
    match &info.data {
        Some(gst::PadProbeData::Buffer(buffer)) => waveform.on_buffer(buffer),
        Some(gst::PadProbeData::Event(event)) => {
            if let gst::EventView::Caps(caps) = event.view() {
                waveform.on_caps(caps.caps());
            }
        }
        _ => {}
    }
}

/// Takes the stop off a segment going to the encoder: what it encodes
/// of our silence lies after the input's end, and would be clipped there
/// (an MP4 input's segment stops where its edit list ends).
fn open_the_end(info: &mut gst::PadProbeInfo) {
    let Some(gst::PadProbeData::Event(event)) = &mut info.data else {
        return;
    };
    let gst::EventView::Segment(segment) = event.view() else {
        return;
    };
    let Ok(mut segment) = segment.segment().clone().downcast::<gst::ClockTime>() else {
        return;
    };
    if segment.stop().is_some() {
        segment.set_stop(gst::ClockTime::NONE);
        *event = gst::event::Segment::new(&segment);
    }
}

/// Whether a probe sees the end of the stream.
fn is_eos(info: &gst::PadProbeInfo) -> bool {
    matches!(&info.data, Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos)
}

/// Gives the encoder at `pad` the silence that brings its last samples out
/// (see `aac_gapless.rs`), as the end of the stream reaches it (once: the
/// audio branch ends once); the probes let the silence pass uncounted.
fn pad_the_end(pad: &gst::Pad, tap: &Tap) {
    let bpf = u64::from(tap.encoder_bpf.load(Ordering::SeqCst));
    if bpf == 0 {
        return;
    }
    let frames = aac_gapless::padding(tap.samples.load(Ordering::SeqCst));
    // Zero is silence in any format the encoder takes (integers or floats).
    // No timestamps: the encoder takes it as following on.
    let silence = gst::Buffer::from_mut_slice(vec![0u8; (frames * bpf) as usize]);
    tap.padding.store(true, Ordering::SeqCst);
    let _ = pad.chain(silence);
    tap.padding.store(false, Ordering::SeqCst);
}

/// Posts an application message named `name` from `element`.
pub(super) fn post(element: &gst::Element, name: &str) {
    let message = gst::message::Application::builder(gst::Structure::new_empty(name))
        .src(element)
        .build();
    let _ = element.post_message(message);
}
