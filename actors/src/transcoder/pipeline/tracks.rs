//! Which streams are audio, which element demuxes, the stream-start flags
//! that mark a default track, and linking the chosen track to its decoder.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::error::TranscodeError;

/// Whether a demuxer or parsebin pad carries audio: by its caps, else by
/// its name (demuxers name them `audio_0`, `audio_00`, `audio_0_0041`...).
pub(super) fn is_audio(pad: &gst::Pad) -> bool {
    let caps = pad.current_caps().or_else(|| {
        let any = pad.query_caps(None);
        (!any.is_any()).then_some(any)
    });
    match caps.as_ref().and_then(|c| c.structure(0)) {
        Some(s) => s.name().starts_with("audio/"),
        None => pad.name().starts_with("audio"),
    }
}

pub(super) fn is_demuxer(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| {
        f.metadata(gst::ELEMENT_METADATA_KLASS)
            .is_some_and(|k| k.contains("Demux"))
    })
}

/// The id and flags a stream's stream-start event gives it.
pub(super) fn stream_start(pad: &gst::Pad) -> Option<(String, gst::StreamFlags)> {
    let start = pad.sticky_event::<gst::event::StreamStart>(0)?;
    Some((start.stream_id().to_owned(), start.stream_flags()))
}

/// Decodes a parsed audio stream: a decodebin (a decoder, no demuxer and so
/// no queue or thread of its own) whose raw audio goes to `audio_in`.
pub(super) fn link_decoder(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    audio_in: &gst::Pad,
) -> Result<(), TranscodeError> {
    let decode = gst::ElementFactory::make("decodebin").build()?;
    pipeline.add(&decode)?;
    let target = audio_in.clone();
    decode.connect_pad_added(move |_, raw| {
        if !target.is_linked() {
            let _ = raw.link(&target);
        }
    });
    decode.sync_state_with_parent()?;
    let sink = decode
        .static_pad("sink")
        .ok_or_else(|| TranscodeError::Internal("decodebin has no sink pad".into()))?;
    pad.link(&sink)
        .map_err(|e| TranscodeError::Internal(format!("linking the audio decoder: {e:?}")))?;
    Ok(())
}
