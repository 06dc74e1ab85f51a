//! Wiring: from a validated [`Config`] (and an optional board profile) to running parts.
//!
//! The only place that decides which ATS to talk to (the in-process sandbox or a real
//! endpoint), which scanner to read, and which outputs to drive. `main.rs` parses the
//! command line and calls in here; tests build the same parts with their own clocks.
//! [`run`] holds the process around the agent: configuration, logging, start-up and
//! shutdown ([`run::run_agent`]).

pub mod run;
pub mod tty_line;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::agent::Outputs;
use crate::ats::{AtsClient, AtsConfig, AtsError};
use crate::board::{AckSetting, BoardError, BoardProfile, GpioProfile, JsonlTarget};
use crate::clock::SharedClock;
use crate::config::{AtsEndpoint, Config, ScannerKind, ScannerSection, StdoutFormat};
use crate::pos::{PosError, PosOptions, PosServer};
use crate::scan::frame::{FrameConfig, FrameConfigError};
use crate::scan::source::{self, SourceError, SourceHandle, SourceOptions, TcpScannerSource};
use crate::scan::AgentRequest;
use crate::signal::console::ConsoleSignal;
use crate::signal::jsonl::JsonlSignal;
use crate::signal::Signal;
use crate::store::{Store, StoreError, StoreOptions};

