//! Criterion bench of the transcoder alone (no services): one fixed input,
//! converted to each output format. The input is made once with ffmpeg
//! under `target/bench-media/` (30 s of 720p H.264 with stereo AAC, 44.1
//! kHz). For the ratio against ffmpeg on the same machine, run
//! `benches/vs-ffmpeg`; this bench tracks our own changes over time.
//!
//!     cargo bench --bench transcode

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vidaud_actors::output::OutputOptions;
use vidaud_actors::transcoder::{Control, transcode};

const SECONDS: u32 = 30;

fn input() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).expect("bench media dir");
    let path = dir.join(format!("criterion-{SECONDS}s.mp4"));
    if !path.exists() {
        let partial = dir.join(format!("criterion-{SECONDS}s.{}.mp4", std::process::id()));
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
            ])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &SECONDS.to_string(), "-ac", "2"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "160k"])
            .arg(&partial)
            .status()
            .expect("ffmpeg makes the bench input");
        assert!(status.success(), "ffmpeg could not make the bench input");
        std::fs::rename(&partial, &path).expect("bench input");
    }
    path
}

fn formats(c: &mut Criterion) {
    let input = input();
    let out = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("transcode-30s-720p");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(SECONDS)));
    for format in ["mp3", "opus", "aac", "flac"] {
        let options = OutputOptions::from_pairs([("format", format)])
            .expect("valid")
            .with_defaults(192);
        let output = out.path().join(format!("out.{format}"));
        group.bench_function(format, |b| {
            b.iter(|| {
                transcode(&input, &options, &output, &Control::default(), &mut |_| {})
                    .expect("converts")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);
