//! The oneM2M HTTP binding over TLS (`--tls-cert`, `--tls-key`,
//! `--tls-client-ca`).
//!
//! Each connection is a TLS handshake (rustls; a client certificate, if
//! the client presents one, must chain to a client CA or the handshake
//! fails), then HTTP/1.1 served by the router. The client's certificate is
//! read once per connection ([`CertifiedIds`]) and put into every request
//! of that connection with the client's address, where the PEP layer's
//! authenticator ([`crate::credentials::Senders`]) and IP context find
//! them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authz_pep::CertifiedIds;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` over TLS on `listener` until `shutdown` completes.
/// Connections that fail their handshake are logged and dropped; they do
/// not stop the server.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
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
        tokio::spawn(connection(acceptor.clone(), tcp, peer, app.clone()));
    }
}

/// One connection: the handshake, the certificate, then HTTP/1.1.
async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
) {
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
    let certified = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| match CertifiedIds::from_der(cert) {
            Ok(ids) => Some(ids),
            // Verified by the handshake, yet unreadable here: it
            // authenticates no one.
            Err(e) => {
                tracing::warn!(%peer, "client certificate: {e}");
                None
            }
        });
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(ids) = &certified {
            request.extensions_mut().insert(ids.clone());
        }
        app.clone().oneshot(request)
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