/// Why the agent could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The ATS client could not be built (bad URL, CA file).
    Ats(AtsError),
    /// The built-in sandbox could not start.
    #[cfg(feature = "sandbox")]
    Sandbox(crate::sandbox::SandboxError),
    /// `ats.url = "sandbox"` in a build without the sandbox.
    NoSandbox,
    /// The store could not be opened.
    Store(StoreError),
    /// A board device could not be opened.
    Board(BoardError),
    /// A scanner source could not start.
    Scanner(SourceError),
    /// Scanner framing settings are invalid.
    Framing(FrameConfigError),
    /// The POS link could not listen.
    Pos(PosError),
    /// A board feature that this build leaves out.
    Unsupported(String),
    /// Venue mode cannot start (a schema newer than this agent, the database's refusal).
    Venue(crate::venue::VenueError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Ats(e) => write!(f, "ats client: {e}"),
            #[cfg(feature = "sandbox")]
            StartError::Sandbox(e) => write!(f, "built-in sandbox: {e}"),
            StartError::NoSandbox => f.write_str(
                "ats.url is \"sandbox\" but this build has no sandbox (build with --features sandbox, or set CONCESSION_ATS_URL)",
            ),
            StartError::Store(e) => write!(f, "store: {e}"),
            StartError::Board(e) => write!(f, "board: {e}"),
            StartError::Scanner(e) => write!(f, "scanner: {e}"),
            StartError::Framing(e) => write!(f, "scanner framing: {e}"),
            StartError::Pos(e) => write!(f, "pos link: {e}"),
            StartError::Unsupported(what) => f.write_str(what),
            StartError::Venue(e) => write!(f, "venue: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The ATS the agent talks to, and the sandbox behind it when it is the built-in one.
pub struct AtsLink {
    /// The shared client (one rate budget per key).
    pub client: Arc<AtsClient>,
    /// The in-process sandbox, kept alive as long as the link.
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<crate::sandbox::SandboxHandle>,
}

impl AtsLink {
    /// True when the agent talks to the built-in sandbox.
    pub fn is_sandbox(&self) -> bool {
        #[cfg(feature = "sandbox")]
        {
            self.sandbox.is_some()
        }
        #[cfg(not(feature = "sandbox"))]
        {
            false
        }
    }
}

/// Venue mode (docs/venue.md): starts the venue worker, applies the migrations and
/// uploads what is pending before the agent serves, waiting at most
/// `venue.start_timeout_ms`. A database that does not answer is no reason not to
/// serve (scans are then decided locally, pending); a schema newer than this agent, or
/// the database refusing (rights, authentication), is. Without `[venue]`: inert.
pub fn start_venue(config: &Config, store: &Store) -> Result<crate::agent::VenueState, StartError> {
    start_venue_with(config, store, VenueBudget::default())
}

/// The key's venue-wide ATS budget (docs/venue.md, "One budget for the key"), from its
/// attachment to the client ([`attach_venue_budget`]) to the venue's start
/// ([`start_venue_with`]), whose worker claims it.
#[derive(Default)]
pub struct VenueBudget {
    #[cfg(feature = "venue")]
    link: Option<crate::venue::budget::BudgetLink>,
}

/// Venue mode: makes every call of `client` draw from the key's venue-wide budget
/// first (the client's own budget stays the second guard). Until the venue worker's
/// first claim is answered the stand keeps to its static share (`venue.stands`).
/// Without `[venue]`: nothing, the client is as before.
pub fn attach_venue_budget(config: &Config, client: &AtsClient) -> VenueBudget {
    #[cfg(feature = "venue")]
    if let Some(settings) = &config.venue {
        use crate::ats::shared_budget::{SharePlan, SharedBudget};
        let plan = SharePlan {
            per_minute: config.ats.rate_per_minute,
            per_day: config.ats.rate_per_day,
            stands: settings.stands,
            reserve_per_minute: config.cache.budget_reserve_per_minute,
        };
        if !settings.stands_given {
            log::warn!(
                "venue.stands is not set: while the venue database is away this stand may                  spend the whole API key (set it to the number of stands on this key)"
            );
        }
        let budget = Arc::new(SharedBudget::new(plan, client.clock().clone()));
        if client.set_shared_budget(Arc::clone(&budget)).is_err() {
            log::warn!("the ATS client already has a venue budget: keeping it");
            return VenueBudget::default();
        }
        let link = crate::venue::budget::BudgetLink::new(budget, config.ats.apikey.expose(), plan);
        return VenueBudget { link: Some(link) };
    }
    let _ = (config, client);
    VenueBudget::default()
}

/// [`start_venue`], the worker also claiming `budget` for the ATS client.
pub fn start_venue_with(
    config: &Config,
    store: &Store,
    budget: VenueBudget,
) -> Result<crate::agent::VenueState, StartError> {
    let Some(settings) = &config.venue else {
        return Ok(crate::agent::VenueState::default());
    };
    #[cfg(feature = "venue")]
    {
        use crate::venue::{VenueError, VenueHandle};
        let handle = VenueHandle::start_with_budget(settings.clone(), store.clone(), budget.link)
            .map_err(StartError::Venue)?;
        match handle.start_up(true, settings.start_timeout) {
            Ok(r) => {
                if !r.migrated.is_empty() {
                    log::info!("venue schema migrated: {:?}", r.migrated);
                }
                log::info!(
                    "venue database ready: {} pending entries uploaded ({} overdrafts), {} left",
                    r.uploaded,
                    r.overdrafts,
                    r.pending
                );
            }
            Err(e @ (VenueError::FutureSchema { .. } | VenueError::OldSchema { .. })) => {
                return Err(StartError::Venue(e))
            }
            Err(VenueError::Db(e)) if e.as_db_error().is_some() => {
                return Err(StartError::Venue(VenueError::Db(e)))
            }
            Err(e @ VenueError::Config(_)) => return Err(StartError::Venue(e)),
            Err(e) => log::warn!(
                "venue database not available at start ({e}): scans are decided locally \
                 (pending) until it answers"
            ),
        }
        Ok(crate::agent::VenueState::with(handle))
    }
    #[cfg(not(feature = "venue"))]
    {
        let _ = (settings, store, budget);
        Err(StartError::Unsupported(
            "[venue] needs a build with the `venue` feature".into(),
        ))
    }
}

/// Venue mode: starts the venue's fetch thread (one fetch per event through a lease,
/// and the copy of the venue ticket table into the local cache; venue/background.rs).
/// `None` without `[venue]`.
#[cfg(feature = "venue")]
pub fn start_venue_fetch(
    config: &Config,
    ats: &Arc<AtsClient>,
    store: &Store,
    clock: &crate::clock::SharedClock,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<crate::venue::background::VenueFetch>, StartError> {
    use crate::venue::background::{FetchPlan, VenueFetch};
    let Some(settings) = &config.venue else {
        return Ok(None);
    };
    let plan = FetchPlan {
        events: config.events.clone(),
        at_start: config.cache.prefetch_at_start,
        refresh_interval: config.cache.refresh_interval,
        reserve_per_minute: config.cache.budget_reserve_per_minute,
        lease: settings.lease,
        sync_interval: settings.sync_interval,
    };
    if plan.events.is_empty() {
        log::warn!(
            "venue mode without `events`: no event is fetched through the venue (set \
             events = [...]); this terminal copies what other stands fetched"
        );
    }
    VenueFetch::start(
        settings.clone(),
        plan,
        std::sync::Arc::clone(ats),
        store.clone(),
        clock.clone(),
        std::sync::Arc::clone(stop),
    )
    .map(Some)
    .map_err(StartError::Venue)
}

/// The client settings for a base URL.
pub fn ats_config(config: &Config, base_url: String) -> AtsConfig {
    let a = &config.ats;
    AtsConfig {
        base_url,
        product: a.product.clone(),
        resource: a.resource.clone(),
        dsn: a.dsn.clone(),
        apikey: a.apikey.clone(),
        uid: a.uid.clone(),
        src_sys_name: "concession-agent".into(),
        ca_file: a.ca_file.clone(),
        connect_timeout: a.connect_timeout,
        read_timeout: a.read_timeout,
        call_timeout: a.call_timeout,
        rate_per_minute: a.rate_per_minute,
        rate_per_day: a.rate_per_day,
        max_response_bytes: a.max_response_bytes,
        ..AtsConfig::default()
    }
}

/// Connects to ATS: starts the built-in sandbox on a loopback port when configured.
pub fn connect_ats(config: &Config, clock: SharedClock) -> Result<AtsLink, StartError> {
    match &config.ats.endpoint {
        AtsEndpoint::Url(url) => {
            let client = AtsClient::with_clock(ats_config(config, url.clone()), clock)
                .map_err(StartError::Ats)?;
            Ok(AtsLink {
                client: Arc::new(client),
                #[cfg(feature = "sandbox")]
                sandbox: None,
            })
        }
        #[cfg(feature = "sandbox")]
        AtsEndpoint::Sandbox => {
            use crate::sandbox::{Sandbox, SandboxConfig};
            let handle = Sandbox::start(SandboxConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                apikey: config.ats.apikey.expose().to_string(),
                dsn: config.ats.dsn.clone(),
                clock: clock.clone(),
                rate_per_minute: config.ats.rate_per_minute,
                rate_per_day: config.ats.rate_per_day,
                utc_offset_minutes: config.utc_offset_minutes,
                ..SandboxConfig::default()
            })
            .map_err(StartError::Sandbox)?;
            log::info!("built-in ATS sandbox at {}", handle.base_url());
            let client = AtsClient::with_clock(ats_config(config, handle.base_url()), clock)
                .map_err(StartError::Ats)?;
            Ok(AtsLink {
                client: Arc::new(client),
                sandbox: Some(handle),
            })
        }
        #[cfg(not(feature = "sandbox"))]
        AtsEndpoint::Sandbox => Err(StartError::NoSandbox),
    }
}

/// Opens the store named by the configuration.
pub fn open_store(config: &Config) -> Result<Store, StartError> {
    Store::open(
        &config.store_dir,
        StoreOptions {
            cache_capacity_bytes: config.cache.capacity_bytes,
            terminal_id: config.terminal_id.clone(),
            ..store_options(config)
        },
    )
    .map_err(StartError::Store)
}

/// The store options the configuration gives (cache size, terminal, machine id,
/// headroom).
pub fn store_options(config: &Config) -> StoreOptions {
    let defaults = StoreOptions::default();
    StoreOptions {
        cache_capacity_bytes: config.cache.capacity_bytes,
        terminal_id: config.terminal_id.clone(),
        machine_id: config.machine_id.clone().or(defaults.machine_id),
        min_free_bytes: config.store_min_free_bytes,
        ..defaults
    }
}

/// The input and output plan: the configuration, overridden by a board profile.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Where scans come from (the `[scanner]` section of the config or the board).
    pub scanner: ScannerSection,
    /// Framing of scanner bytes.
    pub frame: FrameConfig,
    /// People-readable lines on stdout.
    pub console: bool,
    /// JSON lines on stdout.
    pub jsonl_stdout: bool,
    /// JSON-lines POS link listening here.
    pub pos_listen: Option<SocketAddr>,
    /// The POS link's limits and credential (`[pos]`).
    pub pos_link: PosOptions,
    /// JSON lines over a serial line to the POS.
    pub pos_serial: Option<(PathBuf, u32)>,
    /// Good/bad beeps back to a serial scanner.
    pub ack: AckSetting,
    /// Lights, buzzer and relay.
    pub gpio: Option<GpioProfile>,
    /// The venue's offset from UTC: console times are shown in it.
    pub utc_offset_minutes: i32,
}

fn strip_line_ends(bytes: &[u8]) -> Vec<u8> {
    // Line ends already end a read; the framer refuses them as a suffix.
    bytes
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect()
}

/// The framer for a scanner section: the one place its prefix, suffix and
/// length limit become a [`FrameConfig`], for the config and the board alike.
fn framer(prefix: &[u8], suffix: &[u8], max_len: usize) -> Result<FrameConfig, StartError> {
    FrameConfig::default()
        .with_prefix(prefix)
        .and_then(|f| f.with_suffix(&strip_line_ends(suffix)))
        .and_then(|f| f.with_max_len(max_len))
        .map_err(StartError::Framing)
}

impl Wiring {
    /// The plan for `config`, with `board` overriding scanner and outputs.
    pub fn plan(config: &Config, board: Option<&BoardProfile>) -> Result<Wiring, StartError> {
        let s = &config.scanner;
        let mut w = Wiring {
            scanner: s.clone(),
            frame: framer(s.prefix.as_bytes(), s.suffix.as_bytes(), s.max_len)?,
            console: config.pos.output == StdoutFormat::Console,
            jsonl_stdout: config.pos.output == StdoutFormat::JsonLines,
            pos_listen: config.pos.listen,
            pos_link: PosOptions {
                token: config.pos.token.clone(),
                line_timeout: config.pos.line_timeout,
                scans_per_minute: Some(config.pos.client_scans_per_minute),
                scan_burst: config.pos.client_scan_burst,
                terminal: config.terminal_id.clone(),
                ..PosOptions::default()
            },
            pos_serial: None,
            ack: s.ack.clone(),
            gpio: None,
            utc_offset_minutes: config.utc_offset_minutes,
        };
        let Some(b) = board else { return Ok(w) };
        let sp = &b.scanner;
        w.scanner = sp.clone();
        w.frame = framer(sp.prefix.as_bytes(), sp.suffix.as_bytes(), sp.max_len)?;
        w.ack = sp.ack.clone();
        let o = &b.outputs;
        w.console = o.console;
        w.jsonl_stdout = o.jsonl == JsonlTarget::Stdout;
        if o.jsonl == JsonlTarget::Tcp {
            w.pos_listen = o.pos_listen.or(w.pos_listen);
        }
        if o.jsonl == JsonlTarget::Serial {
            w.pos_serial = o.pos_path.clone().map(|p| (p, o.pos_baud.unwrap_or(9600)));
        }
        w.gpio = b.gpio.clone();
        Ok(w)
    }

    /// `--pos jsonl`: stdout carries JSON lines instead of console text.
    pub fn stdout_jsonl(&mut self) {
        self.console = false;
        self.jsonl_stdout = true;
    }
}

/// What runs beside the loop; dropping it stops the POS link.
pub struct Running {
    /// Scanner source threads.
    pub sources: Vec<SourceHandle>,
    /// TCP scanner listener.
    pub tcp_scanner: Option<TcpScannerSource>,
    /// The POS link.
    pub pos: Option<PosServer>,
}

/// Starts the scanner source and the outputs of `wiring`.
pub fn start_io(
    wiring: &Wiring,
    tx: &Sender<AgentRequest>,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
) -> Result<(Running, Outputs), StartError> {
    let mut outputs = Outputs::default();
    let mut running = Running {
        sources: Vec::new(),
        tcp_scanner: None,
        pos: None,
    };
    let mut opts = SourceOptions::new(clock.clone(), Arc::clone(&stop));
    opts.frame = wiring.frame.clone();

    if wiring.console {
        outputs.push(Box::new(
            ConsoleSignal::stdout().with_utc_offset(wiring.utc_offset_minutes),
        ));
    }
    if wiring.jsonl_stdout {
        outputs.push(Box::new(JsonlSignal::stdout()));
    }
    if let Some(addr) = wiring.pos_listen {
        // Its own stop flag (from the options): the link stays up while the loop
        // answers what it took, and closes when `Running` is dropped.
        let server = PosServer::bind_with(addr, tx.clone(), clock.clone(), wiring.pos_link.clone())
            .map_err(StartError::Pos)?;
        log::info!("POS link listening on {}", server.local_addr());
        outputs.push(Box::new(server.signal()));
        running.pos = Some(server);
    }
    if let Some((path, baud)) = &wiring.pos_serial {
        outputs.push(serial_jsonl(path, *baud)?);
    }
    #[cfg(feature = "board")]
    if let Some(gpio) = &wiring.gpio {
        let signal =
            crate::board::devices::gpio_signal(gpio, clock.clone()).map_err(StartError::Board)?;
        outputs.push(Box::new(signal));
    }
    #[cfg(not(feature = "board"))]
    if wiring.gpio.is_some() {
        return Err(StartError::Unsupported(
            "the board profile has [gpio] but this build has no board feature (cargo build --features board)".into(),
        ));
    }

    let sc = &wiring.scanner;
    match sc.kind {
        ScannerKind::Stdin => running
            .sources
            .push(source::spawn_stdin(tx.clone(), opts).map_err(StartError::Scanner)?),
        ScannerKind::Serial => {
            // A validated section has a path; an empty one fails to open, by name.
            let path = sc.path.clone().unwrap_or_default();
            let (handle, ack) = serial_scanner(&path, sc.baud, &wiring.ack, tx, opts)?;
            running.sources.push(handle);
            if let Some(ack) = ack {
                outputs.push(ack);
            }
        }
        ScannerKind::Tcp => {
            let listen = sc
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7071)));
            let src =
                TcpScannerSource::bind(listen, tx.clone(), opts).map_err(StartError::Scanner)?;
            log::info!("network scanners: listening on {}", src.local_addr());
            running.tcp_scanner = Some(src);
        }
        ScannerKind::None => {}
    }
    Ok((running, outputs))
}

