//! What an uploading client sends besides the bytes, parsed: tus's
//! `Upload-Metadata` (key and base64 value pairs) and `Upload-Checksum`,
//! and a file's name made safe to keep, show and put in a header.
//!
//! A crate of its own, with no dependency on the node: these read what any
//! client sends, so they are fuzzed (`fuzz/`). The node's tus routes and
//! multipart upload call them and turn their errors into problem answers.

mod checksum;
mod filename;
mod metadata;

pub use checksum::{Algorithm, ChecksumError, checksum};
pub use filename::{MAX_FILENAME_CHARS, sanitize_filename};
pub use metadata::{MAX_METADATA_BYTES, MetadataError, metadata_pairs};
