//! The PIP wired into the PDP, end to end over gRPC on loopback: a real PRP
//! (policies), a real PIP (roles, groups, positions, country tables) and a
//! real PDP that follows the PRP and asks the PIP through its cache.
//!
//! Each test pins a rule of TS-0003: Role-IDs in `acor` (7.4.3 step 4),
//! `<group>` IDs in `acor` (TS-0001 9.6.2.1), circle and country regions
//! (Annex F, project Decision 5), and indeterminate attributes as Deny with
//! MISSING_ATTRIBUTE (7.1.4, Decision 10).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_prp::PrpConfig;
use authz_tests::mmdb;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

const SP: &str = "//sp.example.com";
const CSE: &str = "/id-in";
const ADMIN: &str = "CAdmin";
const AUTHORITY: &str = "//sp.example.com/id-in/CAuthority";
const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new(SP, CSE).expect("hosting")
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    authz_proto::convert::timestamp_to_pb(&t)
}

/// A fresh directory `authz-pip-pdp-{name}-…` under the system temp dir,
/// removed with everything in it when the returned guard drops.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("authz-pip-pdp-{name}-"))
        .tempdir()
        .expect("temp dir")
}

async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = format!("http://{}", l.local_addr().expect("addr"));
    (l, addr)
}

async fn channel(endpoint: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// PRP, PIP and PDP, each on its own loopback port.
struct Stack {
    prp: PolicyRetrievalPointClient<Channel>,
    pip: PolicyInformationPointClient<Channel>,
    pdp: PolicyDecisionPointClient<Channel>,
    pip_server: JoinHandle<()>,
    pip_stop: Option<tokio::sync::oneshot::Sender<()>>,
    pip_service: authz_pip::PipService,
    _pdp: Pdp,
    _tasks: Vec<JoinHandle<()>>,
    /// The PIP's store and sources; removed when the stack drops.
    _dir: tempfile::TempDir,
    prp_addr: String,
    pip_addr: String,
}

/// A PDP following the PRP at `prp_addr` and asking the PIP at `pip_addr`,
/// served on its own loopback port.
async fn start_pdp(
    prp_addr: &str,
    pip_addr: &str,
) -> (Pdp, PolicyDecisionPointClient<Channel>, JoinHandle<()>) {
    let pdp = Pdp::start(
        PdpConfig::new(hosting())
            .with_prp(prp_addr.to_owned())
            .with_pip(pip_addr.to_owned()),
    )
    .expect("pdp");
    let routes = pdp.routes().await.expect("routes");
    let (l, pdp_addr) = listen().await;
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(l))
            .await;
    });
    let client = PolicyDecisionPointClient::new(channel(&pdp_addr).await);
    (pdp, client, task)
}

impl Stack {
    async fn start(name: &str, max_position_age: Duration) -> Self {
        Self::start_with(name, max_position_age, |_| {}).await
    }

