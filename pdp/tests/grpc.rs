//! The PDP over real gRPC on 127.0.0.1: following a fake PRP through an
//! outage, explicit ACP IDs, batch order, a stream answering each request as
//! it is decided (slow ones, held at a fake DAS, do not hold up the others;
//! at most `STREAM_IN_FLIGHT` wait, more queue), invalid requests, health, and Echo.

mod common;

use std::time::Duration;

use authz_pdp::{DynamicConfig, Pdp, PdpConfig, STREAM_IN_FLIGHT, STREAM_QUEUED};
use authz_proto::pb;
use authz_proto::pb::echo_client::EchoClient;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_tests::process::{HANG_LIMIT, within};
use authz_tests::serving::GatedDas;
use common::*;
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// A Watch event putting the dynamic ACP `id` on `target` (Decision 7):
/// `operations` for `who`, until `until`.
fn dynamic_put(
    revision: u64,
    id: &str,
    target: &str,
    who: &str,
    operations: u32,
    until: chrono::DateTime<chrono::Utc>,
) -> pb::WatchEvent {
    pb::WatchEvent {
        revision,
        tag: 0,
        event: Some(pb::watch_event::Event::DynamicPut(pb::DynamicAcpRecord {
            acp_id: id.to_owned(),
            target: target.into(),
            privileges: acp(id, &[who], operations).privileges,
            expires_at: Some(prost_types::Timestamp {
                seconds: until.timestamp(),
                nanos: until.timestamp_subsec_nanos() as i32,
            }),
            revision,
            version: None,
        })),
    }
}

const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;
const RETRIEVE: u32 = 2;
const UPDATE: u32 = 4;

async fn decide(
    client: &mut PolicyDecisionPointClient<tonic::transport::Channel>,
    req: pb::DecisionRequest,
) -> pb::Decision {
    client.decide(req).await.unwrap().into_inner()
}

async fn status(
    client: &mut PolicyDecisionPointClient<tonic::transport::Channel>,
) -> pb::StatusResponse {
    client
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_prp_through_an_outage() {
    let prp = FakePrp::default();
    prp.put_acp(acp("acp1", &["Cphone"], RETRIEVE));
    prp.put_resource(resource("cnt", Some(&["acp1"]), "Ccreator"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prp_addr = listener.local_addr().unwrap();
    let running = prp.serve(listener);

    let pdp =
        Pdp::start(PdpConfig::new(hosting()).with_prp(format!("http://{prp_addr}"))).expect("pdp");
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    // The snapshot arrives: Cphone may retrieve, not update.
    let retrieve = request("Cphone", pb::Operation::Retrieve, "cnt");
    let update = request("Cphone", pb::Operation::Update, "cnt");
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut c = client.clone();
            let r = retrieve.clone();
            async move { decide(&mut c, r).await.decision == PERMIT }
        })
        .await,
        "the PDP never saw the snapshot"
    );
    let d = decide(&mut client, update.clone()).await;
    assert_eq!(d.decision, DENY);
    assert_eq!(d.policy_revision, 2);
    assert!(
        d.explanation.is_some(),
        "every decision carries an explanation"
    );

    // A live change: acp1 now also grants UPDATE.
    let rev = prp.put_acp(acp("acp1", &["Cphone"], RETRIEVE | UPDATE));
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut c = client.clone();
            let r = update.clone();
            async move { decide(&mut c, r).await.decision == PERMIT }
        })
        .await,
        "the PDP never saw the live change"
    );
    let s = status(&mut client).await;
    assert_eq!(s.replica_revision, rev);
    assert!(s.prp_connected);
    assert_eq!(s.staleness_ms, 0);
    assert_eq!((s.acps, s.resources), (1, 1));
    assert_eq!(s.prp_endpoint, format!("http://{prp_addr}"));

    // The PRP goes away: decisions go on with the last replica.
    running.kill().await;
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut c = client.clone();
            async move { !status(&mut c).await.prp_connected }
        })
        .await,
        "the PDP never noticed the PRP was gone"
    );
    let d = decide(&mut client, update.clone()).await;
    assert_eq!(d.decision, PERMIT);
    assert_eq!(d.policy_revision, rev);
    let first = status(&mut client).await.staleness_ms;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = status(&mut client).await;
    assert!(
        second.staleness_ms > first,
        "staleness grows: {first} then {}",
        second.staleness_ms
    );
    assert_eq!(second.replica_revision, rev);

    // While it is down the PRP's data changes; back on the same port, the
    // PDP catches up from its revision (many events: applied in batches).
    for i in 0..200 {
        prp.put_resource(resource(&format!("r{i}"), Some(&["acp1"]), "Ccreator"));
    }
    let rev = prp.put_acp(acp("acp1", &["Cother"], RETRIEVE));
    let calls = prp.watch_calls();
    let listener = TcpListener::bind(prp_addr).await.unwrap();
    let _running = prp.serve(listener);
    assert!(
        eventually(Duration::from_secs(15), || {
            let mut c = client.clone();
            async move {
                let s = status(&mut c).await;
                s.prp_connected && s.replica_revision == rev
            }
        })
        .await,
        "the PDP never caught up"
    );
    assert!(prp.watch_calls() > calls);
    assert_eq!(status(&mut client).await.resources, 201);
    assert_eq!(decide(&mut client, retrieve).await.decision, DENY);
    assert_eq!(
        decide(
            &mut client,
            request("Cother", pb::Operation::Retrieve, "cnt")
        )
        .await
        .decision,
        PERMIT
    );
    assert_eq!(status(&mut client).await.staleness_ms, 0);
}

