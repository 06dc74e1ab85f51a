//! Throwaway PostgreSQL clusters for the venue tests and benches.
//!
//! A [`Cluster`] is `initdb` into a fresh temporary directory, a postmaster on a free
//! loopback port (`listen_addresses=127.0.0.1`, its socket in the same directory), and
//! databases made with `createdb`. As root the server binaries run as the `postgres`
//! system user (the server refuses root) in a directory `chown`ed to it; otherwise they
//! run as the test's own user. The distribution's server binaries are found under
//! `/usr/lib/postgresql/*/bin` (newest first), or on `PATH`.
//!
//! Faults for the tests: [`Cluster::stop`] (refusing: nothing listens on the port),
//! [`Cluster::start`] again on the same data and port, [`Cluster::restart`],
//! [`Cluster::crash_backends`] (SIGKILL of a backend: the postmaster drops every
//! connection and recovers), [`Cluster::hang`] (`SIGSTOP` of the postmaster and every
//! backend: connections are accepted by the kernel and never answered; `SIGCONT` when the
//! guard drops), and [`Cluster::standby`] (`pg_basebackup -R` into a second cluster on a
//! second port, streaming from this one) with [`Cluster::promote`].
//!
//! One cluster per test binary ([`shared`]) keeps the suite fast; each test makes its own
//! database in it ([`Cluster::fresh_db`]). Tests that stop or hang the server start their
//! own cluster. Servers are started from one long-lived thread with `PR_SET_PDEATHSIG`,
//! so a test binary that ends (or panics, or is killed) takes its postmasters with it;
//! [`Cluster`]'s drop stops its server by pid and removes the directory.
//!
//! When PostgreSQL is not installed, [`available`] prints why the venue tests are
//! skipped and returns `None`, unless `CI` is set: then it panics, so that CI never
//! passes without them (`.ci/run` installs `postgresql`).

use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates (trust authentication on loopback).
pub const USER: &str = "concession";

/// How long a server may take to start, stop or promote before the test fails.
const SERVER_WAIT: Duration = Duration::from_secs(30);

/// Server settings for the tests' own psql sessions: a lock wait or a statement past
/// these ends with an error (`pg_promote(true, 30)` fits inside).
const PSQL_OPTIONS: &str = "-c lock_timeout=20s -c statement_timeout=60s";

/// True when `CI` says this is a CI run (`CI=true`, `CI=1`, anything but empty/false/0).
pub fn ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no"
        ),
        Err(_) => false,
    }
}

/// The directory holding `initdb`, `postgres`, `pg_ctl`, `pg_basebackup`, `psql`, ...:
/// `VENUE_TEST_PG_BIN` when set (a directory without `initdb` means "not installed",
/// to check the skip and the CI failure), else the newest `/usr/lib/postgresql/N/bin`,
/// else the directory of `initdb` on `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VENUE_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

