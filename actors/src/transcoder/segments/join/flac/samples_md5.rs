//! STREAMINFO's MD5: the digest of the stream's samples (signed, little-
//! endian, interleaved, in the fewest bytes their bit depth needs), made by
//! decoding the joined file with GStreamer's FLAC decoder, a buffer at a
//! time.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;
use md5::{Digest, Md5};

/// The MD5 of the samples of the FLAC file at `path`.
pub(super) fn of(path: &std::path::Path) -> Result<[u8; 16], String> {
    gst::init().map_err(|e| e.to_string())?;
    let description = "filesrc name=src ! flacparse ! flacdec ! fakesink name=sink sync=false";
    let pipeline = gst::parse::launch(description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_owned())?;
    let named = |name: &str| {
        pipeline
            .by_name(name)
            .ok_or_else(|| format!("no element {name}"))
    };
    named("src")?.set_property("location", path.to_string_lossy().as_ref());
    let pad = named("sink")?
        .static_pad("sink")
        .ok_or_else(|| "the sink has no pad".to_owned())?;
    let hasher = Arc::new(Mutex::new((Md5::new(), 0usize)));
    let probe = hasher.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let Ok(mut state) = probe.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => {
                    if let gst::EventView::Caps(caps) = event.view()
                        && let Ok(audio) = gst_audio::AudioInfo::from_caps(caps.caps())
                    {
                        state.1 = kept_bytes(audio.format());
                    }
                }
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Ok(map) = buffer.map_readable() {
                        let keep = state.1;
                        hash(&mut state.0, &map, keep);
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    let result = run(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let state = hasher
        .lock()
        .map_err(|_| "the digest was poisoned".to_owned())?;
    Ok(state.0.clone().finalize().into())
}

/// Bytes of each sample the digest takes, from the decoder's format: a
/// 24-bit sample comes in 32 bits, of which the low three count.
fn kept_bytes(format: gst_audio::AudioFormat) -> usize {
    match format {
        gst_audio::AudioFormat::S8 => 1,
        gst_audio::AudioFormat::S16le => 2,
        gst_audio::AudioFormat::S2432le => 3,
        _ => 4,
    }
}

/// Hashes `data`'s samples: whole when each sample's bytes all count, else
/// the low `keep` bytes of each 32-bit one.
fn hash(hasher: &mut Md5, data: &[u8], keep: usize) {
    if keep != 3 {
        hasher.update(data);
        return;
    }
    let mut packed = Vec::with_capacity(data.len() / 4 * 3);
    for sample in data.chunks_exact(4) {
        packed.extend_from_slice(&sample[..3]);
    }
    hasher.update(&packed);
}

fn run(pipeline: &gst::Pipeline) -> Result<(), String> {
    let bus = pipeline.bus().ok_or_else(|| "no bus".to_owned())?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => return Err(err.error().to_string()),
            _ => {}
        }
    }
    Err("the decoder stopped without an end".to_owned())
}
