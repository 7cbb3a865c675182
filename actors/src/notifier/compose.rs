//! What a job's mail says: a subject, a plain-text part and an HTML part
//! with the same facts — the format the user chose, the audio's size and
//! length, a download link that works without a login and until when.
//!
//! Everything of the user's (the file name, the failure reason) is cleaned
//! of control characters (no header injection through the subject) and
//! escaped in the HTML part.

use crate::domain::{AudioSummary, JobState, Mp3Message, Timestamp};
use crate::output::OutputOptions;

/// A mail's subject and its two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the mail of one job's end is made of.
pub struct Notice<'a> {
    pub message: &'a Mp3Message,
    pub output: &'a OutputOptions,
    pub audio: Option<AudioSummary>,
    /// The job's page in the API (needs a login).
    pub job_url: String,
    /// A signed download link and when it stops working.
    pub download: Option<(String, Timestamp)>,
}

/// The longest file name a mail repeats.
const MAX_NAME_CHARS: usize = 120;

pub fn compose(notice: &Notice<'_>) -> Composed {
    let name = clean(&notice.message.filename, MAX_NAME_CHARS);
    let format = notice.output.format.label();
    let job_url = &notice.job_url;
    match (notice.message.state, &notice.download) {
        (JobState::Done, Some((link, expires))) => {
            let facts = facts(notice.output, notice.audio);
            let until = human_time(*expires);
            Composed {
                subject: format!("Your {format} of \"{name}\" is ready"),
                text: format!(
                    "Your upload \"{name}\" has been converted to {facts}.\n\n\
                     Download it (no login needed; the link works until {until}):\n\
                     {link}\n\n\
                     The job, with your login: {job_url}\n"
                ),
                html: page(&format!(
                    "<p>Your upload <b>{}</b> has been converted to {}.</p>\n\
                     <p><a href=\"{}\" style=\"display:inline-block;padding:10px 18px;\
                     background:#1f6feb;color:#ffffff;text-decoration:none;border-radius:6px\">\
                     Download the {format}</a></p>\n\
                     <p style=\"color:#555555;font-size:90%\">The link needs no login and works \
                     until {until}. The job, with your login: <a href=\"{}\">{}</a></p>",
                    escape(&name),
                    escape(&facts),
                    escape(link),
                    escape(job_url),
                    escape(job_url),
                )),
            }
        }
        _ => {
            let reason = clean(notice.message.error.as_deref().unwrap_or("unknown"), 500);
            Composed {
                subject: format!("The {format} of \"{name}\" could not be made"),
                text: format!(
                    "Your upload \"{name}\" could not be converted to {format}.\n\n\
                     Reason: {reason}\nJob:    {job_url}\n"
                ),
                html: page(&format!(
                    "<p>Your upload <b>{}</b> could not be converted to {format}.</p>\n\
                     <p>Reason: {}</p>\n<p>Job: <a href=\"{}\">{}</a></p>",
                    escape(&name),
                    escape(&reason),
                    escape(job_url),
                    escape(job_url),
                )),
            }
        }
    }
}

/// "Opus, 96 kb/s: 3.2 MB, 4:05".
fn facts(output: &OutputOptions, audio: Option<AudioSummary>) -> String {
    let mut facts = output.format.label().to_owned();
    match (output.bitrate_kbps, output.quality) {
        (Some(kbps), _) => facts.push_str(&format!(", {kbps} kb/s")),
        (None, Some(quality)) => facts.push_str(&format!(", VBR quality {quality}")),
        (None, None) => facts.push_str(", lossless"),
    }
    if let Some(audio) = audio {
        facts.push_str(&format!(
            ": {}, {}",
            human_size(audio.bytes),
            human_length(audio.duration_ms)
        ));
    }
    facts
}

/// Decimal units, as file managers show sizes: "812 kB", "3.2 MB".
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// "0:07", "4:05", "1:02:03" (rounded to the second).
fn human_length(millis: u64) -> String {
    let secs = (millis + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// "2026-12-09 14:30 UTC".
fn human_time(at: Timestamp) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at.millis().div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => at.to_rfc3339(),
    }
}

fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family:-apple-system,'Segoe UI',Roboto,sans-serif;\
         font-size:15px;color:#1f2328\">\n{body}\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::{FileId, JobId};
    use crate::output::Format;

    fn message(state: JobState) -> Mp3Message {
        Mp3Message {
            job_id: JobId::new(),
            video_fid: FileId::new(),
            mp3_fid: FileId::new(),
            username: "u@example.com".into(),
            user_id: None,
            filename: "evil\r\nBcc: x@y <b>.mp4".into(),
            state,
            error: Some("the file has no audio track".into()),
        }
    }

    fn opus() -> OutputOptions {
        OutputOptions {
            format: Format::Opus,
            bitrate_kbps: Some(96),
            ..OutputOptions::default()
        }
    }

    #[test]
    fn a_done_mail_names_the_format_size_length_and_link() {
        let message = message(JobState::Done);
        let link = "http://h/download?fid=1&exp=2&kid=j0&sig=x".to_owned();
        let mail = compose(&Notice {
            message: &message,
            output: &opus(),
            audio: Some(AudioSummary {
                bytes: 3_216_000,
                duration_ms: 245_400,
                loudness: None,
                replaygain: None,
            }),
            job_url: "http://h/jobs/1".into(),
            download: Some((link.clone(), Timestamp::from_millis(1_796_000_000_000))),
        });
        assert!(mail.subject.starts_with("Your Opus of"), "{}", mail.subject);
        assert!(!mail.subject.contains(['\r', '\n']));
        assert!(
            mail.text.contains("Opus, 96 kb/s: 3.2 MB, 4:05"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains(&link));
        assert!(mail.text.contains("2026-11-30"), "{}", mail.text);
        assert!(mail.html.contains(&escape(&link)));
        assert!(mail.html.contains("&lt;b&gt;"), "the name is escaped");
    }

    #[test]
    fn a_failed_mail_gives_the_reason() {
        let message = message(JobState::Failed);
        let mail = compose(&Notice {
            message: &message,
            output: &OutputOptions::default(),
            audio: None,
            job_url: "http://h/jobs/1".into(),
            download: None,
        });
        assert!(
            mail.subject.contains("could not be made"),
            "{}",
            mail.subject
        );
        assert!(mail.subject.contains("MP3"));
        assert!(mail.text.contains("no audio track"));
        assert!(mail.html.contains("no audio track"));
    }

    #[test]
    fn sizes_and_lengths_read_as_people_write_them() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(812_000), "812 kB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(human_size(45_000_000), "45 MB");
        assert_eq!(human_length(7_400), "0:07");
        assert_eq!(human_length(3_723_000), "1:02:03");
    }
}
