//! `PepLayer` and `acod` `spty` (TS-0003 7.1.5, Decision 13: compared with
//! the `mgd` or `cnd` of the resource a Create creates) against a real PDP
//! over gRPC on 127.0.0.1: the layer reads the specialization from the
//! content of a Create of a `<mgmtObj>` (ty 13) or `<flexContainer>` (ty 28),
//! passes the content on unchanged, bounds what it reads, and takes a
//! `SpecializationReader` for other serializations.

mod common;

use std::convert::Infallible;

use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{
    AuthorizedRequest, CseContext, PepClient, PepConfig, PepError, PepLayer, SpecializationReader,
};
use authz_proto::pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};

/// A real PDP on 127.0.0.1:0 where `CAdmin` may create, under `node1`, a
/// firmware `<mgmtObj>` (mgd 1001) and a door `<flexContainer>` (cnd
/// `org.onem2m.home.door`) and nothing else. Returns its URL.
async fn pdp() -> (String, Pdp) {
    let hosting =
        authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting CSE");
    let pdp = Pdp::start(PdpConfig::new(hosting)).expect("pdp");
    let object_details = vec![
        pb::ObjectDetails {
            specialization: Some(pb::Specialization {
                kind: Some(pb::specialization::Kind::MgmtDefinition(1001)),
            }),
            child_resource_types: vec![13],
            ..Default::default()
        },
        pb::ObjectDetails {
            specialization: Some(pb::Specialization {
                kind: Some(pb::specialization::Kind::ContainerDefinition(
                    "org.onem2m.home.door".into(),
                )),
            }),
            child_resource_types: vec![28],
            ..Default::default()
        },
    ];
    let rule = pb::AccessControlRule {
        originators: vec!["CAdmin".into()],
        operations: 1,
        object_details,
        ..Default::default()
    };
    let url = common::serve_one_acp(&pdp, rule, "CAdmin", "node1", 14).await;
    (url, pdp)
}

/// What the handler saw of a permitted request.
#[derive(Debug)]
struct Outcome {
    status: u16,
    rsc: String,
    /// The handler's echo: the content it received and the `spty` the
    /// layer decided with.
    body: String,
}

