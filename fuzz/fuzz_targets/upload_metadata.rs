//! tus's `Upload-Metadata` as any client may send it: refused naming the
//! key at fault, or pairs that, sent again as a client would encode them,
//! read back the same.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use vidaud_upload::{MAX_METADATA_BYTES, MetadataError, metadata_pairs};

fuzz_target!(|raw: &str| {
    match metadata_pairs(raw) {
        Err(MetadataError::TooLong) => assert!(raw.len() > MAX_METADATA_BYTES),
        Err(refused) => assert!(refused.key().is_some(), "{refused}"),
        Ok(pairs) => {
            let again: Vec<String> = pairs
                .iter()
                .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
                .collect();
            let again = again.join(",");
            if again.len() <= MAX_METADATA_BYTES {
                assert_eq!(metadata_pairs(&again).as_ref(), Ok(&pairs), "{again}");
            }
        }
    }
});
