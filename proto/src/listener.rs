//! The connections a service accepts on a listener its caller bound.
//!
//! `serve_with_incoming` ignores the server builder's `tcp_nodelay`, so the
//! incoming connections are configured here: with Nagle's algorithm left
//! on, a response whose body and trailers go out as two small writes waits
//! for the peer's delayed ACK, about 40 ms, on every such call.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// The connections accepted on `listener`, with `TCP_NODELAY` set.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    /// Every accepted connection has Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("nodelay"));
    }
}
