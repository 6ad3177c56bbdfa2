//! What the PIP's integration tests share: a PIP served over gRPC on
//! 127.0.0.1, at a port the OS chooses.

use authz_pip::PipConfig;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_tests::serving::{Served, serve};
use tonic::transport::Channel;

/// A running PIP and a client of it.
pub struct Running {
    /// Connected to it.
    pub client: PolicyInformationPointClient<Channel>,
    /// The service, to shut its store down.
    pub service: authz_pip::PipService,
    server: Served,
}

impl Running {
    /// The PIP of `config`, served over gRPC on 127.0.0.1.
    pub async fn start(config: &PipConfig) -> Self {
        let service = authz_pip::build(config).await.expect("build");
        let server = serve(authz_pip::router(service.clone()).await.expect("router")).await;
        Self {
            client: PolicyInformationPointClient::new(server.channel().await),
            service,
            server,
        }
    }

    /// Stops it and waits until its store is closed.
    pub async fn stop(self) {
        self.service.shutdown();
        self.server.stop().await;
    }
}
