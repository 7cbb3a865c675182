//! The encoder end of the graph: which elements encode (and mux) each
//! format, the raw caps they get, and the MP3 probe that feeds LAME.

use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;

use super::error::TranscodeError;
use super::mp3::{Mp3Error, Mp3Output};
use crate::output::{Encoding, Format, OutputOptions, ResolvedOutput};

/// The encoder (and muxer) elements for a format, in order; none for MP3,
/// whose encoder is called from a probe on the sink (`mp3/output.rs`).
pub(super) fn encoder_chain(options: &ResolvedOutput) -> Result<Vec<gst::Element>, TranscodeError> {
    let make = |name: &str| {
        gst::ElementFactory::make(name).build().map_err(|_| {
            TranscodeError::Internal(format!("the GStreamer element {name} is missing"))
        })
    };
    // Resolved when the job was created: nothing is defaulted here.
    let bits_per_second = match options.encoding() {
        Encoding::Bitrate(kbps) => i32::try_from(kbps.saturating_mul(1000)).unwrap_or(i32::MAX),
        Encoding::Quality(_) | Encoding::Lossless => 0,
    };
    Ok(match options.format {
        Format::Mp3 => Vec::new(),
        Format::Opus => {
            let encode = make("opusenc")?;
            encode.set_property("bitrate", bits_per_second);
            vec![encode, make("oggmux")?]
        }
        Format::Aac => {
            let encode = make("voaacenc")?;
            encode.set_property("bitrate", bits_per_second);
            vec![encode, make("mp4mux")?]
        }
        Format::Flac => vec![make("flacenc")?],
    })
}

/// Raw audio caps the encoder gets: the rate and channels asked for, else
/// the input's rate if the format takes it (the nearest one it takes if
/// not: a 384 kHz FLAC comes out at 192 kHz, as asking for 384 kHz is
/// refused) and the input's channels, downmixed to stereo for the lossy
/// formats (FLAC keeps them all). The input is known once the audio is
/// decoded. LAME gets floats in either layout, as the decoder made them;
/// the loudness stage interleaved floats.
pub(super) fn output_caps(
    options: &OutputOptions,
    input: Option<&gst_audio::AudioInfo>,
) -> gst::Caps {
    let mut caps = gst::Caps::builder("audio/x-raw");
    let input_channels = input.map(|i| i.channels());
    if options.loudness_lufs.is_some() || options.replaygain {
        // The loudness stage's floats.
        caps = caps
            .field("format", gst_audio::AUDIO_FORMAT_F32.to_str())
            .field("layout", "interleaved");
    } else if options.format == Format::Mp3 {
        caps = caps
            .field("format", gst_audio::AUDIO_FORMAT_F32.to_str())
            .field("layout", gst::List::new(["interleaved", "non-interleaved"]));
    }
    let rate = options
        .sample_rate
        .or_else(|| input.map(|i| options.format.nearest_sample_rate(i.rate())));
    caps = match rate {
        Some(rate) => caps.field("rate", rate as i32),
        None => caps.field(
            "rate",
            gst::List::new(options.format.sample_rates().iter().map(|r| *r as i32)),
        ),
    };
    let lossy = options.format != Format::Flac;
    match (options.channels, input_channels) {
        (Some(channels), _) => caps = caps.field("channels", channels as i32),
        (None, Some(input)) if lossy => caps = caps.field("channels", input.min(2) as i32),
        (None, None) if lossy => caps = caps.field("channels", gst::IntRange::new(1, 2)),
        (None, _) => {}
    }
    caps.build()
}

/// Hands the MP3 branch's audio to the encoder. A failure (the disk is
/// full, say) is posted as the sink's error, which fails the conversion.
pub(super) fn encode_mp3(
    pad: &gst::Pad,
    info: &mut gst::PadProbeInfo,
    mp3: &Mutex<Option<Mp3Output>>,
) -> gst::PadProbeReturn {
    let Ok(mut slot) = mp3.lock() else {
        return gst::PadProbeReturn::Drop;
    };
    let Some(output) = slot.as_mut() else {
        return gst::PadProbeReturn::Drop; // failed before
    };
    let result = match &info.data {
        Some(gst::PadProbeData::Buffer(buffer)) => output.on_buffer(buffer),
        Some(gst::PadProbeData::Event(event)) => output.on_event(event),
        _ => Ok(()),
    };
    match result {
        Ok(()) => gst::PadProbeReturn::Ok,
        Err(error) => {
            *slot = None;
            if let Some(sink) = pad.parent_element() {
                // Posted as the sink's: `classify` tells the output's
                // failures (resource) from the audio's (stream).
                match error {
                    Mp3Error::Write(_) => {
                        gst::element_error!(sink, gst::ResourceError::Write, ["{error}"])
                    }
                    _ => gst::element_error!(sink, gst::StreamError::Encode, ["{error}"]),
                }
            }
            gst::PadProbeReturn::Drop
        }
    }
}
