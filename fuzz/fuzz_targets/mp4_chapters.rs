//! An untrusted MP4's chapters (`chpl`, else the QuickTime chapter track),
//! as the conversion child reads them: any bytes give a list or an I/O
//! error, never a panic, and never more than a `chpl` or our sample limit
//! can hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut source = std::io::Cursor::new(data);
    if let Ok(chapters) = vidaud_mp4::read_chapters_from(&mut source) {
        assert!(chapters.len() <= 255, "{} chapters", chapters.len());
        for chapter in &chapters {
            assert!(
                chapter.title.len() <= 4 * 1024,
                "a title of {} bytes",
                chapter.title.len()
            );
        }
    }
});