    /// [`Stack::start`] with the PIP's configuration changed by `configure`.
    async fn start_with(
        name: &str,
        max_position_age: Duration,
        configure: impl FnOnce(&mut PipConfig),
    ) -> Self {
        let dir = temp_dir(name);
        // PRP
        let prp_service = authz_prp::build(&PrpConfig::new(None, ADMIN, hosting()))
            .await
            .expect("prp");
        let (l, prp_addr) = listen().await;
        let router = authz_prp::router(prp_service).await.expect("router");
        let prp_task = tokio::spawn(async move {
            let _ = router.serve_with_incoming(TcpListenerStream::new(l)).await;
        });
        // PIP: a CSV table and an .mmdb database for IP → country.
        let csv = dir.path().join("countries.csv");
        std::fs::write(&csv, "cidr,country\n10.0.0.0/8,DE\n10.1.0.0/16,FR\n").expect("csv");
        let mmdb_path = write_mmdb(dir.path());
        let mut config = PipConfig::new(Some(dir.path().join("pip")), ADMIN, hosting());
        config.trusted_issuers = vec![AUTHORITY.to_owned()];
        config.max_position_age = max_position_age;
        config.ip_csv = vec![csv];
        config.ip_mmdb = vec![mmdb_path];
        configure(&mut config);
        let pip_service = authz_pip::build(&config).await.expect("pip");
        let (l, pip_addr) = listen().await;
        let router = authz_pip::router(pip_service.clone())
            .await
            .expect("router");
        let (pip_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let pip_server = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), async move {
                    let _ = stopped.await;
                })
                .await;
        });
        // PDP following the PRP, asking the PIP.
        let (pdp, pdp_client, pdp_task) = start_pdp(&prp_addr, &pip_addr).await;
        Self {
            prp: PolicyRetrievalPointClient::new(channel(&prp_addr).await),
            pip: PolicyInformationPointClient::new(channel(&pip_addr).await),
            pdp: pdp_client,
            pip_server,
            pip_stop: Some(pip_stop),
            pip_service,
            _pdp: pdp,
            _tasks: vec![prp_task, pdp_task],
            _dir: dir,
            prp_addr,
            pip_addr,
        }
    }

    /// Stores an ACP whose `pv` is `rule` and binds resource `target` to it,
    /// then waits until the PDP's replica has it.
    async fn policy(&mut self, target: &str, rule: pb::AccessControlRule) {
        let acp_id = format!("acp-{target}");
        self.prp
            .create_acp(pb::CreateAcpRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                acp: Some(pb::AccessControlPolicy {
                    resource_id: Some(acp_id.clone()),
                    privileges: Some(pb::SetOfAcrs { rules: vec![rule] }),
                    self_privileges: Some(pb::SetOfAcrs {
                        rules: vec![pb::AccessControlRule {
                            originators: vec![ADMIN.into()],
                            operations: 63,
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
            })
            .await
            .expect("create acp");
        let revision = self
            .prp
            .put_resource(pb::PutResourceRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                resource: Some(pb::TargetResource {
                    resource_id: target.into(),
                    resource_type: 3,
                    acpi_set: true,
                    acpi: vec![acp_id],
                    creator: "Ccreator".into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("put resource")
            .into_inner()
            .revision;
        // The replica follows the PRP asynchronously.
        for _ in 0..250 {
            let status = self
                .pdp
                .status(pb::StatusRequest {})
                .await
                .expect("status")
                .into_inner();
            if status.replica_revision >= revision {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the PDP's replica never reached revision {revision}");
    }

    /// Registers (or replaces) a resource in the PRP as the admin, then
    /// waits until the PDP's replica has it.
    async fn resource(&mut self, resource: pb::TargetResource) {
        let revision = self
            .prp
            .put_resource(pb::PutResourceRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                resource: Some(resource),
            })
            .await
            .expect("put resource")
            .into_inner()
            .revision;
        self.replica_at(revision).await;
    }

    /// Removes a resource from the PRP, then waits until the PDP's replica
    /// has the change.
    async fn delete_resource(&mut self, id: &str) {
        let revision = self
            .prp
            .delete_resource(pb::DeleteResourceRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                resource_id: id.into(),
            })
            .await
            .expect("delete resource")
            .into_inner()
            .revision;
        self.replica_at(revision).await;
    }

    /// Waits until the PDP's replica reaches `revision`.
    async fn replica_at(&mut self, revision: u64) {
        for _ in 0..250 {
            let status = self
                .pdp
                .status(pb::StatusRequest {})
                .await
                .expect("status")
                .into_inner();
            if status.replica_revision >= revision {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the PDP's replica never reached revision {revision}");
    }

    async fn decide(&mut self, req: pb::DecisionRequest) -> pb::Decision {
        self.pdp.decide(req).await.expect("decide").into_inner()
    }

    /// Waits until the PDP's attribute cache has applied every PIP change
    /// made so far. A change that reaches the cache after an answer it
    /// already covers still drops that answer (the cache cannot tell which
    /// parts of a merged answer it covers), so a test that counts cached
    /// originators settles first.
    async fn settle(&self) {
        let revision = self.pip_service.revision();
        let cache = self._pdp.pip_cache().expect("PIP cache");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cache.seen_revision() < revision {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the PDP's PIP watch never reached revision {revision}: {cache:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn role(
        &mut self,
        role_id: &str,
        issuer: &str,
        holder: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) {
        self.pip
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(pb::Role {
                    role_id: role_id.into(),
                    issuer: issuer.into(),
                    holder: holder.into(),
                    not_before: Some(ts(from)),
                    not_after: Some(ts(to)),
                    ..Default::default()
                }),
            })
            .await
            .expect("create role");
    }

    /// `expired@…` (valid from three to two hours before `now`) and
    /// `future@…` (from one to two hours after `now`), held by `holder`.
    async fn expired_and_future_roles(&mut self, holder: &str, now: DateTime<Utc>) {
        let hour = chrono::Duration::hours(1);
        self.role(
            "expired@roles.example.com",
            AUTHORITY,
            holder,
            now - hour * 3,
            now - hour * 2,
        )
        .await;
        self.role(
            "future@roles.example.com",
            AUTHORITY,
            holder,
            now + hour,
            now + hour * 2,
        )
        .await;
    }

    async fn group(&mut self, group_id: &str, members: &[&str]) {
        self.pip
            .put_group(pb::PutGroupRequest {
                originator: ADMIN.into(),
                group: Some(pb::Group {
                    group_id: group_id.into(),
                    member_ids: members.iter().map(|m| m.to_string()).collect(),
                }),
            })
            .await
            .expect("put group");
    }

    async fn report(&mut self, subject: &str, lat: f64, lon: f64) {
        self.pip
            .report_position(pb::ReportPositionRequest {
                originator: ADMIN.into(),
                subject: subject.into(),
                position: Some(pb::Position {
                    latitude: lat,
                    longitude: lon,
                    uncertainty_m: 0.0,
                }),
                measured_at: None,
            })
            .await
            .expect("report position");
    }
}

fn write_mmdb(dir: &Path) -> PathBuf {
    let mut w = mmdb::Writer::new(24);
    let fr = w.add_data(&mmdb::country_record("FR"));
    let jp = w.add_data(&mmdb::country_record("JP"));
    w.insert("192.0.2.0".parse().expect("ip"), 24, fr);
    w.insert("2001:db8::".parse().expect("ip"), 32, jp);
    let path = dir.join("countries.mmdb");
    std::fs::write(&path, w.to_bytes()).expect("mmdb");
    path
}

/// Decides `req` every 20 ms until `done` holds (5 s at most); returns the
/// decision that satisfied it.
async fn decides_with(
    pdp: &PolicyDecisionPointClient<Channel>,
    req: pb::DecisionRequest,
    done: impl Fn(&pb::Decision) -> bool,
) -> pb::Decision {
    let mut last = pb::Decision::default();
    for _ in 0..250 {
        last = pdp
            .clone()
            .decide(req.clone())
            .await
            .expect("decide")
            .into_inner();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never reached for {req:?}; last decision: {last:?}");
}

/// Waits until `req` gets `expected` (the PDP follows changes asynchronously).
async fn decides(
    pdp: &PolicyDecisionPointClient<Channel>,
    req: pb::DecisionRequest,
    expected: i32,
) -> pb::Decision {
    decides_with(pdp, req, |d| d.decision == expected).await
}

fn retrieve(originator: &str, target: &str) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: originator.into(),
        operation: pb::Operation::Retrieve as i32,
        target: target.into(),
        ..Default::default()
    }
}

fn with_roles(mut req: pb::DecisionRequest, roles: &[&str]) -> pb::DecisionRequest {
    req.role_ids = roles.iter().map(|r| r.to_string()).collect();
    req
}

fn with_ip(mut req: pb::DecisionRequest, ip: &str) -> pb::DecisionRequest {
    let ip: IpAddr = ip.parse().expect("ip");
    req.originator_ip = Some(pb::IpAddress {
        address: Some(match ip {
            IpAddr::V4(a) => pb::ip_address::Address::Ipv4(a.to_string()),
            IpAddr::V6(a) => pb::ip_address::Address::Ipv6(a.to_string()),
        }),
    });
    req
}

fn rule(originators: &[&str]) -> pb::AccessControlRule {
    pb::AccessControlRule {
        originators: originators.iter().map(|s| s.to_string()).collect(),
        operations: 2, // RETRIEVE
        ..Default::default()
    }
}

fn located(originators: &[&str], region: pb::location_region::Region) -> pb::AccessControlRule {
    pb::AccessControlRule {
        contexts: vec![pb::AccessControlContext {
            location_region: Some(pb::LocationRegion {
                region: Some(region),
            }),
            ..Default::default()
        }],
        ..rule(originators)
    }
}

/// `all` within 2 km of Notre-Dame de Paris (the Louvre is inside, the
/// Eiffel Tower outside).
fn notre_dame_2km() -> pb::AccessControlRule {
    located(
        &["all"],
        pb::location_region::Region::Circle(pb::Circle {
            latitude: 48.8530,
            longitude: 2.3499,
            radius_m: 2000.0,
        }),
    )
}

fn countries(codes: &[&str]) -> pb::location_region::Region {
    pb::location_region::Region::CountryCodes(pb::CountryCodes {
        codes: codes.iter().map(|c| c.to_string()).collect(),
    })
}

/// A decision's `reusable_until`, read.
fn reusable_until(d: &pb::Decision) -> Option<DateTime<Utc>> {
    d.reusable_until
        .as_ref()
        .and_then(|t| authz_proto::convert::timestamp_field(t, "reusable_until").ok())
}

fn missing_names(d: &pb::Decision) -> String {
    format!("{:?}", d.missing)
}

/// An undetermined Deny (7.1.4, Decision 10) whose missing attributes say
/// `why`.
fn assert_undetermined(d: &pb::Decision, why: &str) {
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{}",
        d.summary
    );
    assert!(missing_names(d).contains(why), "{}", missing_names(d));
}

/// A decision that rests on a role's validity is not reused past it: the
/// PDP bounds `reusable_until` by the next start or end of a role the
/// originator holds, Permit or Deny, to the nanosecond. A cache keyed on
/// the second (the PEP's) would otherwise serve a Permit made at .200 for
/// a request at .700 when the role ends at .500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusable_until_follows_the_validity_of_the_originators_roles_7_4_3() {
    let mut s = Stack::start("role-validity", Duration::from_secs(300)).await;
    let second = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp(), 0).expect("time");
    let ends =
        second(Utc::now() + chrono::Duration::hours(1)) + chrono::Duration::milliseconds(500);
    let starts = ends + chrono::Duration::hours(1);
    s.policy(
        "cntValidity",
        rule(&["doctor@roles.example.com", "nurse@roles.example.com"]),
    )
    .await;
    let hour = chrono::Duration::hours(1);
    s.role(
        "doctor@roles.example.com",
        AUTHORITY,
        "Calice",
        ends - hour * 2,
        ends,
    )
    .await;
    s.role(
        "nurse@roles.example.com",
        AUTHORITY,
        "Calice",
        starts,
        starts + hour,
    )
    .await;
    s.settle().await;
    let at = |t: DateTime<Utc>| {
        let mut r = with_roles(
            retrieve("Calice", "cntValidity"),
            &["doctor@roles.example.com", "nurse@roles.example.com"],
        );
        r.request_time = Some(ts(t));
        r
    };
    let until = reusable_until;
    let early = ends - chrono::Duration::milliseconds(300);
    let d = s.decide(at(early)).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    let bound = until(&d).expect("bounded by the doctor role's end");
    assert!(
        bound > ends && bound <= ends + chrono::Duration::microseconds(1),
        "{bound}"
    );
    // Within the same second, after the end: denied (the nurse role has
    // not started), and bounded by the nurse role's start.
    let late = ends + chrono::Duration::milliseconds(200);
    assert_eq!(second(late), second(early));
    let d = s.decide(at(late)).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(until(&d), Some(starts));
    // Once every role has ended, nothing bounds it.
    let d = s.decide(at(starts + hour * 2)).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(until(&d), None);

    // A role valid to the last instant a Timestamp holds never ends within
    // it: no bound, not one past 9999-12-31 that clients cannot read.
    let last = DateTime::from_timestamp(authz_proto::convert::MAX_TIMESTAMP_SECONDS, 999_999_999)
        .expect("last instant");
    s.role(
        "doctor@roles.example.com",
        AUTHORITY,
        "Cbob",
        Utc::now() - hour,
        last,
    )
    .await;
    s.settle().await;
    let mut bob = with_roles(
        retrieve("Cbob", "cntValidity"),
        &["doctor@roles.example.com"],
    );
    bob.request_time = Some(ts(starts + hour));
    let d = s.decide(bob).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    assert_eq!(d.reusable_until, None, "{:?}", d.reusable_until);
}

/// TS-0003 7.4.3 step 4: a Role-ID in acor grants access only to an
/// originator that claims it and holds a verified role: issued by a trusted
/// Authorization Authority, held by exactly that originator, valid now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_ids_permit_only_verified_holders_7_4_3() {
    let mut s = Stack::start("roles", Duration::from_secs(300)).await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    s.policy(
        "cntRoles",
        rule(&[
            "doctor@roles.example.com",
            "expired@roles.example.com",
            "future@roles.example.com",
            "quack@roles.example.com",
        ]),
    )
    .await;
    s.role(
        "doctor@roles.example.com",
        AUTHORITY,
        "Calice",
        now - hour,
        now + hour,
    )
    .await;
    s.expired_and_future_roles("Calice", now).await;
    s.role(
        "quack@roles.example.com",
        "//evil.example.net/x/CIssuer",
        "Calice",
        now - hour,
        now + hour,
    )
    .await;

    s.settle().await;
    let ok = s
        .decide(with_roles(
            retrieve("Calice", "cntRoles"),
            &["doctor@roles.example.com"],
        ))
        .await;
    assert_eq!(ok.decision, PERMIT, "{}", ok.summary);
    // The answer is cached (the watch is up), so the next decision for Alice
    // needs no PIP round trip.
    let cache = s._pdp.pip_cache().expect("PIP cache");
    assert!(cache.is_watching(), "{cache:?}");
    assert_eq!(cache.len(), 1, "{cache:?}");
    // The same holder, in absolute form, is the same originator.
    let abs = s
        .decide(with_roles(
            retrieve("//sp.example.com/id-in/Calice", "cntRoles"),
            &["doctor@roles.example.com"],
        ))
        .await;
    assert_eq!(abs.decision, PERMIT, "{}", abs.summary);

    for role in [
        "expired@roles.example.com",
        "future@roles.example.com",
        "quack@roles.example.com",
        "unknown@roles.example.com",
    ] {
        let d = s
            .decide(with_roles(retrieve("Calice", "cntRoles"), &[role]))
            .await;
        assert_eq!(d.decision, DENY, "{role}: {}", d.summary);
        assert_ne!(
            d.status,
            pb::AuthorizationStatus::MissingAttribute as i32,
            "{role}: the PIP answered, nothing is missing"
        );
    }
    // Held by Calice: Bob claiming it is refused.
    let bob = s
        .decide(with_roles(
            retrieve("Cbob", "cntRoles"),
            &["doctor@roles.example.com"],
        ))
        .await;
    assert_eq!(bob.decision, DENY, "{}", bob.summary);
    // Holding the role without claiming it grants nothing (rids carry the claim).
    let unclaimed = s.decide(retrieve("Calice", "cntRoles")).await;
    assert_eq!(unclaimed.decision, DENY, "{}", unclaimed.summary);

    // Deleting the role changes the next decision (the watch drops the cache).
    s.pip
        .delete_role(pb::DeleteRoleRequest {
            originator: ADMIN.into(),
            role_id: "doctor@roles.example.com".into(),
            ..Default::default()
        })
        .await
        .expect("delete role");
    decides(
        &s.pdp,
        with_roles(
            retrieve("Calice", "cntRoles"),
            &["doctor@roles.example.com"],
        ),
        DENY,
    )
    .await;
}

/// TS-0003 7.4.3 step 4: the PDP verifies "if the role/token is still
/// valid. Only valid roles/tokens shall be used": a role counts while it is
/// valid at the PDP's clock as well as at the request time. A request time
/// inside a validity that has ended (a stale or queued `rtm`), or that has
/// not begun, does not make the role the originator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_counts_only_while_valid_now_as_well_as_at_the_request_time_7_4_3() {
    let mut s = Stack::start("roles-now", Duration::from_secs(300)).await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    s.policy(
        "cntStale",
        rule(&["expired@roles.example.com", "future@roles.example.com"]),
    )
    .await;
    s.expired_and_future_roles("Calice", now).await;
    s.settle().await;
    for (role, at) in [
        ("expired@roles.example.com", now - hour * 5 / 2),
        ("future@roles.example.com", now + hour * 3 / 2),
    ] {
        let mut req = with_roles(retrieve("Calice", "cntStale"), &[role]);
        req.request_time = Some(ts(at));
        let d = s.decide(req).await;
        assert_eq!(d.decision, DENY, "{role} at {at}: {}", d.summary);
        assert_eq!(
            d.status,
            pb::AuthorizationStatus::NotApplicable as i32,
            "{role}: not the originator's role, nothing missing: {}",
            d.summary
        );
    }
    // The future role, asked about at a request time inside its validity,
    // may count from its start on (the PDP's clock reaching it): the Deny
    // is not reused past then.
    let mut req = with_roles(
        retrieve("Calice", "cntStale"),
        &["future@roles.example.com"],
    );
    req.request_time = Some(ts(now + hour * 3 / 2));
    let d = s.decide(req).await;
    let until = reusable_until(&d);
    assert!(
        until.is_some_and(|u| u <= now + hour),
        "bounded by the role's start at the PDP's clock: {until:?}"
    );
}

/// TS-0001 9.6.2.1: a `<group>` ID in acor grants access to its members;
/// removing a member changes the next decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_are_permitted_and_removal_is_seen_9_6_2_1() {
    let mut s = Stack::start("groups", Duration::from_secs(300)).await;
    s.policy("cntGroup", rule(&["/id-in/grpFamily"])).await;
    s.group(
        "/id-in/grpFamily",
        &["Calice", "//sp.example.com/id-in/Cbob"],
    )
    .await;

    let alice = s.decide(retrieve("Calice", "cntGroup")).await;
    assert_eq!(alice.decision, PERMIT, "{}", alice.summary);
    let bob = s.decide(retrieve("Cbob", "cntGroup")).await;
    assert_eq!(bob.decision, PERMIT, "{}", bob.summary);
    let eve = s.decide(retrieve("Ceve", "cntGroup")).await;
    assert_eq!(eve.decision, DENY, "{}", eve.summary);

    s.group("/id-in/grpFamily", &["Cbob"]).await;
    decides(&s.pdp, retrieve("Calice", "cntGroup"), DENY).await;
    let bob = s.decide(retrieve("Cbob", "cntGroup")).await;
    assert_eq!(bob.decision, PERMIT, "{}", bob.summary);

    // A group that no longer exists cannot be resolved: its rule does not match.
    s.pip
        .delete_group(pb::DeleteGroupRequest {
            originator: ADMIN.into(),
            group_id: "/id-in/grpFamily".into(),
        })
        .await
        .expect("delete group");
    decides(&s.pdp, retrieve("Cbob", "cntGroup"), DENY).await;
}

/// `retrieve` decided by a hosting CSE of the SP other than the PDP's
/// configured one (the request's `hosting_cse_id`).
fn retrieve_at(cse: &str, originator: &str, target: &str) -> pb::DecisionRequest {
    pb::DecisionRequest {
        hosting_sp_id: SP.into(),
        hosting_cse_id: cse.into(),
        ..retrieve(originator, target)
    }
}

/// TS-0001 9.6.2.1 and 7.2 with TS-0003 7.1.3 and Decision 2: a `<group>`
/// resource ID names one group whichever form `PutGroup` and `acor` use.
/// The group put as `grpFamily` (CSE-relative, at the PIP's `/id-in`) is the
/// group an acor entry `/id-in/grpFamily` or `//SP.EXAMPLE.COM/id-in/grpFamily`
/// names: its members are permitted. An acor entry `grpFamily` names the
/// group of the CSE deciding the request: at `/id-in` this one, at `/id-mn`
/// that CSE's own `grpFamily`, never the group of `/id-in` (no Permit for
/// `/id-in`'s members there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_id_names_one_group_in_every_form_9_6_2_1() {
    let mut s = Stack::start("group-forms", Duration::from_secs(300)).await;
    s.group("grpFamily", &["Calice"]).await;
    s.policy("cntSpRelative", rule(&["/id-in/grpFamily"])).await;
    s.policy("cntAbsolute", rule(&["//SP.EXAMPLE.COM/id-in/grpFamily"]))
        .await;
    s.policy("cntCseRelative", rule(&["grpFamily"])).await;
    const ALICE: &str = "//sp.example.com/id-in/Calice";
    let here = s.decide(retrieve("Calice", "cntCseRelative")).await;
    assert_eq!(here.decision, PERMIT, "{}", here.summary);
    // Decided at /id-mn: `grpFamily` is /id-mn's group, which does not
    // exist; Alice of /id-in is no member of it.
    let there = s
        .decide(retrieve_at("/id-mn", ALICE, "cntCseRelative"))
        .await;
    assert_eq!(there.decision, DENY, "{}", there.summary);
    for target in ["cntSpRelative", "cntAbsolute", "cntCseRelative"] {
        let alice = s.decide(retrieve("Calice", target)).await;
        assert_eq!(alice.decision, PERMIT, "{target}: {}", alice.summary);
        let eve = s.decide(retrieve("Ceve", target)).await;
        assert_eq!(eve.decision, DENY, "{target}: {}", eve.summary);
    }
    // The entries naming /id-in's group name it at /id-mn too.
    for target in ["cntSpRelative", "cntAbsolute"] {
        let d = s.decide(retrieve_at("/id-mn", ALICE, target)).await;
        assert_eq!(d.decision, PERMIT, "{target}: {}", d.summary);
    }
}

