//! The sandbox's own HTTP/1.1 server: a std `TcpListener`, one thread per connection
//! (bounded), keep-alive, and optional TLS through `rustls::StreamOwned`.
//!
//! The server knows nothing about ATS: a [`Handler`] turns each request into an
//! [`Action`], which may be an answer or a fault below HTTP (close without answering,
//! hold the connection open without answering).

pub(crate) mod http;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use self::http::{read_request, write_response, ReadError, Request, Response};
use crate::sync::lock;

/// How long an idle keep-alive connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a black-holed connection checks whether the fault was cleared.
const BLACK_HOLE_CHECK: Duration = Duration::from_millis(10);

/// What to do with one request.
pub(crate) enum Action {
    /// Send this answer.
    Respond(Response),
    /// Close the connection without answering.
    Drop,
    /// Hold the connection without answering until [`Handler::black_hole_active`] is false.
    BlackHole,
}

/// Turns requests into actions.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles one request from `peer`.
    fn handle(&self, req: &Request, peer: SocketAddr) -> Action;
    /// While true, black-holed connections stay open.
    fn black_hole_active(&self) -> bool;
}

type Conns = Arc<Mutex<HashMap<u64, TcpStream>>>;

/// A running server.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Conns,
    active: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    tls: Option<Arc<ServerConfig>>,
    handler: Arc<dyn Handler>,
    max_body: usize,
    stop: Arc<AtomicBool>,
    conns: Conns,
    active: Arc<AtomicUsize>,
}

impl Server {
    /// Starts the accept thread.
    pub fn spawn(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        handler: Arc<dyn Handler>,
        max_conns: usize,
        max_body: usize,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::default();
        let active = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            tls,
            handler,
            max_body,
            stop: stop.clone(),
            conns: conns.clone(),
            active: active.clone(),
        });
        let accept = std::thread::Builder::new()
            .name("sandbox-accept".into())
            .spawn(move || accept_loop(listener, shared, max_conns))?;
        Ok(Server {
            addr,
            stop,
            conns,
            active,
            accept: Some(accept),
        })
    }

    /// Stops accepting, closes every open connection, joins the accept thread and waits
    /// (briefly) for connection threads to finish.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for (_, s) in lock(&self.conns).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, max_conns: usize) {
    let next_id = AtomicU64::new(0);
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                // Avoid a hot loop on persistent errors (fd exhaustion).
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.active.load(Ordering::SeqCst) >= max_conns {
            let resp = Response::json(503, &serde_json::json!({"error": "too many connections"}));
            let _ = write_response(&mut stream, &resp, false);
            continue;
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("sandbox-conn".into())
            .spawn(move || {
                connection(&sh, stream);
                lock(&sh.conns).remove(&id);
                sh.active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::warn!("spawn connection thread: {e}");
            lock(&shared.conns).remove(&id);
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// How a connection ended.
enum End {
    /// Close politely (TLS: send close_notify).
    Close,
    /// Close abruptly (a fault).
    Abort,
}

fn connection(sh: &Shared, tcp: TcpStream) {
    let peer = match tcp.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
    match &sh.tls {
        None => {
            let mut s = tcp;
            let _ = serve(sh, &mut s, peer);
        }
        Some(cfg) => {
            let conn = match ServerConnection::new(cfg.clone()) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("tls session: {e}");
                    return;
                }
            };
            let mut s = StreamOwned::new(conn, tcp);
            if let End::Close = serve(sh, &mut s, peer) {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
    }
}

fn serve<S: Read + Write>(sh: &Shared, s: &mut S, peer: SocketAddr) -> End {
    let mut buf = Vec::new();
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return End::Close;
        }
        let req = match read_request(s, &mut buf, sh.max_body) {
            Ok(r) => r,
            Err(ReadError::Closed) => return End::Close,
            Err(ReadError::Io(e)) => {
                log::debug!("read from {peer}: {e}");
                return End::Abort;
            }
            Err(ReadError::Reject(status, msg)) => {
                let resp = Response::json(status, &serde_json::json!({ "error": msg }));
                let _ = write_response(s, &resp, false);
                return End::Close;
            }
        };
        let keep = req.keep_alive();
        match sh.handler.handle(&req, peer) {
            Action::Respond(resp) => {
                if let Err(e) = write_response(s, &resp, keep) {
                    log::debug!("write to {peer}: {e}");
                    return End::Abort;
                }
                if resp.truncate {
                    return End::Abort;
                }
                if !keep {
                    return End::Close;
                }
            }
            Action::Drop => return End::Abort,
            Action::BlackHole => {
                while sh.handler.black_hole_active() && !sh.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(BLACK_HOLE_CHECK);
                }
                return End::Abort;
            }
        }
    }
}
