//! The state the server threads and the signal share: the connected clients and the
//! routing of answers to them. Lines are queued, never written here (except the
//! eviction notice), so a signal never waits on a socket.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use super::options::PosOptions;
use super::request::{error_line, RequestError};
use super::routing::{Owners, Pending};
use crate::clock::SharedClock;
use crate::scan::{AgentRequest, ConnId};
use crate::signal::jsonl::{decision_line, void_line};
use crate::signal::{AgentStatus, DecisionEvent, VoidEvent, VoidOutcome};
use crate::sync::lock;

pub(super) struct Client {
    pub(super) peer: SocketAddr,
    pub(super) lines: Sender<Arc<str>>,
    pub(super) stream: TcpStream,
    pub(super) connected: Instant,
    /// When its last complete request arrived.
    pub(super) last_request: Option<Instant>,
    /// Presented the link's token.
    pub(super) authed: bool,
}

pub(super) struct Shared {
    pub(super) clients: Mutex<HashMap<ConnId, Client>>,
    pub(super) pending: Mutex<Pending>,
    pub(super) owners: Mutex<Owners>,
    pub(super) agent: Sender<AgentRequest>,
    pub(super) clock: SharedClock,
    pub(super) opts: PosOptions,
    pub(super) seq: AtomicU64,
    /// The agent's status as last signalled (issue 14): sent to a client when it
    /// connects and carried by `pong`. Held while a change is broadcast and while a
    /// client is admitted, so a newcomer gets the current status once, in order.
    pub(super) status: Mutex<Option<AgentStatus>>,
}

impl Shared {
    pub(super) fn stopped(&self) -> bool {
        self.opts.stop.load(Ordering::Relaxed)
    }

    /// Makes room for a new client: closes one that has sent no complete request for
    /// the line timeout (one that never finished a request first, then the least
    /// recently active), so sockets that sit silent cannot lock the POS out. With a
    /// token only unauthenticated clients are evicted: a stranger must not push an
    /// authenticated POS off. False when none may go (the newcomer is refused).
    pub(super) fn evict_one(&self) -> bool {
        let mut clients = lock(&self.clients);
        let token = self.opts.token.is_some();
        let now = self.clock.now();
        let idle = |c: &Client| {
            now.saturating_duration_since(c.last_request.unwrap_or(c.connected))
                >= self.opts.line_timeout
        };
        let victim = clients
            .iter()
            .filter(|(_, c)| idle(c) && !(token && c.authed))
            .min_by_key(|(_, c)| {
                (
                    c.last_request.is_some(),
                    c.last_request.unwrap_or(c.connected),
                )
            })
            .map(|(id, _)| *id);
        let Some(id) = victim else { return false };
        let gone = clients.remove(&id);
        // Written outside the lock: the signal side must never wait on this socket.
        drop(clients);
        if let Some(c) = gone {
            log::warn!("pos#{id} ({}) idle longest: closed to make room", c.peer);
            let mut s = &c.stream;
            let line = error_line(None, &RequestError::Evicted) + "\n";
            let _ = s.write_all(line.as_bytes());
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        true
    }

    /// Notes a complete request from `conn`; returns whether it is authenticated.
    pub(super) fn touch(&self, conn: ConnId) -> bool {
        let now = self.clock.now();
        match lock(&self.clients).get_mut(&conn) {
            Some(c) => {
                c.last_request = Some(now);
                c.authed
            }
            None => false,
        }
    }

    /// An unauthenticated client may void what it was told of, and ask about ids the
    /// link never saw when the journal does not have them either (`not_found`).
    pub(super) fn may_void(&self, decision_id: &str, conn: ConnId) -> bool {
        let owners = lock(&self.owners);
        if owners.owns(decision_id, conn) {
            return true;
        }
        if owners.by_id.contains_key(decision_id) {
            return false;
        }
        drop(owners);
        self.opts
            .journal
            .as_ref()
            .is_none_or(|known| !(known.0)(decision_id))
    }

    pub(super) fn touch_authed(&self, conn: ConnId) -> bool {
        lock(&self.clients).get(&conn).is_some_and(|c| c.authed)
    }

    pub(super) fn set_authed(&self, conn: ConnId) {
        if let Some(c) = lock(&self.clients).get_mut(&conn) {
            c.authed = true;
        }
    }

    /// Queues a line for one client; a client that stopped reading is dropped.
    pub(super) fn send_to(&self, conn: ConnId, line: &Arc<str>) -> bool {
        let mut clients = lock(&self.clients);
        let Some(client) = clients.get(&conn) else {
            return false;
        };
        match client.lines.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("pos#{conn} ({}) not reading: disconnecting", client.peer);
                let _ = client.stream.shutdown(Shutdown::Both);
                clients.remove(&conn);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                clients.remove(&conn);
                false
            }
        }
    }

    /// Sends a line to every client; returns those that took it.
    pub(super) fn broadcast(&self, line: &Arc<str>) -> Vec<ConnId> {
        let ids: Vec<ConnId> = lock(&self.clients).keys().copied().collect();
        ids.into_iter().filter(|c| self.send_to(*c, line)).collect()
    }

    /// Sends an answer to the client waiting on `request` (or everyone, for local scans).
    /// Returns the connections it went to; empty when it was for one client that is
    /// gone.
    pub(super) fn route(
        &self,
        request: Option<&str>,
        conn: Option<ConnId>,
        line: String,
    ) -> Vec<ConnId> {
        let line: Arc<str> = Arc::from(line);
        let target = match request {
            Some(id) => match lock(&self.pending).take(id, conn).or(conn) {
                Some(c) => c,
                None => {
                    log::info!("no pos client waiting on {id:?}: answer not delivered");
                    return Vec::new();
                }
            },
            None => match conn {
                Some(c) => c,
                None => return self.broadcast(&line),
            },
        };
        if self.send_to(target, &line) {
            vec![target]
        } else {
            log::info!("pos#{target} gone: answer not delivered");
            Vec::new()
        }
    }

    /// Routes a decision and remembers who was told of it (they may void it).
    pub(super) fn decision(&self, conn: Option<ConnId>, event: &DecisionEvent) -> bool {
        // The owners are recorded under the lock held across the send: a client that
        // reads its answer and voids at once (or another client racing it) must find
        // the owner already known, never an unknown id (lock order: owners, then
        // pending and clients, as in `void`).
        let mut owners = lock(&self.owners);
        let to = self.route(event.request.as_deref(), conn, decision_line(event));
        let delivered = !to.is_empty();
        owners.record(&event.id, to);
        delivered
    }

    /// Routes a void answer; a reversal also goes to the clients that were told of the
    /// decision (when someone else voided it with the token, they must know).
    pub(super) fn void_result(&self, conn: Option<ConnId>, event: &VoidEvent) {
        let line = void_line(event);
        let to = self.route(event.request_id.as_deref(), conn, line.clone());
        if event.outcome == VoidOutcome::Voided {
            let line: Arc<str> = Arc::from(line);
            for owner in lock(&self.owners).of(&event.decision_id) {
                if !to.contains(&owner) {
                    self.send_to(owner, &line);
                }
            }
        }
    }
}