/// TS-0001 7.2: the `mid` of a `<group>` hosted on another CSE is relative
/// to that CSE. The group `/id-mn/grpRemote` listing `Cae7` lists /id-mn's
/// AE `//sp.example.com/id-mn/Cae7`, not this CSE's `Cae7`, which only
/// shares the stem; an SP-relative entry names an AE of the group's SP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_group_on_another_cse_are_read_against_that_cse_9_6_2_1() {
    let mut s = Stack::start("group-remote", Duration::from_secs(300)).await;
    s.group("/id-mn/grpRemote", &["Cae7", "/id-asn/Cae8"]).await;
    s.policy("cntRemoteGroup", rule(&["/id-mn/grpRemote"]))
        .await;
    for (originator, expected) in [
        ("/id-mn/Cae7", PERMIT),
        ("//sp.example.com/id-mn/Cae7", PERMIT),
        ("/id-asn/Cae8", PERMIT),
        // This CSE's Cae7 and Cae8: other originators.
        ("Cae7", DENY),
        ("/id-in/Cae7", DENY),
        ("Cae8", DENY),
    ] {
        let d = s.decide(retrieve(originator, "cntRemoteGroup")).await;
        assert_eq!(d.decision, expected, "{originator}: {}", d.summary);
    }
    // Decided as /id-mn, the group is its own: its stem Cae7 is the member.
    let d = s
        .decide(retrieve_at("/id-mn", "Cae7", "cntRemoteGroup"))
        .await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
    let d = s
        .decide(retrieve_at("/id-mn", "/id-in/Cae7", "cntRemoteGroup"))
        .await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
}

