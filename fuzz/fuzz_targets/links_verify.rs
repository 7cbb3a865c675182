//! A signed link's parameters as anyone may send them (`fid`, `exp`,
//! `kid`, `sig` from a URL): verifying never panics, and a link opens only
//! the file, until the expiry, it was signed for, under a key in use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidaud_links::{LinkError, LinkKeys, LinkProof};

const SECRET: &[u8] = b"a jwt secret of at least thirty-two bytes";

fuzz_target!(|input: (&str, u64, &str, &str, &str, u64)| {
    let (fid, expires, key_id, signature, other_fid, now) = input;
    let keys = LinkKeys::new(
        &["k1:a link key of at least thirty-two bytes".to_owned()],
        SECRET,
        60,
    )
    .expect("keys");
    // Anything sent: refused or opened, never a panic.
    let sent = LinkProof {
        expires,
        key_id: key_id.to_owned(),
        signature: signature.to_owned(),
    };
    let _ = keys.verify(fid, &sent, now);
    // What we signed opens its file until it expires, and nothing else.
    let signed = keys.sign(fid, expires);
    let opened = keys.verify(fid, &signed, now);
    if now < expires {
        assert_eq!(opened, Ok(()));
    } else {
        assert_eq!(opened, Err(LinkError::Expired));
    }
    if other_fid != fid {
        assert_eq!(
            keys.verify(other_fid, &signed, now),
            Err(LinkError::BadSignature)
        );
    }
    if let Some(later) = expires.checked_add(1) {
        let stretched = LinkProof {
            expires: later,
            ..signed.clone()
        };
        assert_eq!(
            keys.verify(fid, &stretched, now),
            Err(LinkError::BadSignature)
        );
    }
});
