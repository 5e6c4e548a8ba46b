//! The frames of the cluster channel: `[u32 body length, little-endian][u8 version][body]`,
//! the body a bincode [`Frame`]. A reader states the largest body it accepts (small before
//! the peer has authenticated, [`FRAME_BYTES_MAX`] after) and the length is checked
//! against it before anything is allocated; the body buffer then grows only as bytes
//! arrive, so a lying length costs the liar its own bandwidth, not our memory.
//!
//! [`decode_header`] and [`decode_body`] are pure and never panic (the `channel_frame`
//! fuzz target holds them to it).

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::env::runtime::timeout;

/// The version byte of every channel frame. Version 1 was the old one-RPC-per-connection
/// Raft format; a peer still speaking it is refused by the version check.
pub const FRAME_VERSION: u8 = 2;
/// The largest frame body after the handshake: a whole Raft snapshot plus envelopes.
pub const FRAME_BYTES_MAX: usize = crate::raft::state_machine::SNAPSHOT_BYTES_MAX + 64 * 1024;
/// The largest frame body before the peer has completed the handshake.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 1024;
/// Length and version.
pub const FRAME_HEADER_BYTES: usize = 5;
/// How long the rest of a frame may take once its header has arrived (a snapshot is
/// large; a peer that stalls mid-frame is cut off).
pub const FRAME_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The most bytes read from the socket per step while a body arrives.
const BODY_READ_CHUNK_BYTES: usize = 64 * 1024;

/// One message on a channel connection. `Debug` shows payload bytes: log
/// [`Frame::kind`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame a client sends: the protocol it speaks (an ALPN name).
    Hello {
        protocol: String,
    },
    /// The server's answer to an accepted `Hello`.
    Welcome {
        protocol: String,
    },
    /// Liveness: either side may send one; the other answers `Pong` with the same nonce.
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// A request of the connection's protocol; `id` matches it to its response.
    Request {
        id: u64,
        payload: Vec<u8>,
    },
    Response {
        id: u64,
        payload: Vec<u8>,
    },
    /// The server could not serve request `id` (a malformed payload, a handler error).
    Failed {
        id: u64,
        reason: String,
    },
}

impl Frame {
    /// The frame's variant, for logs (payloads can hold secrets and are never logged).
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Welcome { .. } => "Welcome",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::Request { .. } => "Request",
            Frame::Response { .. } => "Response",
            Frame::Failed { .. } => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} bytes exceeds the limit of {limit}")]
    TooLarge { length: usize, limit: usize },
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("trailing bytes in frame")]
    Trailing,
}

impl From<FrameError> for io::Error {
    fn from(error: FrameError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// The body length a header announces, refused when above `limit` or of another version.
pub fn decode_header(header: &[u8; FRAME_HEADER_BYTES], limit: usize) -> Result<usize, FrameError> {
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if header[4] != FRAME_VERSION {
        return Err(FrameError::UnknownVersion(header[4]));
    }
    if length > limit {
        return Err(FrameError::TooLarge { length, limit });
    }
    Ok(length)
}

/// Decode a frame body (exactly, no trailing bytes), never allocating past `body.len()`.
pub fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, used) = bincode::serde::decode_from_slice(
        body,
        bincode::config::standard().with_limit::<FRAME_BYTES_MAX>(),
    )
    .map_err(|error| FrameError::Malformed(error.to_string()))?;
    if used != body.len() {
        return Err(FrameError::Trailing);
    }
    Ok(value)
}

/// The first frame of `buffer`, if it holds a whole one, with the bytes it used; `None`
/// when more bytes are needed. Pure: the socket readers and the fuzzer share it.
pub fn decode_frame(buffer: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buffer.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    let length = decode_header(header, limit)?;
    let Some(body) = buffer[FRAME_HEADER_BYTES..].get(..length) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, FRAME_HEADER_BYTES + length)))
}

/// Encode `value` as a bincode body (the payload of a `Request` or `Response`).
pub fn encode_body<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(io::Error::other)
}