/// Decision 3 end to end: an `acor` entry that the PIP knows as a `<group>`
/// is a group only (TS-0001 9.6.2.1 for its members). The rule's entry
/// `grp1` reads, before the group exists, as the AE-ID stem `grp1`
/// (`//sp.example.com/id-in/grp1`), which it permits. Once the PIP holds
/// the group `grp1` of `/id-in` listing `Cae2`, the entry is that group:
/// `Cae2` is permitted, the originator `grp1` is not (it is no member). A
/// PDP started while the group exists knows it from its first decision
/// (listed when its watch comes up); deleting the group makes the entry an
/// originator ID again once the watch delivers; and with the PIP gone the
/// group IDs stay as last known (the member question is then unanswerable:
/// MISSING_ATTRIBUTE, never a Permit for `grp1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acor_entry_the_pip_knows_as_a_group_is_a_group_only_decision_3() {
    let mut s = Stack::start("group-only", Duration::from_secs(300)).await;
    s.policy("cntGrp1", rule(&["grp1"])).await;
    let before = s.decide(retrieve("grp1", "cntGrp1")).await;
    assert_eq!(before.decision, PERMIT, "{}", before.summary);

    s.group("grp1", &["Cae2"]).await;
    decides(&s.pdp, retrieve("grp1", "cntGrp1"), DENY).await;
    for originator in ["grp1", "/id-in/grp1", "//sp.example.com/id-in/grp1"] {
        let d = s.decide(retrieve(originator, "cntGrp1")).await;
        assert_eq!(d.decision, DENY, "{originator}: {}", d.summary);
    }
    let member = s.decide(retrieve("Cae2", "cntGrp1")).await;
    assert_eq!(member.decision, PERMIT, "{}", member.summary);

    // A PDP whose watch comes up after the group was put: no group change
    // reaches it, the listing does.
    let (late, mut late_client, late_task) = start_pdp(&s.prp_addr, &s.pip_addr).await;
    decides(&late_client, retrieve("Cae2", "cntGrp1"), PERMIT).await;
    let cache = late.pip_cache().expect("PIP cache");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cache.is_watching() {
        assert!(tokio::time::Instant::now() < deadline, "{cache:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let d = late_client
        .decide(retrieve("grp1", "cntGrp1"))
        .await
        .expect("decide")
        .into_inner();
    assert_eq!(d.decision, DENY, "{}", d.summary);
    late_task.abort();
    drop(late);

    // Deleted: an originator ID again, once the watch delivers.
    s.pip
        .delete_group(pb::DeleteGroupRequest {
            originator: ADMIN.into(),
            group_id: "grp1".into(),
        })
        .await
        .expect("delete group");
    decides(&s.pdp, retrieve("grp1", "cntGrp1"), PERMIT).await;
    let member = s.decide(retrieve("Cae2", "cntGrp1")).await;
    assert_eq!(member.decision, DENY, "{}", member.summary);

    // Put again, then the PIP goes away: the PDP still knows `grp1` as a
    // group and cannot tell its members.
    s.group("//sp.example.com/id-in/grp1", &["Cae2"]).await;
    decides(&s.pdp, retrieve("grp1", "cntGrp1"), DENY).await;
    s.pip_service.shutdown();
    if let Some(stop) = s.pip_stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), &mut s.pip_server)
        .await
        .expect("the PIP stops")
        .expect("PIP task");
    let d = decides_with(&s.pdp, retrieve("grp1", "cntGrp1"), |d| {
        d.status == pb::AuthorizationStatus::MissingAttribute as i32
    })
    .await;
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(missing_names(&d).contains("grp1"), "{d:?}");
}

