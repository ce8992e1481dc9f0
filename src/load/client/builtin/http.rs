//! Reading HTTP/1.1 responses off a socket, as fast as the load needs and no
//! more: the head parsed with httparse, the body skipped by Content-Length
//! or chunked encoding, `Connection: close` noticed so the slot reconnects
//! at once (wrk's behaviour, which is what makes the TIME_WAIT).

use super::*;

/// Largest response head (or chunk-size / trailer line) accepted.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Read buffer growth step.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Response headers parsed at most.
pub(super) const MAX_HEADERS: usize = 64;
/// Why one exchange on a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Write,
    /// Read error, EOF before the response ended, or an unparsable response.
    Read,
}
/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    UntilEof,
}
/// What the client needs from a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// Bytes of the head, blank line included.
    pub(super) len: usize,
    pub(super) status: u16,
    pub(super) body: BodyKind,
    /// The server will close after this response.
    pub(super) close: bool,
}
/// A completed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Completed {
    pub(super) status: u16,
    pub(super) close: bool,
}
/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive).
pub(super) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete,
/// `Err` if it is not HTTP.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = resp.code.ok_or(())?;
    let http11 = resp.version == Some(1);
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None; // Some(last is chunked)
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            conn_close |= has_token(h.value, b"close");
            conn_keep_alive |= has_token(h.value, b"keep-alive");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(h.value)
                .map_err(|_| ())?
                .trim()
                .parse()
                .map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let mut close = conn_close || (!http11 && !conn_keep_alive);
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::Empty
    } else if let Some(chunked) = transfer_encoding {
        if chunked {
            BodyKind::Chunked
        } else {
            BodyKind::UntilEof
        }
    } else if let Some(n) = length {
        BodyKind::Length(n)
    } else {
        BodyKind::UntilEof
    };
    if body == BodyKind::UntilEof {
        close = true;
    }
    Ok(Some(Head {
        len,
        status,
        body,
        close,
    }))
}
/// Reads more bytes into `buf`; `Ok(0)` is EOF.
pub(super) async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failure> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    stream.read_buf(buf).await.map_err(|_| Failure::Read)
}
/// Like [`fill`], but EOF is a failure (the response is not over).
pub(super) async fn fill_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Failure> {
    match fill(stream, buf).await? {
        0 => Err(Failure::Read),
        _ => Ok(()),
    }
}
/// Consumes `n` body bytes, reading as needed.
pub(super) async fn skip(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    n: u64,
) -> Result<(), Failure> {
    let mut remaining = n;
    loop {
        let have = buf.len() as u64;
        if have >= remaining {
            // remaining <= buf.len(), so it fits in usize.
            buf.advance(remaining as usize);
            return Ok(());
        }
        remaining -= have;
        buf.clear();
        fill_more(stream, buf).await?;
    }
}
/// Consumes a chunked body, trailers included.
pub(super) async fn skip_chunked(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<(), Failure> {
    loop {
        let (idx, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    fill_more(stream, buf).await?
                }
                _ => return Err(Failure::Read),
            }
        };
        buf.advance(idx);
        if size > 0 {
            // Chunk data and its CRLF.
            skip(stream, buf, size.saturating_add(2)).await?;
            continue;
        }
        // Last chunk: trailer lines until an empty one.
        loop {
            match buf.windows(2).position(|w| w == b"\r\n") {
                Some(pos) => {
                    buf.advance(pos + 2);
                    if pos == 0 {
                        return Ok(());
                    }
                }
                None if buf.len() < MAX_HEAD => fill_more(stream, buf).await?,
                None => return Err(Failure::Read),
            }
        }
    }
}
/// Reads one complete response (interim 1xx responses skipped).
pub(super) async fn read_response(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Completed, Failure> {
    loop {
        let head = loop {
            match parse_head(buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < MAX_HEAD => fill_more(stream, buf).await?,
                _ => return Err(Failure::Read),
            }
        };
        buf.advance(head.len);
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        match head.body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => skip(stream, buf, n).await?,
            BodyKind::Chunked => skip_chunked(stream, buf).await?,
            BodyKind::UntilEof => loop {
                buf.clear();
                if fill(stream, buf).await? == 0 {
                    break;
                }
            },
        }
        return Ok(Completed {
            status: head.status,
            close: head.close || head.status == 101,
        });
    }
}
