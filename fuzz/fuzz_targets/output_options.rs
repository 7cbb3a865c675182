//! Output options as users send them (query parameters, form fields, tus
//! metadata, `vidaud convert` flags: `name=value` pairs): any pairs are
//! refused naming a field, or give options that validate, resolve, and
//! read back from their stored form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidaud_output::{OPTIONS, OutputDefaults, OutputOptions, ResolvedOutput};

fuzz_target!(|data: &[u8]| {
    // Lines of `name=value`; a name is mostly one of the table's, so the
    // values get exercised.
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .map(|(name, value)| {
            let known = name
                .bytes()
                .next()
                .and_then(|b| OPTIONS.get(usize::from(b) % (OPTIONS.len() + 1)));
            (known.map_or(name, |spec| spec.name), value)
        })
        .collect();
    match OutputOptions::from_pairs(pairs) {
        Err(refused) => assert!(!refused.field.is_empty(), "{refused}"),
        Ok(options) => {
            let resolved = options.resolve(&OutputDefaults::default());
            let stored = serde_json::to_string(&resolved).expect("stored");
            let read: ResolvedOutput = serde_json::from_str(&stored).expect("read back");
            assert_eq!(read, resolved, "{stored}");
        }
    }
});