/// An `<AE>` resource registered in the PRP with its AE-ID (`aei`).
fn ae_resource(id: &str, aei: &str) -> pb::TargetResource {
    pb::TargetResource {
        resource_id: id.into(),
        resource_type: 2,
        acpi_set: true,
        acpi: vec!["acp-cntLights".into()],
        ae_id: aei.into(),
        ..Default::default()
    }
}

/// TS-0001 9.6.2.1 and spec notes §2.4: a `<group>` lists its members by
/// the resource IDs of `<AE>` resources (`mid`), which the PDP maps to the
/// AE-IDs the PRP records for them (`aei`): the AE's originator is a
/// member, others are not, and a member given as an AE-ID still counts.
/// Deleting the AE resource, or registering it again for another AE-ID,
/// moves the membership once the PDP's replica has the change; removing the
/// resource from the group is seen through the PIP's watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_given_as_ae_resource_ids_map_to_their_aei_9_6_2_1() {
    let mut s = Stack::start("group-ae", Duration::from_secs(300)).await;
    s.policy("cntLights", rule(&["/id-in/grpLights"])).await;
    s.resource(ae_resource("ae-light", "Clight")).await;
    s.resource(ae_resource("ae-fan", "//sp.example.com/id-in/Cfan"))
        .await;
    // mid: the light's resource ID (SP-relative) and Bob's AE-ID.
    s.group("/id-in/grpLights", &["/id-in/ae-light", "Cbob"])
        .await;

    let light = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(light.decision, PERMIT, "{}", light.summary);
    // The same originator in absolute form.
    let light = s
        .decide(retrieve("//sp.example.com/id-in/Clight", "cntLights"))
        .await;
    assert_eq!(light.decision, PERMIT, "{}", light.summary);
    let bob = s.decide(retrieve("Cbob", "cntLights")).await;
    assert_eq!(bob.decision, PERMIT, "{}", bob.summary);
    // The fan's AE resource is in no group; nobody else is the light.
    for other in ["Cfan", "Ceve", "/mn-cse/Clight"] {
        let d = s.decide(retrieve(other, "cntLights")).await;
        assert_eq!(d.decision, DENY, "{other}: {}", d.summary);
    }
    // Answered from the cache now: a second decision is the same.
    s.settle().await;
    let light = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(light.decision, PERMIT, "{}", light.summary);

    // The AE resource deleted: its AE-ID no longer stands for it.
    s.delete_resource("ae-light").await;
    let light = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(light.decision, DENY, "{}", light.summary);
    // Registered again for another AE: that AE is the member now.
    s.resource(ae_resource("ae-light", "Cnewlight")).await;
    let new = s.decide(retrieve("Cnewlight", "cntLights")).await;
    assert_eq!(new.decision, PERMIT, "{}", new.summary);
    let old = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(old.decision, DENY, "{}", old.summary);

    // The resource removed from the group (a PIP change the PDP's cache
    // follows): no longer a member; Bob still is.
    s.group("/id-in/grpLights", &["Cbob"]).await;
    decides(&s.pdp, retrieve("Cnewlight", "cntLights"), DENY).await;
    let bob = s.decide(retrieve("Cbob", "cntLights")).await;
    assert_eq!(bob.decision, PERMIT, "{}", bob.summary);
}

