//! A client's name for its file, made safe to keep, show in a list, put in
//! a `Content-Disposition` header and a mail.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The longest name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 200;

/// The last path component of a client-supplied name, without control
/// characters and without format characters (Unicode category Cf: the
/// bidirectional overrides and isolates, zero-width joiners, soft hyphens),
/// which would make it display as another name (`…\u{202e}gpm.exe` as
/// `…exe.mpg`); no leading dot or space; at most 200 characters;
/// `upload` when nothing is left.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && c.general_category() != GeneralCategory::Format)
        .take(MAX_FILENAME_CHARS)
        .collect::<String>()
        // No leading dot (a hidden file), and no space around it (which a
        // dot stripped could uncover: `. x` is `x`, not ` x`).
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end()
        .to_owned();
    if clean.is_empty() {
        "upload".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_filename;

    #[test]
    fn hostile_names_are_tamed() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\clip.mp4"), "clip.mp4");
        assert_eq!(sanitize_filename("a\r\nBcc: x.mp4"), "aBcc: x.mp4");
        assert_eq!(
            sanitize_filename("nBcc: a@b\u{202e}gpm.exe"),
            "nBcc: a@bgpm.exe"
        );
        assert_eq!(
            sanitize_filename("a\u{200d}b\u{200b}c\u{2066}d\u{2069}\u{feff}.mp4"),
            "abcd.mp4"
        );
        assert_eq!(
            sanitize_filename("caf\u{e9} \u{1f3b5}.mp4"),
            "caf\u{e9} \u{1f3b5}.mp4"
        );
        assert_eq!(sanitize_filename(""), "upload");
        assert_eq!(sanitize_filename(".."), "upload");
        // Found by the fuzz target upload_filename: a dot stripped left a
        // leading space (and sanitizing again changed the name).
        assert_eq!(sanitize_filename(". ssswd"), "ssswd");
        assert_eq!(sanitize_filename(" . .x "), "x");
        assert_eq!(sanitize_filename(&"é".repeat(500)).chars().count(), 200);
    }
}
