//! Accepting connections and serving each one.
//!
//! Per connection, a reader reads frames and handles each request in arrival order (so two
//! produces to one partition append in the order they were sent); a handler either answers
//! at once or hands back a task that answers later (a produce waiting for its sync, a fetch
//! waiting for data). A writer sends the answers strictly in request order, as Kafka's clients
//! require. At most [`IN_FLIGHT_MAX`] answers wait per connection; the reader stops reading
//! until one is sent.

use super::Broker;
use super::api::{self, Reply};
use crate::env::net::{Connection, Listener};
use crate::protocol::{FrameError, parse_request, read_frame};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// Answers that may wait, in order, per connection.
const IN_FLIGHT_MAX: usize = 64;

/// An answer the writer sends when its turn comes.
enum Pending {
    /// Ready now.
    Ready(Bytes),
    /// Computed by a task; `None` means close the connection instead.
    Later(JoinHandle<Option<Bytes>>),
    /// Close the connection after the answers before this one.
    Close,
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

/// Accepts connections until shutdown, then waits for every connection to finish.
pub async fn serve(broker: Arc<Broker>, mut listener: Box<dyn Listener>, role: ListenerRole) {
    let mut shutdown = broker.shutdown.clone();
    let mut connections = JoinSet::new();
    let (host, port) = broker.advertised();
    tracing::info!(advertised = %format!("{host}:{port}"), "accepting connections");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((conn, peer)) => {
                    connections.spawn(serve_connection(broker.clone(), conn, peer, role));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the peer closes it, it misbehaves, or the broker shuts down.
async fn serve_connection(
    broker: Arc<Broker>,
    conn: Box<dyn Connection>,
    peer: SocketAddr,
    role: ListenerRole,
) {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (tx, mut rx) = mpsc::channel::<Pending>(IN_FLIGHT_MAX);
    let writer = async move {
        while let Some(p) = rx.recv().await {
            let bytes = match p {
                Pending::Ready(b) => Some(b),
                Pending::Later(task) => task.await.ok().flatten(),
                Pending::Close => None,
            };
            let Some(bytes) = bytes else { break };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let max = usize::try_from(broker.config.socket_request_max_bytes).unwrap_or(usize::MAX);
    let mut shutdown = broker.shutdown.clone();
    let reader = async move {
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                f = read_frame(&mut rd, max) => f,
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
                    let _ = tx.send(Pending::Close).await;
                    break;
                }
            };
            let pending = match api::dispatch(&broker, request, peer, role).await {
                Reply::Ready(b) => Pending::Ready(b),
                Reply::Later(fut) => Pending::Later(tokio::spawn(fut)),
                Reply::None => continue,
                Reply::Close(why) => {
                    tracing::warn!(%peer, reason = %why, "closing connection");
                    let _ = tx.send(Pending::Close).await;
                    break;
                }
            };
            if tx.send(pending).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}
