//! One TCP connection to one broker.
//!
//! Requests are written whole, one frame at a time, and answered by correlation id, so several
//! can be in flight at once (pipelining, up to `max.in.flight.requests.per.connection`). A
//! reader task reads response frames and hands each to the request it answers. Sending is
//! split in two ([`BrokerConnection::start`] writes, [`InFlight::wait`] waits), so a caller
//! that must keep requests in order (the producer) can write them in order and wait for the
//! answers together.
//!
//! At connect the connection asks the broker for its API versions (KIP-511: if the broker does
//! not know our ApiVersions version it answers in v0 with UNSUPPORTED_VERSION and its list, and
//! we ask again in a version it knows); every request then uses the highest version both sides
//! speak.
//!
//! Failure is all or nothing: a request that times out, a write or read that fails, or a
//! response that makes no sense breaks the connection, and every request in flight on it fails
//! with an error whose outcome is unknown. The owner reconnects.

use super::ClientConfig;
use super::error::{ClientError, check_code};
use crate::env::Env;
use crate::env::net::Connection;
use crate::protocol::{encode_request_into, parse_response_header, read_frame, supported_range};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::AbortHandle;

/// The software name and version sent in ApiVersions v3+ (KIP-511), for the broker's logs.
const SOFTWARE_NAME: &str = "runnel";
const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a response frame delivers to the request waiting for it: the body after the header.
type Reply = Result<Bytes, ClientError>;

/// A frame buffer larger than this is not kept for reuse after an unusually large request.
const FRAME_BUFFER_KEEP_MAX: usize = 4 << 20;

/// The sending side: the stream and a frame buffer reused from request to request.
struct Writer {
    /// The stream's write half.
    half: WriteHalf<Box<dyn Connection>>,
    /// Where the next frame is encoded.
    buf: BytesMut,
}

/// A request written and waiting for its answer.
struct Waiting {
    /// The request's API, to parse the response header.
    api: ApiKey,
    /// The request's version, to parse the response header.
    version: i16,
    /// Where the answer goes.
    reply: oneshot::Sender<Reply>,
    /// Held until the answer arrives: one of `max.in.flight.requests.per.connection`.
    _permit: OwnedSemaphorePermit,
    /// When it was written.
    registered: tokio::time::Instant,
}

/// What the callers and the reader task share.
struct State {
    /// The next correlation id to hand out.
    next_correlation_id: i32,
    /// Requests written and not yet answered, by correlation id.
    pending: BTreeMap<i32, Waiting>,
    /// Requests whose caller stopped waiting, with when their answer is overdue; their
    /// answers are read and dropped. A caller that gives up early (a poll shorter than the
    /// request timeout) must not hide a stalled connection: once one of these is overdue the
    /// connection counts as broken, so it is dialled again.
    abandoned: BTreeMap<i32, tokio::time::Instant>,
    /// Set once the connection is unusable, with the reason every later request gets.
    broken: Option<ClientError>,
    /// The reader task, stopped when the connection breaks.
    reader: Option<AbortHandle>,
}

/// The state behind a lock, with the broker's address for errors.
struct Shared {
    /// The broker's address.
    addr: String,
    /// Everything that changes.
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in here can be left half-updated by a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request about to be written; its correlation id and where its answer arrives.
    fn register(
        &self,
        api: ApiKey,
        version: i16,
        permit: OwnedSemaphorePermit,
    ) -> Result<(i32, oneshot::Receiver<Reply>), ClientError> {
        let mut st = self.lock();
        if let Some(e) = &st.broken {
            return Err(e.clone());
        }
        let id = st.next_correlation_id;
        st.next_correlation_id = id.checked_add(1).unwrap_or(0);
        let (tx, rx) = oneshot::channel();
        st.pending.insert(
            id,
            Waiting {
                api,
                version,
                reply: tx,
                _permit: permit,
                registered: crate::env::monotonic_now(),
            },
        );
        Ok((id, rx))
    }

    /// The caller stopped waiting for `id` (it timed out elsewhere or was cancelled).
    fn abandon(&self, id: i32, timeout: std::time::Duration) {
        let mut st = self.lock();
        if let Some(w) = st.pending.remove(&id) {
            st.abandoned.insert(id, w.registered + timeout);
        }
    }

