//! The clips the bench uploads, made once with ffmpeg under
//! `target/bench-media/` (720p H.264 test picture with a stereo AAC tone),
//! so every run uploads the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A clip to make: length, picture size and video bitrate (None: x264's
/// default quality; Some: constant bitrate, for a file of a known size).
pub struct Clip {
    pub name: &'static str,
    pub seconds: u32,
    pub size: &'static str,
    pub video_kbps: Option<u32>,
}

/// 540 s of 720p at a constant 7.39 Mb/s: 489 MiB, the reference's large input.
pub const LARGE: Clip = Clip {
    name: "load-large-540s",
    seconds: 540,
    size: "1280x720",
    video_kbps: Some(7390),
};

/// The batch's clip: 30 s of 720p.
pub const BATCH: Clip = Clip {
    name: "load-batch-30s",
    seconds: 30,
    size: "1280x720",
    video_kbps: None,
};

/// Two seconds: a 49 KB MP3 at 192 kb/s, for the download figures.
pub const SMALL: Clip = Clip {
    name: "load-small-2s",
    seconds: 2,
    size: "320x180",
    video_kbps: None,
};

impl Clip {
    /// The clip's file, made first if missing.
    pub fn path(&self) -> Result<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.mp4", self.name));
        if path.exists() {
            return Ok(path);
        }
        eprintln!("making {} with ffmpeg", path.display());
        let partial = dir.join(format!("{}.{}.mp4", self.name, std::process::id()));
        let mut ffmpeg = Command::new("ffmpeg");
        ffmpeg
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={}:rate=25", self.size))
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &self.seconds.to_string(), "-ac", "2"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ]);
        if let Some(kbps) = self.video_kbps {
            let rate = format!("{kbps}k");
            ffmpeg
                .args(["-b:v", &rate, "-minrate", &rate, "-maxrate", &rate])
                .args(["-bufsize", &format!("{}k", kbps / 2)])
                .args(["-x264-params", "nal-hrd=cbr"]);
        }
        ffmpeg.args(["-c:a", "aac", "-b:a", "160k"]).arg(&partial);
        let status = ffmpeg
            .status()
            .context("running ffmpeg (is it installed?)")?;
        if !status.success() {
            bail!("ffmpeg could not make {}", path.display());
        }
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }
}