#[cfg(feature = "board")]
fn serial_jsonl(path: &std::path::Path, baud: u32) -> Result<Box<dyn Signal>, StartError> {
    let port = crate::board::devices::open_serial_port(path, baud).map_err(StartError::Board)?;
    Ok(Box::new(JsonlSignal::new(port)))
}

#[cfg(not(feature = "board"))]
fn serial_jsonl(_: &std::path::Path, _: u32) -> Result<Box<dyn Signal>, StartError> {
    Err(StartError::Unsupported(
        "JSON lines over a serial line need the board feature (cargo build --features board)"
            .into(),
    ))
}

type SerialParts = (SourceHandle, Option<Box<dyn Signal>>);

#[cfg(feature = "board")]
fn serial_scanner(
    path: &std::path::Path,
    baud: u32,
    ack: &AckSetting,
    tx: &Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SerialParts, StartError> {
    use crate::board::devices::SerialScanner;
    let profile = ScannerSection {
        kind: ScannerKind::Serial,
        path: Some(path.to_path_buf()),
        listen: None,
        baud,
        prefix: Default::default(),
        suffix: Default::default(),
        max_len: opts.frame.max_len,
        ack: ack.clone(),
    };
    let scanner = SerialScanner::open(&profile).map_err(StartError::Board)?;
    let ack_signal = scanner
        .ack_signal(ack)
        .map_err(StartError::Board)?
        .map(|a| Box::new(a) as Box<dyn Signal>);
    // The source's stop flag also ends the serial reader's wait.
    let scanner_stop = scanner.stop_flag();
    let stop = Arc::clone(&opts.stop);
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        scanner_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let origin = crate::scan::Origin::Serial(path.display().to_string());
    let handle =
        source::spawn_reader(scanner, origin, tx.clone(), opts).map_err(StartError::Scanner)?;
    Ok((handle, ack_signal))
}

#[cfg(not(feature = "board"))]
fn serial_scanner(
    path: &std::path::Path,
    baud: u32,
    ack: &AckSetting,
    tx: &Sender<AgentRequest>,
    opts: SourceOptions,
) -> Result<SerialParts, StartError> {
    if *ack != AckSetting::None {
        log::warn!("scanner acknowledgement needs the board feature; beeps are off");
    }
    let handle = source::spawn_serial(path, baud, tx.clone(), opts).map_err(StartError::Scanner)?;
    Ok((handle, None))
}
