//! Accepting connections and serving each one.
//!
//! Per connection, a reader reads frames and handles each request in arrival order (so two
//! produces to one partition append in the order they were sent); a handler either answers
//! at once or hands back a task that answers later (a produce waiting for its sync, a fetch
//! waiting for data). A writer sends the answers strictly in request order, as Kafka's clients
//! require. At most [`IN_FLIGHT_MAX`] answers wait per connection; the reader stops reading
//! until one is sent. Answers are bounded in bytes too, so a client that sends requests and
//! never reads the answers (a slow reader) costs the broker a bounded amount of memory: the
//! reader reads no further request while more than [`ANSWER_BYTES_MAX`] of computed answers
//! wait to be written, and a connection has one Fetch at a time between being read and its
//! answer being written (Kafka's clients send one fetch per connection at a time anyway; Kafka
//! itself reads a connection's next request only once the answer before it is sent).
//!
//! Intake is bounded as Kafka bounds it: `max.connections` and `max.connections.per.ip` on
//! the client listener, `connections.max.idle.ms` on every connection, `socket.request.max.bytes`
//! checked on the size prefix before anything is allocated, and failed accepts (out of file
//! descriptors) backing off exponentially instead of spinning.

use super::Broker;
use super::api::{self, Reply};
use crate::config::BrokerConfig;
use crate::env::net::{Connection, Listener};
use crate::protocol::{FrameError, parse_request, read_frame};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

/// Answers that may wait, in order, per connection.
const IN_FLIGHT_MAX: usize = 64;

/// Bytes of computed answers that may wait to be written, per connection, before its next
/// request is read (one answer may exceed it on its own).
const ANSWER_BYTES_MAX: usize = 16 << 20;

/// An answer the writer sends when its turn comes.
enum Pending {
    /// Ready now.
    Ready(Bytes),
    /// Computed by a task; `None` means close the connection instead.
    Later(JoinHandle<Option<Bytes>>),
    /// Close the connection after the answers before this one.
    Close,
}

/// The answers a connection owes, in bytes once computed, shared by its reader and writer.
#[derive(Default)]
struct Owed {
    bytes: std::sync::atomic::AtomicUsize,
    /// Signalled when the writer has written an answer.
    written: tokio::sync::Notify,
}

impl Owed {
    fn add(&self, n: usize) {
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn sent(&self, n: usize) {
        self.bytes
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        self.written.notify_one();
    }

    /// Waits until at most [`ANSWER_BYTES_MAX`] bytes of answers wait to be written.
    async fn room(&self) {
        while self.bytes.load(std::sync::atomic::Ordering::Relaxed) > ANSWER_BYTES_MAX {
            self.written.notified().await;
        }
    }
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Clients (`PLAINTEXT`).
    Client,
    /// The `CONTROLLER` listener: the quorum, and the requests brokers forward to the
    /// active controller (which are never forwarded again from here).
    Controller,
}

/// Kafka's connection limits on a client listener: `max.connections` (at the limit the
/// listener stops accepting until a connection closes, KIP-402) and `max.connections.per.ip`
/// with its overrides (a connection beyond them is closed at once). They are dynamic, as in
/// Kafka: each accept reads them from the broker's configs in effect, so an AlterConfigs of
/// them applies to the next connection (connections already open stay open). The controller
/// listener, like Kafka's inter-broker one, is not limited.
struct Intake {
    live: Live,
    /// Woken when a connection closes.
    freed: Arc<Notify>,
    /// The limits, parsed from the configs they were read from (by pointer).
    limits: Mutex<(Arc<BrokerConfig>, Limits)>,
}

/// The live connections: in all, and per client address.
type Live = Arc<Mutex<(usize, BTreeMap<IpAddr, u32>)>>;

/// The limits in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Limits {
    total: usize,
    per_ip: u32,
    overrides: BTreeMap<IpAddr, u32>,
}

impl Limits {
    fn of(c: &BrokerConfig) -> Limits {
        let mut overrides = BTreeMap::new();
        for (host, n) in &c.max_connections_per_ip_overrides {
            match host.parse::<IpAddr>() {
                Ok(ip) => {
                    overrides.insert(ip, *n);
                }
                Err(_) => tracing::warn!(
                    %host,
                    "max.connections.per.ip.overrides: runnel takes IP addresses, not host names; \
                     ignoring this entry"
                ),
            }
        }
        Limits {
            total: usize::try_from(c.max_connections).unwrap_or(usize::MAX),
            per_ip: c.max_connections_per_ip,
            overrides,
        }
    }
}