/// Spec notes §2.4: a `mid` entry may be read as an AE-ID or as an `<AE>`
/// resource ID. An `<AE>` registered under a resource ID that is another
/// AE's AE-ID (`Cmom`, `aei` `Cevil`) must not hand Cevil the groups that
/// list Cmom: Cmom is permitted, Cevil is not. A resource ID that is no
/// AE-ID (`ae-light`) still stands for its `aei`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ae_resource_named_like_another_ae_id_does_not_take_its_groups_9_6_2_1() {
    let mut s = Stack::start("group-ae-spoof", Duration::from_secs(300)).await;
    s.policy("cntLights", rule(&["/id-in/grpFamily"])).await;
    s.resource(ae_resource("Cmom", "Cevil")).await;
    s.resource(ae_resource("ae-light", "Clight")).await;
    s.group("/id-in/grpFamily", &["Cmom", "ae-light"]).await;

    let mom = s.decide(retrieve("Cmom", "cntLights")).await;
    assert_eq!(mom.decision, PERMIT, "{}", mom.summary);
    let light = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(light.decision, PERMIT, "{}", light.summary);
    let evil = s.decide(retrieve("Cevil", "cntLights")).await;
    assert_eq!(evil.decision, DENY, "{}", evil.summary);
}

/// TS-0001 9.6.2.1: a group that cannot be retrieved rejects the request.
/// With the PIP down, the groups of the originator's `<AE>` resource are
/// unknown: Deny with MISSING_ATTRIBUTE naming the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_down_with_an_ae_resource_member_is_missing_attribute_9_6_2_1() {
    let mut s = Stack::start("group-ae-down", Duration::from_secs(300)).await;
    s.policy("cntLights", rule(&["/id-in/grpLights", "Cowner"]))
        .await;
    s.resource(ae_resource("ae-light", "Clight")).await;
    s.group("/id-in/grpLights", &["/id-in/ae-light"]).await;
    let light = s.decide(retrieve("Clight", "cntLights")).await;
    assert_eq!(light.decision, PERMIT, "{}", light.summary);

    s.pip_service.shutdown();
    if let Some(stop) = s.pip_stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), &mut s.pip_server)
        .await
        .expect("the PIP stops")
        .expect("PIP task");
    let last = decides_with(&s.pdp, retrieve("Clight", "cntLights"), |d| {
        d.decision == DENY && d.status == pb::AuthorizationStatus::MissingAttribute as i32
    })
    .await;
    assert!(missing_names(&last).contains("grpLights"), "{last:?}");
    // A rule naming the originator directly needs no PIP.
    let owner = s.decide(retrieve("Cowner", "cntLights")).await;
    assert_eq!(owner.decision, PERMIT, "{}", owner.summary);
}