/// The server binaries, or `None` after printing why `test` is skipped. Under CI a
/// missing PostgreSQL is a failure, never a skip.
pub fn available(test: &str) -> Option<PathBuf> {
    match bin_dir() {
        Some(bin) => Some(bin),
        None if ci() => panic!(
            "{test}: PostgreSQL server binaries not found (no initdb under \
             /usr/lib/postgresql/*/bin or on PATH) and CI is set: the venue tests must run \
             in CI (.ci/run installs the `postgresql` package)"
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: PostgreSQL is not installed (no initdb under \
                 /usr/lib/postgresql/*/bin or on PATH); `apt-get install postgresql` to run \
                 the venue tests (CI=true makes this a failure)"
            );
            None
        }
    }
}

/// The cluster shared by every test of this test binary (started on first use), or
/// `None` when PostgreSQL is not installed (see [`available`]).
pub fn shared(test: &str) -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    available(test)?;
    SHARED
        .get_or_init(|| Some(Cluster::new(ClusterOptions::default())))
        .as_ref()
}

/// Server settings that differ between tests and benches.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `fsync`. Off for tests (servers stop or die with the OS still up, so the page
    /// cache keeps what they wrote; `synchronous_commit` stays on, so an acknowledged
    /// commit survives a killed server); on for benches, which measure what a venue
    /// gets.
    pub durable: bool,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// Who runs the server binaries: `postgres` when we are root, else ourselves.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    ids: Option<(u32, u32)>,
}

impl RunAs {
    fn detect() -> RunAs {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return RunAs { ids: None };
        }
        let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd readable");
        let ids = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[0] == "postgres").then(|| (f[2].parse().ok(), f[3].parse().ok()))
            })
            .and_then(|(u, g)| Some((u?, g?)))
            .expect(
                "running as root, but there is no `postgres` user to run the server as \
                 (the server refuses root; install the `postgresql` package)",
            );
        RunAs { ids: Some(ids) }
    }

    /// A command for a server binary, as the server's user.
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            // The same as `runuser -u postgres --`, with the postmaster's own pid as the
            // child's (runuser would sit in between).
            c.uid(uid).gid(gid);
            c.env("HOME", "/tmp").env("USER", "postgres");
        }
        c
    }

    fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
        }
    }
}

/// Spawns children from one thread that lives as long as the process, with the parent-
/// death signal set to SIGINT (PostgreSQL's fast shutdown): the signal fires when the
/// spawning *thread* ends, so a test thread must not spawn servers itself.
fn spawn_kept(mut cmd: Command) -> io::Result<Child> {
    type Req = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("pg-keeper".into())
            .spawn(move || {
                // Never returns while the process lives: the static sender stays.
                for (cmd, reply) in rx {
                    let mut cmd = cmd;
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("keeper thread");
        Mutex::new(tx)
    });
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGINT as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1); // the test binary is already gone
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("keeper alive");
    reply_rx.recv().expect("keeper answers")
}

/// Removes cluster directories left by test binaries that are gone (a static shared
/// cluster is never dropped; its server dies with the binary, its directory stays).
fn sweep_stale() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("concession-pg-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// How long a one-shot command of the binary or a PostgreSQL tool may take in a test
/// before [`output_within`] gives up on it.
pub const COMMAND_WAIT: Duration = Duration::from_secs(120);

/// Runs `cmd` to its end as [`Command::output`] does, but at most `timeout`: a child still
/// running then is killed and the call panics with what it printed, naming `what`. A test
/// that waits on a tool or on the binary must end with a reason, never hang CI.
pub fn output_within(
    mut cmd: Command,
    timeout: Duration,
    what: &str,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Both pipes drain on threads of their own, so a chatty child never blocks on a
    // full pipe while we wait for it.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        panic!(
            "{what}: still running after {timeout:?}, killed; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A free loopback port (bound and released: a small race, retried by [`Cluster::new`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn run(mut c: Command, what: &str) -> Output {
    c.stdin(Stdio::null());
    let out =
        output_within(c, COMMAND_WAIT, what).unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Pids of the direct children of `pid` (a postmaster's backends and auxiliary
/// processes), from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; a gone pid is ESRCH, ignored.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A PostgreSQL cluster of its own: data directory, port, postmaster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: RunAs,
    opts: ClusterOptions,
    server: Mutex<Option<Child>>,
    /// Numbers the databases of [`Cluster::fresh_db`].
    next_db: AtomicU32,
}

impl Cluster {
    /// `initdb`, start on a free port, wait until it accepts connections.
    pub fn new(opts: ClusterOptions) -> Cluster {
        let bin = bin_dir().expect("PostgreSQL server binaries (check pg::available first)");
        let run_as = RunAs::detect();
        let c = Cluster::fresh_dir(bin, run_as, opts);
        run(
            {
                let mut i = run_as.command(&c.bin.join("initdb"));
                i.arg("-D")
                    .arg(c.data())
                    .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"])
                    .arg("--locale=C")
                    .current_dir(&c.dir);
                i
            },
            "initdb",
        );
        let mut c = c;
        c.start_first();
        c
    }

    /// The first start, on a new free port if another process took the one chosen
    /// (between [`free_port`] releasing it and the postmaster binding it).
    fn start_first(&mut self) {
        for attempt in 0.. {
            match self.start_server(true) {
                Ok(()) => return,
                Err(log) if attempt < 3 && log.contains("could not bind") => {
                    self.port = free_port();
                }
                Err(log) => panic!("postgres did not start on port {}:\n{log}", self.port),
            }
        }
    }

    fn fresh_dir(bin: PathBuf, run_as: RunAs, opts: ClusterOptions) -> Cluster {
        sweep_stale();
        let dir = tempfile::Builder::new()
            .prefix(&format!("concession-pg-{}-", std::process::id()))
            .tempdir()
            .expect("temp dir")
            .keep();
        run_as.own(&dir);
        Cluster {
            bin,
            dir,
            port: free_port(),
            run_as,
            opts,
            server: Mutex::new(None),
            next_db: AtomicU32::new(0),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of this cluster (data, socket, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres://concession@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn start_server(&self, first: bool) -> Result<(), String> {
        let mut server = self.server.lock().unwrap();
        assert!(server.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let mut c = self.run_as.command(&self.bin.join("postgres"));
        c.arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=64"])
            .args(["-c", "shared_buffers=32MB"])
            .args(["-c", "wal_keep_size=256MB"])
            .args(["-c", "log_min_messages=warning"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if !self.opts.durable {
            // Commits still reach the OS before they are acknowledged
            // (`synchronous_commit` stays on): a crashed or killed server then recovers
            // every acknowledged commit, as a real one does; only the flush to the disk
            // itself, which matters when the machine dies, is skipped.
            c.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        for (k, v) in &self.opts.settings {
            c.arg("-c").arg(format!("{k}={v}"));
        }
        let child = spawn_kept(c).expect("postgres starts");
        *server = Some(child);
        drop(server);
        match self.try_wait_ready(SERVER_WAIT) {
            Ok(true) => Ok(()),
            Ok(false) => panic!(
                "postgres on port {} not ready within {SERVER_WAIT:?} (first start: {first}):\n{}",
                self.port,
                self.log()
            ),
            Err(log) => {
                *self.server.lock().unwrap() = None;
                Err(log)
            }
        }
    }

    /// Polls `pg_isready` until the server accepts connections or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.try_wait_ready(timeout)
            .unwrap_or_else(|log| panic!("postgres exited during start:\n{log}"))
    }

    /// As [`Cluster::wait_ready`]; `Err(log)` when the postmaster exited meanwhile.
    fn try_wait_ready(&self, timeout: Duration) -> Result<bool, String> {
        let until = Instant::now() + timeout;
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "2", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(true);
            }
            if let Some(child) = self.server.lock().unwrap().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("exited with {status}:\n{}", self.log()));
                }
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The postmaster's pid, when running.
    pub fn pid(&self) -> Option<u32> {
        self.server.lock().unwrap().as_ref().map(|c| c.id())
    }

    /// True when the postmaster runs (it may be hung).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// `createdb NAME`; returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        let mut c = Command::new(self.bin.join("createdb"));
        c.args(["-h", "127.0.0.1", "-U", USER, "-p"])
            .arg(self.port.to_string())
            .arg(name);
        run(c, "createdb");
        self.url(name)
    }

    /// A new database with a unique name (`venue_N`); returns its URL.
    pub fn fresh_db(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        self.create_db(&format!("venue_{n}"))
    }

    /// Runs `sql` with psql in `db` (the name, or the last path segment of a URL) and
    /// returns its unaligned, tuples-only output; `Err` with psql's stderr on failure.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let db = db.rsplit('/').next().unwrap_or(db);
        let db = db.split('?').next().unwrap_or(db);
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args(["-U", USER, "-p"])
        .arg(self.port.to_string())
        .args(["-d", db, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        // A test's query never waits on a lock or runs for long: a stuck one is an
        // error naming itself, not a hung test.
        .env("PGOPTIONS", PSQL_OPTIONS)
        .stdin(Stdio::null());
        let out = output_within(psql, COMMAND_WAIT, &format!("psql {sql:?}"))
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// As [`Cluster::try_psql`], panicking on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} on port {}: {e}", self.port))
    }

    /// Fast shutdown (SIGINT to the postmaster; SIGQUIT, then SIGKILL, if it lingers)
    /// and wait for it to exit: afterwards the port refuses connections.
    pub fn stop(&self) {
        let Some(mut child) = self.server.lock().unwrap().take() else {
            return;
        };
        let pid = child.id();
        // A hung server handles no signal: resume it first.
        for p in children_of(pid) {
            signal(p, libc::SIGCONT);
        }
        signal(pid, libc::SIGCONT);
        for (sig, wait) in [
            (libc::SIGINT, Duration::from_secs(10)),
            (libc::SIGQUIT, Duration::from_secs(5)),
            (libc::SIGKILL, Duration::from_secs(5)),
        ] {
            signal(pid, sig);
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.wait();
    }

    /// Immediate shutdown (SIGQUIT, as a crash: no shutdown checkpoint, nothing more
    /// sent to a standby) and wait for the exit.
    pub fn crash(&self) {
        let Some(mut child) = self.server.lock().unwrap().take() else {
            return;
        };
        let pid = child.id();
        signal(pid, libc::SIGQUIT);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again, on the same data and port.
    pub fn start(&self) {
        if let Err(log) = self.start_server(false) {
            panic!("postgres did not start again on port {}:\n{log}", self.port);
        }
    }

    /// [`Cluster::stop`] then [`Cluster::start`].
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// SIGKILLs one backend: the postmaster ends every other session and runs crash
    /// recovery (a server "restart" from the clients' point of view, without a gap on
    /// the port). Returns after it accepts connections again.
    pub fn crash_backends(&self) {
        let pid = self.pid().expect("server running");
        // A client session if there is one, else any child (an auxiliary process's
        // death is a crash for the postmaster too).
        let kids = children_of(pid);
        let is_client = |p: &u32| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&format!("postgres: {USER} ")))
                .unwrap_or(false)
        };
        let victim = kids
            .iter()
            .copied()
            .find(is_client)
            .or_else(|| kids.first().copied())
            .expect("postmaster has children");
        signal(victim, libc::SIGKILL);
        // Wait until the crash is noticed (children replaced) and the server is back.
        let until = Instant::now() + SERVER_WAIT;
        while Instant::now() < until && children_of(pid).contains(&victim) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            self.wait_ready(SERVER_WAIT),
            "server back after crash:\n{}",
            self.log()
        );
    }

    /// Stops (`SIGSTOP`) the postmaster and every backend: new connections complete the
    /// TCP handshake in the kernel's backlog and then hear nothing; open sessions stop
    /// answering. Dropping the guard resumes them (`SIGCONT`).
    pub fn hang(&self) -> Hang<'_> {
        let pid = self.pid().expect("server running");
        // The postmaster first, so that it forks no new backend meanwhile.
        signal(pid, libc::SIGSTOP);
        let mut pids = vec![pid];
        for p in children_of(pid) {
            signal(p, libc::SIGSTOP);
            pids.push(p);
        }
        Hang {
            _cluster: self,
            pids,
        }
    }

    /// A streaming standby of this cluster: `pg_basebackup -R -X stream` into a new
    /// directory, started on another free port. It replicates asynchronously (no
    /// `synchronous_standby_names`) unless the primary was started with that setting.
    pub fn standby(&self) -> Cluster {
        self.standby_at(self.port)
    }

    /// As [`Cluster::standby`], but the standby streams through `link` (a [`Link`] in
    /// front of this cluster): switching the link to `Blackhole` makes replication fall
    /// behind while commits go on here, `Refuse` cuts it and drops what it held. No
    /// process is stopped to do it (a `SIGSTOP`ped WAL sender can hold a spinlock every
    /// committing backend then spins on).
    pub fn standby_through(&self, link: &Link) -> Cluster {
        self.standby_at(link.port())
    }

    /// `pg_basebackup -R` through `port`: the standby's `primary_conninfo` names it.
    fn standby_at(&self, port: u16) -> Cluster {
        let c = Cluster::fresh_dir(self.bin.clone(), self.run_as, self.opts.clone());
        let mut b = self.run_as.command(&self.bin.join("pg_basebackup"));
        b.args(["-h", "127.0.0.1", "-U", USER, "-p"])
            .arg(port.to_string())
            .arg("-D")
            .arg(c.data())
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .current_dir(&c.dir);
        run(b, "pg_basebackup");
        let mut c = c;
        c.start_first();
        assert_eq!(c.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
        c
    }

    /// Promotes this standby (`pg_promote`, waiting) and checks it now accepts writes.
    pub fn promote(&self) {
        assert_eq!(self.psql("postgres", "SELECT pg_promote(true, 30)"), "t");
        let until = Instant::now() + SERVER_WAIT;
        while self.psql("postgres", "SELECT pg_is_in_recovery()") != "f" {
            assert!(Instant::now() < until, "promotion did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn wait_caught_up(&self, primary: &Cluster) {
        // The insert position: everything committed so far, written out or not yet.
        let lsn = primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
        let until = Instant::now() + SERVER_WAIT;
        loop {
            let behind = self.psql(
                "postgres",
                &format!("SELECT pg_last_wal_replay_lsn() < '{lsn}'::pg_lsn"),
            );
            if behind == "f" {
                return;
            }
            assert!(Instant::now() < until, "standby did not catch up to {lsn}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Some(mut child) = self.server.lock().unwrap().take() else {
            let _ = std::fs::remove_dir_all(&self.dir);
            return;
        };
        let pid = child.id();
        for p in children_of(pid) {
            signal(p, libc::SIGCONT);
        }
        signal(pid, libc::SIGCONT);
        // Immediate shutdown: nothing of a throwaway cluster needs to reach disk.
        signal(pid, libc::SIGQUIT);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A hung server; dropping it resumes every stopped process.
pub struct Hang<'a> {
    _cluster: &'a Cluster,
    pids: Vec<u32>,
}

impl Hang<'_> {
    /// Resumes now (same as dropping).
    pub fn resume(self) {}
}

impl Drop for Hang<'_> {
    fn drop(&mut self) {
        // Backends first, the postmaster last (the reverse of the stop).
        for p in self.pids.iter().rev() {
            signal(*p, libc::SIGCONT);
        }
    }
}

/// A multi-host URL over `clusters` in order, `target_session_attrs=read-write` (a
/// standby is skipped until promoted).
pub fn multi_host_url(clusters: &[&Cluster], db: &str) -> String {
    let hosts: Vec<String> = clusters
        .iter()
        .map(|c| format!("127.0.0.1:{}", c.port()))
        .collect();
    format!(
        "postgres://{USER}@{}/{db}?target_session_attrs=read-write",
        hosts.join(",")
    )
}

/// What a [`CommitTrap`] does to the next `COMMIT` once armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapMode {
    /// Hold the `COMMIT` (never forward it, nor anything after it on that connection):
    /// the transaction never commits, the client waits forever.
    HoldCommit,
    /// Forward the `COMMIT`, then swallow everything the server says on that connection:
    /// the transaction commits and the client never learns it (an outcome in doubt).
    SwallowReply,
}

#[derive(Debug, Default)]
struct TrapState {
    armed: Option<TrapMode>,
    /// Only a `COMMIT` of a transaction in which these bytes were sent (a barcode, in a
    /// query or as a bound parameter) springs the trap.
    needle: Option<Vec<u8>>,
    /// Set when an armed trap caught a `COMMIT` (and disarmed).
    sprung: Option<TrapMode>,
    connections: usize,
}

/// A loopback TCP proxy in front of a cluster that reads the PostgreSQL wire protocol
/// from the client and, once armed, catches the next `COMMIT` (a simple `Query` or a
/// `Parse` whose text is `COMMIT`/`END`): it holds it, or forwards it and swallows the
/// answer. This puts a terminal deterministically *between its local write and its
/// venue commit* (or past a commit it cannot know of), where a test can SIGKILL it.
/// Connections made after the trap sprang pass through untouched.
pub struct CommitTrap {
    port: u16,
    state: std::sync::Arc<(Mutex<TrapState>, std::sync::Condvar)>,
}

impl CommitTrap {
    /// Listens on a free loopback port, forwarding to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> CommitTrap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("trap listens");
        let port = listener.local_addr().unwrap().port();
        let state =
            std::sync::Arc::new((Mutex::new(TrapState::default()), std::sync::Condvar::new()));
        let st = state.clone();
        std::thread::Builder::new()
            .name("commit-trap".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let st = st.clone();
                    std::thread::spawn(move || trap_connection(client, upstream, st));
                }
            })
            .expect("trap thread");
        CommitTrap { port, state }
    }

    /// The port to give clients.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://concession@127.0.0.1:TRAP/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Arms the trap for the next `COMMIT` on any connection.
    pub fn arm(&self, mode: TrapMode) {
        let mut s = self.state.0.lock().unwrap();
        s.armed = Some(mode);
        s.needle = None;
        s.sprung = None;
    }

    /// Arms the trap for the next `COMMIT` of a transaction that sent `needle` (the
    /// scan's barcode: not a replay's or a background job's transaction).
    pub fn arm_for(&self, mode: TrapMode, needle: &str) {
        let mut s = self.state.0.lock().unwrap();
        s.armed = Some(mode);
        s.needle = Some(needle.as_bytes().to_vec());
        s.sprung = None;
    }

    /// Waits until the armed trap caught a `COMMIT` (at most `timeout`).
    pub fn wait_sprung(&self, timeout: Duration) -> bool {
        let (m, cv) = &*self.state;
        let until = Instant::now() + timeout;
        let mut s = m.lock().unwrap();
        while s.sprung.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
        true
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.0.lock().unwrap().connections
    }
}

/// Is this frontend message a `COMMIT`? (`Q`: query text; `P`: name, then query text.)
fn is_commit(kind: u8, body: &[u8]) -> bool {
    let text = match kind {
        b'Q' => body,
        b'P' => match body.iter().position(|b| *b == 0) {
            Some(i) => &body[i + 1..],
            None => return false,
        },
        _ => return false,
    };
    let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
    let q = String::from_utf8_lossy(&text[..end])
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_ascii_uppercase();
    q == "COMMIT" || q == "END" || q == "COMMIT TRANSACTION" || q == "COMMIT WORK"
}

fn trap_connection(
    client: std::net::TcpStream,
    upstream: u16,
    st: std::sync::Arc<(Mutex<TrapState>, std::sync::Condvar)>,
) {
    use std::io::{Read, Write};
    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    st.0.lock().unwrap().connections += 1;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Set by the client side when it swallowed-forwarded a COMMIT: drop server bytes.
    let swallow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut c_read, mut c_write) = (client.try_clone().unwrap(), client);
    let (mut s_read, mut s_write) = (server.try_clone().unwrap(), server);
    let sw = swallow.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sw.load(Ordering::SeqCst) {
                        continue;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = c_write.shutdown(std::net::Shutdown::Both);
    });
    // Client to server, message by message. Untyped messages (SSLRequest,
    // GSSENCRequest, StartupMessage) come first; typed ones after the startup message.
    let read_exact = |r: &mut std::net::TcpStream, n: usize| -> Option<Vec<u8>> {
        let mut v = vec![0u8; n];
        r.read_exact(&mut v).ok().map(|_| v)
    };
    let mut started = false;
    // The armed needle was sent in the current transaction.
    let mut saw_needle = false;
    // A stand's second connection, its fetch thread's (`application_name` ending in
    // ` fetch`), writes a scan's live answer with the scan's barcode too: only the
    // decision worker's COMMITs are the trap's.
    let mut fetch_connection = false;
    loop {
        let msg = if !started {
            let Some(len) = read_exact(&mut c_read, 4) else {
                break;
            };
            let n = u32::from_be_bytes(len[..4].try_into().unwrap()) as usize;
            let Some(body) = read_exact(&mut c_read, n.saturating_sub(4)) else {
                break;
            };
            let code = body
                .get(..4)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
            // 80877103 SSLRequest, 80877104 GSSENCRequest: the startup message follows.
            if !matches!(code, Some(80877103) | Some(80877104)) {
                started = true;
                fetch_connection = body.windows(7).any(|w| w == b" fetch\0");
            }
            [len, body].concat()
        } else {
            let Some(head) = read_exact(&mut c_read, 5) else {
                break;
            };
            let n = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
            let Some(body) = read_exact(&mut c_read, n.saturating_sub(4)) else {
                break;
            };
            let (m, cv) = &*st;
            let mut s = m.lock().unwrap();
            if let Some(needle) = &s.needle {
                if body.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    saw_needle = true;
                }
            }
            let msg = [head.clone(), body.clone()].concat();
            if is_commit(head[0], &body) {
                let catch =
                    !fetch_connection && s.armed.is_some() && (s.needle.is_none() || saw_needle);
                saw_needle = false;
                if catch {
                    let mode = s.armed.take().unwrap();
                    match mode {
                        TrapMode::HoldCommit => {
                            s.sprung = Some(mode);
                            cv.notify_all();
                            drop(s);
                            // Black hole: wait for the client to go, forward nothing.
                            let mut sink = [0u8; 4096];
                            while matches!(c_read.read(&mut sink), Ok(n) if n > 0) {}
                            break;
                        }
                        TrapMode::SwallowReply => {
                            // Forwarded before the test hears of it: "sprung" means the
                            // server has the COMMIT.
                            swallow.store(true, Ordering::SeqCst);
                            let sent = s_write.write_all(&msg).is_ok();
                            s.sprung = Some(mode);
                            cv.notify_all();
                            if !sent {
                                break;
                            }
                            continue;
                        }
                    }
                }
            }
            drop(s);
            msg
        };
        if s_write.write_all(&msg).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(std::net::Shutdown::Both);
}

/// What a [`Link`] does to the traffic between a client and the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward both ways.
    Pass,
    /// Cut every open connection and close new ones at once (a database that refuses,
    /// as seen from one stand).
    Refuse,
    /// Accept, forward nothing either way, close nothing (a partition, a hung server as
    /// seen from one stand). Back to `Pass`, held connections resume, as TCP does.
    Blackhole,
}

/// A loopback TCP proxy in front of a cluster with a switch ([`Link::set`]): one stand's
/// own network to the database, so a test can fail it for that stand alone, at once,
/// without touching the server the other stands use.
pub struct Link {
    port: u16,
    mode: std::sync::Arc<Mutex<(LinkMode, u64)>>,
}

impl Link {
    /// Listens on a free loopback port, forwarding to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("link listens");
        let port = listener.local_addr().unwrap().port();
        let mode = std::sync::Arc::new(Mutex::new((LinkMode::Pass, 0u64)));
        let m = mode.clone();
        std::thread::Builder::new()
            .name("pg-link".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let m = m.clone();
                    std::thread::spawn(move || link_connection(client, upstream, m));
                }
            })
            .expect("link thread");
        Link { port, mode }
    }

    /// The port to give the client.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://concession@127.0.0.1:LINK/db`.
    pub fn url(&self, db: &str) -> String {
        let db = db.rsplit('/').next().unwrap_or(db);
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Switches the link; `Refuse` cuts the open connections.
    pub fn set(&self, mode: LinkMode) {
        let mut m = self.mode.lock().unwrap();
        m.0 = mode;
        m.1 += 1;
    }

    /// The current mode.
    pub fn mode(&self) -> LinkMode {
        self.mode.lock().unwrap().0
    }
}

fn link_connection(
    client: std::net::TcpStream,
    upstream: u16,
    mode: std::sync::Arc<Mutex<(LinkMode, u64)>>,
) {
    let now = || *mode.lock().unwrap();
    if now().0 == LinkMode::Refuse {
        return; // dropped: closed at once
    }
    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
        use std::io::{ErrorKind, Read, Write};
        let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
        let mut buf = [0u8; 16 * 1024];
        loop {
            match now().0 {
                LinkMode::Refuse => break,
                LinkMode::Blackhole => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                LinkMode::Pass => {}
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // Read before a switch to Blackhole: hold it until the link passes.
                    while now().0 == LinkMode::Blackhole {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if now().0 == LinkMode::Refuse || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Both);
        let _ = to.shutdown(std::net::Shutdown::Both);
    };
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| pump(s2, c2));
        pump(client, server);
    });
}
