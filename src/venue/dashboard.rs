//! `concession-agent venue dashboard --listen ADDR`: the venue status in a browser
//! (issue 14 item 4).
//!
//! One self-contained page ([`PAGE`], `dashboard.html`: inline CSS and script, no
//! external asset, no build step) that fetches `status.json` from the same server every
//! [`REFRESH_MS`] and draws every terminal; a silent, offline or stopped stand and any
//! overdraft are marked by a word and a colour, never by colour alone.
//!
//! Plain `std::net::TcpListener`, one short-lived thread per connection, at most
//! [`MAX_CONNECTIONS`] at once; one request per connection, its head at most
//! [`MAX_REQUEST`] bytes and read within [`REQUEST_TIME`]; only `GET`. The report is read
//! through [`super::heartbeat::read_report`] on one connection to the database, kept
//! and reused, and at most once per [`CACHE_FOR`] however many browsers poll.
//!
//! # The credential
//!
//! On a loopback address the dashboard may run without one; on any other it refuses to
//! start without `--token-file` ([`DashboardError::NeedsToken`]). With a token, every
//! `status.json` request must carry `Authorization: Bearer TOKEN` (compared in constant
//! time); the page itself holds no data and reads the token from the address's
//! fragment (`http://HOST:PORT/#token=TOKEN`), which browsers never send to a server, so
//! it stays out of request lines and logs. Without a token the server accepts only
//! `Host: localhost`/a loopback address (a web page elsewhere cannot read it through DNS
//! rebinding).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;

use super::config::VenueSettings;
use super::error::VenueError;
use super::heartbeat::read_report;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");
/// How often the page fetches the status (it reads this from the page).
pub const REFRESH_MS: u64 = 2000;
/// The most connections served at once; more get `503`.
pub const MAX_CONNECTIONS: usize = 32;
/// The most bytes of a request's head.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The longest a client may take to send its request (and to read the answer).
pub const REQUEST_TIME: Duration = Duration::from_secs(5);
/// A report is reused for this long.
pub const CACHE_FOR: Duration = Duration::from_secs(1);
/// The shortest token accepted.
pub const MIN_TOKEN: usize = 16;

/// Why the dashboard did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum DashboardError {
    /// A non-loopback address without a credential.
    NeedsToken(SocketAddr),
    /// The token file is unreadable, empty or too short.
    Token(String),
    /// Binding or accepting failed.
    Io(std::io::Error),
}

impl std::fmt::Display for DashboardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DashboardError::NeedsToken(a) => write!(
                f,
                "refusing to serve the venue dashboard on {a} without a credential: \
                 anyone who reaches that address could read every stand's status. Give \
                 --token-file FILE (a secret of at least {MIN_TOKEN} characters), or \
                 listen on a loopback address (127.0.0.1:PORT)"
            ),
            DashboardError::Token(e) => write!(f, "dashboard token: {e}"),
            DashboardError::Io(e) => write!(f, "dashboard: {e}"),
        }
    }
}

impl std::error::Error for DashboardError {}

/// How the dashboard runs.
#[derive(Clone)]
pub struct DashboardOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The credential (`None`: loopback only).
    pub token: Option<String>,
    /// The threshold for `silent`.
    pub silent_after: Duration,
    /// The venue's offset from UTC (the venue day, for overdrafts).
    pub utc_offset_minutes: i32,
}

/// Reads a token file: its content without surrounding whitespace.
pub fn read_token(path: &std::path::Path) -> Result<String, DashboardError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DashboardError::Token(format!("cannot read {}: {e}", path.display())))?;
    let t = text.trim();
    if t.len() < MIN_TOKEN {
        return Err(DashboardError::Token(format!(
            "{} holds {} characters; a token needs at least {MIN_TOKEN}",
            path.display(),
            t.len()
        )));
    }
    if t.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(DashboardError::Token(format!(
            "{} holds spaces or control characters: a token is one word of printable ASCII",
            path.display()
        )));
    }
    Ok(t.to_string())
}

/// True when `a` equals `b`, in time that depends only on their lengths.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The report source: one database connection, reused, and the last answer.
struct Source {
    settings: VenueSettings,
    app: String,
    silent_after: Duration,
    utc_offset_minutes: i32,
    client: Option<Client>,
    last: Option<(Instant, Result<String, String>)>,
}