/// Annex F.2.1 and Decision 5: a circle rule follows the position the
/// location source reports, and stops matching once it is older than the
/// configured maximum age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circle_rules_follow_reported_positions_until_stale_annex_f() {
    let max_age = Duration::from_secs(2);
    let mut s = Stack::start("circle", max_age).await;
    s.policy("cntCircle", notre_dame_2km()).await;
    // Unknown position: Deny, undetermined, saying none is known
    // (Decision 10: a status explaining why).
    let d = s.decide(retrieve("Calice", "cntCircle")).await;
    assert_undetermined(&d, "no position is known");

    // The Louvre, about 1.2 km away: inside.
    s.report("Calice", 48.8606, 2.3376).await;
    decides(&s.pdp, retrieve("Calice", "cntCircle"), PERMIT).await;
    // The Eiffel Tower, about 4 km away: outside; the next decision follows.
    s.report("Calice", 48.8584, 2.2945).await;
    decides(&s.pdp, retrieve("Calice", "cntCircle"), DENY).await;
    // Back inside, then wait past the maximum age: the position is unknown.
    s.report("Calice", 48.8606, 2.3376).await;
    decides(&s.pdp, retrieve("Calice", "cntCircle"), PERMIT).await;
    tokio::time::sleep(max_age + Duration::from_millis(300)).await;
    let stale = s.decide(retrieve("Calice", "cntCircle")).await;
    // A position is known, only not fresh: the reason says so.
    assert_undetermined(&stale, "last position reported was measured at");
}

/// Annex F: a fix applies to request times from its measurement until it
/// is stale. A request stamped a little before the fix (sent just before
/// the report landed), or after it went stale (a CSE clock ahead), is
/// denied for want of a position, and that answer must not stay in the
/// PDP's attribute cache as "no position" for the requests after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_the_fix_does_not_hide_it_from_later_ones_annex_f() {
    let mut s = Stack::start("circle-early", Duration::from_secs(600)).await;
    s.policy("cntCircle", notre_dame_2km()).await;
    s.report("Calice", 48.8606, 2.3376).await;
    s.settle().await;
    let mut early = retrieve("Calice", "cntCircle");
    early.request_time = Some(ts(Utc::now() - chrono::Duration::seconds(5)));
    let d = s.decide(early).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert!(missing_names(&d).contains("position"), "{d:?}");
    // Requests of now: the fix is fresh, and inside the circle.
    decides(&s.pdp, retrieve("Calice", "cntCircle"), PERMIT).await;

    // A new fix (dropping the cached one), then a request from an hour
    // ahead, when that fix is stale (the maximum age is 10 minutes).
    s.report("Calice", 48.8606, 2.3376).await;
    s.settle().await;
    let mut late = retrieve("Calice", "cntCircle");
    late.request_time = Some(ts(Utc::now() + chrono::Duration::hours(1)));
    let d = s.decide(late).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    decides(&s.pdp, retrieve("Calice", "cntCircle"), PERMIT).await;
}

