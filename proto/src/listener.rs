//! The connections a service accepts on a listener its caller bound.
//!
//! `serve_with_incoming` ignores the server builder's `tcp_nodelay`, so the
//! incoming connections are configured here: with Nagle's algorithm left
//! on, a response whose body and trailers go out as two small writes waits
//! for the peer's delayed ACK, about 40 ms, on every such call.
//!
//! Every accepted connection is counted while it is open
//! ([`open_connections`]), so that a process that stops waiting for its
//! connections at shutdown can say how many it cut.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Connections accepted by [`incoming`] in this process and not yet closed.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many connections accepted by [`incoming`] (on any listener of this
/// process) are still open.
pub fn open_connections() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// The connections accepted on `listener`, with `TCP_NODELAY` set.
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<Accepted>> {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(Accepted::new))
}

/// An accepted connection, counted in [`open_connections`] until dropped.
#[derive(Debug)]
pub struct Accepted(TcpStream);

impl Accepted {
    fn new(stream: TcpStream) -> Self {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Self(stream)
    }

    /// The TCP stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.0
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connected for Accepted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.connect_info()
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every accepted connection has Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = incoming(listener);
        tokio::pin!(incoming);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.get_ref().nodelay().expect("nodelay"));
    }

    /// A connection counts as open while it is held (other tests of this
    /// binary may open and close their own meanwhile: the count is global).
    #[tokio::test]
    async fn accepted_connections_are_counted_while_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = incoming(listener);
        tokio::pin!(incoming);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _accepted = incoming.next().await.expect("a connection");
        assert!(open_connections() >= 1);
    }
}
