//! Opus segments into one Ogg Opus stream (RFC 7845): the first segment's
//! identification and comment headers, then each segment's packets that
//! its plan keeps (a segment's lead-in packets, encoded to settle the
//! encoder, and its tail are dropped), with granule positions continued
//! across the joins: one pre-skip at the start, the end trimmed by the
//! last page's granule to exactly the samples a single pass has.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use super::{JoinError, Joined, Piece, read_error};
use crate::transcoder::ogg::{PacketReader, PageWriter};
use crate::transcoder::segments::plan::SplitPlan;

/// Ogg Opus counts granules at 48 kHz, whatever rate was encoded.
const GRANULE_RATE: u64 = 48_000;

/// Packets per page: a page a second (20 ms packets), as oggmux does
/// about, so a player seeks finely.
const PACKETS_PER_PAGE: usize = 50;

pub(super) fn join(
    plan: &SplitPlan,
    segments: &[Piece],
    output: &Path,
) -> Result<Joined, JoinError> {
    let scale = GRANULE_RATE / u64::from(plan.output_rate.max(1));
    // The joined stream, once the first segment's headers are written:
    // its pages, and that segment's identification header (every segment's
    // must be the same) and pre-skip.
    let mut joined: Option<(PageWriter<BufWriter<File>>, Vec<u8>, u64)> = None;
    let mut final_granule = 0u64;
    let mut pending = 0;
    for (index, (part, path)) in plan.parts.iter().zip(segments).enumerate() {
        let input = path.open().map_err(read_error(index, path))?;
        let mut packets = PacketReader::new(BufReader::new(input));
        let mismatch = |what: &str| JoinError::Mismatch {
            index,
            what: what.to_owned(),
        };
        let head = packets
            .next_packet()
            .map_err(read_error(index, path))?
            .ok_or_else(|| mismatch("no identification header"))?;
        if !head.data.starts_with(b"OpusHead") || head.data.len() < 19 {
            return Err(mismatch("not an Opus stream"));
        }
        let tags = packets
            .next_packet()
            .map_err(read_error(index, path))?
            .ok_or_else(|| mismatch("no comment header"))?;
        let (pages, first_head, pre_skip) = match joined.as_mut() {
            Some(joined) => joined,
            None => {
                let file = File::create(output).map_err(JoinError::Write)?;
                let serial = packets.serial().unwrap_or(0x7669_6461);
                let mut pages = PageWriter::new(BufWriter::new(file), serial);
                for header in [&head.data, &tags.data] {
                    pages.packet(header, 0).map_err(JoinError::Write)?;
                    pages.flush().map_err(JoinError::Write)?;
                }
                let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
                joined.insert((pages, head.data.clone(), pre_skip))
            }
        };
        if *first_head != head.data {
            return Err(mismatch("its encoder was set up unlike the first's"));
        }
        let pre_skip = *pre_skip;
        let encoded_from = part.encoded_from * scale;
        let keep_from = part.keep_from * scale;
        let keep_to = part.keep_to.map(|t| t * scale);
        // A packet's start, in the joined stream's granules (which count
        // the pre-skip): its own stream's start plus where it was encoded.
        let mut start = encoded_from;
        let mut last_granule = None;
        while let Some(packet) = packets.next_packet().map_err(read_error(index, path))? {
            let length = packet_samples(&packet.data)
                .ok_or_else(|| mismatch("a packet without a valid TOC"))?;
            last_granule = Some(packet.page_granule);
            let kept = start >= keep_from && keep_to.is_none_or(|to| start < to);
            if kept {
                if pending == PACKETS_PER_PAGE {
                    pages.flush().map_err(JoinError::Write)?;
                    pending = 0;
                }
                let end = start + length;
                pages
                    .packet(&packet.data, i64::try_from(end).unwrap_or(i64::MAX))
                    .map_err(JoinError::Write)?;
                pending += 1;
            }
            start += length;
        }
        // A segment's own last granule says where its audio ends (the
        // encoder's padding beyond it is not audio).
        let own = last_granule
            .and_then(|g| u64::try_from(g).ok())
            .ok_or_else(|| mismatch("no audio packets"))?;
        // It must reach its bound (its tail is there to cover the few
        // samples a resampler holds back at an end).
        if let Some(to) = keep_to {
            let reached = encoded_from + own.saturating_sub(pre_skip);
            if reached < to {
                return Err(mismatch(&format!(
                    "its audio ends at {reached}, before its bound at {to} (at 48 kHz)"
                )));
            }
        }
        if keep_to.is_none() {
            final_granule = encoded_from + own;
            if final_granule < pre_skip {
                return Err(mismatch("it ends before its pre-skip"));
            }
        }
    }
    let (pages, _, pre_skip) = joined.ok_or(JoinError::Mismatch {
        index: 0,
        what: "no segments".to_owned(),
    })?;
    let (_, bytes) = pages
        .finish(i64::try_from(final_granule).unwrap_or(i64::MAX))
        .map_err(JoinError::Write)?;
    Ok(Joined {
        rate: plan.output_rate,
        samples: (final_granule - pre_skip) / scale,
        bytes,
    })
}

/// The samples (at 48 kHz) an Opus packet decodes to, from its TOC byte
/// (RFC 6716, 3.1): the frame size its configuration says, times the
/// frames its code says.
fn packet_samples(packet: &[u8]) -> Option<u64> {
    let toc = *packet.first()?;
    let config = usize::from(toc >> 3);
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][config % 4],
        12..=15 => [480, 960][config % 2],
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    Some(frame * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_says_how_long_it_is() {
        // CELT fullband 20 ms, one frame.
        assert_eq!(packet_samples(&[31 << 3]), Some(960));
        // SILK 60 ms, two frames.
        assert_eq!(packet_samples(&[(3 << 3) | 1]), Some(5760));
        // Hybrid 10 ms, code 3 with 4 frames.
        assert_eq!(packet_samples(&[(12 << 3) | 3, 4]), Some(1920));
        assert_eq!(packet_samples(&[]), None);
    }
}