/// Annex F.2.2: a country rule works from the originator's IP address
/// (CSV table, longest prefix; and a MaxMind database), and from its
/// position near a border (Strasbourg and Kehl face each other across the
/// Rhine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_rules_from_ip_and_from_position_annex_f_2_2() {
    let mut s = Stack::start("country", Duration::from_secs(300)).await;
    s.policy("cntFrance", located(&["all"], countries(&["FR"])))
        .await;
    s.policy("cntGermany", located(&["all"], countries(&["DE"])))
        .await;

    // CSV: 10.1.0.0/16 → FR inside 10.0.0.0/8 → DE.
    let fr = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "10.1.2.3"))
        .await;
    assert_eq!(fr.decision, PERMIT, "{}", fr.summary);
    let de = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "10.2.0.1"))
        .await;
    assert_eq!(de.decision, DENY, "{}", de.summary);
    let de = s
        .decide(with_ip(retrieve("Cx", "cntGermany"), "10.2.0.1"))
        .await;
    assert_eq!(de.decision, PERMIT, "{}", de.summary);
    // mmdb: 192.0.2.0/24 → FR, 2001:db8::/32 → JP.
    let mm = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "192.0.2.77"))
        .await;
    assert_eq!(mm.decision, PERMIT, "{}", mm.summary);
    let jp = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "2001:db8::5"))
        .await;
    assert_eq!(jp.decision, DENY, "{}", jp.summary);
    // An IPv4-mapped address is in its IPv4 peer's country (10.1.2.3: FR).
    let mapped = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "::ffff:10.1.2.3"))
        .await;
    assert_eq!(mapped.decision, PERMIT, "{}", mapped.summary);
    // No source knows it: unknown country, Deny (not missing: the PIP answered).
    let none = s
        .decide(with_ip(retrieve("Cx", "cntFrance"), "203.0.113.9"))
        .await;
    assert_eq!(none.decision, DENY, "{}", none.summary);

    // Position: Strasbourg cathedral (FR) and Kehl (DE), about 5 km apart.
    s.report("Cstrasbourg", 48.5819, 7.7510).await;
    s.report("Ckehl", 48.5722, 7.8150).await;
    for (who, target, expect) in [
        ("Cstrasbourg", "cntFrance", PERMIT),
        ("Cstrasbourg", "cntGermany", DENY),
        ("Ckehl", "cntGermany", PERMIT),
        ("Ckehl", "cntFrance", DENY),
    ] {
        decides(&s.pdp, retrieve(who, target), expect).await;
    }

    // Annex F.2.2: the IP's country first, the position's only when the IP
    // gives none. Kehl's position (DE) is cached now; a request from a
    // French IP the PDP has not looked up yet is decided by that IP, not
    // by the cached position, and so is every repeat.
    for _ in 0..3 {
        let d = s
            .decide(with_ip(retrieve("Ckehl", "cntGermany"), "10.1.7.7"))
            .await;
        assert_eq!(d.decision, DENY, "the IP is French: {}", d.summary);
    }
    let d = s
        .decide(with_ip(retrieve("Ckehl", "cntGermany"), "203.0.113.9"))
        .await;
    assert_eq!(
        d.decision, PERMIT,
        "an IP in no known country: the position decides: {}",
        d.summary
    );

    // The request's own country wins over the PIP's (README: the hosting
    // CSE's knowledge of the request comes first).
    let mut req = with_ip(retrieve("Cx", "cntFrance"), "10.2.0.1");
    req.originator_location = Some(pb::OriginatorLocation {
        position: None,
        country_codes: vec!["FR".into()],
    });
    let d = s.decide(req).await;
    assert_eq!(d.decision, PERMIT, "{}", d.summary);
}

/// Annex F.2.2, Decision 10: a PIP without a country dataset does not know
/// which country a position is in, and says so (an empty answer): a
/// country rule is then undetermined, MISSING_ATTRIBUTE naming the
/// country, not "in no country". With the dataset, a position that meets
/// no country (at sea) is in none: a final Deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_country_the_pip_cannot_tell_is_missing_not_none_annex_f_2_2() {
    let mut s = Stack::start_with("no-boundaries", Duration::from_secs(300), |c| {
        c.country_boundaries = false;
    })
    .await;
    s.policy("cntGermany", located(&["all"], countries(&["DE"])))
        .await;
    // Munich, reported to the PIP.
    s.report("Cmunich", 48.1374, 11.5755).await;
    let d = decides_with(&s.pdp, retrieve("Cmunich", "cntGermany"), |d| {
        d.status != pb::AuthorizationStatus::NotApplicable as i32 || d.decision == PERMIT
    })
    .await;
    assert_undetermined(&d, "country");
    assert!(d.summary.contains("country"), "{}", d.summary);
    assert!(!d.summary.contains("in no country"), "{}", d.summary);

    let mut s = Stack::start("at-sea", Duration::from_secs(300)).await;
    s.policy("cntGermany", located(&["all"], countries(&["DE"])))
        .await;
    // The middle of the North Atlantic.
    s.report("Cship", 40.0, -40.0).await;
    let d = s.decide(retrieve("Cship", "cntGermany")).await;
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::Ok as i32,
        "in no country is an answer: {}",
        d.summary
    );
}

/// TS-0003 7.1.4 and Decision 10: with the PIP down, a rule that needs a PIP
/// attribute does not match, and the Deny says MISSING_ATTRIBUTE naming it.
/// Rules that need no attribute still decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_down_denies_with_the_missing_attribute_named_7_1_4() {
    let mut s = Stack::start("down", Duration::from_secs(300)).await;
    s.policy("cntRole", rule(&["doctor@roles.example.com", "Cowner"]))
        .await;
    s.policy("cntGrp", rule(&["/id-in/grpFamily"])).await;
    let now = Utc::now();
    s.role(
        "doctor@roles.example.com",
        AUTHORITY,
        "Calice",
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    )
    .await;
    let up = s
        .decide(with_roles(
            retrieve("Calice", "cntRole"),
            &["doctor@roles.example.com"],
        ))
        .await;
    assert_eq!(up.decision, PERMIT, "{}", up.summary);
    // A group the PDP knows by ID (its listing) but whose members it will
    // not be able to ask about.
    s.group("/id-in/grpFamily", &["Cbob"]).await;
    s.settle().await;

    // Stop the PIP: close its watch streams, then its server (graceful:
    // open connections are told to go away).
    s.pip_service.shutdown();
    if let Some(stop) = s.pip_stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), &mut s.pip_server)
        .await
        .expect("the PIP stops")
        .expect("PIP task");

    let last = decides_with(
        &s.pdp,
        with_roles(retrieve("Calice", "cntRole"), &["doctor@roles.example.com"]),
        |d| d.decision == DENY && d.status == pb::AuthorizationStatus::MissingAttribute as i32,
    )
    .await;
    assert!(
        missing_names(&last).contains("doctor@roles.example.com"),
        "the missing role is named: {last:?}"
    );
    let grp = s
        .pdp
        .decide(retrieve("Calice", "cntGrp"))
        .await
        .expect("decide")
        .into_inner();
    assert_eq!(grp.decision, DENY);
    assert_eq!(
        grp.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{grp:?}"
    );
    assert!(missing_names(&grp).contains("grpFamily"), "{grp:?}");
    // Only the role is missing for cntRole: `Cowner`, which the PDP knows
    // is no group, is an originator ID that does not name Calice
    // (Decision 3), not a group whose members are unknown.
    assert!(!missing_names(&last).contains("Cowner"), "{last:?}");
    // A rule that needs nothing from the PIP still permits.
    let owner = s
        .pdp
        .decide(retrieve("Cowner", "cntRole"))
        .await
        .expect("decide")
        .into_inner();
    assert_eq!(owner.decision, PERMIT, "{}", owner.summary);
}