/// A connection's place in the limits, given back when it ends.
struct Admission {
    counted: Option<(Live, IpAddr, Arc<Notify>)>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((live, ip, freed)) = self.counted.take() {
            let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
            l.0 = l.0.saturating_sub(1);
            if let Some(n) = l.1.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    l.1.remove(&ip);
                }
            }
            drop(l);
            freed.notify_one();
        }
    }
}

impl Intake {
    fn new(broker: &Broker) -> Intake {
        let config = broker.effective_config();
        let limits = Limits::of(&config);
        Intake {
            live: Arc::new(Mutex::new((0, BTreeMap::new()))),
            freed: Arc::new(Notify::new()),
            limits: Mutex::new((config, limits)),
        }
    }

    /// The limits in effect now (parsed again only when the configs changed).
    fn limits(&self, broker: &Broker) -> Limits {
        let config = broker.effective_config();
        let mut cached = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&cached.0, &config) {
            let limits = Limits::of(&config);
            if limits != cached.1 {
                tracing::info!(
                    max_connections = config.max_connections,
                    max_connections_per_ip = config.max_connections_per_ip,
                    "connection limits changed"
                );
            }
            *cached = (config, limits);
        }
        cached.1.clone()
    }

    /// Whether a connection may be accepted now (below `max.connections`).
    fn has_room(&self, limits: &Limits) -> bool {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).0 < limits.total
    }

    /// Takes a place for a connection from `ip`, or None if `ip` is at its limit.
    fn admit(&self, ip: IpAddr, limits: &Limits) -> Option<Admission> {
        let limit = limits.overrides.get(&ip).copied().unwrap_or(limits.per_ip);
        let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let n = l.1.get(&ip).copied().unwrap_or(0);
        if n >= limit {
            return None;
        }
        l.1.insert(ip, n + 1);
        l.0 += 1;
        Some(Admission {
            counted: Some((self.live.clone(), ip, self.freed.clone())),
        })
    }
}

/// Logs at most once a second, counting what it passed over.
struct Throttled {
    last: Option<tokio::time::Instant>,
    skipped: u64,
}

impl Throttled {
    fn new() -> Throttled {
        Throttled {
            last: None,
            skipped: 0,
        }
    }

