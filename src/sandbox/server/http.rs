//! HTTP/1.1 framing: reading one request (head via `httparse`, `Content-Length` body)
//! and writing one response. Keep-alive and pipelining are supported: bytes read past
//! the end of a request stay in the connection's buffer for the next one.

use std::io::{self, Read, Write};

/// Largest request head accepted (431 above).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query (after `?`), possibly empty.
    pub query: String,
    /// Minor HTTP version (0 or 1).
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|c| c.to_ascii_lowercase());
        match (self.version, conn.as_deref()) {
            (_, Some(c)) if c.contains("close") => false,
            (0, Some(c)) => c.contains("keep-alive"),
            (0, None) => false,
            _ => true,
        }
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Cookies from every `Cookie` header, in order.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers_named("cookie")
            .flat_map(|h| h.split(';'))
            .filter_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect()
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// A socket error or timeout.
    Io(io::Error),
    /// A request the server answers with this status, then closes.
    Reject(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one request. `buf` carries bytes between calls on the same connection.
pub(crate) fn read_request<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<Request, ReadError> {
    let mut chunk = [0u8; 8192];
    let (head_len, mut req, content_length) = loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = parsed.path.unwrap_or("/");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect();
                    let req = Request {
                        method: parsed.method.unwrap_or("GET").to_string(),
                        path: path.to_string(),
                        query: query.to_string(),
                        version: parsed.version.unwrap_or(1),
                        headers,
                        body: Vec::new(),
                    };
                    if req.header("transfer-encoding").is_some() {
                        return Err(ReadError::Reject(
                            501,
                            "chunked request bodies are not supported; send content-length",
                        ));
                    }
                    let cl = match req.header("content-length") {
                        Some(v) => v
                            .parse::<usize>()
                            .map_err(|_| ReadError::Reject(400, "bad content-length"))?,
                        None => 0,
                    };
                    if cl > max_body {
                        return Err(ReadError::Reject(413, "request body too large"));
                    }
                    break (n, req, cl);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadError::Reject(431, "too many headers"))
                }
                Err(_) => return Err(ReadError::Reject(400, "malformed request")),
            }
            if buf.len() > MAX_HEAD {
                return Err(ReadError::Reject(431, "request head too large"));
            }
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Io(io::ErrorKind::UnexpectedEof.into())
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < head_len + content_length {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    req.body = buf[head_len..head_len + content_length].to_vec();
    buf.drain(..head_len + content_length);
    Ok(req)
}

/// One response to write.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the full length, send half the body, then close (`truncate_body`).
    pub truncate: bool,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(body).unwrap_or_default(),
            truncate: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The reason phrase for a status.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes `resp`. With `truncate`, only half the body goes out; the caller must close.
pub(crate) fn write_response<W: Write>(
    w: &mut W,
    resp: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    head.push_str(if keep_alive && !resp.truncate {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    head.push_str("Server: ats-sandbox\r\n\r\n");
    let body: &[u8] = if resp.truncate {
        &resp.body[..resp.body.len() / 2]
    } else {
        &resp.body
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipelined_requests_and_query() {
        let raw = b"POST /a/b?dsn=apigee&apikey=k%20x HTTP/1.1\r\nContent-Length: 2\r\nCookie: QTKN=1; SID=2\r\n\r\n{}GET /x HTTP/1.0\r\n\r\n";
        let mut r = &raw[..];
        let mut buf = Vec::new();
        let a = read_request(&mut r, &mut buf, 100).map_err(|e| format!("{e:?}"));
        let a = a.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.path, "/a/b");
        assert_eq!(a.body, b"{}");
        assert_eq!(a.query_param("dsn").as_deref(), Some("apigee"));
        assert_eq!(a.query_param("apikey").as_deref(), Some("k x"));
        assert_eq!(a.cookie("sid").as_deref(), Some("2"));
        assert!(a.keep_alive());
        let b = read_request(&mut r, &mut buf, 100).map_err(|e| format!("{e:?}"));
        let b = b.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.method, "GET");
        assert!(!b.keep_alive());
        assert!(matches!(
            read_request(&mut r, &mut buf, 100),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn refuses_big_bodies_and_chunking() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut &raw[..], &mut buf, 100),
            Err(ReadError::Reject(413, _))
        ));
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut &raw[..], &mut buf, 100),
            Err(ReadError::Reject(501, _))
        ));
    }
}
