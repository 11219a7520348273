//! Encoding responses into frames without copying record sets.
//!
//! A Fetch response is mostly record batches read from the log. Encoding it into one buffer
//! copied every byte once more and allocated a buffer as large as the response (up to
//! fetch.max.bytes), whose fresh pages the kernel had to fault in and zero: measured, that
//! was most of the broker's CPU while consuming. Instead the encoder writes into [`Splicer`],
//! which keeps its own bytes for the small fields and, when the encoder puts one of the
//! record sets it was told about, ends the current chunk and references that record set.
//! The frame is then written with vectored writes.

use std::io::{self, IoSlice};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Record sets smaller than this are copied: a separate chunk costs more than the copy.
const SPLICE_MIN_BYTES: usize = 16 * 1024;
/// Chunks handed to one `writev`.
const CHUNKS_PER_WRITE: usize = 64;

/// One response frame (size prefix included) as chunks to write in order.
#[derive(Debug)]
pub(crate) struct ResponseFrame {
    chunks: Vec<Bytes>,
}

impl ResponseFrame {
    /// A frame already in one piece.
    pub(crate) fn whole(bytes: Bytes) -> ResponseFrame {
        ResponseFrame {
            chunks: vec![bytes],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// The frame in one buffer.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    /// Writes every chunk, with as few `writev` calls as the socket takes.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, wr: &mut W) -> io::Result<()> {
        let mut owned: Vec<IoSlice<'_>> = self.chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut left = &mut owned[..];
        // Drops leading empty chunks, so a call never has only empty ones to write.
        IoSlice::advance_slices(&mut left, 0);
        while !left.is_empty() {
            let n = wr
                .write_vectored(&left[..left.len().min(CHUNKS_PER_WRITE)])
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, n);
        }
        Ok(())
    }
}

/// Encodes a response (header and body) into a frame, referencing the record sets of a
/// Fetch response instead of copying them.
pub(crate) fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    resp: &ResponseKind,
) -> Result<ResponseFrame, String> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        format!("cannot encode {api_key:?} v{version} response {what}: {e}")
    };
    let ResponseKind::Fetch(fetch) = resp else {
        let mut out = BytesMut::with_capacity(256);
        out.put_u32(0);
        header
            .encode(&mut out, header_version)
            .map_err(|e| failed("header", &e))?;
        resp.encode(&mut out, version)
            .map_err(|e| failed("body", &e))?;
        let size = u32::try_from(out.len() - 4).map_err(|e| failed("size", &e))?;
        out[..4].copy_from_slice(&size.to_be_bytes());
        return Ok(ResponseFrame::whole(out.freeze()));
    };
    let size = header
        .compute_size(header_version)
        .map_err(|e| failed("header", &e))?
        + fetch
            .compute_size(version)
            .map_err(|e| failed("body", &e))?;
    let frame_size = u32::try_from(size).map_err(|e| failed("size", &e))?;
    let splice: Vec<Bytes> = fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .filter(|r| r.len() >= SPLICE_MIN_BYTES)
        .collect();
    let spliced: usize = splice.iter().map(Bytes::len).sum();
    let mut out = Splicer {
        chunks: Vec::with_capacity(splice.len() * 2 + 1),
        current: BytesMut::with_capacity((4 + size).saturating_sub(spliced) + 64),
        before: 0,
        splice,
        next: 0,
        broken: false,
    };
    out.put_u32(frame_size);
    header
        .encode(&mut out, header_version)
        .map_err(|e| failed("header", &e))?;
    fetch
        .encode(&mut out, version)
        .map_err(|e| failed("body", &e))?;
    let frame = out.finish()?;
    if frame.len() != 4 + size {
        return Err(format!(
            "{api_key:?} v{version} response encoded to {} bytes, {} expected",
            frame.len(),
            4 + size
        ));
    }
    Ok(frame)
}

/// A `BufMut` that collects chunks; see the module documentation.
struct Splicer {
    chunks: Vec<Bytes>,
    current: BytesMut,
    /// Bytes in `chunks`.
    before: usize,
    /// Record sets to reference, in the order the encoder puts them.
    splice: Vec<Bytes>,
    next: usize,
    /// The encoder sought back into a finished chunk (message encoders never do).
    broken: bool,
}

