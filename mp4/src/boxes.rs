//! Reading and making MP4 (ISO BMFF) boxes, for the few places that look
//! inside an MP4 themselves: chapters in an input (`chapters.rs`,
//! `quicktime.rs`, on untrusted files in the conversion child) and
//! what is added to or corrected in the M4A we wrote (chapters, tags, the
//! AAC edit list). Only headers are read on the way down, every size is
//! checked against its parent, and a body is read only when it is small.

use std::io::{self, SeekFrom};

use crate::Source;

/// A box's header: its type and where its body starts and ends.
#[derive(Debug, Clone, Copy)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    pub body: u64,
    pub end: u64,
}

/// The box whose header starts at `at`, within `..limit`; `None` at the end
/// or on a size that does not fit.
pub fn header(file: &mut dyn Source, at: u64, limit: u64) -> io::Result<Option<BoxHeader>> {
    if at + 8 > limit {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(at))?;
    let mut head = [0u8; 16];
    file.read_exact(&mut head[..8])?;
    let size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
    let kind = [head[4], head[5], head[6], head[7]];
    let (size, body) = match size {
        0 => (limit - at, at + 8),
        1 => {
            if at + 16 > limit {
                return Ok(None);
            }
            file.read_exact(&mut head[8..16])?;
            let mut large = [0u8; 8];
            large.copy_from_slice(&head[8..16]);
            (u64::from_be_bytes(large), at + 16)
        }
        n => (n, at + 8),
    };
    let end = at
        .checked_add(size)
        .filter(|&end| end <= limit && end >= body);
    Ok(end.map(|end| BoxHeader { kind, body, end }))
}

/// The first box of `kind` among the children in `from..to`.
pub fn child(
    file: &mut dyn Source,
    from: u64,
    to: u64,
    kind: &[u8; 4],
) -> io::Result<Option<BoxHeader>> {
    let mut at = from;
    while let Some(found) = header(file, at, to)? {
        if &found.kind == kind {
            return Ok(Some(found));
        }
        at = found.end;
    }
    Ok(None)
}

/// The boxes in `from..to`, at most `most` of them.
pub fn children(
    file: &mut dyn Source,
    from: u64,
    to: u64,
    most: usize,
) -> io::Result<Vec<BoxHeader>> {
    let mut found = Vec::new();
    let mut at = from;
    while found.len() < most
        && let Some(next) = header(file, at, to)?
    {
        at = next.end;
        found.push(next);
    }
    Ok(found)
}

/// The box at the end of `path` (box types, one level each) under `from`.
pub fn descend(
    file: &mut dyn Source,
    from: BoxHeader,
    path: &[&[u8; 4]],
) -> io::Result<Option<BoxHeader>> {
    let mut scope = from;
    for kind in path {
        match child(file, scope.body, scope.end, kind)? {
            Some(found) => scope = found,
            None => return Ok(None),
        }
    }
    Ok(Some(scope))
}

/// A box's body, when it is at most `most` bytes long.
pub fn small_body(
    file: &mut dyn Source,
    found: BoxHeader,
    most: u64,
) -> io::Result<Option<Vec<u8>>> {
    if found.end - found.body > most {
        return Ok(None);
    }
    let mut body = vec![0u8; (found.end - found.body) as usize];
    file.seek(SeekFrom::Start(found.body))?;
    file.read_exact(&mut body)?;
    Ok(Some(body))
}

/// A box of `kind` around `body`, with a 32-bit size (the boxes we make
/// are small).
pub fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}
