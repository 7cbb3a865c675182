//! A client's file name made safe: never a path, a control or format
//! character, a leading dot or space, nothing, or over the length limit;
//! and made safe once is safe (sanitizing again changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidaud_upload::{MAX_FILENAME_CHARS, sanitize_filename};

fuzz_target!(|raw: &str| {
    let name = sanitize_filename(raw);
    assert!(!name.is_empty());
    assert!(name.chars().count() <= MAX_FILENAME_CHARS, "{name:?}");
    assert!(!name.contains(['/', '\\']), "{name:?}");
    assert!(!name.chars().any(char::is_control), "{name:?}");
    assert!(
        !name.starts_with(['.', ' ']) && !name.ends_with(' '),
        "{name:?}"
    );
    assert_eq!(sanitize_filename(&name), name, "from {raw:?}");
});
