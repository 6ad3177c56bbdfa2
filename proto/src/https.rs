//! HTTPS for the plain HTTP endpoints of the project (the metrics endpoint,
//! a CSE's oneM2M HTTP binding): a TLS handshake per connection, with the
//! configuration of [`crate::tls::ServerTls::rustls_config`], then HTTP/1.1
//! served by an axum router.
//!
//! What the handshake established (the client's certificate) is read once
//! per connection by the caller's `per_connection` and added to every
//! request of that connection, with the client's address as axum's
//! `ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` over TLS on `listener` until `shutdown` completes (then
/// it accepts no more connections; those open finish on their own).
/// `per_connection` gives, from the established session and the client's
/// address, the extensions every request of the connection gets.
/// Connections that fail their handshake are logged and dropped; they do
/// not stop the server.
pub async fn serve<F>(
    listener: TcpListener,
    app: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
    per_connection: F,
) where
    F: Fn(&rustls::ServerConnection, SocketAddr) -> http::Extensions + Send + Sync + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let per_connection = Arc::new(per_connection);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        tokio::spawn(connection(
            acceptor.clone(),
            tcp,
            peer,
            app.clone(),
            per_connection.clone(),
        ));
    }
}

/// One connection: the handshake, its extensions, then HTTP/1.1.
async fn connection<F>(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    per_connection: Arc<F>,
) where
    F: Fn(&rustls::ServerConnection, SocketAddr) -> http::Extensions,
{
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake not completed in {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    let mut extensions = per_connection(stream.get_ref().1, peer);
    extensions.insert(ConnectInfo(peer));
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().extend(extensions.clone());
        app.clone().oneshot(request)
    });
    // A client that does not finish sending a request's headers in time is
    // dropped, so slow clients cannot hold connections open indefinitely.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