    /// Hands a response frame to its request. A frame for no request we sent is a protocol
    /// error: the stream can no longer be trusted.
    fn deliver(&self, frame: Bytes) -> Result<(), ClientError> {
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let Some(id) = frame
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Err(protocol(format!("response of {} bytes", frame.len())));
        };
        let waiting = {
            let mut st = self.lock();
            match st.pending.remove(&id) {
                Some(w) => w,
                None if st.abandoned.remove(&id).is_some() => return Ok(()),
                None => {
                    return Err(protocol(format!(
                        "response for unknown correlation id {id}"
                    )));
                }
            }
        };
        let reply = parse_response_header(frame, waiting.api, waiting.version)
            .map(|(_, body)| body)
            .map_err(|e| protocol(format!("{:?} response header: {e}", waiting.api)));
        let bad = reply.as_ref().err().cloned();
        // The caller may have gone; the answer is then simply dropped.
        let _ = waiting.reply.send(reply);
        bad.map_or(Ok(()), Err)
    }

    /// Marks the connection unusable and fails every request in flight with `error`.
    fn break_with(&self, error: ClientError) {
        let (pending, reader) = {
            let mut st = self.lock();
            if st.broken.is_none() {
                st.broken = Some(error.clone());
            }
            st.abandoned.clear();
            (std::mem::take(&mut st.pending), st.reader.take())
        };
        if let Some(r) = reader {
            r.abort();
        }
        for (_, w) in pending {
            let _ = w.reply.send(Err(error.clone()));
        }
    }

    fn broken(&self) -> Option<ClientError> {
        let overdue = {
            let st = self.lock();
            if st.broken.is_some() {
                return st.broken.clone();
            }
            let now = crate::env::monotonic_now();
            st.abandoned
                .iter()
                .find(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| *id)
        };
        let id = overdue?;
        self.break_with(ClientError::Disconnected {
            addr: self.addr.clone(),
            reason: format!("request {id} got no answer within request.timeout.ms"),
        });
        self.lock().broken.clone()
    }
}

/// A connection to one broker, after the ApiVersions handshake.
pub struct BrokerConnection {
    /// The broker's address, `host:port`.
    addr: String,
    /// The versions the broker advertised: API key to (min, max).
    versions: BTreeMap<i16, (i16, i16)>,
    /// The sending side; the lock keeps frames from interleaving.
    writer: tokio::sync::Mutex<Writer>,
    /// Shared with the reader task.
    shared: Arc<Shared>,
    /// One permit per request in flight (`max.in.flight.requests.per.connection`).
    in_flight: Arc<Semaphore>,
    /// `client.id`, sent in every request header.
    client_id: StrBytes,
    /// `request.timeout.ms`: how long a request may wait for its answer.
    request_timeout: Duration,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl BrokerConnection {
    /// Dials `addr` through the seam and does the ApiVersions handshake.
    pub async fn open(
        env: &Env,
        addr: &str,
        config: &ClientConfig,
    ) -> Result<BrokerConnection, ClientError> {
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        let fail = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(timeout, env.net.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail(format!("timed out after {} ms", timeout.as_millis()))),
        };
        let mut conn = BrokerConnection::over(addr, stream, config);
        conn.versions = conn.negotiate().await?;
        Ok(conn)
    }