impl Source {
    /// The report as JSON, or why not (read at most once per [`CACHE_FOR`]).
    fn report(&mut self) -> Result<String, String> {
        if let Some((at, r)) = &self.last {
            if at.elapsed() < CACHE_FOR {
                return r.clone();
            }
        }
        let r = self.read().map_err(|e| e.to_string());
        self.last = Some((Instant::now(), r.clone()));
        r
    }

    fn read(&mut self) -> Result<String, VenueError> {
        // A kept connection that fails (the server restarted or failed over since the
        // last read) is replaced and the read tried once more on a new one: the first
        // request after the database is back answers, not a stale connection's error.
        let reused = self.client.as_ref().is_some_and(|c| !c.is_closed());
        match self.read_once() {
            Err(e) if reused && !Self::answered(&e) => self.read_once(),
            r => r,
        }
    }

    /// The server itself answered with an error (rights, schema): the connection is
    /// fine and a retry would answer the same.
    fn answered(e: &VenueError) -> bool {
        matches!(e, VenueError::Db(pe) if pe.as_db_error().is_some())
    }

    fn read_once(&mut self) -> Result<String, VenueError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            self.client = Some(super::connect::connect(&self.settings, &self.app)?);
        }
        let client = self
            .client
            .as_mut()
            .ok_or_else(super::worker::not_connected)?;
        match read_report(client, self.silent_after, self.utc_offset_minutes) {
            Ok(r) => serde_json::to_string(&r).map_err(|e| VenueError::Away(e.to_string())),
            Err(e) => {
                // Reconnect next time unless the server merely answered with an error.
                if !Self::answered(&e) {
                    if let Some(c) = self.client.take() {
                        // Dropping can block on a dead connection (worker.rs).
                        let _ = std::thread::Builder::new().spawn(move || drop(c));
                    }
                }
                Err(e)
            }
        }
    }
}

/// Binds `opts.listen` (refusing a non-loopback address without a token) and returns
/// the listener; [`serve`] then answers on it.
pub fn bind(opts: &DashboardOptions) -> Result<TcpListener, DashboardError> {
    if opts.token.is_none() && !opts.listen.ip().is_loopback() {
        return Err(DashboardError::NeedsToken(opts.listen));
    }
    TcpListener::bind(opts.listen).map_err(DashboardError::Io)
}

/// Serves the dashboard on `listener` until the process ends.
pub fn serve(
    listener: TcpListener,
    settings: VenueSettings,
    app: String,
    opts: DashboardOptions,
) -> Result<(), DashboardError> {
    let source = Arc::new(Mutex::new(Source {
        settings,
        app,
        silent_after: opts.silent_after,
        utc_offset_minutes: opts.utc_offset_minutes,
        client: None,
        last: None,
    }));
    let token: Arc<Option<String>> = Arc::new(opts.token);
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("dashboard: accept: {e}");
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = respond(&mut stream, 503, "text/plain", b"busy\n", false);
            continue;
        }
        let (src, tok, act) = (Arc::clone(&source), Arc::clone(&token), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                handle(stream, &src, tok.as_deref());
                act.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::warn!("dashboard: cannot start a thread: {e}");
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// A request's head as far as the dashboard cares.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    host: Option<String>,
    bearer: Option<String>,
}

/// Why a request was not read.
#[derive(Debug, PartialEq, Eq)]
enum Bad {
    TooLarge,
    Slow,
    Malformed,
}

fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Bad> {
    let until = Instant::now() + REQUEST_TIME;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Bad::Slow);
        }
        stream.set_read_timeout(Some(left)).map_err(|_| Bad::Slow)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(Bad::Malformed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Bad::Slow)
            }
            Err(_) => return Err(Bad::Malformed),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Err(Bad::TooLarge);
        }
    }
}

fn parse_head(head: &[u8]) -> Result<Request, Bad> {
    let text = std::str::from_utf8(head).map_err(|_| Bad::Malformed)?;
    let mut lines = text.split("\r\n");
    let first = lines.next().ok_or(Bad::Malformed)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(_version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad::Malformed);
    };
    let path = target.split(['?', '#']).next().unwrap_or("").to_string();
    let mut host = None;
    let mut bearer = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Err(Bad::Malformed);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            host = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("authorization") {
            if let Some((scheme, t)) = value.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    bearer = Some(t.trim().to_string());
                }
            }
        }
    }
    Ok(Request {
        method: method.to_string(),
        path,
        host,
        bearer,
    })
}

