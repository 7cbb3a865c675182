//! Walking an untrusted MP4's box tree as the readers do: every header
//! found lies within its parent, whatever the sizes say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidaud_mp4::boxes::{BoxHeader, children, small_body};

fn walk(source: &mut std::io::Cursor<&[u8]>, parent: BoxHeader, depth: u32) {
    if depth > 8 {
        return;
    }
    let Ok(kids) = children(source, parent.body, parent.end, 64) else {
        return;
    };
    for kid in kids {
        assert!(kid.body <= kid.end && parent.body <= kid.body && kid.end <= parent.end);
        if let Ok(Some(body)) = small_body(source, kid, 4096) {
            assert_eq!(body.len() as u64, kid.end - kid.body);
        }
        walk(source, kid, depth + 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut source = std::io::Cursor::new(data);
    let whole = BoxHeader {
        kind: *b"file",
        body: 0,
        end: data.len() as u64,
    };
    walk(&mut source, whole, 0);
});