/// Header and body of one frame, refusing a body above `limit`.
pub fn encode_frame(frame: &Frame, limit: usize) -> io::Result<Vec<u8>> {
    let body = encode_body(frame)?;
    if body.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameError::TooLarge {
                length: body.len(),
                limit,
            },
        ));
    }
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.push(FRAME_VERSION);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Write one frame and flush it (madsim's stream sends nothing until flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
    limit: usize,
) -> io::Result<()> {
    let bytes = encode_frame(frame, limit)?;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// Read one frame whose body is at most `limit` bytes. The header must arrive within
/// `header_wait` (the caller's idleness bound), or whenever it comes for `None` (the
/// caller checks liveness another way); the body must follow within
/// [`FRAME_BODY_READ_TIMEOUT`], however long the wait for the header was.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    header_wait: Option<Duration>,
) -> io::Result<Frame> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match header_wait {
        None => {
            reader.read_exact(&mut header).await?;
        }
        Some(wait) => match timeout(wait, reader.read_exact(&mut header)).await {
            Ok(read) => {
                read?;
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no frame within the idle limit",
                ));
            }
        },
    }
    let length = decode_header(&header, limit)?;
    let body = match timeout(FRAME_BODY_READ_TIMEOUT, read_body(reader, length)).await {
        Ok(body) => body?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "frame body did not arrive in time",
            ));
        }
    };
    Ok(decode_body(&body)?)
}

/// Read `length` bytes, growing the buffer only as they arrive.
async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, length: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(length.min(BODY_READ_CHUNK_BYTES));
    let mut chunk = vec![0u8; BODY_READ_CHUNK_BYTES.min(length.max(1))];
    while body.len() < length {
        let wanted = (length - body.len()).min(chunk.len());
        let read = reader.read(&mut chunk[..wanted]).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-frame",
            ));
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Option<Duration> = Some(Duration::from_secs(1));

    #[tokio::test]
    async fn frames_round_trip_and_bad_headers_are_refused_before_allocating() {
        let frame = Frame::Request {
            id: 7,
            payload: b"hello".to_vec(),
        };
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &frame, FRAME_BYTES_MAX)
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut buffer.as_slice(), FRAME_BYTES_MAX, WAIT)
                .await
                .unwrap(),
            frame
        );

        // The same frame is too large for the handshake bound of 4 bytes.
        let error = read_frame(&mut buffer.as_slice(), 4, WAIT)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.push(FRAME_VERSION);
        assert_eq!(
            decode_header(&huge.clone().try_into().unwrap(), FRAME_BYTES_MAX),
            Err(FrameError::TooLarge {
                length: u32::MAX as usize,
                limit: FRAME_BYTES_MAX
            })
        );

        let mut old_version = buffer.clone();
        old_version[4] = 1;
        assert!(
            read_frame(&mut old_version.as_slice(), FRAME_BYTES_MAX, WAIT)
                .await
                .is_err()
        );

        let mut garbage = buffer.clone();
        for byte in garbage.iter_mut().skip(FRAME_HEADER_BYTES) {
            *byte = 0xff;
        }
        assert!(
            read_frame(&mut garbage.as_slice(), FRAME_BYTES_MAX, WAIT)
                .await
                .is_err()
        );

        // A length larger than what follows is an error once the bytes run out.
        let mut truncated = buffer.clone();
        truncated.truncate(buffer.len() - 2);
        let error = read_frame(&mut truncated.as_slice(), FRAME_BYTES_MAX, WAIT)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn decode_frame_waits_for_a_whole_frame_and_reports_what_it_used() {
        let first = Frame::Ping { nonce: 1 };
        let second = Frame::Pong { nonce: 2 };
        let mut bytes = encode_frame(&first, FRAME_BYTES_MAX).unwrap();
        let first_length = bytes.len();
        bytes.extend(encode_frame(&second, FRAME_BYTES_MAX).unwrap());
        assert_eq!(decode_frame(&bytes[..3], FRAME_BYTES_MAX), Ok(None));
        assert_eq!(
            decode_frame(&bytes[..first_length - 1], FRAME_BYTES_MAX),
            Ok(None)
        );
        assert_eq!(
            decode_frame(&bytes, FRAME_BYTES_MAX),
            Ok(Some((first, first_length)))
        );
        assert_eq!(
            decode_frame(&bytes[first_length..], FRAME_BYTES_MAX),
            Ok(Some((second, bytes.len() - first_length)))
        );
    }

    #[test]
    fn writing_refuses_a_frame_above_the_limit() {
        let frame = Frame::Hello {
            protocol: "x".repeat(HANDSHAKE_FRAME_BYTES_MAX),
        };
        assert!(encode_frame(&frame, HANDSHAKE_FRAME_BYTES_MAX).is_err());
    }
}
