//! Closing client connections gracefully (RFC 9112 §9.6).
//!
//! When a server closes a socket that still has unread data, or that receives more data after
//! the close, the kernel answers with a reset, and a reset can destroy the server's last
//! answer before the client reads it. That is exactly the case after a refusal such as 431,
//! 413 or a framing 400, sent while the client is still writing its request. So a client
//! socket, once dropped, is half-closed and read (and discarded) until the client closes its
//! side, for a bounded time and a bounded number of bytes, before it is really closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The longest a closed connection is read on.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// The most that is read and discarded from it.
const LINGER_BYTES: usize = 32 << 20;

/// A client socket that lingers when dropped.
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream: Some(stream),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // A client that has already closed its side needs no lingering: nothing more can
        // arrive. Whatever was pending is read here and discarded, as lingering would.
        let mut probe = [0u8; 4096];
        for _ in 0..16 {
            match stream.try_read(&mut probe) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Half-closes `stream`, then reads until the client closes, `LINGER_TIME` passes or
/// `LINGER_BYTES` have been read; dropping it then closes it.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// The client writes more than the socket buffers hold and only then reads: without
    /// lingering, the close with unread data resets the connection and the answer is lost.
    #[tokio::test]
    async fn an_answer_survives_a_close_with_unread_data() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = Lingering::new(stream);
            let mut head = [0u8; 16];
            stream.read_exact(&mut head).await.unwrap();
            stream.write_all(b"refused").await.unwrap();
            // Dropped with megabytes still on the way.
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let junk = vec![b'x'; 16 << 20];
        client.write_all(&junk).await.unwrap();
        server.await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"refused");
    }
}
