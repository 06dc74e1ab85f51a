//! The running agent's export socket (`STORE_DIR/control.sock`): `journal export`
//! while the agent holds the store (issue 14).
//!
//! sled lets one process open the store, and a copy of its files taken while the agent
//! writes is not a point-in-time copy. So while an agent runs, `journal export` asks
//! it: the agent's own open store reads the journal (sled reads are safe beside the
//! loop's writes; each entry is read whole) and streams the rows back. The socket lives
//! in the store directory, which is mode 0700, so only the agent's user (and root) can
//! connect: the same people who could read the store's files.
//!
//! Protocol (private to this binary): the client sends one JSON line, an
//! [`ExportRequest`]; the agent answers with frames, each a 4-byte big-endian length
//! and that many bytes of export output. A frame of length 0 ends a complete export;
//! length `u32::MAX` is followed by a second length and an error message (a bad
//! `--since`, a store read error). A connection that ends without either was cut off:
//! the client reports it, never a short export as complete.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{self, Format, Store};

/// The socket's file name, inside the store directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line.
const MAX_REQUEST: u64 = 4096;
/// The error frame's marker.
const ERROR_FRAME: u32 = u32::MAX;
/// Output is sent in frames of at most this many bytes.
const FRAME: usize = 64 * 1024;

/// What a command asks of the running agent: `journal export` (the default), or
/// `cache_stats` (`cache stats`: the fields below are then unused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// `export` or `cache_stats`.
    #[serde(default)]
    pub cmd: String,
    /// `jsonl` or `csv`.
    pub format: String,
    /// Entries after this id.
    pub since: Option<String>,
    /// Leave the full barcode out.
    pub mask_barcodes: bool,
}

/// Why an export through the agent failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// No agent answers on the socket (none runs, or one older than this command).
    Connect(io::Error),
    /// Reading from the agent or writing the output failed.
    Io(io::Error),
    /// The agent refused or failed the export (its message).
    Remote(String),
    /// The agent's answer ended before the export was complete.
    Truncated,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Connect(e) => write!(f, "no agent answers on {SOCKET}: {e}"),
            ControlError::Io(e) => write!(f, "export through the agent: {e}"),
            ControlError::Remote(m) => f.write_str(m),
            ControlError::Truncated => f.write_str(
                "the agent's export ended early (it stopped?): the output is incomplete, export again",
            ),
        }
    }
}

impl std::error::Error for ControlError {}

/// The listening socket; dropping it stops the listener and removes the file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `store_dir/control.sock`, answering exports from `store`. A socket
    /// file left by an agent that was killed is replaced (whoever holds the store's
    /// lock owns the directory).
    pub fn start(store: Store, store_dir: &Path) -> io::Result<ControlServer> {
        let path = store_dir.join(SOCKET);
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                std::fs::remove_file(&path)?;
                UnixListener::bind(&path)?
            }
            Err(e) => return Err(e),
        };
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(&listener, &store, &stop2))?;
        Ok(ControlServer {
            path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, store: &Store, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match crate::scan::source::wait_readable(listener.as_fd(), Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::error!("control socket: {e}: exports through the agent stop");
                return;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                log::warn!("control socket accept: {e}");
                continue;
            }
        };
        let store = store.clone();
        // An export can take seconds; the next request need not wait for it.
        if let Err(e) = std::thread::Builder::new()
            .name("control-export".into())
            .spawn(move || {
                if let Err(e) = answer(stream, &store) {
                    log::info!("control socket: {e}");
                }
            })
        {
            log::warn!("control socket: cannot start an export thread: {e}");
        }
    }
}

/// Frames written to the client.
struct Frames<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Frames<W> {
    fn frame(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.out.write_all(bytes)
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.frame(&buf)?;
        }
        Ok(())
    }

    fn error(&mut self, message: &str) -> io::Result<()> {
        self.send_buf()?;
        self.out.write_all(&ERROR_FRAME.to_be_bytes())?;
        self.frame(message.as_bytes())?;
        self.out.flush()
    }

    fn end(&mut self) -> io::Result<()> {
        self.send_buf()?;
        self.frame(&[])?;
        self.out.flush()
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FRAME {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Frames go out when full and at the end: a flush inside the export (after
        // its last row) must not send an empty frame, which would mean "done".
        Ok(())
    }
}

/// Answers one connection: reads its request, streams the export.
fn answer(stream: UnixStream, store: &Store) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let mut frames = Frames {
        out: io::BufWriter::new(&stream),
        buf: Vec::new(),
    };
    let req: ExportRequest = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return frames.error(&format!("bad request: {e}")),
    };
    if req.cmd == "cache_stats" {
        return match cache_stats_json(store) {
            Ok(v) => {
                frames.write_all(v.to_string().as_bytes())?;
                frames.end()
            }
            Err(e) => frames.error(&e.to_string()),
        };
    }
    let format = match req.format.as_str() {
        "jsonl" => Format::Jsonl,
        "csv" => Format::Csv,
        other => return frames.error(&format!("unknown format {other:?}")),
    };
    let opts = store::ExportOptions {
        since: req.since,
        mask_barcodes: req.mask_barcodes,
    };
    match store::export_with(store, format, &opts, &mut frames) {
        Ok(n) => {
            log::info!("exported {n} entries through the control socket");
            frames.end()
        }
        // The client went away: nothing to tell it.
        Err(store::StoreError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Err(e),
        Err(e) => frames.error(&e.to_string()),
    }
}

