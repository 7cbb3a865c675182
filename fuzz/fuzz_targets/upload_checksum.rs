//! tus's `Upload-Checksum`: refused, or an algorithm the server takes
//! with a digest of exactly its length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidaud_upload::checksum;

fuzz_target!(|text: &str| {
    if let Ok((algorithm, digest)) = checksum(text) {
        assert_eq!(digest.len(), algorithm.digest_len());
    }
});