    /// Whether to log now, and how many were passed over since the last time.
    fn due(&mut self) -> Option<u64> {
        let now = crate::env::monotonic_now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

/// The first pause after a failed accept; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a stopping listener waits for its connections to send the answers they owe (a
/// JoinGroup, say, may wait a whole rebalance); then it closes them, as Kafka closes its
/// connections at shutdown without completing what waits in purgatory.
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// Accepts connections until the broker stops serving, then waits for every connection to
/// finish (at most [`DRAIN_MAX`]).
pub async fn serve(broker: Arc<Broker>, mut listener: Box<dyn Listener>, role: ListenerRole) {
    let mut stop = broker.stop_serving.clone();
    let mut connections = JoinSet::new();
    let (host, port) = broker.advertised();
    tracing::info!(advertised = %format!("{host}:{port}"), "accepting connections");
    let intake = (role == ListenerRole::Client).then(|| Intake::new(&broker));
    let mut metadata = broker.metadata.subscribe();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let (mut full_log, mut per_ip_log, mut error_log) =
        (Throttled::new(), Throttled::new(), Throttled::new());
    'accepting: loop {
        // KIP-402: at max.connections, stop accepting until a connection closes (or the
        // limit is raised).
        if let Some(i) = &intake
            && !i.has_room(&i.limits(&broker))
        {
            if let Some(skipped) = full_log.due() {
                tracing::warn!(
                    max_connections = i.limits(&broker).total,
                    skipped,
                    "max.connections reached: not accepting until a connection closes"
                );
            }
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break 'accepting,
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    _ = i.freed.notified() => {}
                    r = metadata.changed() => if r.is_err() { break 'accepting },
                }
                if i.has_room(&i.limits(&broker)) {
                    break;
                }
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((conn, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let admission = match &intake {
                    Some(i) => match i.admit(peer.ip(), &i.limits(&broker)) {
                        Some(a) => a,
                        None => {
                            if let Some(skipped) = per_ip_log.due() {
                                tracing::warn!(
                                    %peer,
                                    skipped,
                                    "max.connections.per.ip reached: closing the new connection"
                                );
                            }
                            drop(conn);
                            continue;
                        }
                    },
                    None => Admission { counted: None },
                };
                connections.spawn(serve_connection(
                    broker.clone(),
                    conn,
                    peer,
                    role,
                    admission,
                ));
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning, and log at
                // most once a second.
                if let Some(skipped) = error_log.due() {
                    tracing::warn!(error = %e, skipped, backoff_ms = backoff.as_millis() as u64, "accept failed");
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_MAX, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "closing connections whose answers still wait"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until the peer closes it, it misbehaves, or the broker shuts down.
async fn serve_connection(
    broker: Arc<Broker>,
    conn: Box<dyn Connection>,
    peer: SocketAddr,
    role: ListenerRole,
    admission: Admission,
) {
    let _admission = admission;
    let (mut rd, mut wr) = tokio::io::split(conn);
    // Each answer with the permit of the Fetch it answers, if it does (released once written).
    let (tx, mut rx) = mpsc::channel::<(Pending, Option<OwnedSemaphorePermit>)>(IN_FLIGHT_MAX);
    let owed = Arc::new(Owed::default());
    let fetch_gate = Arc::new(Semaphore::new(1));
    let owed_by_writer = owed.clone();
    let writer = async move {
        while let Some((p, fetch_permit)) = rx.recv().await {
            let bytes = match p {
                Pending::Ready(b) => Some(b),
                Pending::Later(task) => task.await.ok().flatten(),
                Pending::Close => None,
            };
            let Some(bytes) = bytes else { break };
            let written = wr.write_all(&bytes).await;
            owed_by_writer.sent(bytes.len());
            drop(fetch_permit);
            if written.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let max = usize::try_from(broker.config.socket_request_max_bytes).unwrap_or(usize::MAX);
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let mut stop = broker.stop_serving.clone();
    let reader = async move {
        loop {
            // A client that does not read its answers is not read either; once the writer
            // has stopped (the client went away), the answers it dropped are never counted
            // down, so stop too.
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = tx.closed() => break,
                _ = owed.room() => {}
            }
            // connections.max.idle.ms: a connection that sends no request for this long is
            // closed (the answers already owed are still sent).
            let frame = tokio::select! {
                biased;
                _ = stop.changed() => break,
                f = tokio::time::timeout(idle, read_frame(&mut rd, max)) => match f {
                    Ok(f) => f,
                    Err(_) => {
                        tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing an idle connection");
                        break;
                    }
                },
            };
            let frame = match frame {
                Ok(Some(f)) => f.freeze(),
                Ok(None) => break,
                Err(FrameError::Io(e)) => {
                    tracing::debug!(%peer, error = %e, "connection error");
                    break;
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                    break;
                }
            };
            let request = match parse_request(frame) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                    let _ = tx.send((Pending::Close, None)).await;
                    break;
                }
            };
            // One Fetch at a time: its answer may be as large as the client asked.
            let fetch_permit = if request.api_key == ApiKey::Fetch {
                let permit = tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    p = fetch_gate.clone().acquire_owned() => p,
                };
                let Ok(permit) = permit else { break };
                Some(permit)
            } else {
                None
            };
            let pending = match api::dispatch(&broker, request, peer, role).await {
                Reply::Ready(b) => {
                    owed.add(b.len());
                    Pending::Ready(b)
                }
                Reply::Later(fut) => {
                    let owed = owed.clone();
                    Pending::Later(tokio::spawn(async move {
                        let answer = fut.await;
                        if let Some(b) = &answer {
                            owed.add(b.len());
                        }
                        answer
                    }))
                }
                Reply::None => continue,
                Reply::Close(why) => {
                    tracing::warn!(%peer, reason = %why, "closing connection");
                    let _ = tx.send((Pending::Close, None)).await;
                    break;
                }
            };
            if tx.send((pending, fetch_permit)).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}
