//! HTTPS for the plain HTTP endpoints of the project (the metrics endpoint,
//! a CSE's oneM2M HTTP binding): a TLS handshake per connection, with the
//! configuration of [`crate::tls::ServerTls::rustls_config`], then HTTP/1.1
//! served by an axum router; and the same HTTP/1.1 serving without TLS
//! ([`serve_plain`]), with its header timeout and bounded drain at shutdown.
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
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the connections open at shutdown may take to finish what they
/// are doing (as the gRPC services allow): a client that never finishes its
/// request cannot keep the process from exiting.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` over TLS on `listener` until `shutdown` completes; then it
/// accepts no more connections, lets the requests under way finish (each
/// connection closes after its current response) for at most [`DRAIN`],
/// and cuts what is left. `per_connection` gives, from the established
/// session and the client's address, the extensions every request of the
/// connection gets. Connections that fail their handshake are logged and
/// dropped; they do not stop the server.
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
    serve_connections(listener, shutdown, move |tcp, peer, stop| {
        tls_connection(
            acceptor.clone(),
            tcp,
            peer,
            app.clone(),
            per_connection.clone(),
            stop,
        )
    })
    .await;
}

/// [`serve`] without TLS: the same header timeout and the same bounded
/// drain at shutdown, each request with the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_plain(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    serve_connections(listener, shutdown, move |tcp, peer, stop| {
        let mut extensions = http::Extensions::new();
        extensions.insert(ConnectInfo(peer));
        http1(TokioIo::new(tcp), peer, app.clone(), extensions, stop)
    })
    .await;
}

/// Accepts connections, each served by `connection` as a task of its own,
/// until `shutdown`; then tells them to stop (`true` on their receiver)
/// and waits for them for at most [`DRAIN`].
async fn serve_connections<C, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    connection: C,
) where
    C: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stopping) = watch::channel(false);
    let mut open = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    open.spawn(connection(tcp, peer, stopping.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reaps the connections that ended.
            Some(_) = open.join_next(), if !open.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stop.send_replace(true);
    let finished = async { while open.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, finished).await.is_err() {
        tracing::warn!(
            connections = open.len(),
            "shutdown: HTTP connections still open after {} s were cut",
            DRAIN.as_secs()
        );
        open.abort_all();
    }
}

/// One TLS connection: the handshake, its extensions, then HTTP/1.1.
async fn tls_connection<F>(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    per_connection: Arc<F>,
    stop: watch::Receiver<bool>,
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
    http1(TokioIo::new(stream), peer, app, extensions, stop).await;
}

/// HTTP/1.1 on one connection, each request with `extensions`, until the
/// client closes it or, once `stop` turns true, its current response is
/// sent.
async fn http1<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    app: axum::Router,
    extensions: http::Extensions,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
    let connection = http.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
