//! Connections to the upstream: TCP (with `TCP_NODELAY` and a connect timeout) or a Unix
//! socket. One stream type for both, so the pooled client is the same either way. Each holds
//! one of a fixed number of slots (the descriptor budget's share for the app, see
//! `server::descriptors`) for as long as it is open, pooled or not: at the limit, a new
//! connection waits for a slot, within the connect timeout, while the pool may hand the
//! request a connection that another one has finished with.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::UpstreamTarget;

#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    target: Arc<UpstreamTarget>,
    connect_timeout: Duration,
    slots: Arc<Semaphore>,
}

impl UpstreamConnector {
    /// At most `connections` open at once (at least one).
    pub fn new(target: UpstreamTarget, connect_timeout: Duration, connections: usize) -> Self {
        Self {
            target: Arc::new(target),
            connect_timeout,
            slots: Arc::new(Semaphore::new(connections.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<UpstreamStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The URI is ignored: there is exactly one upstream, and the request URI only carries
    /// the path the client asked for.
    fn call(&mut self, _: Uri) -> Self::Future {
        let target = self.target.clone();
        let timeout = self.connect_timeout;
        let slots = self.slots.clone();
        Box::pin(async move {
            let connect = async {
                let slot = slots
                    .acquire_owned()
                    .await
                    .map_err(|_| io::Error::other("upstream connection slots closed"))?;
                let socket = match &*target {
                    UpstreamTarget::Tcp(addr) => {
                        let stream = TcpStream::connect(addr.as_str()).await?;
                        stream.set_nodelay(true)?;
                        Socket::Tcp(stream)
                    }
                    UpstreamTarget::Unix(path) => {
                        Socket::Unix(UnixStream::connect(PathBuf::from(path)).await?)
                    }
                };
                Ok(UpstreamStream {
                    socket,
                    _slot: slot,
                })
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(stream) => stream.map(TokioIo::new),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "upstream connect timed out",
                )),
            }
        })
    }
}

/// A connection to the app, holding its slot until it closes.
#[derive(Debug)]
pub struct UpstreamStream {
    socket: Socket,
    _slot: OwnedSemaphorePermit,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.socket {
            Socket::Tcp(s) => s.is_write_vectored(),
            Socket::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