    /// Wraps an established byte stream, starting its reader task; no handshake yet.
    fn over(addr: &str, stream: Box<dyn Connection>, config: &ClientConfig) -> BrokerConnection {
        let (rd, wr) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            state: Mutex::new(State {
                next_correlation_id: 0,
                pending: BTreeMap::new(),
                abandoned: BTreeMap::new(),
                broken: None,
                reader: None,
            }),
        });
        let task = tokio::spawn(read_responses(
            rd,
            shared.clone(),
            config.response_bytes_max,
        ));
        shared.lock().reader = Some(task.abort_handle());
        BrokerConnection {
            addr: addr.to_string(),
            versions: BTreeMap::new(),
            writer: tokio::sync::Mutex::new(Writer {
                half: wr,
                buf: BytesMut::new(),
            }),
            shared,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            client_id: StrBytes::from_string(config.client_id.clone()),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        }
    }

    /// Asks for the broker's API versions, retrying in a version it knows if it says ours is
    /// unsupported.
    async fn negotiate(&self) -> Result<BTreeMap<i16, (i16, i16)>, ClientError> {
        let (_, ours_max) = supported_range(ApiKey::ApiVersions).unwrap_or((0, 0));
        let mut version = ours_max;
        for _ in 0..2 {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(SOFTWARE_NAME))
                .with_client_software_version(StrBytes::from_static_str(SOFTWARE_VERSION));
            let body = self.start_at(&req, version).await?.wait_body().await?;
            let resp = self.decode_api_versions(body, version)?;
            let table: BTreeMap<i16, (i16, i16)> = resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if resp.error_code == ResponseError::UnsupportedVersion.code() && version > 0 {
                // KIP-511: use the broker's highest ApiVersions version within ours, else v0.
                let theirs = table.get(&(ApiKey::ApiVersions as i16));
                version = theirs.map_or(0, |(_, hi)| (*hi).clamp(0, version - 1));
                continue;
            }
            check_code(
                resp.error_code,
                || format!("ApiVersions to {}", self.addr),
                None,
            )?;
            return Ok(table);
        }
        Err(ClientError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            ours: (0, ours_max),
            theirs: None,
        })
    }

    /// An ApiVersions answer: in the version asked, except that an UNSUPPORTED_VERSION answer
    /// is always in v0 (its error code comes first in every version).
    fn decode_api_versions(
        &self,
        body: Bytes,
        version: i16,
    ) -> Result<ApiVersionsResponse, ClientError> {
        let unsupported =
            body.get(..2) == Some(&ResponseError::UnsupportedVersion.code().to_be_bytes()[..]);
        let version = if unsupported { 0 } else { version };
        decode_body(&self.addr, ApiKey::ApiVersions, body, version)
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// False once the connection has failed; the owner should open a new one.
    pub fn is_alive(&self) -> bool {
        self.shared.broken().is_none()
    }

    /// Whether another request can be written without waiting for an answer first.
    pub fn has_capacity(&self) -> bool {
        self.in_flight.available_permits() > 0
    }

    /// The versions of `api` the broker advertised, if any.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The highest version of `api` both this client and the broker speak.
    pub fn version_for(&self, api: ApiKey) -> Result<i16, ClientError> {
        let ours = supported_range(api).unwrap_or((0, -1));
        let theirs = self.broker_versions(api);
        match theirs {
            Some((lo, hi)) if lo.max(ours.0) <= hi.min(ours.1) => Ok(hi.min(ours.1)),
            _ => Err(ClientError::UnsupportedVersion { api, ours, theirs }),
        }
    }

    /// Sends a request in the negotiated version and waits for its answer.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response, ClientError> {
        self.start(req).await?.wait().await
    }

    /// Writes a request in the negotiated version; the answer is waited for separately.
    pub async fn start<R: Request>(&self, req: &R) -> Result<InFlight<R::Response>, ClientError> {
        let version = self.version_for(api_key::<R>()?)?;
        self.start_at(req, version).await
    }

    /// Writes a request in `version` (which the caller has chosen with [`Self::version_for`],
    /// to know which fields it may set).
    pub async fn start_at<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let api = api_key::<R>()?;
        let permit = self.acquire_slot(api).await?;
        let (id, rx) = self.shared.register(api, version, permit)?;
        // If encoding or writing fails, dropping this abandons the request.
        let in_flight = InFlight {
            id,
            api,
            version,
            rx: Some(rx),
            shared: self.shared.clone(),
            timeout: self.request_timeout,
            _response: PhantomData,
        };
        self.write(req, api, version, id).await?;
        Ok(in_flight)
    }

    /// Writes a request the broker will not answer (a produce with `acks=0`).
    pub async fn send_oneway<R: Request>(&self, req: &R, version: i16) -> Result<(), ClientError> {
        let api = api_key::<R>()?;
        let _permit = self.acquire_slot(api).await?;
        let id = {
            let mut st = self.shared.lock();
            if let Some(e) = &st.broken {
                return Err(e.clone());
            }
            let id = st.next_correlation_id;
            st.next_correlation_id = id.checked_add(1).unwrap_or(0);
            id
        };
        self.write(req, api, version, id).await
    }

    /// Waits for a free in-flight slot. Slots free up as answers arrive (the reader task
    /// releases them) or when the connection breaks, so this cannot wait forever unless the
    /// broker stalls; then the request timeout breaks the connection.
    async fn acquire_slot(&self, api: ApiKey) -> Result<OwnedSemaphorePermit, ClientError> {
        if let Some(e) = self.shared.broken() {
            return Err(e);
        }
        let acquire = self.in_flight.clone().acquire_owned();
        match tokio::time::timeout(self.request_timeout, acquire).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(self.fail(ClientError::Timeout {
                addr: self.addr.clone(),
                api,
                timeout_ms: self.request_timeout.as_millis() as u64,
            })),
        }
    }

    /// Encodes a request and writes the frame whole. A failed or stalled write breaks the
    /// connection, since the broker may have seen part of it.
    async fn write<R: Request>(
        &self,
        req: &R,
        api: ApiKey,
        version: i16,
        id: i32,
    ) -> Result<(), ClientError> {
        let mut w = self.writer.lock().await;
        if let Some(e) = self.shared.broken() {
            return Err(e);
        }
        let Writer { half, buf } = &mut *w;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(self.client_id.clone()));
        // A request the codec refuses is this client's bug (a field set that the version
        // lacks); report it rather than panic.
        encode_request_into(buf, &header, req).map_err(|e| {
            ClientError::InvalidArgument(format!("cannot encode {api:?} v{version}: {e}"))
        })?;
        let io = async {
            half.write_all(buf).await?;
            half.flush().await
        };
        let written = tokio::time::timeout(self.request_timeout, io).await;
        if buf.capacity() > FRAME_BUFFER_KEEP_MAX {
            *buf = BytesMut::new();
        }
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail(ClientError::Disconnected {
                addr: self.addr.clone(),
                reason: format!("write failed: {e}"),
            })),
            Err(_) => Err(self.fail(ClientError::Timeout {
                addr: self.addr.clone(),
                api,
                timeout_ms: self.request_timeout.as_millis() as u64,
            })),
        }
    }

    /// Breaks the connection with `error` and returns the error the connection now carries.
    fn fail(&self, error: ClientError) -> ClientError {
        self.shared.break_with(error);
        self.shared.broken().unwrap_or(ClientError::Closed)
    }
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        self.shared.break_with(ClientError::Disconnected {
            addr: self.addr.clone(),
            reason: "closed by the client".into(),
        });
    }
}