/// TS-0003 7.1.1 and table 7.1.2-1: the target (`To`) selects the ACPs of
/// the resource it addresses, in any ID form of the hosting CSE (TS-0001
/// 7.2): CSE-relative `cnt`, SP-relative `/id-in/cnt` (how a request
/// forwarded between CSEs names it), absolute `//sp.example.com/id-in/cnt`.
/// An ACP named so is judged by its pvs. A resource of another CSE is no
/// resource of this one.
#[tokio::test]
async fn a_target_in_any_id_form_of_the_hosting_cse_is_the_same_resource_7_1_1() {
    let pdp = pdp_with(&[snapshot_event(
        2,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    for target in [
        "cnt",
        "/id-in/cnt",
        "//sp.example.com/id-in/cnt",
        "//SP.example.com/id-in/cnt",
    ] {
        let d = decide(
            &mut client,
            request("Cphone", pb::Operation::Retrieve, target),
        )
        .await;
        assert_eq!(d.decision, PERMIT, "{target}: {}", d.summary);
        assert_eq!(
            d.permitted_by.as_ref().map(|r| r.acp_id.as_str()),
            Some("acp1"),
            "{target}"
        );
    }
    // acp1's pvs grant Cadmin, its pv Cphone: the pvs decide.
    for target in ["acp1", "/id-in/acp1", "//sp.example.com/id-in/acp1"] {
        let admin = request("Cadmin", pb::Operation::Retrieve, target);
        let d = decide(&mut client, admin).await;
        assert_eq!(d.decision, PERMIT, "{target}: {}", d.summary);
        let phone = request("Cphone", pb::Operation::Retrieve, target);
        let d = decide(&mut client, phone).await;
        assert_eq!(d.decision, DENY, "{target}: {}", d.summary);
    }
    let d = decide(
        &mut client,
        request("Cphone", pb::Operation::Retrieve, "/id-mn/cnt"),
    )
    .await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
}

/// `acip` through the PDP decides as `authz check` does (TS-0003 7.1.5
/// `res_ip = ismember(rq_ip, ...)`, table 7.1.3-3): an IPv4-mapped
/// `originator_ip` (`::ffff:a.b.c.d`) is in `::/0` like every address given
/// as IPv6, and in the IPv4 entries as its IPv4 peer; an address given as
/// IPv4 is in no IPv6 entry but the mapped form's.
#[tokio::test]
async fn a_mapped_originator_ip_matches_as_in_the_engine_7_1_5() {
    let rule = |ipv4: &[&str], ipv6: &[&str]| pb::AccessControlRule {
        originators: vec!["Cphone".into()],
        operations: RETRIEVE,
        contexts: vec![pb::AccessControlContext {
            ip_addresses: Some(pb::IpAddresses {
                ipv4: ipv4.iter().map(|s| s.to_string()).collect(),
                ipv6: ipv6.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let with_rule = |id: &str, r: pb::AccessControlRule| {
        let mut a = acp(id, &["Cphone"], RETRIEVE);
        a.privileges = Some(pb::SetOfAcrs { rules: vec![r] });
        a
    };
    let pdp = pdp_with(&[snapshot_event(
        2,
        vec![
            with_rule("acpAny6", rule(&[], &["::/0"])),
            with_rule("acpTen", rule(&["10.0.0.0/8"], &[])),
        ],
        vec![
            resource("cntAny6", Some(&["acpAny6"]), "Ccreator"),
            resource("cntTen", Some(&["acpTen"]), "Ccreator"),
        ],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    use pb::ip_address::Address::{Ipv4 as V4, Ipv6 as V6};
    for (target, ip, expected) in [
        ("cntAny6", V6("::ffff:10.0.0.1".into()), PERMIT),
        ("cntAny6", V6("2001:db8::1".into()), PERMIT),
        ("cntAny6", V4("10.0.0.1".into()), DENY),
        ("cntTen", V6("::ffff:10.0.0.1".into()), PERMIT),
        ("cntTen", V6("::ffff:11.0.0.1".into()), DENY),
        ("cntTen", V4("10.0.0.1".into()), PERMIT),
    ] {
        let mut req = request("Cphone", pb::Operation::Retrieve, target);
        req.originator_ip = Some(pb::IpAddress {
            address: Some(ip.clone()),
        });
        let d = decide(&mut client, req).await;
        assert_eq!(d.decision, expected, "{target} {ip:?}: {}", d.summary);
    }
}

/// A PDP without a PIP cannot verify a claimed role (TS-0003 7.4.3 step 4:
/// the hosting CSE verifies the role through the `<role>` repository): a
/// rule that names the originator only through that Role-ID is
/// undetermined, a Deny with MISSING_ATTRIBUTE naming the role (Decision
/// 10), not NOT_APPLICABLE; a rule naming the originator's ID still permits.
#[tokio::test]
async fn without_a_pip_a_claimed_role_is_missing_not_absent_7_4_3() {
    let pdp = pdp_with(&[snapshot_event(
        2,
        vec![acp(
            "acp1",
            &["nurse@roles.example.com", "Cowner"],
            RETRIEVE,
        )],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut claim = request("Cnurse", pb::Operation::Retrieve, "cnt");
    claim.role_ids = vec!["nurse@roles.example.com".into()];
    let d = decide(&mut client, claim).await;
    assert_eq!(d.decision, DENY);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{}",
        d.summary
    );
    assert!(
        format!("{:?}", d.missing).contains("nurse@roles.example.com"),
        "{d:?}"
    );
    let d = decide(
        &mut client,
        request("Cowner", pb::Operation::Retrieve, "cnt"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

/// An ACP the replica holds but this PDP cannot compile (a PRP of a newer
/// version, say) leaves its rules unknown: where it applies, a Deny is
/// indeterminate (TS-0003 7.1.4; Decision 10), PROCESSING_ERROR naming it,
/// not NOT_APPLICABLE; another applicable ACP still permits
/// (permit-overrides, 7.1.5).
#[tokio::test]
async fn an_applicable_acp_the_pdp_cannot_compile_makes_a_deny_indeterminate_7_1_4() {
    let mut bad = acp("acpBad", &["Calice"], RETRIEVE);
    bad.privileges.as_mut().unwrap().rules[0].originators = vec!["has space".into()];
    let pdp = pdp_with(&[snapshot_event(
        3,
        vec![bad, acp("acpOk", &["Cbob"], RETRIEVE)],
        vec![resource("cntB", Some(&["acpBad", "acpOk"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let d = decide(
        &mut client,
        request("Calice", pb::Operation::Retrieve, "cntB"),
    )
    .await;
    assert_eq!(d.decision, DENY);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::ProcessingError as i32,
        "{}",
        d.summary
    );
    assert!(
        d.summary.starts_with(
            "DENY (processing error): applicable ACPs this PDP could not compile: acpBad ("
        ),
        "{}",
        d.summary
    );
    assert!(!d.summary.contains("not in the replica"), "{}", d.summary);
    let d = decide(
        &mut client,
        request("Cbob", pb::Operation::Retrieve, "cntB"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

#[tokio::test]
async fn explicit_acp_ids_replace_the_lookup() {
    let pdp = pdp_with(&[snapshot_event(
        7,
        vec![
            acp("acpA", &["Cphone"], RETRIEVE),
            acp("acpB", &["Cother"], RETRIEVE),
        ],
        // The resource links acpB only.
        vec![resource("cnt", Some(&["acpB"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut req = request("Cphone", pb::Operation::Retrieve, "cnt");
    req.request_id = "rq-1".into();
    let d = decide(&mut client, req.clone()).await;
    assert_eq!(d.decision, DENY);
    assert_eq!(d.request_id, "rq-1");

    req.acp_ids = vec!["acpA".into()];
    let d = decide(&mut client, req.clone()).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(d.policy_revision, 7);
    let by = d.permitted_by.unwrap();
    assert_eq!((by.acp_id.as_str(), by.rule_index), ("acpA", 0));
    assert_eq!(d.request_id, "rq-1");

    // TS-0001 7.2: the same ACP named SP-relative or absolute.
    for form in ["/id-in/acpA", "//SP.example.com/id-in/acpA"] {
        req.acp_ids = vec![form.into()];
        let d = decide(&mut client, req.clone()).await;
        assert_eq!(d.decision, PERMIT, "{form}: {}", d.summary);
    }
    // An ID the replica does not hold grants nothing and is named.
    req.acp_ids = vec!["nope".into()];
    let d = decide(&mut client, req).await;
    assert_eq!(d.decision, DENY);
    assert!(d.summary.contains("nope"), "{}", d.summary);

    // TS-0003 7.1.1: a request on an ACP is judged by its own pvs, even
    // when the caller names it in acp_ids: acpA's pv lets Cphone RETRIEVE,
    // its pvs only Cadmin.
    let mut on_acp = request("Cphone", pb::Operation::Retrieve, "acpA");
    on_acp.acp_ids = vec!["acpA".into()];
    let d = decide(&mut client, on_acp.clone()).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    on_acp.originator = "Cadmin".into();
    let d = decide(&mut client, on_acp).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(
        d.permitted_by.map(|b| b.privileges),
        Some(pb::PrivilegeKind::SelfPrivileges as i32)
    );
    // A target the caller declares an ACP (target_type 1) that the replica
    // does not hold: only its own pvs could decide, never the pv of the
    // ACPs named (an ACP has no acpi; TS-0001 10.2.3.1).
    let mut unknown_acp = request("Cphone", pb::Operation::Retrieve, "acpZ");
    unknown_acp.target_type = Some(1);
    unknown_acp.acp_ids = vec!["acpA".into()];
    let d = decide(&mut client, unknown_acp).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::NotApplicable as i32,
        "{}",
        d.summary
    );
}

/// TS-0003 7.1.5 res_resourceType: an `acod` `ty` is compared with the
/// type of the targeted (parent) resource of a CREATE. When the PEP does not
/// send `target_type`, the PDP takes it from its replica.
#[tokio::test]
async fn create_without_target_type_uses_the_replicas_type_7_1_5() {
    const CREATE: u32 = 1;
    // Cphone may create contentInstances (4), under a container (3) only.
    let mut policy = acp("acpC", &["Cphone"], CREATE);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules[0].object_details = vec![pb::ObjectDetails {
            resource_type: Some(3),
            child_resource_types: vec![4],
            ..Default::default()
        }];
    }
    let mut ae = resource("ae1", Some(&["acpC"]), "Ccreator");
    ae.resource_type = 2;
    let pdp = pdp_with(&[snapshot_event(
        3,
        vec![policy],
        vec![resource("cnt", Some(&["acpC"]), "Ccreator"), ae],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let create = |target: &str| {
        let mut r = request("Cphone", pb::Operation::Create, target);
        r.resource_type = Some(4);
        r
    };
    let d = decide(&mut client, create("cnt")).await;
    assert_eq!(d.decision, PERMIT, "the container's ty 3: {}", d.summary);
    let d = decide(&mut client, create("ae1")).await;
    assert_eq!(d.decision, DENY, "an AE is ty 2: {}", d.summary);
    // The type the replica holds, said again, stands.
    let mut said = create("cnt");
    said.target_type = Some(3);
    let d = decide(&mut client, said).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

/// The fields an INVALID_ARGUMENT's BadRequest names.
fn refused(err: tonic::Status) -> Vec<String> {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let bad = err.get_details_bad_request().expect("a BadRequest detail");
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

/// TS-0001 9.6.1.3: a resource's type never changes, so a `target_type`
/// other than the one the replica holds for the target is a wrong claim:
/// `INVALID_ARGUMENT` naming `target_type` (a SYNTAX_ERROR Deny in a
/// batch), never what an `acod` `ty` is compared with (TS-0003 7.1.5,
/// res_resourceType: the *targeted* resource's type). Without the check,
/// an AE (ty 2) said to be a container (ty 3) was created under by a rule
/// for containers only, and a CREATE on an ACP said to be a container was
/// permitted by a `pvs` rule whose `acod` names containers.
#[tokio::test]
async fn a_target_type_the_replica_contradicts_is_invalid_ts0001_9_6_1_3() {
    const CREATE: u32 = 1;
    let details = vec![pb::ObjectDetails {
        resource_type: Some(3),
        child_resource_types: vec![4],
        ..Default::default()
    }];
    let mut policy = acp("acpC", &["Cphone"], CREATE);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules[0].object_details = details.clone();
    }
    if let Some(pvs) = policy.self_privileges.as_mut() {
        pvs.rules.push(pb::AccessControlRule {
            originators: vec!["Cphone".into()],
            operations: CREATE,
            object_details: details,
            ..Default::default()
        });
    }
    let mut ae = resource("ae1", Some(&["acpC"]), "Ccreator");
    ae.resource_type = 2;
    let pdp = pdp_with(&[snapshot_event(3, vec![policy], vec![ae])]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    for target in ["ae1", "acpC", "/id-in/ae1"] {
        let mut r = request("Cphone", pb::Operation::Create, target);
        r.resource_type = Some(4);
        r.target_type = Some(3);
        let err = client.decide(r.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{target}: {err:?}");
        assert_eq!(refused(err), ["target_type"], "{target}");
        let out = client
            .decide_batch(pb::DecideBatchRequest { requests: vec![r] })
            .await
            .expect("batch")
            .into_inner();
        assert_eq!(out.decisions[0].decision, DENY, "{target}");
        assert_eq!(
            out.decisions[0].status,
            pb::AuthorizationStatus::SyntaxError as i32,
            "{target}"
        );
    }
}

/// An endpoint that is not a URI is an error at start, naming it, not a
/// follower that retries forever.
#[tokio::test]
async fn a_prp_endpoint_that_is_not_a_uri_fails_the_start() {
    let err = Pdp::start(PdpConfig::new(hosting()).with_prp("not a uri")).expect_err("not a URI");
    assert!(err.to_string().contains("PRP endpoint not a uri"), "{err}");
}

#[tokio::test]
async fn decision_ids_are_unique() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let d = decide(
            &mut client,
            request("Cphone", pb::Operation::Retrieve, "cnt"),
        )
        .await;
        assert!(!d.decision_id.is_empty());
        assert!(ids.insert(d.decision_id));
    }
}

#[tokio::test]
async fn unknown_target_is_not_applicable_and_no_acpi_means_default_policy() {
    let pdp = pdp_with(&[snapshot_event(
        3,
        vec![],
        vec![resource("mine", None, "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let d = decide(
        &mut client,
        request("Cphone", pb::Operation::Retrieve, "ghost"),
    )
    .await;
    assert_eq!(d.decision, DENY);
    assert_eq!(d.status, pb::AuthorizationStatus::NotApplicable as i32);
    assert!(d.summary.contains("ghost"), "{}", d.summary);
    assert_eq!(d.policy_revision, 3);
    // Every decision carries an explanation (decision.proto), even one
    // made before any rule is evaluated: without rules.
    assert_eq!(d.explanation, Some(pb::Explanation::default()));

    let d = decide(
        &mut client,
        request("Ccreator", pb::Operation::Delete, "mine"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(d.permitted_by.unwrap().acp_id, "defaultPolicy:mine");
    let d = decide(
        &mut client,
        request("Cphone", pb::Operation::Retrieve, "mine"),
    )
    .await;
    assert_eq!(d.decision, DENY);
}

/// Before its first snapshot the replica holds no policies: a Deny then is
/// indeterminate (Decision 10), PROCESSING_ERROR saying so, not "not
/// applicable" for a resource the PDP merely has not heard of yet.
#[tokio::test]
async fn a_pdp_without_a_snapshot_says_so_instead_of_not_applicable() {
    let pdp = pdp_with(&[]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let d = decide(
        &mut client,
        request("Cphone", pb::Operation::Retrieve, "cnt"),
    )
    .await;
    assert_eq!(d.decision, DENY);
    assert_eq!(d.status, pb::AuthorizationStatus::ProcessingError as i32);
    assert!(d.summary.contains("no snapshot"), "{}", d.summary);
    assert!(
        d.summary.starts_with("DENY (processing error): "),
        "{}",
        d.summary
    );

    pdp.apply_event(&snapshot_event(1, vec![], vec![])).unwrap();
    let d = decide(
        &mut client,
        request("Cphone", pb::Operation::Retrieve, "cnt"),
    )
    .await;
    assert_eq!(d.status, pb::AuthorizationStatus::NotApplicable as i32);
    assert!(!d.summary.contains("no snapshot"), "{}", d.summary);
}

#[tokio::test]
async fn batch_answers_in_order_with_syntax_errors_in_place() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut requests = Vec::new();
    for i in 0..20 {
        let op = if i % 2 == 0 {
            pb::Operation::Retrieve
        } else {
            pb::Operation::Update
        };
        let mut r = request("Cphone", op, "cnt");
        r.request_id = format!("rq-{i}");
        requests.push(r);
    }
    requests[5].operation = 0;
    let out = client
        .decide_batch(pb::DecideBatchRequest {
            requests: requests.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert_eq!(out.len(), 20);
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.request_id, format!("rq-{i}"));
        if i == 5 {
            assert_eq!(d.decision, DENY);
            assert_eq!(d.status, pb::AuthorizationStatus::SyntaxError as i32);
            assert!(d.summary.contains("operation"), "{}", d.summary);
            assert_eq!(d.explanation, Some(pb::Explanation::default()));
        } else {
            let want = if i % 2 == 0 { PERMIT } else { DENY };
            assert_eq!(d.decision, want, "request {i}: {}", d.summary);
        }
    }
}

#[tokio::test]
async fn stream_answers_each_request_in_order() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = client
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // One at a time: each answer comes before the next request is sent.
    for i in 0..10 {
        let mut r = request(
            "Cphone",
            if i % 3 == 0 {
                pb::Operation::Update
            } else {
                pb::Operation::Retrieve
            },
            "cnt",
        );
        r.request_id = format!("s-{i}");
        if i == 4 {
            r.originator = String::new();
        }
        tx.send(r).await.unwrap();
        let d = next_answer(&mut answers, 120, "an answer").await;
        assert_eq!(d.request_id, format!("s-{i}"));
        let want = if i == 4 || i % 3 == 0 { DENY } else { PERMIT };
        assert_eq!(d.decision, want, "request {i}: {}", d.summary);
        if i == 4 {
            assert_eq!(d.status, pb::AuthorizationStatus::SyntaxError as i32);
            assert!(d.summary.contains("originator"), "{}", d.summary);
        }
    }
    drop(tx);
    assert!(ends(&mut answers).await);
}

/// A PDP that consults `das` (its default DAS) on every Deny and waits for
/// it up to `deadline`; `acp1` on `cnt` grants RETRIEVE to `Cphone` only.
async fn pdp_consulting(das: &GatedDas, deadline: Duration) -> Pdp {
    let url = das.serve().await;
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url);
    dynamic.deadline = deadline;
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).unwrap();
    pdp.apply_event(&snapshot_event(
        1,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    ))
    .unwrap();
    pdp
}

/// A request that takes long to decide (a DAS consultation) does not hold up
/// the requests sent after it on the same stream: each is answered as soon
/// as it is decided, with its `request_id` echoed to match it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_each_request_as_it_is_decided() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(120)).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = client
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    // Cvisitor is denied by acp1, so the PDP consults the DAS, which holds it.
    let mut slow = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    slow.request_id = "slow".into();
    tx.send(slow).await.unwrap();
    let consulted = || async { das.consulted() == 1 };
    assert!(eventually(Duration::from_secs(30), consulted).await);

    let mut fast = request("Cphone", pb::Operation::Retrieve, "cnt");
    fast.request_id = "fast".into();
    tx.send(fast).await.unwrap();
    // Not a speed check: the slow request is held until released below, so
    // an answer in order would never come before it.
    let first = next_answer(
        &mut answers,
        30,
        "the fast request answered while the slow one is undecided",
    )
    .await;
    assert_eq!(first.request_id, "fast");
    assert_eq!(first.decision, PERMIT, "{}", first.summary);

    das.release();
    let second = next_answer(&mut answers, 120, "the slow request answered once released").await;
    assert_eq!(second.request_id, "slow");
    assert_eq!(second.decision, DENY, "{}", second.summary);
    drop(tx);
    assert!(ends(&mut answers).await);
}

/// `DecideBatch` decides its requests in order, each at its own time: a
/// request decided after an earlier one waited on a DAS must not be
/// permitted by a dynamic ACP whose lifetime ended meanwhile (Decision 7;
/// TS-0003 7.3.2.2, the grant counts "until its privilegesLifetime ends").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_decides_each_request_at_its_own_time_decision_7() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(120)).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    pdp.apply_event(&dynamic_put(2, "dynGuest", "cnt", "Cguest", RETRIEVE, at))
        .unwrap();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let guest = request("Cguest", pb::Operation::Retrieve, "cnt");
    // Alone, now, the grant permits.
    let d = client.decide(guest.clone()).await.unwrap().into_inner();
    assert_eq!(d.decision, PERMIT, "{}", d.summary);

    // Cvisitor is denied, so the PDP consults the DAS, which holds the
    // batch until the grant has expired.
    let batch = pb::DecideBatchRequest {
        requests: vec![request("Cvisitor", pb::Operation::Retrieve, "cnt"), guest],
    };
    let call = tokio::spawn(async move { client.decide_batch(batch).await });
    das.wait_consulted(1).await;
    let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    das.release();
    let answers = call.await.unwrap().unwrap().into_inner().decisions;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].decision, DENY, "{}", answers[0].summary);
    assert_eq!(
        answers[1].decision, DENY,
        "decided after the grant's lifetime: {}",
        answers[1].summary
    );
}

/// A stream request held in the stream's queue (behind
/// [`STREAM_IN_FLIGHT`] others waiting on a DAS) is judged when it is
/// decided, not when it was read: a dynamic ACP whose lifetime ended
/// meanwhile (Decision 7; TS-0003 7.3.2.3 step 6.1.3 compares "the current
/// time") and an ACP deleted meanwhile permit it no longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_stream_request_is_decided_at_its_own_time_decision_7() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(120)).await;
    let ends = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    pdp.apply_event(&dynamic_put(2, "dynGuest", "cnt", "Cguest", RETRIEVE, ends))
        .unwrap();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    // A Token-ID makes a request wait on the network (and queue behind the
    // held ones); this one resolves to nothing, so the stored policies
    // decide (their Permit stands).
    let victim = |who: &str| {
        let mut r = request(who, pb::Operation::Retrieve, "cnt");
        r.token_ids = vec!["t1@unknown-das.example".into()];
        r.request_id = format!("victim-{who}");
        r
    };
    // Alone, now: the grant permits Cguest, acp1 permits Cphone.
    for who in ["Cguest", "Cphone"] {
        let d = decide(&mut client, victim(who)).await;
        assert_eq!(d.decision, PERMIT, "{who}: {}", d.summary);
    }

    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut answers = client
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..STREAM_IN_FLIGHT {
        let mut r = request(&format!("Cvisitor{i}"), pb::Operation::Retrieve, "cnt");
        r.request_id = format!("slow-{i}");
        tx.send(r).await.unwrap();
    }
    das.wait_consulted(STREAM_IN_FLIGHT).await;
    tx.send(victim("Cguest")).await.unwrap();
    tx.send(victim("Cphone")).await.unwrap();
    // While they are queued: acp1 is deleted, the grant ends.
    pdp.apply_event(&pb::WatchEvent {
        revision: 3,
        tag: 0,
        event: Some(pb::watch_event::Event::AcpDeleted("acp1".into())),
    })
    .unwrap();
    let wait = (ends - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    das.release();
    let mut victims = std::collections::BTreeMap::new();
    for _ in 0..STREAM_IN_FLIGHT + 2 {
        let d = next_answer(&mut answers, 30, "every request answered once released").await;
        if d.request_id.starts_with("victim-") {
            victims.insert(d.request_id.clone(), d);
        }
    }
    assert_eq!(victims.len(), 2, "{:?}", victims.keys());
    for (id, d) in &victims {
        assert_eq!(
            d.decision, DENY,
            "{id} decided after the change: {}",
            d.summary
        );
    }
    drop(tx);
}

/// Decision 7: a dynamic ACP counts "until its privilegesLifetime (pl)
/// ends", judged at the request's time (TS-0003 table 7.1.2-2 rq_time) as
/// well as at the PDP's clock: a request stamped after the end is denied,
/// and a Permit's `reusable_until` is never before its request time.
#[tokio::test]
async fn a_dynamic_acp_ends_for_requests_stamped_after_its_lifetime_decision_7() {
    let now = chrono::Utc::now();
    let ends = now + chrono::Duration::hours(1);
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cowner"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    pdp.apply_event(&dynamic_put(2, "dynGuest", "cnt", "Cguest", RETRIEVE, ends))
        .unwrap();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let at = |t: chrono::DateTime<chrono::Utc>| {
        let mut r = request("Cguest", pb::Operation::Retrieve, "cnt");
        r.request_time = Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        });
        r
    };
    let d = decide(&mut client, at(now + chrono::Duration::minutes(30))).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    let until = d.reusable_until.expect("bounded by the grant's end");
    assert!(until.seconds <= ends.timestamp(), "{until:?}");
    let d = decide(&mut client, at(now + chrono::Duration::hours(2))).await;
    assert_eq!(
        d.decision, DENY,
        "stamped after the grant's end: {}",
        d.summary
    );
}

/// `Decide` with a caller's deadline of 1.5 s, which the answer must beat.
async fn decide_within_1500_ms(
    client: &mut PolicyDecisionPointClient<tonic::transport::Channel>,
    r: pb::DecisionRequest,
) -> pb::Decision {
    let mut req = tonic::Request::new(r);
    req.set_timeout(Duration::from_millis(1500));
    client
        .decide(req)
        .await
        .expect("an answer before the caller's deadline")
        .into_inner()
}

/// Issue 5: a DAS that does not answer is a Deny within the deadline, with
/// the reason. The caller's deadline (`grpc-timeout`) bounds the PDP's
/// network waits even when its own DAS deadline is longer: the caller gets
/// an indeterminate Deny (Decision 10) saying so, not a timeout of its own
/// that loses the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_das_ends_before_the_callers_deadline_with_the_reason() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(300)).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let d = decide_within_1500_ms(
        &mut client,
        request("Cguest", pb::Operation::Retrieve, "cnt"),
    )
    .await;
    assert_eq!(das.consulted(), 1);
    assert_eq!(d.decision, DENY);
    assert_eq!(d.status, pb::AuthorizationStatus::MissingAttribute as i32);
    assert!(d.summary.contains("caller's deadline"), "{}", d.summary);
    assert!(d.token_request_info.is_none(), "no indicator, no tqf");
    // With the token request indicator, that Deny too tells the originator
    // where to get tokens (TS-0003 7.3.2.3 step 2; spec notes §6.3: "On
    // DENY, the HCSE answers 4103 with tqf"): the DASes are known locally.
    let mut indicated = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    indicated.token_request_indicator = true;
    let d = decide_within_1500_ms(&mut client, indicated).await;
    assert_eq!(d.decision, DENY);
    assert!(d.summary.contains("caller's deadline"), "{}", d.summary);
    let tqf = d.token_request_info.expect("Token Request Information");
    assert_eq!(tqf.das_info.len(), 1, "{tqf:?}");
    assert!(
        tqf.das_info[0].uri.starts_with("http://127.0.0.1:"),
        "{tqf:?}"
    );
    das.release();
}

/// The same for a batch with several items waiting on the DAS in turn:
/// the time to answer is kept once for the batch, so the caller gets every
/// item's Deny with the reason, not a timeout of its own (README: a
/// `DecideBatch` call's own deadline bounds it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waiting_on_a_slow_das_ends_before_the_callers_deadline() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(300)).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let slow = |who: &str| request(who, pb::Operation::Retrieve, "cnt");
    // Many, so that what each item costs after the first ran out of time
    // adds up to more than the last item's share of the time to answer.
    let mut req = tonic::Request::new(pb::DecideBatchRequest {
        requests: (0..20).map(|i| slow(&format!("Cguest{i}"))).collect(),
    });
    req.set_timeout(Duration::from_millis(1500));
    let answers = client
        .decide_batch(req)
        .await
        .expect("an answer before the caller's deadline")
        .into_inner()
        .decisions;
    assert_eq!(answers.len(), 20);
    for d in &answers {
        assert_eq!(d.decision, DENY, "{}", d.summary);
        assert_eq!(
            d.status,
            pb::AuthorizationStatus::MissingAttribute as i32,
            "{}",
            d.summary
        );
    }
    das.release();
}

/// `svc`'s decision of `request(who, op, target)`.
fn decided(
    svc: &authz_pdp::PdpService,
    who: &str,
    op: pb::Operation,
    target: &str,
) -> pb::Decision {
    svc.decide_pb(&request(who, op, target)).unwrap()
}

/// The next answer of a decision stream, within `secs` seconds.
async fn next_answer(
    answers: &mut tonic::Streaming<pb::Decision>,
    secs: u64,
    what: &str,
) -> pb::Decision {
    tokio::time::timeout(Duration::from_secs(secs), answers.message())
        .await
        .expect(what)
        .expect("the stream goes on")
        .expect("an answer")
}

/// Whether a decision stream ends next (its requests closed, every one
/// answered) rather than answering again, within [`HANG_LIMIT`].
async fn ends(answers: &mut tonic::Streaming<pb::Decision>) -> bool {
    within(answers.message(), HANG_LIMIT, || "the stream's end".into())
        .await
        .unwrap()
        .is_none()
}

/// Requests decided as they are read (a stored Permit) and requests held at
/// a DAS interleave on one stream: every fast one is answered while the slow
/// ones are held, more of them than the stream holds waiting, and the slow
/// ones are answered once released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_fast_requests_around_held_ones() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(120)).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = client
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let fast = STREAM_IN_FLIGHT + 36;
    let mut expected_fast = std::collections::BTreeSet::new();
    let mut sent = 0;
    // Two slow requests (two originators, so two consultations), each
    // followed by fast ones.
    for (slow, fast_after) in [("Cvisitor", fast - 10), ("Cguest", 10)] {
        let mut r = request(slow, pb::Operation::Retrieve, "cnt");
        r.request_id = format!("slow-{slow}");
        tx.send(r).await.unwrap();
        for _ in 0..fast_after {
            let mut r = request("Cphone", pb::Operation::Retrieve, "cnt");
            r.request_id = format!("fast-{sent}");
            expected_fast.insert(r.request_id.clone());
            sent += 1;
            tx.send(r).await.unwrap();
        }
    }
    let mut answered_fast = std::collections::BTreeSet::new();
    while answered_fast.len() < fast {
        let d = next_answer(
            &mut answers,
            30,
            "the fast requests answered while the slow ones are held",
        )
        .await;
        assert!(d.request_id.starts_with("fast-"), "{} first", d.request_id);
        assert_eq!(d.decision, PERMIT, "{}", d.summary);
        assert!(answered_fast.insert(d.request_id), "answered twice");
    }
    assert_eq!(answered_fast, expected_fast);
    let consulted = || async { das.consulted() == 2 };
    assert!(eventually(Duration::from_secs(30), consulted).await);

    das.release();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let d = next_answer(
            &mut answers,
            120,
            "the slow requests answered once released",
        )
        .await;
        assert_eq!(d.decision, DENY, "{}", d.summary);
        slow.push(d.request_id);
    }
    slow.sort();
    assert_eq!(slow, ["slow-Cguest", "slow-Cvisitor"]);
    drop(tx);
    assert!(ends(&mut answers).await);
}

/// A stream starts at most [`STREAM_IN_FLIGHT`] requests waiting on the
/// network, and is read on all the same: with that many held at a DAS, the
/// requests decided without waiting are answered as they come (thousands of
/// small ones: were the stream not read, HTTP/2 would end the whole
/// connection, GOAWAY `ENHANCE_YOUR_CALM`, unary calls on it included), the
/// next ones that must wait queue without starting, up to
/// [`STREAM_QUEUED`], and one beyond is an indeterminate Deny at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_on_while_its_waiting_requests_are_full() {
    let das = GatedDas::default();
    let pdp = pdp_consulting(&das, Duration::from_secs(120)).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel.clone());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut answers = client
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let slow = |i: usize| {
        let mut r = request(&format!("Cvisitor{i}"), pb::Operation::Retrieve, "cnt");
        r.request_id = format!("slow-{i}");
        r
    };

    // Each its own originator: one consultation each, all held.
    for i in 0..STREAM_IN_FLIGHT {
        tx.send(slow(i)).await.unwrap();
    }
    let consulted = || async { das.consulted() == STREAM_IN_FLIGHT };
    assert!(eventually(Duration::from_secs(30), consulted).await);
    // Many small requests decided without waiting: all answered.
    let fast_count = 3_000;
    let sender = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..fast_count {
                let mut fast = request("Cphone", pb::Operation::Retrieve, "cnt");
                fast.request_id = format!("fast-{i}");
                tx.send(fast).await.unwrap();
            }
        })
    };
    for _ in 0..fast_count {
        let d = next_answer(&mut answers, 30, "answered while the slow ones are held").await;
        assert!(d.request_id.starts_with("fast-"), "{}", d.request_id);
        assert_eq!(d.decision, PERMIT, "{}", d.summary);
    }
    sender.await.unwrap();
    // The connection serves other calls all along.
    let d = client
        .decide(request("Cphone", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("a unary call on the same connection")
        .into_inner();
    assert_eq!(d.decision, PERMIT);

    // Slow ones beyond those held queue, not started: the DAS sees no more.
    let queued = STREAM_QUEUED;
    let sender = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in STREAM_IN_FLIGHT..STREAM_IN_FLIGHT + queued + 1 {
                tx.send(slow(i)).await.unwrap();
            }
        })
    };
    // The one beyond the queue is answered at once, indeterminate.
    let d = next_answer(&mut answers, 60, "the request beyond the queue answered").await;
    sender.await.unwrap();
    assert_eq!(d.request_id, format!("slow-{}", STREAM_IN_FLIGHT + queued));
    assert_eq!(d.decision, DENY);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::ProcessingError as i32,
        "{}",
        d.summary
    );
    assert!(d.summary.contains("queue is full"), "{}", d.summary);
    assert_eq!(das.consulted(), STREAM_IN_FLIGHT, "queued ones not started");

    das.release();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..STREAM_IN_FLIGHT + queued {
        let d = next_answer(&mut answers, 120, "every held and queued request answered").await;
        ids.insert(d.request_id);
    }
    assert_eq!(ids.len(), STREAM_IN_FLIGHT + queued);
    drop(tx);
    assert!(ends(&mut answers).await);
}

#[tokio::test]
async fn invalid_request_is_invalid_argument_naming_the_field() {
    let pdp = pdp_with(&[snapshot_event(1, vec![], vec![])]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut req = request("Cphone", pb::Operation::Retrieve, "cnt");
    req.operation = 0;
    req.originator_ip = Some(pb::IpAddress {
        address: Some(pb::ip_address::Address::Ipv4("300.1.1.1".into())),
    });
    let fields = refused(client.decide(req).await.unwrap_err());
    assert!(fields.iter().any(|f| f == "operation"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f == "originator_ip.ipv4"),
        "{fields:?}"
    );

    // Table 7.1.2-1 `From` is an AE-ID or CSE-ID, and 0 is no
    // m2m:resourceType (spec notes §4): each named.
    let mut req = request("//evil.example", pb::Operation::Create, "cnt");
    req.target_type = Some(0);
    req.resource_type = Some(0);
    assert_eq!(
        refused(client.decide(req).await.unwrap_err()),
        ["originator", "target_type", "resource_type"]
    );

    // At most 64 claimed Role-IDs: each is verified and cached per
    // originator, so thousands would cost the PDP what the caller likes.
    let mut req = request("Cphone", pb::Operation::Retrieve, "cnt");
    req.role_ids = (0..64).map(|i| format!("r{i}@roles.example.com")).collect();
    assert_eq!(decide(&mut client, req.clone()).await.decision, DENY);
    req.role_ids.push("r64@roles.example.com".into());
    assert_eq!(refused(client.decide(req).await.unwrap_err()), ["role_ids"]);

    // An originator of 2048 bytes as given is longer in the absolute form
    // it is judged and sent to the PIP in (Decision 2): refused naming it,
    // not left to fail at the PIP as if the PIP were down.
    let grows = format!("C{}", "x".repeat(2047));
    let fields = refused(
        client
            .decide(request(&grows, pb::Operation::Retrieve, "cnt"))
            .await
            .unwrap_err(),
    );
    assert_eq!(fields, ["originator"]);
    // A long bad value quoted before the reason does not crowd the reason
    // out of the bounded description: it still says why.
    let long_bad = format!("C{}@", "x".repeat(1500));
    let err = client
        .decide(request(&long_bad, pb::Operation::Retrieve, "cnt"))
        .await
        .unwrap_err();
    let bad = err.get_details_bad_request().expect("a BadRequest detail");
    let why = &bad.field_violations[0].description;
    assert_eq!(bad.field_violations[0].field, "originator");
    assert!(why.len() < 400, "{why}");
    assert!(
        why.ends_with("' holds '@': an AE-ID or CSE-ID cannot, and a Role-ID is not an originator"),
        "{why}"
    );
    let prefix = "//other.example.com/cse1/";
    let fits = format!("{prefix}{}", &grows[..2048 - prefix.len()]);
    let ok = client
        .decide(request(&fits, pb::Operation::Retrieve, "cnt"))
        .await;
    assert!(ok.is_ok(), "an absolute ID of 2048 bytes: {ok:?}");

    // TS-0001 7.2 / 10.2.3.1: a target with an empty path segment names no
    // resource (`/mn1/acpZ/` is not the ACP `/mn1/acpZ`): the core check
    // `authz check` makes of `to`.
    for target in ["/mn1/acpZ/", "/mn1//acpZ", "/", "//"] {
        let req = request("Cphone", pb::Operation::Update, target);
        assert_eq!(
            refused(client.decide(req).await.unwrap_err()),
            ["target"],
            "{target}"
        );
        // An explicit ACP ID is an ID as a target is.
        let mut req = request("Cphone", pb::Operation::Retrieve, "cnt");
        req.acp_ids = vec!["acp1".into(), target.into()];
        assert_eq!(
            refused(client.decide(req).await.unwrap_err()),
            ["acp_ids[1]"],
            "{target}"
        );
    }
}

#[tokio::test]
async fn health_is_serving_only_after_the_first_snapshot() {
    let pdp = Pdp::start(PdpConfig::new(hosting())).expect("pdp");
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let status = |r: tonic_health::pb::HealthCheckResponse| r.status;

    for service in [authz_pdp::PDP_SERVICE_NAME, ""] {
        let r = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(status(r), ServingStatus::NotServing as i32, "{service:?}");
    }
    let r = health
        .check(check(authz_pdp::ECHO_SERVICE_NAME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(r), ServingStatus::Serving as i32);

    pdp.apply_event(&snapshot_event(1, vec![], vec![])).unwrap();
    let serving = eventually(Duration::from_secs(5), || {
        let mut h = health.clone();
        async move {
            let pdp = h
                .check(check(authz_pdp::PDP_SERVICE_NAME))
                .await
                .unwrap()
                .into_inner();
            let all = h.check(check("")).await.unwrap().into_inner();
            pdp.status == ServingStatus::Serving as i32
                && all.status == ServingStatus::Serving as i32
        }
    })
    .await;
    assert!(serving);
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let pdp = pdp_with(&[]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut out = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = out.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        authz_pdp::PDP_SERVICE_NAME,
        authz_pdp::ECHO_SERVICE_NAME,
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // Only what this server serves: a client calling the package's other
    // services here would get UNIMPLEMENTED.
    for other in [
        "PolicyRetrievalPoint",
        "PolicyInformationPoint",
        "DynamicAuthorizationServer",
    ] {
        assert!(
            !names.iter().any(|n| n.ends_with(other)),
            "{other} in {names:?}"
        );
    }
}

#[tokio::test]
async fn echo_permits_without_evaluating() {
    let pdp = pdp_with(&[]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut echo = EchoClient::new(channel);
    let d = echo
        .echo(request("", pb::Operation::Unspecified, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.decision, PERMIT);
}

#[tokio::test]
async fn dynamic_acps_join_the_set_until_they_expire() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let grant = |id: &str, expires_in: chrono::Duration| {
        dynamic_put(
            0,
            id,
            "cnt",
            "Cguest",
            RETRIEVE,
            chrono::Utc::now() + expires_in,
        )
    };
    let svc = pdp.service();
    let guest = request("Cguest", pb::Operation::Retrieve, "cnt");
    assert_eq!(svc.decide_pb(&guest).unwrap().decision, DENY);

    let mut ev = grant("dyn1", chrono::Duration::milliseconds(400));
    ev.revision = 2;
    pdp.apply_event(&ev).unwrap();
    let d = svc.decide_pb(&guest).unwrap();
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(d.permitted_by.unwrap().acp_id, "dyn1");
    // Explicit acp_ids may name a live dynamic ACP too, for the resource it
    // is bound to only (Decision 7).
    let mut explicit = guest.clone();
    explicit.acp_ids = vec!["dyn1".into()];
    assert_eq!(svc.decide_pb(&explicit).unwrap().decision, PERMIT);
    let mut elsewhere = explicit.clone();
    elsewhere.target = "other".into();
    let d = svc.decide_pb(&elsewhere).unwrap();
    assert_eq!(d.decision, DENY);
    // The Deny says why: the replica holds dyn1, bound to cnt.
    assert!(
        d.summary
            .ends_with("; dynamic ACPs bound to another resource: dyn1"),
        "{}",
        d.summary
    );

    // Expired: filtered at decision time, before the PRP removes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(svc.decide_pb(&guest).unwrap().decision, DENY);
    assert_eq!(svc.decide_pb(&explicit).unwrap().decision, DENY);
}

/// Decision 7: "a dynamicACPInfo (dai) grant becomes a dynamic ACP bound to
/// the targeted resource and counted in its applicable policy set". One
/// bound to a contentInstance counts for it alone, not for its container
/// or a sibling; one bound to the container counts for its contentInstances
/// too, which take their policies from it (TS-0001 10.2.3.1 step 2). The
/// same holds when the request names the ACPs (`acp_ids`).
#[tokio::test]
async fn decision_7_a_dynamic_acp_counts_for_the_resource_it_is_bound_to() {
    let cin = |id: &str| pb::TargetResource {
        resource_id: id.into(),
        parent_id: "cnt".into(),
        resource_type: 4,
        ..Default::default()
    };
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acpOwner", &["Cowner"], 63)],
        vec![
            resource("cnt", Some(&["acpOwner"]), "Ccreator"),
            cin("cin1"),
            cin("cin2"),
        ],
    )]);
    let at = chrono::Utc::now() + chrono::Duration::minutes(10);
    // RETRIEVE + DELETE
    let grant = |revision: u64, id: &str, target: &str, who: &str| {
        dynamic_put(revision, id, target, who, 2 | 8, at)
    };
    pdp.apply_event(&grant(2, "dynCin1", "cin1", "Cguest"))
        .unwrap();
    pdp.apply_event(&grant(3, "dynCnt", "cnt", "Cvisitor"))
        .unwrap();
    let svc = pdp.service();
    let decide = |who: &str, op: pb::Operation, target: &str, acp_ids: &[&str]| {
        let mut req = request(who, op, target);
        req.acp_ids = acp_ids.iter().map(|s| s.to_string()).collect();
        let d = svc.decide_pb(&req).unwrap();
        (d.decision, d.permitted_by.map(|p| p.acp_id), d.summary)
    };
    use pb::Operation::{Delete, Retrieve};
    for explicit in [&[][..], &["dynCin1", "dynCnt"]] {
        // The grant for cin1: cin1 only.
        let (d, by, why) = decide("Cguest", Retrieve, "cin1", explicit);
        assert_eq!(
            (d, by.as_deref()),
            (PERMIT, Some("dynCin1")),
            "{explicit:?}: {why}"
        );
        let (d, _, why) = decide("Cguest", Delete, "cin1", explicit);
        assert_eq!(d, PERMIT, "{explicit:?}: {why}");
        for (op, target) in [(Delete, "cnt"), (Retrieve, "cnt"), (Retrieve, "cin2")] {
            let (d, _, why) = decide("Cguest", op, target, explicit);
            assert_eq!(d, DENY, "{explicit:?} {op:?} {target}: {why}");
        }
        // The grant for cnt: cnt and both its contentInstances.
        for target in ["cnt", "cin1", "cin2"] {
            let (d, by, why) = decide("Cvisitor", Retrieve, target, explicit);
            assert_eq!(
                (d, by.as_deref()),
                (PERMIT, Some("dynCnt")),
                "{explicit:?} {target}: {why}"
            );
        }
    }
    // A Permit by a dynamic ACP is reusable only until the ACP ends
    // (`reusable_until`, which a PEP's cache honours); one by a stored ACP
    // is not limited.
    let by_grant = decided(&svc, "Cguest", Retrieve, "cin1");
    assert_eq!(by_grant.decision, PERMIT);
    assert_eq!(
        by_grant.reusable_until.map(|t| t.seconds),
        Some(at.timestamp()),
        "{by_grant:?}"
    );
    let by_stored = decided(&svc, "Cowner", Retrieve, "cin1");
    assert_eq!(by_stored.decision, PERMIT, "{}", by_stored.summary);
    assert_eq!(by_stored.reusable_until, None);
}

/// TS-0003 7.1.1: "access requests to ACP's itself are evaluated against
/// the selfPrivileges attribute of that ACP"; a dynamic ACP (Decision 7,
/// TS-0003 7.3.2.2: a child `<accessControlPolicy>` of its target) is one,
/// holding privileges for its target and no selfPrivileges. A request on
/// it, with explicit `acp_ids` or without, is never judged by the `pv` of
/// other ACPs, nor by its own grant, nor taken to a DAS.
#[tokio::test]
async fn a_request_on_a_dynamic_acp_is_one_on_an_acp_ts0003_7_1_1() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acpA", &["Calice"], 63)],
        vec![resource("cnt1", Some(&["acpA"]), "Ccreator")],
    )]);
    let at = chrono::Utc::now() + chrono::Duration::minutes(10);
    pdp.apply_event(&dynamic_put(2, "dynC1", "cnt1", "Cdyn", 63, at))
        .unwrap();
    let svc = pdp.service();
    for (who, acp_ids) in [
        ("Calice", &["acpA"][..]),
        ("Calice", &[][..]),
        ("Cdyn", &["dynC1"][..]),
        ("Cdyn", &[][..]),
    ] {
        for op in [pb::Operation::Retrieve, pb::Operation::Delete] {
            let mut req = request(who, op, "dynC1");
            req.acp_ids = acp_ids.iter().map(|s| s.to_string()).collect();
            let d = svc.decide_pb(&req).unwrap();
            assert_eq!(d.decision, DENY, "{who} {op:?} {acp_ids:?}: {}", d.summary);
        }
    }
    // The grant still counts for its target.
    let d = decided(&svc, "Cdyn", pb::Operation::Retrieve, "cnt1");
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

/// Explanations (issue "for a time window, when it next opens"): a dynamic
/// ACP counts until its lifetime ends (Decision 7), so a window of it that
/// opens only later never opens for the originator; one that opens before
/// the end is named.
#[tokio::test]
async fn a_dynamic_acps_window_opening_after_its_lifetime_never_opens_decision_7() {
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acpOwner", &["Cowner"], 63)],
        vec![resource("t1", Some(&["acpOwner"]), "Ccreator")],
    )]);
    let until = chrono::Utc::now() + chrono::Duration::days(2);
    let window = |id: &str, revision: u64, actw: &str| pb::WatchEvent {
        revision,
        tag: 0,
        event: Some(pb::watch_event::Event::DynamicPut(pb::DynamicAcpRecord {
            acp_id: id.to_owned(),
            target: "t1".into(),
            privileges: Some(pb::SetOfAcrs {
                rules: vec![pb::AccessControlRule {
                    originators: vec!["CA".into()],
                    operations: 2,
                    contexts: vec![pb::AccessControlContext {
                        time_windows: vec![actw.to_owned()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }),
            expires_at: Some(prost_types::Timestamp {
                seconds: until.timestamp(),
                nanos: 0,
            }),
            revision,
            version: None,
        })),
    };
    // Opens on 1 January 2041 (after the lifetime), and at the next
    // minute's second 0 of the hour 25 hours on (within it).
    let later = chrono::Utc::now() + chrono::Duration::hours(25);
    let soon = format!(
        "0 0 {} {} {} * {}",
        later.format("%-H"),
        later.format("%-d"),
        later.format("%-m"),
        later.format("%Y")
    );
    pdp.apply_event(&window("dynLate", 2, "0 0 0 1 1 * 2041"))
        .unwrap();
    pdp.apply_event(&window("dynSoon", 3, &soon)).unwrap();
    let d = pdp
        .service()
        .decide_pb(&request("CA", pb::Operation::Retrieve, "t1"))
        .unwrap();
    assert_eq!(d.decision, DENY, "{}", d.summary);
    let opens = |acp: &str| -> Option<Option<prost_types::Timestamp>> {
        let failed = d
            .explanation
            .as_ref()?
            .failed_rules
            .iter()
            .find(|f| f.rule.as_ref().is_some_and(|r| r.acp_id == acp))?;
        let Some(pb::failed_condition::Condition::Context(c)) = &failed.failed.as_ref()?.condition
        else {
            return None;
        };
        match c.elements.first()?.part.as_ref()? {
            pb::context_failure::Part::TimeWindow(t) => Some(t.next_open),
            _ => None,
        }
    };
    assert_eq!(opens("dynLate"), Some(None), "{}", d.summary);
    assert!(matches!(opens("dynSoon"), Some(Some(_))), "{}", d.summary);
    assert!(d.summary.contains("never opens again"), "{}", d.summary);
}

/// TS-0001 7.2: a target in any ID form of the hosting CSE; the CSEBase
/// in its SP-relative or absolute form is its CSE-ID (`/id-in`,
/// `//sp.example.com/id-in`), which has no CSE-relative form: it names the
/// resource the PEP and the PRP name by the CSE-ID without `/`.
#[tokio::test]
async fn the_csebase_by_its_cse_id_is_its_resource_ts0001_7_2() {
    let base = pb::TargetResource {
        resource_type: 5,
        ..resource("id-in", Some(&["acpOwner"]), "")
    };
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acpOwner", &["Cowner"], 63)],
        vec![base],
    )]);
    let svc = pdp.service();
    for target in ["id-in", "/id-in", "//SP.example.com/id-in"] {
        let d = decided(&svc, "Cowner", pb::Operation::Retrieve, target);
        assert_eq!(d.decision, PERMIT, "{target}: {}", d.summary);
        let d = decided(&svc, "Cother", pb::Operation::Retrieve, target);
        assert_eq!(d.decision, DENY, "{target}: {}", d.summary);
    }
    // Another CSE's CSEBase is no resource here.
    let d = decided(&svc, "Cowner", pb::Operation::Retrieve, "/id-mn");
    assert_eq!(d.decision, DENY, "{}", d.summary);
}

#[tokio::test]
async fn serve_runs_until_shutdown() {
    let pdp = pdp_with(&[snapshot_event(1, vec![], vec![])]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = async {
        pdp.serve(listener, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    };
    let client = async {
        let mut c = PolicyDecisionPointClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let s = status(&mut c).await;
        assert_eq!(s.replica_revision, 1);
        assert!(!s.prp_connected);
        stop.send(()).unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(server, client)
    })
    .await
    .expect("the server stops");
}

/// The replica of the acpi-change tests: `cnt1` references `acp1`, whose
/// `pv` grants Calice everything and whose `pvs` grants only Cadmin
/// (`acp`'s selfPrivileges); `cnt2` has no acpi (created by Calice);
/// `cin1` is a contentInstance of `cnt1`; `acpMine` is Calice's own.
fn acpi_change_replica() -> Pdp {
    let cin = pb::TargetResource {
        resource_id: "cin1".into(),
        parent_id: "cnt1".into(),
        resource_type: 4,
        ..Default::default()
    };
    pdp_with(&[snapshot_event(
        1,
        vec![
            acp("acp1", &["Calice"], 63),
            acp("acpMine", &["Calice"], 63),
        ],
        vec![
            resource("cnt1", Some(&["acp1"]), "Ccreator"),
            resource("cnt2", None, "Calice"),
            cin,
        ],
    )])
}

/// `who` changes the acpi of `target` (an UPDATE with `updates_acpi`).
fn acpi_change(who: &str, target: &str) -> pb::DecisionRequest {
    let mut r = request(who, pb::Operation::Update, target);
    r.updates_acpi = true;
    r
}

/// TS-0001 9.6.1.3.2 (spec notes §2.3): "Changing acpi ... is authorized
/// by UPDATE in pvs of the currently referenced ACPs". Calice holds UPDATE
/// in acp1's pv, not in its pvs: she may update cnt1, but not re-point it
/// to her own ACP; Cadmin may, by acp1.pvs.acr[0]. With the ACPs named in
/// the request (`acp_ids`) the same; a resource without acpi is judged by
/// its default policy (its creator).
#[tokio::test]
async fn ts0001_9_6_1_3_2_an_acpi_change_is_judged_by_pvs_of_the_referenced_acps() {
    let pdp = acpi_change_replica();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let d = decide(&mut client, acpi_change("Calice", "cnt1")).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::NotApplicable as i32,
        "no pvs rule names Calice: {}",
        d.summary
    );
    let d = decide(&mut client, acpi_change("Cadmin", "cnt1")).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    let by = d.permitted_by.clone().expect("permitted_by");
    assert_eq!(
        (by.acp_id.as_str(), by.privileges, by.rule_index),
        ("acp1", pb::PrivilegeKind::SelfPrivileges as i32, 0)
    );
    assert!(d.summary.contains("acp1.pvs.acr[0]"), "{}", d.summary);
    assert!(d.judged_acpi_change, "echoed for the PEP");

    // Without the flag: the ordinary Update, by pv, as before.
    let d = decide(
        &mut client,
        request("Calice", pb::Operation::Update, "cnt1"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert!(d.summary.contains("acp1.pv.acr[0]"), "{}", d.summary);
    let d = decide(
        &mut client,
        request("Cadmin", pb::Operation::Update, "cnt1"),
    )
    .await;
    assert_eq!(d.decision, DENY, "{}", d.summary);

    // The ACPs named in the request: their pvs.
    let named = |who: &str| {
        let mut r = acpi_change(who, "cnt1");
        r.acp_ids = vec!["acp1".into()];
        r
    };
    assert_eq!(decide(&mut client, named("Calice")).await.decision, DENY);
    let d = decide(&mut client, named("Cadmin")).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert!(d.summary.contains("acp1.pvs.acr[0]"), "{}", d.summary);

    // acpi not set: the default policy, as for cnt2's other requests.
    let d = decide(&mut client, acpi_change("Calice", "cnt2")).await;
    assert_eq!(d.decision, PERMIT, "the creator: {}", d.summary);
    assert_eq!(
        decide(&mut client, acpi_change("Cadmin", "cnt2"))
            .await
            .decision,
        DENY
    );
}

/// An acpi change is an UPDATE of a resource that has acpi (TS-0001
/// 9.6.1.3.2; spec notes §2.3: not an ACP, not a contentInstance):
/// anything else is INVALID_ARGUMENT with a BadRequest naming
/// `updates_acpi`, whether the request gives the target's type or the
/// replica knows it. In a batch, a Deny with status SYNTAX_ERROR.
#[tokio::test]
async fn ts0001_9_6_1_3_2_updates_acpi_on_a_retrieve_or_a_target_without_acpi_is_invalid() {
    let pdp = acpi_change_replica();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut retrieve = acpi_change("Cadmin", "cnt1");
    retrieve.operation = pb::Operation::Retrieve as i32;
    // A target the replica does not hold, said to be an ACP (one it holds
    // is of the type it knows: see
    // `a_target_type_the_replica_contradicts_is_invalid_ts0001_9_6_1_3`).
    let mut typed_acp = acpi_change("Cadmin", "elsewhere");
    typed_acp.target_type = Some(1);
    typed_acp.acp_ids = vec!["acp1".into()];
    let mut named_acp = acpi_change("Cadmin", "acp1");
    named_acp.acp_ids = vec!["acp1".into()];
    for (what, req, reason) in [
        ("RETRIEVE", retrieve, "must be an OPERATION_UPDATE"),
        (
            "an ACP target",
            acpi_change("Cadmin", "acp1"),
            "has no accessControlPolicyIDs",
        ),
        (
            "an ACP target with acp_ids",
            named_acp,
            "has no accessControlPolicyIDs",
        ),
        ("target_type 1", typed_acp, "has no accessControlPolicyIDs"),
        (
            "a contentInstance",
            acpi_change("Cadmin", "cin1"),
            "has no accessControlPolicyIDs",
        ),
    ] {
        let err = client.decide(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        let bad = err.get_details_bad_request().expect("a BadRequest detail");
        assert_eq!(bad.field_violations.len(), 1, "{what}: {bad:?}");
        assert_eq!(bad.field_violations[0].field, "updates_acpi", "{what}");
        assert!(
            bad.field_violations[0].description.contains(reason),
            "{what}: {}",
            bad.field_violations[0].description
        );
        let out = client
            .decide_batch(pb::DecideBatchRequest {
                requests: vec![req],
            })
            .await
            .unwrap()
            .into_inner()
            .decisions;
        assert_eq!(out[0].decision, DENY, "{what}");
        assert_eq!(
            out[0].status,
            pb::AuthorizationStatus::SyntaxError as i32,
            "{what}"
        );
        assert!(
            out[0].summary.contains("updates_acpi"),
            "{what}: {}",
            out[0].summary
        );
    }
    // The same requests without the flag are decided.
    let d = decide(
        &mut client,
        request("Cadmin", pb::Operation::Update, "acp1"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

/// Decision 7: a dynamic ACP bound to cnt1 grants Cguest UPDATE, a `pv`
/// for the target; it is no `pvs`, so it does not authorize an acpi change
/// (TS-0001 9.6.1.3.2), resolved or named in `acp_ids`, while it still
/// permits the ordinary Update.
#[tokio::test]
async fn decision_7_a_dynamic_acp_does_not_authorize_an_acpi_change() {
    let pdp = acpi_change_replica();
    let at = chrono::Utc::now() + chrono::Duration::minutes(10);
    pdp.apply_event(&dynamic_put(2, "dyn1", "cnt1", "Cguest", UPDATE, at))
        .unwrap();
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let d = decide(
        &mut client,
        request("Cguest", pb::Operation::Update, "cnt1"),
    )
    .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(d.permitted_by.expect("permitted_by").acp_id, "dyn1");
    let d = decide(&mut client, acpi_change("Cguest", "cnt1")).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    let mut named = acpi_change("Cguest", "cnt1");
    named.acp_ids = vec!["acp1".into(), "dyn1".into()];
    let d = decide(&mut client, named).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert!(
        !d.summary.contains("not in the replica"),
        "dyn1 is in the replica, it only has no pvs: {}",
        d.summary
    );
}

/// An ACP named several times in `acp_ids`, in one form or several (TS-0001
/// 7.2), is evaluated once: the decision is the same, and a caller cannot
/// multiply the cost of an expensive ACP by repeating it. The Deny lists
/// its failed rule once, and an unknown ID once.
#[tokio::test]
async fn an_acp_named_twice_in_acp_ids_is_evaluated_once() {
    let pdp = pdp_with(&[snapshot_event(
        3,
        vec![acp("acp1", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let svc = pdp.service();
    let mut r = request("Cphone", pb::Operation::Delete, "cnt");
    r.acp_ids = vec![
        "acp1".into(),
        "/id-in/acp1".into(),
        "//sp.example.com/id-in/acp1".into(),
        "acp1".into(),
        "nope".into(),
        "nope".into(),
    ];
    let d = svc.decide_pb(&r).unwrap();
    assert_eq!(d.decision, DENY, "{}", d.summary);
    let explanation = d.explanation.expect("explanation");
    assert_eq!(explanation.failed_rules.len(), 1, "{explanation:?}");
    assert!(
        d.summary.ends_with("; ACPs not in the replica: nope"),
        "{}",
        d.summary
    );
    r.operation = pb::Operation::Retrieve as i32;
    assert_eq!(svc.decide_pb(&r).unwrap().decision, PERMIT);
}

/// A PIP address that serves another service (here a PRP): the Deny's
/// missing role says what UNIMPLEMENTED without a message means, not an
/// empty reason (README: "the server there does not serve this call").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pip_address_serving_another_service_is_named_as_such() {
    let prp = FakePrp::default();
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let not_a_pip = format!("http://{}", running.addr);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_pip(not_a_pip)).expect("pdp");
    pdp.apply_event(&snapshot_event(
        1,
        vec![acp("acp1", &["guest@roles.example.com"], 2)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    ))
    .expect("snapshot");
    let mut r = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    r.role_ids = vec!["guest@roles.example.com".into()];
    let d = pdp
        .service()
        .decide_resolving_pb(&r)
        .await
        .expect("decision");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{d:?}"
    );
    assert!(
        d.missing
            .iter()
            .any(|m| m.reason.contains("does not serve this call")),
        "{d:?}"
    );
    running.kill().await;
}
