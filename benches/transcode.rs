//! Criterion bench of the transcoder alone (no services): one fixed input,
//! converted to each output format. The input is made once with ffmpeg
//! under `target/bench-media/` (the load bench's batch clip: 30 s of 720p
//! H.264 with stereo AAC, 44.1 kHz). For the ratio against ffmpeg on the
//! same machine, run `benches/vs-ffmpeg`; this bench tracks our own changes
//! over time.
//!
//!     cargo bench --bench transcode

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vidaud_actors::output::{OutputDefaults, OutputOptions};
use vidaud_actors::transcoder::{Control, Output, transcode};

// The clips the load bench uploads; this bench takes its 30 s 720p one.
#[allow(dead_code)]
#[path = "load/media.rs"]
mod media;

const SECONDS: u32 = media::BATCH.seconds;

fn formats(c: &mut Criterion) {
    let input = media::BATCH.path().expect("bench input");
    let out = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("transcode-30s-720p");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(SECONDS)));
    for format in ["mp3", "opus", "aac", "flac"] {
        let options = OutputOptions::from_pairs([("format", format)])
            .expect("valid")
            .resolve(&OutputDefaults::default());
        let audio = out.path().join(format!("out.{format}"));
        let waveform = out.path().join(format!("out.{format}.json"));
        // With its waveform, as a node converts.
        let output = Output {
            audio: &audio,
            waveform: Some(&waveform),
        };
        group.bench_function(format, |b| {
            b.iter(|| {
                transcode(&input, &options, output, &Control::default(), &mut |_| {})
                    .expect("converts")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);