/// `localhost`, `127.0.0.1`, `[::1]` and the like, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn handle(mut stream: TcpStream, source: &Mutex<Source>, token: Option<&str>) {
    let _ = stream.set_write_timeout(Some(REQUEST_TIME));
    let req = match read_head(&mut stream).and_then(|h| parse_head(&h)) {
        Ok(r) => r,
        Err(Bad::TooLarge) => {
            let _ = respond(
                &mut stream,
                431,
                "text/plain",
                b"request too large\n",
                false,
            );
            drain(&mut stream);
            return;
        }
        Err(Bad::Slow) => {
            let _ = respond(&mut stream, 408, "text/plain", b"request timeout\n", false);
            return;
        }
        Err(Bad::Malformed) => {
            let _ = respond(&mut stream, 400, "text/plain", b"bad request\n", false);
            return;
        }
    };
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        let _ = respond(&mut stream, 405, "text/plain", b"only GET\n", false);
        return;
    }
    if token.is_none() && !req.host.as_deref().is_some_and(loopback_host) {
        let _ = respond(
            &mut stream,
            421,
            "text/plain",
            b"this dashboard answers only to localhost (no --token-file)\n",
            head,
        );
        return;
    }
    match req.path.as_str() {
        "/" | "/index.html" => {
            let _ = respond(
                &mut stream,
                200,
                "text/html; charset=utf-8",
                PAGE.as_bytes(),
                head,
            );
        }
        "/status.json" => {
            if let Some(t) = token {
                let given = req.bearer.as_deref().unwrap_or("");
                if !same_secret(given.as_bytes(), t.as_bytes()) {
                    let _ = respond(
                        &mut stream,
                        401,
                        "application/json",
                        b"{\"error\":\"a valid token is needed: open the dashboard as http://HOST:PORT/#token=TOKEN\"}\n",
                        head,
                    );
                    return;
                }
            }
            let r = source.lock().unwrap_or_else(|e| e.into_inner()).report();
            let _ = match r {
                Ok(json) => respond(&mut stream, 200, "application/json", json.as_bytes(), head),
                Err(e) => {
                    let body = serde_json::json!({ "error": e }).to_string();
                    respond(&mut stream, 503, "application/json", body.as_bytes(), head)
                }
            };
        }
        _ => {
            let _ = respond(&mut stream, 404, "text/plain", b"not found\n", head);
        }
    }
}

/// After refusing a request not read to its end: closing with unread data would reset
/// the connection, and the client might lose the answer; read a little more first.
fn drain(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    }
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    // The page's script and style are inline; nothing else may load or connect but
    // this server.
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
         style-src 'unsafe-inline'; connect-src 'self'; img-src data:; \
         frame-ancestors 'none'\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_gives_its_path_host_and_bearer_token() {
        let r = parse_head(
            b"GET /status.json?x=1 HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nAuthorization: Bearer abc\r\nAccept: */*",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/status.json");
        assert_eq!(r.host.as_deref(), Some("10.0.0.5:8080"));
        assert_eq!(r.bearer.as_deref(), Some("abc"));
        assert_eq!(parse_head(b"GET /\r\n"), Err(Bad::Malformed));
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nno colon"),
            Err(Bad::Malformed)
        );
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for h in [
            "localhost",
            "localhost:80",
            "127.0.0.1:9",
            "[::1]:8080",
            "LOCALHOST",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:8080",
            "10.0.0.5",
            "localhost.evil.example",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"", b"x"));
    }

    #[test]
    fn a_non_loopback_address_without_a_token_is_refused() {
        let opts = DashboardOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            token: None,
            silent_after: Duration::from_secs(15),
            utc_offset_minutes: 0,
        };
        let e = bind(&opts).unwrap_err();
        assert!(matches!(e, DashboardError::NeedsToken(_)), "{e}");
        assert!(e.to_string().contains("--token-file"), "{e}");
    }

    #[test]
    fn a_short_or_spaced_token_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(read_token(&p).unwrap_err().to_string().contains("at least"));
        std::fs::write(&p, "0123456789 abcdefgh\n").unwrap();
        assert!(read_token(&p).unwrap_err().to_string().contains("spaces"));
        std::fs::write(&p, "0123456789abcdefgh\n").unwrap();
        assert_eq!(read_token(&p).unwrap(), "0123456789abcdefgh");
    }

    #[test]
    fn the_page_is_self_contained() {
        // No external asset: nothing loaded from another origin, no build step.
        for needle in ["src=\"http", "href=\"http", "@import", "<link", "src=\"//"] {
            assert!(!PAGE.contains(needle), "{needle}");
        }
        assert!(PAGE.contains("status.json"));
        assert!(PAGE.contains(&REFRESH_MS.to_string()));
    }
}
