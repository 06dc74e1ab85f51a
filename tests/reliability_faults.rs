//! Faults on the wire: the fault matrix of RELIABILITY.md.
//!
//! For every fault in [`MATRIX`] the same script runs against an agent with a 1 s
//! decision deadline (at 400 ms the agent keeps only 40 ms for commit and signal, and
//! fsync on a loaded 2-core machine took up to ~125 ms: see RELIABILITY.md):
//!
//! 1. healthy: prefetch EVENT01 into the cache and redeem one ticket live;
//! 2. the fault is injected (sandbox fault API, or the TCP proxy below for faults that
//!    live under HTTP: refused connections, resets, TLS);
//! 3. eight scans, cached and uncached, each timed around `handle_scan`: every one is
//!    decided within deadline + 100 ms, every approval is an offline one within the
//!    offline caps, tickets the cache does not know are denied, nothing panics;
//! 4. the fault is cleared and `agent.tick()` runs until the agent is online again by
//!    itself (bounded), and the next scan is decided live;
//! 5. the journal holds exactly the decisions the POS saw, in order.
//!
//! Name resolution (`ats.invalid`) cannot be switched off inside one process (ureq has no
//! resolver hook in the client), so that row checks steps 1-3 and 5 only.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concession_agent::agent::prefetch::{events_to_prefetch, prefetch_event};
use concession_agent::agent::{local_date, Agent, Outputs};
use concession_agent::app;
use concession_agent::clock::{self, Clock, SharedClock, SystemClock};
use concession_agent::decide::Mode;
use concession_agent::decide::Verdict;
use concession_agent::sandbox::{
    generate_self_signed, DataSet, Faults, SandboxConfig, SandboxHandle, TlsPem,
};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};
use concession_agent::signal::DecisionEvent;
use concession_agent::store::JournalEntry;
use support::Recorder;

const DEADLINE_MS: u64 = 1000;
/// What the promise allows on top of the deadline (commit and signal).
const SLACK_MS: u64 = 100;
/// How long the agent may take to notice that a cleared fault is gone.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

const PER_TRANSACTION: u64 = 1000;
const PER_TICKET: u64 = 1500;
const TOTAL_CENTS: u64 = 2500;
const TOTAL_COUNT: usize = 4;

/// Generated EVENT01 tickets carry $10.00 each.
fn generated(i: u64) -> String {
    (200_000_000_000u64 + i).to_string()
}

/// The faults of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing listens on the port (the proxy closed its listener).
    ConnectionRefused,
    /// The proxy forwards part of the answer, then closes with SO_LINGER 0 (RST).
    ResetMidResponse,
    /// Requests are read and never answered.
    BlackHole,
    /// Every call answers 503.
    Burst503,
    /// Every call answers 429; the gateway's window resets a few seconds later.
    RateLimited429,
    /// Every call goes through a 202 cycle that never ends in time.
    Endless202,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// `Content-Length` longer than what is sent, then the connection closes.
    TruncatedBody,
    /// Answers just over the client's 4 MiB cap.
    OversizedBody,
    /// The request is read, then the connection closes without an answer.
    DroppedConnection,
    /// The server's certificate is signed by a CA the agent does not trust.
    TlsWrongCa,
    /// The server's certificate is signed by the trusted CA but expired in 2021.
    TlsExpired,
}

/// Every fault, in the order RELIABILITY.md lists them.
const MATRIX: [Fault; 12] = [
    Fault::ConnectionRefused,
    Fault::ResetMidResponse,
    Fault::BlackHole,
    Fault::Burst503,
    Fault::RateLimited429,
    Fault::Endless202,
    Fault::MalformedJson,
    Fault::TruncatedBody,
    Fault::OversizedBody,
    Fault::DroppedConnection,
    Fault::TlsWrongCa,
    Fault::TlsExpired,
];