impl Splicer {
    fn finish(mut self) -> Result<ResponseFrame, String> {
        if self.broken {
            return Err("response encoder moved back into written data".into());
        }
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
        Ok(ResponseFrame {
            chunks: self.chunks,
        })
    }
}

// SAFETY: every method forwards to `current`, a `BytesMut`, whose implementation upholds
// the `BufMut` contract; `put_slice` either forwards or appends a chunk without touching
// `current`'s memory. One of the two sites where the workspace allows unsafe code: writing
// Fetch responses without copying the record sets depends on it.
#[allow(unsafe_code)]
unsafe impl BufMut for Splicer {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee (cnt bytes of chunk_mut initialised) is passed on
        // to the same buffer that handed out chunk_mut.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let is_next = self
            .splice
            .get(self.next)
            .is_some_and(|r| r.as_ptr() == src.as_ptr() && r.len() == src.len());
        match self.splice.get(self.next) {
            Some(records) if is_next => {
                if !self.current.is_empty() {
                    let done = self.current.split().freeze();
                    self.before += done.len();
                    self.chunks.push(done);
                }
                self.before += records.len();
                self.chunks.push(records.clone());
                self.next += 1;
            }
            _ => self.current.put_slice(src),
        }
    }
}

impl ByteBufMut for Splicer {
    fn offset(&self) -> usize {
        self.before + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.before) {
            Some(at) => self.current.resize(at, 0),
            None => self.broken = true,
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = r.start.checked_sub(self.before);
        let end = r.end.checked_sub(self.before);
        match (start, end) {
            (Some(s), Some(e)) if s <= e && e <= self.current.len() => &mut self.current[s..e],
            _ => {
                self.broken = true;
                &mut []
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn copied(api_key: ApiKey, version: i16, resp: &ResponseKind) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u32(0);
        ResponseHeader::default()
            .with_correlation_id(9)
            .encode(&mut out, api_key.response_header_version(version))
            .unwrap();
        resp.encode(&mut out, version).unwrap();
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out.to_vec()
    }

    #[tokio::test]
    async fn fetch_frames_reference_records_and_match_the_copying_encoder() {
        let big_a = Bytes::from(vec![7u8; 100_000]);
        let big_b = Bytes::from(vec![8u8; 20_000]);
        let small = Bytes::from(vec![9u8; 100]);
        let partition = |i, r: Option<Bytes>| {
            PartitionData::default()
                .with_partition_index(i)
                .with_high_watermark(5)
                .with_records(r)
        };
        let resp = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("a")))
                    .with_partitions(vec![
                        partition(0, Some(big_a.clone())),
                        partition(1, Some(small)),
                        partition(2, None),
                    ]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("b")))
                    .with_partitions(vec![partition(0, Some(big_b.clone()))]),
            ]));
        for version in [4, 11, 12, 16] {
            let frame = encode_response(ApiKey::Fetch, version, 9, &resp).unwrap();
            assert_eq!(
                frame.to_vec(),
                copied(ApiKey::Fetch, version, &resp),
                "v{version}"
            );
            // the large record sets are the very same memory, not copies
            assert!(frame.chunks.iter().any(|c| c.as_ptr() == big_a.as_ptr()));
            assert!(frame.chunks.iter().any(|c| c.as_ptr() == big_b.as_ptr()));
            // before, a, between, b (and the tagged fields after it in flexible versions)
            let chunks = if version >= 12 { 5 } else { 4 };
            assert_eq!(frame.chunks.len(), chunks, "v{version}");
            let mut written = Vec::new();
            frame.write_to(&mut written).await.unwrap();
            assert_eq!(written, frame.to_vec());
        }
        let meta = ResponseKind::Metadata(MetadataResponse::default());
        let frame = encode_response(ApiKey::Metadata, 12, 9, &meta).unwrap();
        assert_eq!(frame.chunks.len(), 1);
        assert_eq!(frame.to_vec(), copied(ApiKey::Metadata, 12, &meta));
    }
}
