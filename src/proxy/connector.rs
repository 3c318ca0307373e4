//! Connections to the upstream: TCP (with `TCP_NODELAY` and a connect timeout) or a Unix
//! socket. One stream type for both, so the pools are the same either way. Each holds
//! one of a fixed number of slots (the descriptor budget's share for the app, see
//! `server::descriptors`) for as long as it is open, pooled or not: at the limit, a new
//! connection waits for a slot, within the connect timeout, while the pool may hand the
//! request a connection that another one has finished with.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::UpstreamTarget;
use crate::error::ProxyError;

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

    /// A new connection to the app, within the connect timeout (which includes the wait for
    /// a slot): a timeout is [`ProxyError::UpstreamTimeout`] (504), anything else
    /// [`ProxyError::UpstreamConnect`] (502).
    pub async fn open(&self) -> Result<TokioIo<UpstreamStream>, ProxyError> {
        let connect = async {
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| io::Error::other("upstream connection slots closed"))?;
            let socket = match &*self.target {
                UpstreamTarget::Tcp(addr) => {
                    let stream = TcpStream::connect(addr.as_str()).await?;
                    stream.set_nodelay(true)?;
                    Socket::Tcp(stream)
                }
                UpstreamTarget::Unix(path) => {
                    Socket::Unix(UnixStream::connect(PathBuf::from(path)).await?)
                }
            };
            Ok::<_, io::Error>(UpstreamStream {
                socket,
                _slot: slot,
            })
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => Ok(TokioIo::new(stream)),
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot connect to the app");
                Err(ProxyError::UpstreamConnect)
            }
            Err(_) => {
                tracing::debug!("connecting to the app timed out");
                Err(ProxyError::UpstreamTimeout)
            }
        }
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