impl Fault {
    /// The sandbox faults that produce it, for the faults the sandbox makes itself.
    fn sandbox_faults(self) -> Option<Faults> {
        let f = Faults::default();
        Some(match self {
            Fault::BlackHole => Faults {
                black_hole: true,
                ..f
            },
            Fault::Burst503 => Faults {
                fail_next: 100_000,
                ..f
            },
            Fault::RateLimited429 => Faults {
                rate_per_minute: Some(0),
                ..f
            },
            Fault::Endless202 => Faults {
                force_202_ms: Some(600_000),
                ..f
            },
            Fault::MalformedJson => Faults {
                malformed_body: true,
                ..f
            },
            Fault::TruncatedBody => Faults {
                truncate_body: true,
                ..f
            },
            Fault::OversizedBody => Faults {
                // Over the agent's cap (`ats.max_response_kb` below), small enough not to
                // load a shared 2-core machine with megabyte bodies.
                oversized_body_bytes: Some(MAX_RESPONSE_KB as usize * 1024 + 16 * 1024),
                ..f
            },
            Fault::DroppedConnection => Faults {
                drop_connection: true,
                ..f
            },
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Panics anywhere in the process (worker threads included) are counted.

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A failing assertion on a test's own thread is that test's business; any
            // other thread (ATS workers, prefetch, sandbox, proxy) must never panic.
            let name = std::thread::current().name().map(str::to_string);
            let test_thread = name
                .as_deref()
                .is_some_and(|n| n.starts_with("decides_in_time") || n.starts_with("the_matrix"));
            if !test_thread {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

// ---------------------------------------------------------------------------------------
// A TCP proxy for the faults below HTTP.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    /// Pass bytes both ways to backend `n`.
    Forward(usize),
    /// Forward the request to backend 0, then part of its answer, then reset.
    Reset,
}

struct ProxyShared {
    mode: ProxyMode,
    /// Client sides of every connection accepted, to cut them when the mode changes
    /// (the agent keeps connections alive; a fault must reach them too).
    conns: Vec<TcpStream>,
}

struct Proxy {
    addr: SocketAddr,
    backends: Arc<Vec<SocketAddr>>,
    shared: Arc<Mutex<ProxyShared>>,
    acceptor: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Proxy {
    fn start(backends: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut p = Proxy {
            addr: listener.local_addr().unwrap(),
            backends: Arc::new(backends),
            shared: Arc::new(Mutex::new(ProxyShared {
                mode: ProxyMode::Forward(0),
                conns: Vec::new(),
            })),
            acceptor: None,
        };
        p.listen(listener);
        p
    }

    fn listen(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, backends, shared) = (stop.clone(), self.backends.clone(), self.shared.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let mode = {
                    let mut s = shared.lock().unwrap();
                    // Not in reset mode: a kept duplicate would hold the socket open
                    // and turn the reset into a stall.
                    if let (ProxyMode::Forward(_), Ok(c)) = (s.mode, client.try_clone()) {
                        s.conns.push(c);
                    }
                    s.mode
                };
                let backends = backends.clone();
                std::thread::spawn(move || serve(client, mode, &backends));
            }
        });
        self.acceptor = Some((stop, handle));
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    fn cut_connections(&self) {
        for c in self.shared.lock().unwrap().conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn set_mode(&self, mode: ProxyMode) {
        self.shared.lock().unwrap().mode = mode;
        self.cut_connections();
    }

    /// Stops listening: connecting to the port is refused.
    fn close(&mut self) {
        if let Some((stop, handle)) = self.acceptor.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr); // wakes the accept
            let _ = handle.join();
        }
        self.cut_connections();
    }

    /// Listens on the same port again.
    fn reopen(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("proxy rebinds its port");
        self.listen(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.close();
    }
}

fn serve(client: TcpStream, mode: ProxyMode, backends: &[SocketAddr]) {
    match mode {
        ProxyMode::Forward(n) => {
            let Ok(backend) = TcpStream::connect(backends[n]) else {
                return;
            };
            let (Ok(mut c_in), Ok(mut b_out)) = (client.try_clone(), backend.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut b_out);
                let _ = b_out.shutdown(Shutdown::Write);
            });
            let (mut b_in, mut c_out) = (backend, client);
            let _ = std::io::copy(&mut b_in, &mut c_out);
            let _ = c_out.shutdown(Shutdown::Both);
            let _ = b_in.shutdown(Shutdown::Both);
            let _ = up.join();
        }
        ProxyMode::Reset => {
            let mut client = client;
            let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
            let Some(request) = read_request(&mut client) else {
                return;
            };
            let Ok(mut backend) = TcpStream::connect(backends[0]) else {
                return;
            };
            let _ = backend.set_read_timeout(Some(Duration::from_secs(5)));
            if backend.write_all(&request).is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            let n = backend.read(&mut buf).unwrap_or(0);
            let part = (n / 2).clamp(1, 40).min(n);
            let _ = client.write_all(&buf[..part]);
            let _ = client.flush();
            // SO_LINGER 0: close sends RST instead of FIN.
            let _ = rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO));
            drop(client);
        }
    }
}

