//! The network: listen, accept and connect, returning byte streams.

use super::BoxFuture;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// A bound listening socket.
pub trait Listener: Send {
    /// Waits for the next connection; returns it with the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn Connection>, SocketAddr)>>;
    /// The address actually bound (useful after binding port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A network: the real one, or turmoil's.
pub trait Network: Send + Sync + 'static {
    /// Listens on `addr` (`host:port`).
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>>;
    /// Connects to `addr` (`host:port`; the host may be a name).
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Connection>>>;
}

/// TCP through tokio.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealNetwork;

/// A tokio TCP listener.
struct RealListener {
    inner: tokio::net::TcpListener,
}

impl Listener for RealListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn Connection>, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            // Kafka's request/response pattern suffers badly from Nagle's algorithm.
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as Box<dyn Connection>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Network for RealNetwork {
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let inner = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(RealListener { inner }) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Connection>>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Connection>)
        })
    }
}
