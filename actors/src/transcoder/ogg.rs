//! Ogg pages (RFC 3533), as far as vidaud reads and writes them itself:
//! the checksum (a ReplayGain tag filled into an Opus file re-seals its
//! page), and one logical stream's packets read from a file and written to
//! another (a split Opus conversion's segments joined into one stream).
//! Streamed a page at a time: no file is held in memory.

use std::io::{self, Read, Write};

/// Ogg's CRC-32 of a page (its checksum field zeroed).
pub(crate) fn crc(bytes: &[u8]) -> u32 {
    super::crc::OGG.update(0, bytes)
}

/// A page's header flags.
const CONTINUED: u8 = 0x01;
const FIRST: u8 = 0x02;
const LAST: u8 = 0x04;

/// One packet of a logical stream, and the granule position of the page
/// it ends on.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) data: Vec<u8>,
    pub(crate) page_granule: i64,
}

/// The packets of a file holding one logical stream, in order.
pub(crate) struct PacketReader<R> {
    input: R,
    /// Packets completed on the page read last, not yet handed out.
    ready: std::collections::VecDeque<Packet>,
    /// A packet continued on the next page.
    partial: Vec<u8>,
    ended: bool,
    /// The stream's serial number, once a page is read.
    serial: Option<u32>,
}

impl<R: Read> PacketReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            ready: Default::default(),
            partial: Vec::new(),
            ended: false,
            serial: None,
        }
    }

    /// The stream's serial number, once its first page is read.
    pub(crate) fn serial(&self) -> Option<u32> {
        self.serial
    }

    /// The next packet, or `None` at the stream's end.
    pub(crate) fn next_packet(&mut self) -> io::Result<Option<Packet>> {
        while self.ready.is_empty() && !self.ended {
            self.read_page()?;
        }
        Ok(self.ready.pop_front())
    }

    fn read_page(&mut self) -> io::Result<()> {
        let mut header = [0u8; 27];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.ended = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if &header[..4] != b"OggS" || header[4] != 0 {
            return Err(invalid("not an Ogg page"));
        }
        let flags = header[5];
        let serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
        if self.serial.is_some_and(|s| s != serial) {
            return Err(invalid("more than one logical Ogg stream"));
        }
        self.serial = Some(serial);
        let granule = i64::from_le_bytes(header[6..14].try_into().map_err(|_| invalid("page"))?);
        let mut lacing = vec![0u8; usize::from(header[26])];
        self.input.read_exact(&mut lacing)?;
        let mut body = vec![0u8; lacing.iter().map(|&l| usize::from(l)).sum()];
        self.input.read_exact(&mut body)?;
        let mut page = Vec::with_capacity(27 + lacing.len() + body.len());
        page.extend_from_slice(&header);
        page[22..26].fill(0);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(&body);
        if crc(&page).to_le_bytes() != header[22..26] {
            return Err(invalid("an Ogg page's checksum does not match"));
        }
        if flags & CONTINUED == 0 && !self.partial.is_empty() {
            return Err(invalid("an Ogg packet ends without its continuation"));
        }
        let mut at = 0;
        for &length in &lacing {
            let length = usize::from(length);
            self.partial.extend_from_slice(&body[at..at + length]);
            at += length;
            if length < 255 {
                self.ready.push_back(Packet {
                    data: std::mem::take(&mut self.partial),
                    page_granule: granule,
                });
            }
        }
        if flags & LAST != 0 {
            self.ended = true;
        }
        Ok(())
    }
}

/// Writes one logical stream's packets as pages: a page ends after a
/// packet when asked (`flush`), or when its table of lacing values is full.
pub(crate) struct PageWriter<W> {
    output: W,
    serial: u32,
    sequence: u32,
    lacing: Vec<u8>,
    body: Vec<u8>,
    /// The page starts with the rest of a packet begun on the last one.
    continued: bool,
    /// The granule of the last packet ended on this page, if any did.
    granule: Option<i64>,
    bytes: u64,
}

impl<W: Write> PageWriter<W> {
    pub(crate) fn new(output: W, serial: u32) -> Self {
        Self {
            output,
            serial,
            sequence: 0,
            lacing: Vec::new(),
            body: Vec::new(),
            continued: false,
            granule: None,
            bytes: 0,
        }
    }

    /// Adds `packet`, which ends at `granule`; pages full on the way are
    /// written out.
    pub(crate) fn packet(&mut self, packet: &[u8], granule: i64) -> io::Result<()> {
        let mut rest = packet;
        let mut first = true;
        loop {
            if self.lacing.len() == 255 {
                self.write_page(false)?;
                self.continued = !first;
            }
            first = false;
            let take = rest.len().min(255);
            self.lacing.push(take as u8);
            self.body.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if take < 255 {
                break;
            }
        }
        self.granule = Some(granule);
        Ok(())
    }

    /// Ends the page after the packets added so far.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if !self.lacing.is_empty() {
            self.write_page(false)?;
        }
        Ok(())
    }

    /// Writes the last page, marked as the stream's end, with `granule`
    /// as its position (the end trimmed to the audio's exact length).
    pub(crate) fn finish(mut self, granule: i64) -> io::Result<(W, u64)> {
        self.granule = Some(granule);
        self.write_page(true)?;
        self.output.flush()?;
        Ok((self.output, self.bytes))
    }

    fn write_page(&mut self, last: bool) -> io::Result<()> {
        let mut flags = 0;
        if self.continued {
            flags |= CONTINUED;
        }
        if self.sequence == 0 {
            flags |= FIRST;
        }
        if last {
            flags |= LAST;
        }
        // A page on which no packet ends has no position (-1).
        let granule = self.granule.take().unwrap_or(-1);
        let mut page = Vec::with_capacity(27 + self.lacing.len() + self.body.len());
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(self.lacing.len() as u8);
        page.extend_from_slice(&self.lacing);
        page.extend_from_slice(&self.body);
        let checksum = crc(&page);
        page[22..26].copy_from_slice(&checksum.to_le_bytes());
        self.output.write_all(&page)?;
        self.bytes += page.len() as u64;
        self.sequence += 1;
        self.lacing.clear();
        self.body.clear();
        self.continued = false;
        Ok(())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_back_as_they_were_written_across_pages() {
        let sizes = [0usize, 1, 254, 255, 256, 510, 70_000, 3];
        let mut writer = PageWriter::new(Vec::new(), 7);
        for (i, &size) in sizes.iter().enumerate() {
            writer
                .packet(&vec![i as u8; size], i as i64 * 10)
                .expect("packet");
            if i == 1 {
                writer.flush().expect("flush");
            }
        }
        let (bytes, written) = writer.finish(99).expect("finish");
        assert_eq!(written, bytes.len() as u64);
        let mut reader = PacketReader::new(bytes.as_slice());
        for (i, &size) in sizes.iter().enumerate() {
            let packet = reader.next_packet().expect("read").expect("a packet");
            assert_eq!(packet.data, vec![i as u8; size], "packet {i}");
        }
        assert!(reader.next_packet().expect("read").is_none());
    }
}
