//! Building the graph, stage by stage (`Graph::build` names them): the
//! source (file and parsebin), the elements from the converter to the end
//! (`Stages`: the input's meter in a measuring pass, resampling to the
//! output's caps, the loudness stage when normalising, the encoder and the
//! sink), the tags, the probes that watch the audio on its way (chapters,
//! the tap and the trim, the encoder's input for counting, the waveform and
//! AAC's tail, LAME at the sink) and the choice of the audio track
//! (`tracks.rs`); other streams end in fakesinks. What the stages share is
//! explicit: the `Tap`, the chapter marks, the MP3 output and the waveform,
//! each in an `Arc` handed to the probes that need it.

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
use super::mp3::{InputGapless, Mp3Output};
use super::segment::Segment;
use super::tap::{Tap, Trim, count_samples, dropped_as_handled, tap_audio};
use super::tracks::{choose_audio_track, is_demuxer};
use super::waveform::Waveform;
use super::{Control, Output};
use crate::output::{Format, ResolvedOutput};

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
    /// Builds the graph in its stages: the source, the elements from the
    /// converter to the end, the tags, the links between them, the probes
    /// that watch the audio on its way, and the choice of the audio track
    /// as the input's streams appear.
    pub(super) fn build(
        input: &Path,
        options: &ResolvedOutput,
        end: End<'_>,
        gapless: Option<InputGapless>,
        loudness: Option<Mode>,
        segment: Option<Segment>,
    ) -> Result<Self, TranscodeError> {
        let pipeline = gst::Pipeline::new();
        // The sink's own end-of-stream message, which the pipeline would
        // keep until every sink has ended, is forwarded: the bus loop ends
        // the conversion on it (`bus.rs`).
        pipeline.set_property("message-forward", true);
        let (src, parse) = source(input)?;
        let stages = Stages::make(input, options, end, loudness)?;
        let comment_setter = tag(options, &stages.encoder)?;
        stages.link(&pipeline, &src, &parse)?;

        let tap = Arc::new(Tap::default());
        let _ = tap
            .caps_filter
            .set((stages.caps.downgrade(), options.options().clone()));
        let audio_in = sink_pad(&stages.convert, "audioconvert")?;
        if stages.output.is_some() {
            watch_chapters(&audio_in, &stages.chapters, options, comment_setter);
        }
        let trim = Trim::new(options, gapless, segment);
        watch_trim(&audio_in, &tap, trim);
        let encoder_in = sink_pad(
            stages.encoder.first().unwrap_or(&stages.sink),
            "the encoder",
        )?;
        watch_encoder_input(
            &encoder_in,
            &tap,
            &stages.waveform,
            options.format == Format::Aac,
        );
        watch_sink(&stages.sink, &stages.mp3)?;
        choose_audio_track(&pipeline, &parse, &tap, options.audio_track, audio_in);

        Ok(Self {
            pipeline,
            tap,
            trim,
            sink: stages.sink,
            mp3: stages.mp3,
            waveform: stages.waveform,
            chapters: stages.chapters,
            loudness: stages.loudness,
            input_meter: stages.input_meter,
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

/// The source: the file and parsebin, which plugs the container's demuxer
/// and the audio's parser. A demuxed stream that is not audio goes to a
/// fakesink as it is: parsing it (h264parse copies every video frame) is
/// wasted work. Whatever typefind finds (the container itself) is plugged.
fn source(input: &Path) -> Result<(gst::Element, gst::Element), TranscodeError> {
    let src = gst::ElementFactory::make("filesrc")
        .property("location", input.to_string_lossy().as_ref())
        .build()?;
    let parse = gst::ElementFactory::make("parsebin").build()?;
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
    Ok((src, parse))
}

/// The elements from the decoded audio to the end, in order, and what
/// they write to: the converter, (in a measuring pass) the input's meter,
/// the resampler and the caps the encoder gets, the loudness stage, the
/// encoder and muxer, and the sink (a file, or a fakesink whose probe
/// feeds LAME, or nothing in a measuring pass).
struct Stages<'a> {
    output: Option<&'a Path>,
    convert: gst::Element,
    meter_chain: Vec<gst::Element>,
    resample: gst::Element,
    caps: gst::Element,
    stage_chain: Vec<gst::Element>,
    encoder: Vec<gst::Element>,
    sink: gst::Element,
    mp3: Arc<Mutex<Option<Mp3Output>>>,
    waveform: Arc<Mutex<Option<Waveform>>>,
    chapters: Arc<ChapterMarks>,
    loudness: Option<LoudnessStage>,
    input_meter: Option<LoudnessStage>,
}

impl<'a> Stages<'a> {
    fn make(
        input: &Path,
        options: &ResolvedOutput,
        end: End<'a>,
        loudness: Option<Mode>,
    ) -> Result<Self, TranscodeError> {
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
        // An MP4's chapters are read from the file (its demuxer reports
        // none); other containers' come as the demuxer's table of contents.
        let chapters = ChapterMarks::new(match output {
            Some(_) => vidaud_mp4::read_chapters(input)
                .map_err(|e| TranscodeError::Input(format!("reading its chapters: {e}")))?,
            None => Vec::new(),
        });
        let encoder = match output {
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
        let mp3 = match (options.format, output) {
            (Format::Mp3, Some(output)) => Some(
                Mp3Output::create(output, options, chapters.clone())
                    .map_err(|e| TranscodeError::Output(format!("{}: {e}", output.display())))?,
            ),
            _ => None,
        };
        let sink = match output.filter(|_| mp3.is_none()) {
            Some(output) => gst::ElementFactory::make("filesink")
                .property("location", output.to_string_lossy().as_ref())
                .property("sync", false)
                .build()?,
            None => gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("enable-last-sample", false)
                .build()?,
        };
        Ok(Self {
            output,
            convert: plain_audioconvert()?,
            meter_chain,
            resample: gst::ElementFactory::make("audioresample").build()?,
            caps: gst::ElementFactory::make("capsfilter")
                .property("caps", output_caps(options, None))
                .build()?,
            stage_chain,
            encoder,
            sink,
            mp3: Arc::new(Mutex::new(mp3)),
            waveform: Arc::new(Mutex::new(waveform)),
            chapters,
            loudness: stage,
            input_meter,
        })
    }

    /// Adds every element to the pipeline and links the source to parsebin
    /// and the stages in order (parsebin's audio pad is linked to its
    /// decoder, and that to the converter, once it appears).
    fn link(
        &self,
        pipeline: &gst::Pipeline,
        src: &gst::Element,
        parse: &gst::Element,
    ) -> Result<(), TranscodeError> {
        pipeline.add_many([src, parse, &self.convert, &self.resample, &self.caps])?;
        pipeline.add_many(&self.meter_chain)?;
        pipeline.add_many(&self.stage_chain)?;
        pipeline.add_many(&self.encoder)?;
        pipeline.add(&self.sink)?;
        src.link(parse)?;
        let mut branch = vec![&self.convert];
        branch.extend(self.meter_chain.iter());
        branch.extend([&self.resample, &self.caps]);
        branch.extend(self.stage_chain.iter());
        branch.extend(self.encoder.iter());
        branch.push(&self.sink);
        gst::Element::link_many(branch)?;
        Ok(())
    }
}

/// Sets the title on the muxer (last of the encoder's elements, the one
/// that writes tags), and, for Opus and FLAC, the ReplayGain comments'
/// places; returns where the chapters' Vorbis comments go (Opus, FLAC).
fn tag(
    options: &ResolvedOutput,
    encoder: &[gst::Element],
) -> Result<Option<gst::TagSetter>, TranscodeError> {
    let tag_setter = encoder
        .iter()
        .rev()
        .find_map(|e| e.clone().dynamic_cast::<gst::TagSetter>().ok());
    if let Some(title) = options.title.as_deref().filter(|t| !t.is_empty())
        && !encoder.is_empty()
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
    Ok(comment_setter)
}

fn sink_pad(element: &gst::Element, what: &str) -> Result<gst::Pad, TranscodeError> {
    element
        .static_pad("sink")
        .ok_or_else(|| TranscodeError::Internal(format!("{what} has no sink pad")))
}

/// Watches the decoded audio for the chapters (a table of contents, the
/// first audio's time) ahead of the tap, so that it sees the first audio
/// even where a trim drops it.
fn watch_chapters(
    audio_in: &gst::Pad,
    marks: &Arc<ChapterMarks>,
    options: &ResolvedOutput,
    comment_setter: Option<gst::TagSetter>,
) {
    let marks = marks.clone();
    let options = options.clone();
    audio_in.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            let ret = chapters::watch(pad, info, &marks, &options, comment_setter.as_ref());
            dropped_as_handled(info, ret)
        },
    );
}

/// The tap on the decoded audio: position, the trim, the input's format.
fn watch_trim(audio_in: &gst::Pad, tap: &Arc<Tap>, trim: Option<Trim>) {
    let tap = tap.clone();
    audio_in.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH,
        move |pad, info| {
            let ret = tap_audio(pad, info, &tap, trim);
            dropped_as_handled(info, ret)
        },
    );
}

/// What the encoder is given: counted (the samples the output holds), fed
/// to the waveform, and, for AAC, followed by the silence that brings its
/// last samples out.
fn watch_encoder_input(
    encoder_in: &gst::Pad,
    tap: &Arc<Tap>,
    waveform: &Arc<Mutex<Option<Waveform>>>,
    pads_the_end: bool,
) {
    let tap = tap.clone();
    let waveform = waveform.clone();
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

/// The end: LAME fed from the sink's input (MP3).
fn watch_sink(
    sink: &gst::Element,
    mp3: &Arc<Mutex<Option<Mp3Output>>>,
) -> Result<(), TranscodeError> {
    let sink_in = sink_pad(sink, "the sink")?;
    if mp3.lock().is_ok_and(|slot| slot.is_some()) {
        let mp3 = mp3.clone();
        sink_in.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |pad, info| {
                let ret = encode_mp3(pad, info, &mp3);
                dropped_as_handled(info, ret)
            },
        );
    }
    Ok(())
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
pub(super) fn is_eos(info: &gst::PadProbeInfo) -> bool {
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