/// What `cache stats` prints for `store` (counted now: reads every entry).
pub fn cache_stats_json(store: &Store) -> Result<serde_json::Value, store::StoreError> {
    let s = store.cache_stats()?;
    Ok(serde_json::json!({
        "entries": s.entries,
        "bytes_on_disk": s.bytes_on_disk,
        "oldest_fetched": s.oldest_fetched_ms.map(store::rfc3339_ms),
        "newest_fetched": s.newest_fetched_ms.map(store::rfc3339_ms),
        "journal_entries": store.journal_len(),
    }))
}

/// `journal export` (or `cache stats`) through the agent running on `store_dir`: its
/// output goes to `out`.
pub fn export_via_agent(
    store_dir: &Path,
    req: &ExportRequest,
    out: &mut dyn Write,
) -> Result<(), ControlError> {
    let mut stream = UnixStream::connect(store_dir.join(SOCKET)).map_err(ControlError::Connect)?;
    let mut line = serde_json::to_string(req).unwrap_or_default();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(ControlError::Io)?;
    let mut input = io::BufReader::new(stream);
    let read_len = |r: &mut dyn Read| -> Result<Option<u32>, ControlError> {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => Ok(Some(u32::from_be_bytes(len))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(ControlError::Io(e)),
        }
    };
    let mut buf = Vec::new();
    loop {
        let Some(len) = read_len(&mut input)? else {
            return Err(ControlError::Truncated);
        };
        if len == 0 {
            return Ok(());
        }
        let is_error = len == ERROR_FRAME;
        let len = if is_error {
            read_len(&mut input)?.ok_or(ControlError::Truncated)?
        } else {
            len
        };
        buf.resize(len as usize, 0);
        input.read_exact(&mut buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ControlError::Truncated,
            _ => ControlError::Io(e),
        })?;
        if is_error {
            return Err(ControlError::Remote(
                String::from_utf8_lossy(&buf).into_owned(),
            ));
        }
        out.write_all(&buf).map_err(ControlError::Io)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(since: Option<&str>) -> ExportRequest {
        ExportRequest {
            cmd: "export".into(),
            format: "jsonl".into(),
            since: since.map(str::to_string),
            mask_barcodes: false,
        }
    }

    #[test]
    fn an_export_through_the_socket_is_the_stores_export_and_errors_come_back_as_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            crate::store::StoreOptions {
                terminal_id: "t".into(),
                machine_id: None,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..3 {
            let d = crate::decide::Decision::deny(
                crate::decide::Reason::Unreadable,
                crate::decide::Source::Offline,
                false,
            );
            store
                .commit_decision(&crate::store::NewDecision {
                    scan_time_ms: 1_764_600_000_000,
                    barcode: "",
                    decision: &d,
                    evidence: None,
                    latency_ms: 1,
                    request: None,
                })
                .unwrap();
        }
        let server = ControlServer::start(store.clone(), dir.path()).unwrap();
        let mut direct = Vec::new();
        store::export(&store, Format::Jsonl, None, &mut direct).unwrap();
        let mut via = Vec::new();
        export_via_agent(dir.path(), &req(None), &mut via).unwrap();
        assert_eq!(
            String::from_utf8(via).unwrap(),
            String::from_utf8(direct).unwrap()
        );
        let mut via = Vec::new();
        export_via_agent(dir.path(), &req(Some("t-000000000002")), &mut via).unwrap();
        assert_eq!(String::from_utf8(via).unwrap().lines().count(), 1);
        let mut via = Vec::new();
        let e = export_via_agent(dir.path(), &req(Some("u-000000000001")), &mut via).unwrap_err();
        assert!(matches!(e, ControlError::Remote(_)), "{e}");
        assert!(via.is_empty());
        let mut stats = Vec::new();
        let ask = ExportRequest {
            cmd: "cache_stats".into(),
            ..req(None)
        };
        export_via_agent(dir.path(), &ask, &mut stats).unwrap();
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        assert_eq!(stats, cache_stats_json(&store).unwrap());
        assert_eq!(stats["journal_entries"], 3);
        drop(server);
        assert!(!dir.path().join(SOCKET).exists());
        let e = export_via_agent(dir.path(), &req(None), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ControlError::Connect(_)), "{e}");
    }
}
