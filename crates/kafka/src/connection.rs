//! Accepting connections, framing, request headers and the SASL gate.
//!
//! Requests on one connection are answered one at a time, in order, as Kafka brokers do;
//! the next request is read from the socket while the current one is handled.
//! Anything malformed closes that one connection with a log line; others are unaffected.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::instance::Shared;
use crate::response::{encode_response, ResponseFrame};
use crate::security::{Mechanism, SaslSession};
use crate::versions;

/// Per-connection state that requests read and change.
pub(crate) struct Session {
    pub broker_id: i32,
    pub peer: SocketAddr,
    /// `User:<name>` once authenticated, `User:ANONYMOUS` on listeners without SASL.
    pub principal: String,
    pub authenticated: bool,
    pub sasl: SaslState,
}

pub(crate) enum SaslState {
    None,
    /// Handshake done; SaslAuthenticate requests (v1) or raw tokens (v0) carry the exchange.
    Started {
        mechanism: Mechanism,
        raw: bool,
        exchange: SaslSession,
    },
}

/// What a request leads to.
pub(crate) enum Reply {
    Response(ResponseKind),
    /// acks=0 produce: nothing goes back.
    Nothing,
    /// Answer, then close (failed authentication).
    ResponseThenClose(ResponseKind),
    Close(String),
}