/// A Create of type `ty` with `content` (as `content_type;ty=N`) through
/// `layer`, to a handler that echoes the content it received.
async fn create(layer: &PepLayer, ty: u32, content_type: &str, content: &str) -> Outcome {
    let handler = tower::service_fn(|req: http::Request<Full<Bytes>>| async move {
        let spty = req
            .extensions()
            .get::<AuthorizedRequest>()
            .and_then(|a| a.primitive.spty.clone());
        let content = req.into_body().collect().await.expect("body").to_bytes();
        let echo = format!(
            "{spty:?} {}",
            String::from_utf8(content.to_vec()).expect("utf-8")
        );
        let mut r = http::Response::new(Full::new(Bytes::from(echo)));
        r.headers_mut()
            .insert("x-m2m-rsc", http::HeaderValue::from_static("2001"));
        Ok::<_, Infallible>(r)
    });
    let req = http::Request::builder()
        .method("POST")
        .uri("/~/mn-cse-123456/node1")
        .header("X-M2M-Origin", "CAdmin")
        .header("X-M2M-RI", "rq")
        .header("Content-Type", format!("{content_type};ty={ty}"))
        .body(Full::new(Bytes::from(content.to_owned())))
        .expect("request");
    let response = layer.layer(handler).oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Outcome {
        status: parts.status.as_u16(),
        rsc: parts
            .headers
            .get("x-m2m-rsc")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

fn cse() -> CseContext {
    CseContext::new("//home.example", "/mn-cse-123456").expect("cse")
}

const JSON: &str = "application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mgmt_obj_create_is_decided_with_its_mgd() {
    let (url, _pdp) = pdp().await;
    let client = PepClient::new(PepConfig::new([url])).expect("client");
    let layer = PepLayer::new(client, cse());

    let firmware = r#"{"m2m:fwr": {"mgd": 1001, "vr": "1.2", "fwn": "lock", "url": "http://fw"}}"#;
    let r = create(&layer, 13, JSON, firmware).await;
    assert_eq!((r.status, r.rsc.as_str()), (200, "2001"), "{r:?}");
    // The handler got the content unchanged, and the decision had the mgd.
    assert!(r.body.contains("MgmtDefinition(1001)"), "{}", r.body);
    assert!(r.body.ends_with(firmware), "{}", r.body);

    // Another mgmtObj specialization (software, 1002): no rule permits it.
    let software = r#"{"m2m:swr": {"mgd": 1002, "vr": "1.2", "swn": "lock"}}"#;
    let r = create(&layer, 13, JSON, software).await;
    assert_eq!((r.status, r.rsc.as_str()), (403, "4103"), "{r:?}");
    // Without mgd there is no specialization to match either.
    let r = create(&layer, 13, JSON, r#"{"m2m:fwr": {"vr": "1.2"}}"#).await;
    assert_eq!((r.status, r.rsc.as_str()), (403, "4103"), "{r:?}");
    // The oneM2M media type is JSON too.
    let r = create(&layer, 13, "application/vnd.onem2m-res+json", firmware).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flex_container_create_is_decided_with_its_cnd() {
    let (url, _pdp) = pdp().await;
    let client = PepClient::new(PepConfig::new([url])).expect("client");
    let layer = PepLayer::new(client, cse());
    let door = r#"{"hd:door": {"cnd": "org.onem2m.home.door", "lock": true}}"#;
    let r = create(&layer, 28, JSON, door).await;
    assert_eq!((r.status, r.rsc.as_str()), (200, "2001"), "{r:?}");
    assert!(r.body.ends_with(door), "{}", r.body);
    let window = r#"{"hd:windw": {"cnd": "org.onem2m.home.window"}}"#;
    let r = create(&layer, 28, JSON, window).await;
    assert_eq!((r.status, r.rsc.as_str()), (403, "4103"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_content_is_a_bad_request() {
    let (url, _pdp) = pdp().await;
    let client = PepClient::new(PepConfig::new([url])).expect("client");
    let layer = PepLayer::new(client, cse()).with_content_limit(64);
    for (content, says) in [
        ("{not json", "not JSON"),
        (r#"{"m2m:fwr": {"mgd": "1001"}}"#, "mgd"),
        (r#"{"m2m:fwr": {}, "m2m:swr": {}}"#, "single root"),
        // Decision 13 judges the specialization created: one given twice
        // is no specialization (a CSE may keep either).
        (r#"{"m2m:fwr": {"mgd": 1002, "mgd": 1001}}"#, "mgd"),
        (
            r#"{"m2m:fwr": {"mgd": 1002}, "m2m:fwr": {"mgd": 1001}}"#,
            "m2m:fwr",
        ),
        (
            r#"{"m2m:fwr": {"mgd": 1001, "vr": "1.2", "fwn": "a firmware name that makes it long"}}"#,
            "longer than the 64 bytes",
        ),
    ] {
        let r = create(&layer, 13, JSON, content).await;
        assert_eq!(
            (r.status, r.rsc.as_str()),
            (400, "4000"),
            "{content}: {r:?}"
        );
        assert!(r.body.contains(says), "{content}: {}", r.body);
    }
}

/// XML content: the default reader finds nothing (Deny), a reader for it
/// gives the specialization (Permit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_serialization_takes_a_reader() {
    struct MgdElement;
    impl SpecializationReader for MgdElement {
        fn specialization(
            &self,
            _parts: &http::request::Parts,
            _ty: u32,
            content: &[u8],
        ) -> Result<Option<pb::Specialization>, PepError> {
            let text = std::str::from_utf8(content)
                .map_err(|_| PepError::BadRequest("not UTF-8".into()))?;
            let mgd = text
                .split_once("<mgd>")
                .and_then(|(_, rest)| rest.split_once("</mgd>"))
                .and_then(|(n, _)| n.trim().parse().ok());
            Ok(mgd.map(|n| pb::Specialization {
                kind: Some(pb::specialization::Kind::MgmtDefinition(n)),
            }))
        }
    }
    let (url, _pdp) = pdp().await;
    let client = PepClient::new(PepConfig::new([url])).expect("client");
    let xml = "<m2m:fwr><mgd>1001</mgd></m2m:fwr>";
    let layer = PepLayer::new(client.clone(), cse());
    let r = create(&layer, 13, "application/xml", xml).await;
    assert_eq!((r.status, r.rsc.as_str()), (403, "4103"), "{r:?}");
    let layer = PepLayer::new(client, cse()).with_specialization_reader(MgdElement);
    let r = create(&layer, 13, "application/xml", xml).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.ends_with(xml), "{}", r.body);
}