/// One HTTP request: headers and a `Content-Length` body.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Certificates.

struct Pki {
    _dir: tempfile::TempDir,
    /// The CA the agent trusts.
    ca_file: PathBuf,
    /// Signed by that CA, valid.
    good: TlsPem,
    /// Signed by that CA, expired in 2021.
    expired: TlsPem,
    /// Signed by another CA.
    wrong_ca: TlsPem,
}

fn pki() -> Pki {
    use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |expired: bool| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        if expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &issuer).unwrap();
        TlsPem {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    Pki {
        good: leaf(false),
        expired: leaf(true),
        wrong_ca: generate_self_signed(&["localhost", "127.0.0.1"])
            .unwrap()
            .tls_pem(),
        ca_file,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// The ATS side of one case.

/// Real time, with the wall clock `behind_ms` late: the sandbox's rate window then
/// announces a reset (`Rate-Limit-Reset`) a few seconds after its first call instead of
/// a minute, so the 429 row sees the agent honour the reset and come back in seconds.
struct BehindClock {
    behind_ms: u64,
}

impl Clock for BehindClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_ms(&self) -> u64 {
        SystemClock.wall_ms().saturating_sub(self.behind_ms)
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

fn sandbox(tls: Option<TlsPem>, clock: SharedClock) -> SandboxHandle {
    let mut data = DataSet::builtin();
    data.generate(10);
    support::sandbox_with(SandboxConfig {
        data,
        tls,
        clock,
        // The agent's own budget is what the 429 row is about; the probes of a fast
        // test must not spend the default 80 a minute.
        rate_per_minute: 10_000,
        rate_per_day: 1_000_000,
        ..SandboxConfig::default()
    })
}

struct Rig {
    ats: SandboxHandle,
    _bad: Option<SandboxHandle>,
    proxy: Option<Proxy>,
    _pki: Option<Pki>,
    url: String,
    ca_file: Option<PathBuf>,
}

impl Rig {
    fn new(fault: Fault) -> Rig {
        let clock: SharedClock = if fault == Fault::RateLimited429 {
            Arc::new(BehindClock { behind_ms: 55_000 })
        } else {
            clock::system()
        };
        match fault {
            Fault::ConnectionRefused | Fault::ResetMidResponse => {
                let ats = sandbox(None, clock);
                let proxy = Proxy::start(vec![ats.addr()]);
                Rig {
                    url: proxy.url("http"),
                    ats,
                    _bad: None,
                    proxy: Some(proxy),
                    _pki: None,
                    ca_file: None,
                }
            }
            Fault::TlsWrongCa | Fault::TlsExpired => {
                let pki = pki();
                let ats = sandbox(Some(pki.good.clone()), clock.clone());
                let bad_pem = if fault == Fault::TlsExpired {
                    pki.expired.clone()
                } else {
                    pki.wrong_ca.clone()
                };
                let bad = sandbox(Some(bad_pem), clock);
                let proxy = Proxy::start(vec![ats.addr(), bad.addr()]);
                Rig {
                    url: proxy.url("https"),
                    ca_file: Some(pki.ca_file.clone()),
                    ats,
                    _bad: Some(bad),
                    proxy: Some(proxy),
                    _pki: Some(pki),
                }
            }
            _ => {
                let ats = sandbox(None, clock);
                Rig {
                    url: ats.base_url(),
                    ats,
                    _bad: None,
                    proxy: None,
                    _pki: None,
                    ca_file: None,
                }
            }
        }
    }

    fn inject(&mut self, fault: Fault) {
        if let Some(f) = fault.sandbox_faults() {
            self.ats.set_faults(f);
            return;
        }
        let proxy = self.proxy.as_mut().unwrap();
        match fault {
            Fault::ConnectionRefused => proxy.close(),
            Fault::ResetMidResponse => proxy.set_mode(ProxyMode::Reset),
            Fault::TlsWrongCa | Fault::TlsExpired => proxy.set_mode(ProxyMode::Forward(1)),
            _ => unreachable!(),
        }
    }

    fn clear(&mut self, fault: Fault) {
        if fault.sandbox_faults().is_some() {
            self.ats.set_faults(Faults::default());
            return;
        }
        let proxy = self.proxy.as_mut().unwrap();
        match fault {
            Fault::ConnectionRefused => proxy.reopen(),
            _ => proxy.set_mode(ProxyMode::Forward(0)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The agent side.

/// The response cap the fault matrix configures (the oversized fault exceeds it).
const MAX_RESPONSE_KB: u64 = 256;

fn extra(ca_file: Option<&Path>) -> String {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    format!(
        "deadline_ms = {DEADLINE_MS}\n\
         events = [\"EVENT01\"]\n\
         [ats]\n\
         rate_per_minute = 10000\n\
         rate_per_day = 1000000\n\
         connect_timeout_ms = 300\n\
         read_timeout_ms = 1000\n\
         call_timeout_ms = 1500\n\
         max_response_kb = {MAX_RESPONSE_KB}\n\
         {ca}\
         [cache]\n\
         fresh_ms = 0\n\
         [offline]\n\
         per_transaction_cents = {PER_TRANSACTION}\n\
         per_ticket_cents = {PER_TICKET}\n\
         total_cents = {TOTAL_CENTS}\n\
         total_count = {TOTAL_COUNT}\n\
         [health]\n\
         probe_interval_ms = 50\n\
         probes_to_online = 2\n"
    )
}

struct Terminal {
    agent: Agent,
    seen: Recorder,
    clock: SharedClock,
    /// Every decision handed back, in order (after a restart: the earlier ones too).
    decided: Vec<DecisionEvent>,
    /// Decisions made before a restart (signalled by the earlier instance).
    inherited: usize,
}

impl Terminal {
    fn new(url: &str, ca_file: Option<&Path>, store_dir: &Path) -> Terminal {
        let config = support::config(url, store_dir, &extra(ca_file));
        let clock = clock::system();
        let link = app::connect_ats(&config, clock.clone()).expect("client builds");
        let store = app::open_store(&config).expect("store opens");
        let seen = Recorder::default();
        let outputs = Outputs {
            signals: vec![Box::new(seen.clone())],
        };
        Terminal {
            agent: Agent::new(config, link.client, store, clock.clone(), outputs),
            seen,
            clock,
            decided: Vec::new(),
            inherited: 0,
        }
    }

    fn prefetch(&self) {
        let today = local_date(self.clock.wall_ms(), 0);
        let ats = self.agent.ats();
        let events = events_to_prefetch(ats, &["EVENT01".to_string()], &today).unwrap();
        for ev in &events {
            let n =
                prefetch_event(ats, self.agent.store(), ev, self.clock.wall_ms(), None).unwrap();
            assert!(n >= 10, "prefetched {n}");
        }
    }

    /// One scan, timed from before the scanner event exists to after the POS was told.
    fn scan(&mut self, barcode: &str, amount: Option<u64>) -> (DecisionEvent, Duration) {
        let started = Instant::now();
        let ev = ScanEvent {
            input: classify(barcode),
            amount_cents: amount,
            request_id: None,
            received_at_ms: self.clock.wall_ms(),
            origin: Origin::Stdin,
        };
        let d = self.agent.handle_scan(&ev).expect("decision journaled");
        let took = started.elapsed();
        self.decided.push(d.clone());
        (d, took)
    }

    /// Drives `tick` until the agent is online; returns how long it took.
    fn wait_online(&mut self) -> Duration {
        let started = Instant::now();
        while self.agent.mode() != Mode::Online {
            assert!(
                started.elapsed() < RECOVERY_BOUND,
                "still offline {RECOVERY_BOUND:?} after the fault cleared"
            );
            self.agent.tick();
            std::thread::sleep(Duration::from_millis(10));
        }
        started.elapsed()
    }

    fn journal(&self) -> Vec<JournalEntry> {
        self.agent
            .store()
            .journal_since(None)
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The script.

/// The scans made while the fault is on, and what the offline rules must answer:
/// (barcode, amount asked, verdict, cents approved).
const FAULT_SCANS: [(&str, Option<u64>, Verdict, u64); 8] = [
    // cached, $10: within every cap
    ("200000000001", None, Verdict::Approve, 1000),
    ("200000000002", Some(1000), Verdict::Approve, 1000),
    // cached, $20: the total cap leaves $5
    ("100000000001", None, Verdict::Approve, 500),
    // cached: the total cap is spent
    ("200000000003", Some(1000), Verdict::Deny, 0),
    // unknown, and a real ticket the cache does not hold (EVENT02): denied
    ("999999999999", None, Verdict::Deny, 0),
    ("100000000006", None, Verdict::Deny, 0),
    // cached, $15 + a hot dog: no money left, the item is allowed (4th approval)
    ("100000000003", None, Verdict::Approve, 0),
    // the count cap is spent
    ("200000000004", Some(500), Verdict::Deny, 0),
];

/// Prints what one row measured (RELIABILITY.md quotes these lines).
fn figures(name: &str, times: &[Duration], recovery: Option<Duration>) {
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    let max = ms.iter().max().copied().unwrap_or(0);
    let recovery = recovery.map_or("n/a".to_string(), |r| format!("{} ms", r.as_millis()));
    eprintln!("FIGURE {name}: scan ms {ms:?}, max {max} ms, back online after {recovery}");
}

fn check_offline_rules(fault: &str, journal: &[JournalEntry]) {
    use std::collections::BTreeMap;
    let mut windows: BTreeMap<u64, Vec<&JournalEntry>> = BTreeMap::new();
    for e in journal
        .iter()
        .filter(|e| e.offline && e.verdict == Verdict::Approve)
    {
        windows.entry(e.offline_window).or_default().push(e);
    }
    for (w, approvals) in windows {
        let total: u64 = approvals.iter().map(|e| e.approved_cents).sum();
        assert!(total <= TOTAL_CENTS, "{fault}: window {w} approved {total}");
        assert!(
            approvals.len() <= TOTAL_COUNT,
            "{fault}: window {w} has {} offline approvals",
            approvals.len()
        );
        let mut per_ticket: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &approvals {
            assert!(
                e.approved_cents <= PER_TRANSACTION,
                "{fault}: {} approved {}",
                e.id,
                e.approved_cents
            );
            *per_ticket.entry(e.barcode.as_str()).or_default() += e.approved_cents;
        }
        for (b, cents) in per_ticket {
            assert!(
                cents <= PER_TICKET,
                "{fault}: ticket {b} got {cents} offline"
            );
        }
    }
}

/// Healthy prefetch and one live redemption.
fn healthy_phase(t: &mut Terminal, name: &str) {
    t.prefetch();
    let (d, _) = t.scan(&generated(0), Some(500));
    assert_eq!(
        (d.decision, d.approved_cents, d.source.as_str()),
        (Verdict::Approve, 500, "live"),
        "{name}: healthy scan {d:?}"
    );
}

/// The scans under the fault; returns each one's wall time.
fn fault_phase(t: &mut Terminal, name: &str) -> Vec<Duration> {
    let limit = Duration::from_millis(DEADLINE_MS + SLACK_MS);
    let mut times = Vec::new();
    for (barcode, amount, verdict, cents) in FAULT_SCANS {
        let (d, took) = t.scan(barcode, amount);
        times.push(took);
        assert!(
            took <= limit,
            "{name}: {barcode} decided in {took:?}, over {limit:?}"
        );
        assert!(
            d.latency_ms <= DEADLINE_MS + SLACK_MS,
            "{name}: {barcode} latency {}",
            d.latency_ms
        );
        assert_eq!(
            (d.decision, d.approved_cents),
            (verdict, cents),
            "{name}: {barcode}: {d:?}"
        );
        if d.decision == Verdict::Approve {
            assert_eq!(d.source, "offline", "{name}: {barcode}: {d:?}");
        }
    }
    times
}

/// Everything decided is journaled once, in order, and was signalled.
fn check_records(t: &Terminal, name: &str) {
    let journal = t.journal();
    assert_eq!(journal.len(), t.decided.len(), "{name}: journal length");
    let journaled: Vec<&str> = journal.iter().map(|e| e.id.as_str()).collect();
    let decided: Vec<&str> = t.decided.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(journaled, decided, "{name}: journal ids");
    assert_eq!(
        t.seen.0.lock().unwrap().decisions.len(),
        t.decided.len() - t.inherited,
        "{name}: signalled"
    );
    check_offline_rules(name, &journal);
    for (e, (barcode, ..)) in journal[1..].iter().zip(FAULT_SCANS) {
        if e.verdict == Verdict::Approve {
            assert!(
                e.offline,
                "{name}: {barcode} approved online under the fault"
            );
        }
    }
}

fn run_case(fault: Fault) {
    count_panics();
    let panics = PANICS.load(Ordering::SeqCst);
    let name = format!("{fault:?}");
    let mut rig = Rig::new(fault);
    let dir = tempfile::tempdir().unwrap();
    let mut t = Terminal::new(&rig.url, rig.ca_file.as_deref(), &dir.path().join("store"));

    healthy_phase(&mut t, &name);
    rig.inject(fault);
    let times = fault_phase(&mut t, &name);

    rig.clear(fault);
    let recovery = t.wait_online();
    let (d, took) = t.scan(&generated(5), Some(500));
    assert_eq!(
        (d.decision, d.approved_cents, d.source.as_str()),
        (Verdict::Approve, 500, "live"),
        "{name}: first scan after recovery {d:?}"
    );
    assert!(took <= Duration::from_millis(DEADLINE_MS + SLACK_MS));

    check_records(&t, &name);
    t.agent.shutdown();
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics,
        "{name}: a thread panicked"
    );
    figures(&name, &times, Some(recovery));
}

macro_rules! matrix {
    ($($test:ident => $fault:expr),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_case($fault);
            }
        )*
        /// Every row of MATRIX has its test.
        #[test]
        fn the_matrix_covers_every_fault() {
            let tested = [$($fault),*];
            for f in MATRIX {
                assert!(tested.contains(&f), "{f:?} has no test");
            }
        }
    };
}

matrix! {
    decides_in_time_and_recovers_when_connections_are_refused => Fault::ConnectionRefused,
    decides_in_time_and_recovers_when_connections_reset_mid_response => Fault::ResetMidResponse,
    decides_in_time_and_recovers_from_a_black_hole => Fault::BlackHole,
    decides_in_time_and_recovers_from_a_503_burst => Fault::Burst503,
    decides_in_time_and_recovers_from_429_after_the_reset => Fault::RateLimited429,
    decides_in_time_and_recovers_from_endless_202_cycles => Fault::Endless202,
    decides_in_time_and_recovers_from_malformed_json => Fault::MalformedJson,
    decides_in_time_and_recovers_from_truncated_bodies => Fault::TruncatedBody,
    decides_in_time_and_recovers_from_oversized_bodies => Fault::OversizedBody,
    decides_in_time_and_recovers_from_dropped_connections => Fault::DroppedConnection,
    decides_in_time_and_recovers_from_a_certificate_of_the_wrong_ca => Fault::TlsWrongCa,
    decides_in_time_and_recovers_from_an_expired_certificate => Fault::TlsExpired,
}

/// `ats.invalid` never resolves: the agent, restarted on a store filled while healthy,
/// keeps deciding within the deadline under the offline rules.
#[test]
fn decides_in_time_under_offline_rules_when_the_name_does_not_resolve() {
    count_panics();
    let panics = PANICS.load(Ordering::SeqCst);
    let name = "NameResolution";
    let ats = sandbox(None, clock::system());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut healthy = Terminal::new(&ats.base_url(), None, &store);
    healthy_phase(&mut healthy, name);
    let first = healthy.decided.clone();
    healthy.agent.shutdown();

    // A CA file of its own: the test must not depend on the machine's trust store
    // (the name never resolves, so no certificate is ever checked).
    let pki = pki();
    let mut t = Terminal::new("https://ats.invalid", Some(&pki.ca_file), &store);
    t.inherited = first.len();
    t.decided = first;
    let times = fault_phase(&mut t, name);
    check_records(&t, name);
    t.agent.tick();
    assert_eq!(t.agent.mode(), Mode::Offline, "{name}: never reached ATS");
    t.agent.shutdown();
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics,
        "{name}: a thread panicked"
    );
    figures(name, &times, None);
}

/// Regression (found by the 429 row, which failed about one run in five): a lookup's
/// two halves race; when the first 429 closed the client's budget before the second
/// half was sent, that half was refused locally, the refusal was not counted, and the
/// agent stayed "online" while ATS throttled it, never resetting its offline window.
/// Now a budget closed by the server counts as a failed call.
#[test]
fn decides_in_time_and_goes_offline_when_the_server_throttles_before_a_scan() {
    let ats = sandbox(None, clock::system());
    let dir = tempfile::tempdir().unwrap();
    let mut t = Terminal::new(&ats.base_url(), None, &dir.path().join("store"));
    t.prefetch();
    ats.set_faults(Faults {
        rate_per_minute: Some(0),
        ..Faults::default()
    });
    // Some other call meets the 429 first (a refresh, a probe): the budget closes.
    assert!(t.agent.ats().ping().is_err());
    let (d, took) = t.scan(&generated(1), None);
    assert!(took <= Duration::from_millis(DEADLINE_MS + SLACK_MS));
    assert_eq!(
        (d.decision, d.source.as_str()),
        (Verdict::Approve, "offline")
    );
    t.agent.tick();
    assert_eq!(t.agent.mode(), Mode::Offline, "throttled means offline");
    t.agent.shutdown();
}

/// The proxy's reset is a reset: the client sees part of an answer, then ECONNRESET.
#[test]
fn the_test_proxy_resets_mid_response() {
    let ats = sandbox(None, clock::system());
    let proxy = Proxy::start(vec![ats.addr()]);
    proxy.set_mode(ProxyMode::Reset);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut buf = Vec::new();
    let err = s.read_to_end(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(buf.starts_with(b"HTTP/1.1 "), "{buf:?}");
}

/// The TLS rows fail for the reason they claim: expiry, and an unknown issuer.
#[test]
fn the_tls_faults_fail_the_handshake_for_the_stated_reason() {
    use concession_agent::ats::{AtsClient, AtsConfig, Phase};
    let pki = pki();
    for (pem, why) in [
        (pki.expired.clone(), "expired"),
        (pki.wrong_ca.clone(), "unknownissuer"),
        (pki.good.clone(), ""),
    ] {
        let sb = sandbox(Some(pem), clock::system());
        let client = AtsClient::new(AtsConfig {
            base_url: sb.base_url(),
            apikey: concession_agent::redact::Secret::new("sandbox-key"),
            ca_file: Some(pki.ca_file.clone()),
            ..AtsConfig::default()
        })
        .unwrap();
        match client.ping() {
            Ok(_) => assert_eq!(why, "", "handshake passed"),
            Err(e) => {
                assert_eq!(e.phase(), Some(Phase::Tls), "{e:?}");
                let text = format!("{e:?}")
                    .to_ascii_lowercase()
                    .replace([' ', '_'], "");
                assert!(!why.is_empty() && text.contains(why), "{why}: {e:?}");
            }
        }
    }
}
