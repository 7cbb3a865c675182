//! Which streams are audio, which element demuxes, the stream-start flags
//! that mark a default track, choosing the audio track as streams appear
//! and linking it to its decoder.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::NO_AUDIO;
use super::error::TranscodeError;
use super::graph::{is_eos, post};
use super::tap::Tap;

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

/// Chooses the audio track as the input's streams appear: the one asked
/// for (`audio_track`, counting audio streams from 0), else the one its
/// container marks default, else the first; it is linked to its decoder
/// and on to `audio_in`. Every other stream (video, the other audio
/// tracks) is dropped still encoded, on its own thread. Says `NO_AUDIO`
/// when there is none to choose: by the demuxer's count of audio pads
/// once it has made them all, or, where no demuxer speaks (one stream, not
/// the track asked for), when a dropped stream ends and none was decoded.
pub(super) fn choose_audio_track(
    pipeline: &gst::Pipeline,
    parse: &gst::Element,
    tap: &Arc<Tap>,
    asked: Option<u32>,
    audio_in: gst::Pad,
) {
    let wanted = asked.unwrap_or(0);
    let weak_pipeline = pipeline.downgrade();
    let tracks = tap.clone();
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
            if chosen && link_decoder(&pipeline, pad, &audio_in).is_ok() {
                if let Ok(mut exposure) = tracks.exposure.lock() {
                    exposure.decoding = true;
                }
                return;
            }
        }
        drop_stream(&pipeline, pad, &tracks);
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
}

/// A stream not chosen ends in a fakesink of its own. The last word on
/// "no audio" where no demuxer speaks: its end came and no audio stream
/// went to a decoder. A small file's dropped stream can end before
/// parsebin has even exposed the audio (pads come one by one on another
/// thread): then the verdict waits for the exposure to complete.
fn drop_stream(pipeline: &gst::Pipeline, pad: &gst::Pad, tracks: &Arc<Tap>) {
    let Ok(fakesink) = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
    else {
        return;
    };
    if pipeline.add(&fakesink).is_err() {
        return;
    }
    let _ = fakesink.sync_state_with_parent();
    let Some(sinkpad) = fakesink.static_pad("sink") else {
        return;
    };
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