pub(crate) async fn accept_loop(shared: Arc<Shared>, broker_id: i32, listener: TcpListener) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let refused = shared.allowed.read().as_ref().is_some_and(|l| !l.allows(peer.ip()));
                    if refused {
                        info!(broker = broker_id, %peer, "connection refused: address not in the allowed list");
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(serve_connection(shared.clone(), broker_id, stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(broker = broker_id, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    broker_id: i32,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut session = Session {
        broker_id,
        peer,
        principal: "User:ANONYMOUS".to_string(),
        authenticated: !shared.config.sasl,
        sasl: SaslState::None,
    };
    let mut shutdown = shared.shutdown.subscribe();
    debug!(broker = broker_id, %peer, "connection opened");
    // The next request is read while the current one is handled (a produce waiting for the
    // disk, a long-polling fetch); requests are still handled one at a time, in order.
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(READ_AHEAD_FRAMES);
    let max_frame = shared.config.max_frame_bytes;
    let reader = tokio::spawn(async move {
        // One buffer per frame that can be alive at once: handled, queued, being read.
        let mut bufs: Vec<BytesMut> = (0..READ_AHEAD_FRAMES + 2)
            .map(|_| BytesMut::new())
            .collect();
        for turn in (0..bufs.len()).cycle() {
            let frame = read_frame(&mut rd, max_frame, &mut bufs[turn]).await;
            let last = !matches!(frame, Ok(Some(_)));
            if frames_tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    loop {
        let frame = tokio::select! {
            _ = shutdown.changed() => break,
            f = frames.recv() => f.unwrap_or(Ok(None)),
        };
        let body = match frame {
            Ok(Some(body)) => body,
            Ok(None) => break,
            Err(reason) => {
                warn!(broker = broker_id, %peer, reason, "closing connection");
                break;
            }
        };
        let outcome = if let SaslState::Started { raw: true, .. } = session.sasl {
            raw_sasl_token(&shared, &mut session, body).await
        } else {
            handle_frame(&shared, &mut session, body).await
        };
        match outcome {
            Ok(Some((bytes, close_after))) => {
                if let Err(e) = bytes.write_to(&mut wr).await {
                    debug!(broker = broker_id, %peer, error = %e, "write failed");
                    break;
                }
                if close_after {
                    // Give the client a moment to read the error before the close: some
                    // clients (kafka-python 3.x) report a close that races the answer as a
                    // timeout instead of the authentication failure.
                    let _ = wr.flush().await;
                    tokio::time::sleep(CLOSE_GRACE).await;
                    break;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                warn!(broker = broker_id, %peer, reason, "closing connection");
                break;
            }
        }
    }
    reader.abort();
    debug!(broker = broker_id, %peer, "connection closed");
}

/// Requests read ahead of the one being handled.
const READ_AHEAD_FRAMES: usize = 1;

/// How long a connection stays open after an answer that ends it (failed authentication).
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Largest read buffer a connection keeps between requests: a buffer grown for a rare huge
/// frame is given back rather than held for the connection's lifetime.
const KEPT_READ_BUFFER: usize = 4 << 20;

/// Reads one size-prefixed frame into `buf`, which the connection keeps: once every part of
/// the frame read into it last has been dropped, its memory is reused. Allocating a fresh
/// buffer per produce request cost page faults and `madvise` calls as the allocator handed
/// memory back and forth. `Ok(None)` on a clean end of stream.
async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    max: usize,
    buf: &mut BytesMut,
) -> Result<Option<Bytes>, String> {
    let size = match rd.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read failed: {e}")),
    };
    if size < 0 || size as usize > max {
        return Err(format!("frame of {size} bytes is outside 0..={max}"));
    }
    let size = size as usize;
    buf.clear();
    buf.reserve(size);
    if buf.capacity() > KEPT_READ_BUFFER.max(size) {
        *buf = BytesMut::with_capacity(size);
    }
    // Filled straight from the socket: zeroing a multi-megabyte produce frame first cost
    // as much CPU as copying it.
    let mut frame = (&mut *rd).take(size as u64);
    while buf.len() < size {
        match frame.read_buf(buf).await {
            Ok(0) => return Err(format!("truncated frame: {} of {size} bytes", buf.len())),
            Ok(_) => {}
            Err(e) => return Err(format!("truncated frame: {e}")),
        }
    }
    Ok(Some(buf.split_to(size).freeze()))
}

type FrameOutcome = Result<Option<(ResponseFrame, bool)>, String>;

/// A request frame after header and body decoding.
pub struct ParsedRequest {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub request: RequestKind,
}

/// Why a frame could not become a request.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// ApiVersions at a version we do not know: answer per KIP-511.
    UnsupportedApiVersions { correlation_id: i32 },
    /// Anything else: log it and close the connection.
    Malformed(String),
}

/// Decodes one frame body (without its size prefix). Pure and total: any input gives a
/// request or an error, never a panic; the fuzz target drives this.
pub fn parse_request(body: Bytes) -> Result<ParsedRequest, FrameError> {
    let malformed = |m: String| FrameError::Malformed(m);
    if body.len() < 8 {
        return Err(malformed(format!(
            "request of {} bytes has no header",
            body.len()
        )));
    }
    let mut peek = &body[..8];
    let api_key_raw = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(api_key_raw)
        .map_err(|_| malformed(format!("unknown api key {api_key_raw}")))?;
    if !versions::supported(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            return Err(FrameError::UnsupportedApiVersions { correlation_id });
        }
        return Err(malformed(format!(
            "unsupported version {version} of {api_key:?}"
        )));
    }
    let mut buf = body;
    let header =
        RequestHeader::decode(&mut buf, api_key.request_header_version(version)).map_err(|e| {
            malformed(format!(
                "bad request header for {api_key:?} v{version}: {e}"
            ))
        })?;
    let request = RequestKind::decode(api_key, &mut buf, version)
        .map_err(|e| malformed(format!("malformed {api_key:?} v{version} request: {e}")))?;
    Ok(ParsedRequest {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        request,
    })
}

async fn handle_frame(shared: &Arc<Shared>, session: &mut Session, body: Bytes) -> FrameOutcome {
    let parsed = match parse_request(body) {
        Ok(p) => p,
        Err(FrameError::UnsupportedApiVersions { correlation_id }) => {
            // KIP-511: answer in v0 shape with our ranges so the client can pick a version.
            let resp = api_versions_response(ResponseError::UnsupportedVersion.code());
            return encode_response(
                ApiKey::ApiVersions,
                0,
                correlation_id,
                &ResponseKind::ApiVersions(resp),
            )
            .map(|b| Some((b, false)));
        }
        Err(FrameError::Malformed(reason)) => return Err(reason),
    };
    let api_key = parsed.api_key;
    if !session.authenticated
        && !matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Err(format!("{api_key:?} before SASL authentication"));
    }
    let client_id = parsed.client_id.as_deref().unwrap_or("");
    let reply =
        crate::dispatch::dispatch(shared, session, parsed.request, parsed.version, client_id).await;
    let (resp, close) = match reply {
        Reply::Response(r) => (r, false),
        Reply::ResponseThenClose(r) => (r, true),
        Reply::Nothing => return Ok(None),
        Reply::Close(reason) => return Err(reason),
    };
    encode_response(api_key, parsed.version, parsed.correlation_id, &resp).map(|b| Some((b, close)))
}

/// SASL tokens sent without Kafka framing after a v0 handshake.
async fn raw_sasl_token(shared: &Arc<Shared>, session: &mut Session, token: Bytes) -> FrameOutcome {
    let SaslState::Started {
        mechanism,
        raw,
        exchange,
    } = std::mem::replace(&mut session.sasl, SaslState::None)
    else {
        return Err("raw sasl token without handshake".into());
    };
    let (exchange, step) = crate::handlers::security::sasl_step(exchange, token).await?;
    match step {
        Ok(crate::security::SaslStep::Continue(out)) => {
            session.sasl = SaslState::Started {
                mechanism,
                raw,
                exchange,
            };
            Ok(Some((frame_raw(&out), false)))
        }
        Ok(crate::security::SaslStep::Done { user, response }) => {
            authenticated(shared, session, user);
            Ok(Some((frame_raw(&response), false)))
        }
        Err(e) => Err(format!("sasl authentication failed: {e}")),
    }
}

pub(crate) fn authenticated(_shared: &Arc<Shared>, session: &mut Session, user: String) {
    info!(broker = session.broker_id, peer = %session.peer, user, "sasl authentication succeeded");
    session.principal = format!("User:{user}");
    session.authenticated = true;
    session.sasl = SaslState::None;
}

fn frame_raw(payload: &[u8]) -> ResponseFrame {
    let mut out = BytesMut::with_capacity(4 + payload.len());
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    ResponseFrame::whole(out.freeze())
}

pub(crate) fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            versions::SUPPORTED
                .iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn frames_reuse_the_connection_buffer_once_released() {
        let mut input = sized(&[1u8; 300_000]);
        input.extend(sized(&[2u8; 200_000]));
        input.extend(sized(&[3u8; 100]));
        input.extend(sized(&[4u8; 10]));
        let mut rd = &input[..];
        let mut buf = BytesMut::new();
        let first = read_frame(&mut rd, 1 << 20, &mut buf)
            .await
            .unwrap()
            .unwrap();
        assert!(first.iter().all(|&b| b == 1) && first.len() == 300_000);
        let at = first.as_ptr();
        drop(first);
        let second = read_frame(&mut rd, 1 << 20, &mut buf)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.as_ptr(), at, "released memory is read into again");
        assert!(second.iter().all(|&b| b == 2) && second.len() == 200_000);
        // A frame still held elsewhere is never overwritten.
        let third = read_frame(&mut rd, 1 << 20, &mut buf)
            .await
            .unwrap()
            .unwrap();
        let fourth = read_frame(&mut rd, 1 << 20, &mut buf)
            .await
            .unwrap()
            .unwrap();
        assert!(second.iter().all(|&b| b == 2));
        assert_eq!(&third[..], &[3u8; 100][..]);
        assert_eq!(&fourth[..], &[4u8; 10][..]);
        assert_eq!(read_frame(&mut rd, 1 << 20, &mut buf).await, Ok(None));
        // Too large, and truncated.
        let big = sized(&[0u8; 64]);
        assert!(read_frame(&mut &big[..], 63, &mut buf).await.is_err());
        assert!(read_frame(&mut &big[..40], 1 << 20, &mut buf)
            .await
            .is_err());
    }

    fn frame(api_key: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(api_key);
        b.put_i16(version);
        b.put_i32(7);
        b.put_slice(rest);
        b.freeze()
    }

    #[test]
    fn unknown_keys_versions_and_short_frames_are_refused() {
        assert!(matches!(
            parse_request(Bytes::from_static(b"abc")),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(frame(999, 0, &[])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(frame(0, 99, &[])),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(
            parse_request(frame(18, 127, &[])).err(),
            Some(FrameError::UnsupportedApiVersions { correlation_id: 7 })
        );
    }

    #[test]
    fn api_versions_v0_decodes() {
        // header v1: client id as a nullable string
        let p = parse_request(frame(18, 0, &[0xff, 0xff])).unwrap();
        assert_eq!(p.api_key, ApiKey::ApiVersions);
        assert_eq!(p.correlation_id, 7);
    }

    /// A tiny request claiming 2^31 array elements must not reserve memory for them (that
    /// aborted the process before kafka-protocol was patched, see vendor/kafka-protocol).
    #[test]
    fn huge_array_counts_are_refused_without_allocating() {
        // Metadata v1: null client id, then a topics array claiming i32::MAX entries.
        let mut rest = vec![0xff, 0xff];
        rest.extend_from_slice(&i32::MAX.to_be_bytes());
        rest.extend_from_slice(&[0u8; 8]);
        assert!(matches!(
            parse_request(frame(3, 1, &rest)),
            Err(FrameError::Malformed(_))
        ));
        // Metadata v9 (compact array): a varint count near u32::MAX
        let rest = [0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
        assert!(matches!(
            parse_request(frame(3, 9, &rest)),
            Err(FrameError::Malformed(_))
        ));
    }

    /// Random and truncated bodies for every supported request must come back as errors or
    /// requests, never as a panic. A cheap, deterministic stand-in for the fuzz target.
    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for &(key, min, max) in versions::SUPPORTED {
            for version in min..=max {
                for len in [0usize, 1, 2, 5, 17, 64, 300] {
                    for _ in 0..20 {
                        let rest: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                        let _ = parse_request(frame(key as i16, version, &rest));
                    }
                }
            }
        }
    }
}
