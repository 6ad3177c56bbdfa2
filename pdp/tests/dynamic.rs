//! Direct Dynamic Authorization at the PDP against a fake DAS that counts
//! its consultations (TS-0003 7.3.2.2): identical concurrent consultations
//! share one call, and the `dreq` carries what the clause asks for.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_pdp::{DynamicConfig, Pdp, PdpConfig};
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_server::{
    DynamicAuthorizationServer, DynamicAuthorizationServerServer,
};
use common::{acp, hosting, request, resource, snapshot_event};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Grants RETRIEVE to the consulting originator for a minute, after a
/// delay, and remembers every `dreq`.
#[derive(Clone, Default)]
struct FakeDas {
    consultations: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<pb::DasRequest>>>,
}

#[tonic::async_trait]
impl DynamicAuthorizationServer for FakeDas {
    async fn consult(
        &self,
        request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        self.consultations.fetch_add(1, Ordering::SeqCst);
        let dreq = request.into_inner().das_request.unwrap_or_default();
        self.seen.lock().await.push(dreq.clone());
        // Long enough for the concurrent callers to pile up.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let until = chrono::Utc::now() + chrono::Duration::seconds(60);
        Ok(Response::new(pb::DasResponse {
            dynamic_acp_info: Some(pb::DynamicAcpInfo {
                granted_privileges: Some(pb::SetOfAcrs {
                    rules: vec![pb::AccessControlRule {
                        originators: vec![dreq.originator.clone()],
                        operations: 2,
                        ..Default::default()
                    }],
                }),
                privileges_lifetime: authz_core::json::format_timestamp(until),
            }),
            tokens: Vec::new(),
            author_sign_request_info: false,
        }))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_tokens(
        &self,
        _request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        Err(Status::unavailable("no keys in this test"))
    }
}

type ServeTask = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn serve_das(das: FakeDas) -> (String, ServeTask) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = Box::pin(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(DynamicAuthorizationServerServer::new(das))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_consultations_are_coalesced_7_3_2_2() {
    let das = FakeDas::default();
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).expect("pdp");
    // acp1 names a Role-ID for UPDATE and RETRIEVE: it goes out as `rfa`.
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: vec!["visitor@roles.example.com".into()],
            operations: 6,
            ..Default::default()
        });
    }
    pdp.apply_event(&snapshot_event(
        1,
        vec![policy],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    ))
    .expect("snapshot");
    let service = pdp.service();
    let visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    let mut calls = Vec::new();
    for _ in 0..8 {
        let service = service.clone();
        let visitor = visitor.clone();
        calls.push(tokio::spawn(async move {
            service.decide_resolving_pb(&visitor).await
        }));
    }
    for call in calls {
        let d = call.await.expect("task").expect("decision");
        assert_eq!(
            d.decision,
            pb::AuthorizationDecision::Permit as i32,
            "granted by the DAS: {d:?}"
        );
    }
    assert_eq!(
        das.consultations.load(Ordering::SeqCst),
        1,
        "eight identical requests, one consultation"
    );
    let seen = das.seen.lock().await;
    let dreq = &seen[0];
    // 7.3.2.2 / TS-0004 dynAuthDasRequest: or absolute, op, trid, rts, rfa.
    assert_eq!(dreq.originator, "//sp.example.com/id-in/Cvisitor");
    assert_eq!(dreq.operation, pb::Operation::Retrieve as i32);
    assert_eq!(dreq.targeted_resource_id, "cnt");
    assert!(!dreq.request_timestamp.is_empty());
    assert_eq!(dreq.role_ids_from_acps, vec!["visitor@roles.example.com"]);
}
