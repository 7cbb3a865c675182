//! Values the domain writes as text (ids, owners): read back through their
//! own parser, so text that is not one is refused where it is read.

use std::fmt::Display;

use serde::{Deserialize, Deserializer};

/// Deserializes text with `parse`; its error becomes the deserializer's.
pub(super) fn parsed<'de, D, T, E>(
    deserializer: D,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: Display,
{
    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}
