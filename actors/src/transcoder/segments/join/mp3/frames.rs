//! A segment's MP3 file read a frame at a time: its ID3v2 tag, the
//! Xing/LAME frame LAME put first, then the audio frames.

use std::fs::File;
use std::io::{self, BufReader, Read};

use crate::transcoder::pipeline::mp3::frame::FrameHeader;
use crate::transcoder::pipeline::mp3::id3;
use crate::transcoder::segments::join::Piece;

/// One frame, whole.
pub(super) struct Frame {
    pub(super) header: FrameHeader,
    pub(super) bytes: Vec<u8>,
}

impl Frame {
    /// Bytes of main data before this frame's own where its main data
    /// starts (the bit reservoir it draws on).
    pub(super) fn main_data_begin(&self) -> usize {
        self.header.main_data_begin(&self.bytes).unwrap_or(0)
    }

    /// The frame's own bytes of main data (what follows its side
    /// information): where earlier and later frames' main data may lie.
    pub(super) fn payload(&self) -> &[u8] {
        &self.bytes[self.header.payload_at().min(self.bytes.len())..]
    }

    pub(super) fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header.payload_at().min(self.bytes.len());
        &mut self.bytes[at..]
    }
}

/// A segment's file, opened past its tag and its Xing/LAME frame.
pub(super) struct SegmentFile {
    reader: BufReader<io::Take<File>>,
    /// The ID3v2 tag, whole (empty if none).
    pub(super) tag: Vec<u8>,
    /// Where the next frame starts, for what an error says.
    offset: u64,
}

impl SegmentFile {
    /// The file, and its first frame (LAME's Xing/LAME header).
    pub(super) fn open(piece: &Piece) -> io::Result<(Self, Frame)> {
        let mut reader = BufReader::new(piece.open()?);
        let mut head = [0u8; 10];
        reader.read_exact(&mut head)?;
        let mut offset = 0;
        let (tag, info) = match id3::tag_len(&head) {
            Some(len) => {
                let len = usize::try_from(len).map_err(|_| invalid("an ID3 tag too large"))?;
                let mut tag = head.to_vec();
                tag.resize(len.max(10), 0);
                reader.read_exact(&mut tag[10..])?;
                offset = tag.len() as u64;
                let mut first = [0u8; 4];
                reader.read_exact(&mut first)?;
                let info = read_frame(&mut reader, &first, &mut offset)?;
                (tag, info)
            }
            None => (Vec::new(), read_frame(&mut reader, &head, &mut offset)?),
        };
        Ok((
            Self {
                reader,
                tag,
                offset,
            },
            info,
        ))
    }

    /// The next frame; `None` at the end of the file.
    pub(super) fn next(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match self.reader.read(&mut head[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(invalid("a truncated frame header")),
                n => got += n,
            }
        }
        read_frame(&mut self.reader, &head, &mut self.offset).map(Some)
    }
}

/// The frame at `offset` whose first bytes, `read`, were read already.
fn read_frame(reader: &mut impl Read, read: &[u8], offset: &mut u64) -> io::Result<Frame> {
    let head: [u8; 4] = read
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| invalid("a truncated frame header"))?;
    let header = FrameHeader::parse(head)
        .ok_or_else(|| invalid(&format!("not an MP3 frame at byte {offset}")))?;
    let mut bytes = vec![0u8; header.len().max(read.len())];
    bytes[..read.len()].copy_from_slice(read);
    reader.read_exact(&mut bytes[read.len()..])?;
    *offset += bytes.len() as u64;
    Ok(Frame { header, bytes })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