/// A request written to a broker, waiting for its answer.
#[must_use = "a request's answer (or failure) is only seen by waiting for it"]
pub struct InFlight<T> {
    /// Its correlation id.
    id: i32,
    /// Its API, for errors.
    api: ApiKey,
    /// Its version, to decode the answer.
    version: i16,
    /// Where the answer arrives; taken when it has.
    rx: Option<oneshot::Receiver<Reply>>,
    /// To break the connection on a timeout.
    shared: Arc<Shared>,
    /// `request.timeout.ms`.
    timeout: Duration,
    /// The response type.
    _response: PhantomData<fn() -> T>,
}

impl<T: Decodable> InFlight<T> {
    /// The version the request was sent in.
    pub fn version(&self) -> i16 {
        self.version
    }

    /// Waits `timeout` instead of `request.timeout.ms`: for requests the broker may hold
    /// longer, such as a JoinGroup during a rebalance.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Waits for the answer and decodes it. After `request.timeout.ms` without an answer the
    /// connection is broken (Kafka's clients do the same), failing every request on it.
    pub async fn wait(self) -> Result<T, ClientError> {
        let (addr, api, version) = (self.shared.addr.clone(), self.api, self.version);
        let body = self.wait_body().await?;
        decode_body(&addr, api, body, version)
    }

    async fn wait_body(mut self) -> Result<Bytes, ClientError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(ClientError::Closed);
        };
        let result = tokio::time::timeout(self.timeout, rx).await;
        self.rx = None;
        match result {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(self.shared.broken().unwrap_or(ClientError::Disconnected {
                addr: self.shared.addr.clone(),
                reason: "the reader stopped".into(),
            })),
            Err(_) => {
                let e = ClientError::Timeout {
                    addr: self.shared.addr.clone(),
                    api: self.api,
                    timeout_ms: self.timeout.as_millis() as u64,
                };
                self.shared.break_with(e.clone());
                Err(e)
            }
        }
    }
}

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.shared.abandon(self.id, self.timeout);
        }
    }
}

/// The API key of a request type.
fn api_key<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY)
        .map_err(|_| ClientError::InvalidArgument(format!("unknown API key {}", R::KEY)))
}

/// Decodes a response body. The codec is not trusted never to panic on hostile bytes, so a
/// panic is caught and reported like any other bad response.
pub fn decode_body<T: Decodable>(
    addr: &str,
    api: ApiKey,
    mut body: Bytes,
    version: i16,
) -> Result<T, ClientError> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(&mut body, version)
    }));
    let reason = match result {
        Ok(Ok(t)) => return Ok(t),
        Ok(Err(e)) => format!("{api:?} v{version} response does not decode: {e}"),
        Err(_) => format!("{api:?} v{version} response made the decoder panic"),
    };
    Err(ClientError::Protocol {
        addr: addr.to_string(),
        reason,
    })
}

/// Reads response frames until the stream ends or fails, then breaks the connection.
async fn read_responses(
    mut rd: ReadHalf<Box<dyn Connection>>,
    shared: Arc<Shared>,
    max_bytes: usize,
) {
    let error = loop {
        match read_frame(&mut rd, max_bytes).await {
            Ok(Some(frame)) => {
                if let Err(e) = shared.deliver(frame.freeze()) {
                    break e;
                }
            }
            Ok(None) => {
                break ClientError::Disconnected {
                    addr: shared.addr.clone(),
                    reason: "closed by the broker".into(),
                };
            }
            Err(e) => {
                break ClientError::Disconnected {
                    addr: shared.addr.clone(),
                    reason: e.to_string(),
                };
            }
        }
    };
    tracing::debug!(addr = %shared.addr, error = %error, "connection closed");
    shared.break_with(error);
}

#[cfg(test)]
mod tests;
