//! The oneM2M HTTP binding over TLS (`--tls-cert`, `--tls-key`,
//! `--tls-client-ca`), served by [`authz_proto::https::serve`].
//!
//! The client's certificate, if it presented one (verified by the
//! handshake against the client CAs), is read once per connection
//! ([`CertifiedIds`]) and put into every request of that connection, where
//! the PEP layer's authenticator ([`crate::credentials::Senders`]) finds it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use authz_pep::CertifiedIds;
use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    authz_proto::https::serve(listener, app, tls, shutdown, certified).await;
}

/// The IDs the client's certificate certifies, as an extension.
fn certified(session: &rustls::ServerConnection, peer: SocketAddr) -> http::Extensions {
    let mut extensions = http::Extensions::new();
    let Some(cert) = session.peer_certificates().and_then(|chain| chain.first()) else {
        return extensions;
    };
    match CertifiedIds::from_der(cert) {
        Ok(ids) => {
            extensions.insert(ids);
        }
        // Verified by the handshake, yet unreadable here: it authenticates
        // no one.
        Err(e) => tracing::warn!(%peer, "client certificate: {e}"),
    }
    extensions
}
