//! `vidaud convert IN OUT`: the node's transcoder on local files.
//!
//! Exit codes: 0 done, 1 internal error, 2 bad usage, 3 input unreadable or
//! not media, 4 no audio track, 5 audio present but not decodable.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use vidaud_actors::transcoder::{Control, EncodeOptions, TranscodeError, transcode};

use crate::cli::ConvertArgs;

pub fn run(args: ConvertArgs) -> ExitCode {
    let options = EncodeOptions {
        bitrate_kbps: args.bitrate,
        title: args.title.clone().or_else(|| {
            args.input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        }),
    };
    if let Err(e) = options.validate() {
        eprintln!("vidaud convert: {e}");
        return ExitCode::from(2);
    }
    let dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let partial = match tempfile::NamedTempFile::new_in(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vidaud convert: cannot write in {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    };
    let mut writer = match partial.reopen() {
        Ok(f) => std::io::BufWriter::with_capacity(256 * 1024, f),
        Err(e) => {
            eprintln!("vidaud convert: {e}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let output =
        Box::new(move |bytes: &[u8]| writer.write_all(bytes).and_then(|_| writer.flush()).is_ok());
    let result = transcode(
        &args.input,
        &options,
        output,
        &Control::default(),
        &mut |_| {},
    );
    match result {
        Ok(summary) => {
            if let Err(e) = partial.persist(&args.output) {
                eprintln!(
                    "vidaud convert: cannot create {}: {e}",
                    args.output.display()
                );
                return ExitCode::from(1);
            }
            let secs = summary.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            eprintln!(
                "{}: {:.1} s of audio, {} bytes, in {:.2} s",
                args.output.display(),
                secs,
                summary.bytes,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vidaud convert: {}: {e}", args.input.display());
            ExitCode::from(match e {
                TranscodeError::Input(_) | TranscodeError::NotMedia => 3,
                TranscodeError::NoAudio => 4,
                TranscodeError::Unsupported(_) | TranscodeError::Decode(_) => 5,
                TranscodeError::OutputClosed
                | TranscodeError::Internal(_)
                | TranscodeError::Stalled(_)
                | TranscodeError::TimedOut(_)
                | TranscodeError::Cancelled => 1,
            })
        }
    }
}
