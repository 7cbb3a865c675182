//! The suite's SMTP sink: the Maildir it writes, mails to a recipient,
//! their ids and the download links in them.

use super::*;

pub fn maildir() -> PathBuf {
    std::env::var("VIDAUD_TEST_MAILDIR")
        .map(PathBuf::from)
        .expect("VIDAUD_TEST_MAILDIR is not set: run the suite with scripts/test")
}

/// The Message-ID header of a raw mail.
pub fn message_id(mail: &str) -> Option<String> {
    mail.lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
        })
        .map(|v| v.trim().to_owned())
}

/// The download link in a mail (its quoted-printable encoding undone).
pub fn download_link_in(mail: &str) -> Option<String> {
    let text = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains("/download?"))
        .map(str::to_owned)
}

pub async fn mails_to(to: &str, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = read_mails_to(to);
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn read_mails_to(to: &str) -> Vec<String> {
    let header = format!("To: {to}");
    let Ok(entries) = std::fs::read_dir(maildir().join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.lines().any(|l| l.trim_end() == header))
        .collect()
}
