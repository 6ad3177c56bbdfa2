//! From a oneM2M request primitive to a decision request (TS-0003 6.2.2 step
//! 002; Annex G; the inputs of `<authorizationDecision>`, TS-0001 9.6.41).
//!
//! A [`RequestPrimitive`] holds what the originator sent, under the
//! primitive's short names (`op`, `to`, `fr`, `rqi`, `ty`, `fu`, `rids`,
//! `tkns`, `tids`, `ltids`, `tqi`). A [`RequestContext`] holds what only the
//! hosting CSE knows: the client's IP address, the identity the security
//! association authenticated, the resource `to` resolved to and its type, the
//! request time. [`DecisionRequestBuilder`] combines both with the hosting
//! CSE's identity ([`CseContext`]) into the wire `DecisionRequest`:
//!
//! - `fu` 1 (Discovery Criteria) or 3 (IPE on-demand discovery) on a
//!   Retrieve sets `discovery`, so the PDP checks DISCOVERY instead of
//!   RETRIEVE (TS-0003 7.1.3; spec notes §1); `fu` 2 is a plain Retrieve;
//! - `ty` of a Create is the type of the resource to create (`rrt`); it is
//!   mandatory there and ignored on other operations;
//! - `authenticated` (`rq_authn`, table 7.1.2-3) is true only when the
//!   authenticated identity and `fr` are the same originator once both are
//!   made absolute with the hosting CSE's SP-ID and CSE-ID;
//! - the tokens and token IDs (`tkns`, `tids`, `ltids`) and `tqi` are
//!   forwarded as received; the PDP checks their syntax;
//! - an Update whose content holds only `acpi` is an acpi change
//!   ([`DecisionRequestBuilder::updates_acpi`], `updates_acpi` on the wire):
//!   the PDP judges it by the `pvs` of the target's ACPs, not their `pv`
//!   (TS-0001 9.6.1.3.2). Telling it is the CSE's part, from the content
//!   (the HTTP layer does it, [`crate::http`]); an Update mixing `acpi` with
//!   other attributes is the CSE's 4000 before any decision.
//!
//! Local checks are the ones no PDP is needed for (a missing `fr`, `to` or
//! `rqi`, a Create without `ty`, a `fu` out of range, an acpi change that
//! is not an Update); each fails with
//! [`PepError::BadRequest`], which a CSE answers with 4000 BAD_REQUEST.

use std::net::IpAddr;

use authz_core::HostingContext;
use authz_proto::pb;
use chrono::{DateTime, Utc};

use crate::error::PepError;

/// The hosting CSE: its SP-ID and CSE-ID, as put in every decision request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseContext {
    hosting: HostingContext,
    sp_id: String,
    cse_id: String,
}

impl CseContext {
    /// The hosting CSE with SP-ID `sp_id` (`//home.example` or
    /// `home.example`) and CSE-ID `cse_id` (`/mn-cse-123456` or
    /// `mn-cse-123456`).
    pub fn new(sp_id: &str, cse_id: &str) -> Result<Self, PepError> {
        let hosting =
            HostingContext::new(sp_id, cse_id).map_err(|e| PepError::Hosting(e.to_string()))?;
        Ok(Self {
            sp_id: format!("//{}", hosting.sp_fqdn()),
            cse_id: format!("/{}", hosting.cse_id()),
            hosting,
        })
    }

    /// The SP-ID, `//fqdn`.
    pub fn sp_id(&self) -> &str {
        &self.sp_id
    }

    /// The SP-relative CSE-ID, `/cse-id`.
    pub fn cse_id(&self) -> &str {
        &self.cse_id
    }

    /// The engine's form of the same identity.
    pub fn hosting(&self) -> &HostingContext {
        &self.hosting
    }

    /// Whether an ID names an AE rather than a CSE (TS-0001 7.2): in
    /// absolute form `//sp/cse/C...` or `//sp/cse/S...`, or `//sp/S...`
    /// (an SP-assigned AE-ID); a CSE-ID is `//sp/cse`.
    pub fn names_ae(&self, id: &str) -> bool {
        self.hosting
            .canonicalize(id)
            .is_ok_and(|absolute| is_absolute_ae_id(&absolute))
    }

    /// Whether two originator IDs name the same originator: equal once both
    /// are absolute (an AE-ID stem is relative to this CSE).
    pub fn same_originator(&self, a: &str, b: &str) -> bool {
        match (self.hosting.canonicalize(a), self.hosting.canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// Whether an absolute ID (`//sp/...`) has the shape of an AE-ID
/// (TS-0001 7.2): `//sp/cse/C...`, `//sp/cse/S...` or `//sp/S...` (an
/// SP-assigned AE-ID); a CSE-ID is `//sp/cse`.
pub(crate) fn is_absolute_ae_id(absolute: &str) -> bool {
    let path = absolute
        .strip_prefix("//")
        .and_then(|a| a.split_once('/'))
        .map_or("", |(_, path)| path);
    match path.split_once('/') {
        Some((_, ae)) => !ae.contains('/') && (ae.starts_with('C') || ae.starts_with('S')),
        None => path.starts_with('S'),
    }
}

/// The authorization-relevant parameters of a oneM2M request primitive
/// (TS-0004 6.4.1), under their short names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestPrimitive {
    /// `op` Operation.
    pub op: pb::Operation,
    /// `to`: the target address as received (CSE-relative, SP-relative
    /// `/cse-id/...` or absolute `//sp/cse-id/...`).
    pub to: String,
    /// `fr` From: the originator's ID.
    pub fr: String,
    /// `rqi` Request Identifier.
    pub rqi: String,
    /// `ty`: for a Create, the type of the resource to create.
    pub ty: Option<u32>,
    /// `fu` filterUsage of the Filter Criteria (1 discovery, 2 conditional
    /// retrieval, 3 IPE on-demand discovery).
    pub fu: Option<u32>,
    /// `rids` Role-IDs.
    pub rids: Vec<String>,
    /// `tkns` Tokens (JWS/JWE compact serializations).
    pub tkns: Vec<String>,
    /// `tids` Token-IDs.
    pub tids: Vec<String>,
    /// `ltids` Local-Token-IDs.
    pub ltids: Vec<String>,
    /// `tqi` Token Request Indicator.
    pub tqi: bool,
    /// Specialization (`mgd` or `cnd`) of the resource a Create creates,
    /// when the CSE read it from the content.
    pub spty: Option<pb::Specialization>,
}

impl RequestPrimitive {
    /// A primitive with the mandatory parameters.
    pub fn new(
        op: pb::Operation,
        to: impl Into<String>,
        fr: impl Into<String>,
        rqi: impl Into<String>,
    ) -> Self {
        Self {
            op,
            to: to.into(),
            fr: fr.into(),
            rqi: rqi.into(),
            ..Self::default()
        }
    }

    /// Whether the primitive is a discovery: a Retrieve whose filterUsage is
    /// 1 (Discovery Criteria) or 3 (IPE on-demand discovery).
    pub fn is_discovery(&self) -> bool {
        self.op == pb::Operation::Retrieve && matches!(self.fu, Some(1) | Some(3))
    }

    /// Whether the request carries tokens, Token-IDs or Local-Token-IDs.
    pub fn carries_tokens(&self) -> bool {
        !self.tkns.is_empty() || !self.tids.is_empty() || !self.ltids.is_empty()
    }
}

/// What the hosting CSE knows about a request beyond the primitive.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestContext {
    /// The client's IP address (`rq_ip`, `oip`).
    pub client_ip: Option<IpAddr>,
    /// The identity the security association authenticated (the AE-ID or
    /// CSE-ID bound to the TLS session), if any.
    pub authenticated_identity: Option<String>,
    /// The resource ID `to` resolved to (default: `to` itself).
    pub target_id: Option<String>,
    /// The target resource's type (`ty`), for `acod` on a Create.
    pub target_type: Option<u32>,
    /// When the CSE received the request (default: when the PDP client
    /// sends it).
    pub request_time: Option<DateTime<Utc>>,
    /// Where the originator is, when the CSE knows (`rq_loc`, `olo`).
    pub location: Option<pb::OriginatorLocation>,
    /// The target's `acpi`, when the CSE wants the PDP to use exactly these
    /// ACPs instead of looking the target up.
    pub acp_ids: Vec<String>,
    /// Ask the PDP for an explanation.
    pub explain: bool,
    /// The Update changes the target's `acpi` and nothing else (TS-0001
    /// 9.6.1.3.2), as the CSE read from its content: the PDP then judges
    /// it by the `pvs` of the target's ACPs.
    pub updates_acpi: bool,
}

/// Builds a decision request from a primitive, its context and the hosting
/// CSE.
#[derive(Debug, Clone)]
pub struct DecisionRequestBuilder<'a> {
    cse: &'a CseContext,
    primitive: &'a RequestPrimitive,
    context: RequestContext,
}

impl RequestPrimitive {
    /// Checks that the mandatory parameters are there: From (except, with
    /// `from_optional`, on an AE registration), To, Request Identifier and
    /// Operation. A primitive without them is 4000 BAD_REQUEST, before
    /// anything else is looked at, so that a caller without an identity
    /// learns nothing else about the CSE (such as which resources exist).
    pub fn check_mandatory(&self, from_optional: bool) -> Result<(), PepError> {
        if self.fr.is_empty() && !from_optional {
            return Err(PepError::BadRequest(
                "From (fr, X-M2M-Origin) is missing".into(),
            ));
        }
        if self.to.is_empty() {
            return Err(PepError::BadRequest("To (to) is missing".into()));
        }
        if self.rqi.is_empty() {
            return Err(PepError::BadRequest(
                "Request Identifier (rqi, X-M2M-RI) is missing".into(),
            ));
        }
        if self.op == pb::Operation::Unspecified {
            return Err(PepError::BadRequest("Operation (op) is missing".into()));
        }
        Ok(())
    }
}

impl<'a> DecisionRequestBuilder<'a> {
    /// Starts from `primitive` received by the hosting CSE `cse`.
    pub fn new(cse: &'a CseContext, primitive: &'a RequestPrimitive) -> Self {
        Self {
            cse,
            primitive,
            context: RequestContext::default(),
        }
    }

    /// Replaces the whole context.
    pub fn context(mut self, context: RequestContext) -> Self {
        self.context = context;
        self
    }

    /// The client's IP address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.context.client_ip = Some(ip);
        self
    }

    /// The identity the security association authenticated.
    pub fn authenticated_as(mut self, identity: impl Into<String>) -> Self {
        self.context.authenticated_identity = Some(identity.into());
        self
    }

    /// The resource `to` resolved to and its type.
    pub fn target(mut self, resource_id: impl Into<String>, resource_type: Option<u32>) -> Self {
        self.context.target_id = Some(resource_id.into());
        self.context.target_type = resource_type;
        self
    }

    /// When the CSE received the request.
    pub fn request_time(mut self, at: DateTime<Utc>) -> Self {
        self.context.request_time = Some(at);
        self
    }

    /// Whether the Update changes the target's `acpi` and nothing else
    /// (its content holds only `acpi`; TS-0001 9.6.1.3.2): the PDP then
    /// judges it by UPDATE in the `pvs` of the ACPs the target references
    /// now. Only an Update may be one ([`Self::build`] fails otherwise).
    pub fn updates_acpi(mut self, yes: bool) -> Self {
        self.context.updates_acpi = yes;
        self
    }

    /// Checks the primitive and builds the wire request.
    pub fn build(self) -> Result<pb::DecisionRequest, PepError> {
        let p = self.primitive;
        let c = self.context;
        p.check_mandatory(false)?;
        if let Some(fu) = p.fu
            && !(1..=3).contains(&fu)
        {
            return Err(PepError::BadRequest(format!(
                "filterUsage (fu) {fu} is not 1, 2 or 3"
            )));
        }
        if c.updates_acpi && p.op != pb::Operation::Update {
            return Err(PepError::BadRequest(format!(
                "only an Update changes acpi (TS-0001 9.6.1.3.2), not a {:?}",
                p.op
            )));
        }
        let resource_type = match (p.op, p.ty) {
            (pb::Operation::Create, Some(ty)) => Some(ty),
            (pb::Operation::Create, None) => {
                return Err(PepError::BadRequest(
                    "a Create needs the resource type (ty)".into(),
                ));
            }
            _ => None,
        };
        let authenticated = c
            .authenticated_identity
            .as_deref()
            .is_some_and(|id| self.cse.same_originator(id, &p.fr));
        Ok(pb::DecisionRequest {
            originator: p.fr.clone(),
            role_ids: p.rids.clone(),
            tokens: p.tkns.clone(),
            token_ids: p.tids.clone(),
            local_token_ids: p.ltids.clone(),
            token_request_indicator: p.tqi,
            operation: p.op as i32,
            discovery: p.is_discovery(),
            target: c.target_id.unwrap_or_else(|| p.to.clone()),
            target_type: c.target_type,
            resource_type,
            specialization: if resource_type.is_some() {
                p.spty.clone()
            } else {
                None
            },
            request_time: c
                .request_time
                .map(|t| authz_proto::convert::timestamp_to_pb(&t)),
            originator_ip: c.client_ip.map(ip_to_pb),
            originator_location: c.location,
            authenticated,
            hosting_cse_id: self.cse.cse_id.clone(),
            hosting_sp_id: self.cse.sp_id.clone(),
            acp_ids: c.acp_ids,
            explain: c.explain,
            request_id: p.rqi.clone(),
            updates_acpi: c.updates_acpi,
        })
    }
}

/// An IP address as `m2m:ipAddress`; an IPv4-mapped IPv6 address becomes
/// its IPv4 address.
pub fn ip_to_pb(ip: IpAddr) -> pb::IpAddress {
    use pb::ip_address::Address;
    pb::IpAddress {
        address: Some(match ip.to_canonical() {
            IpAddr::V4(v4) => Address::Ipv4(v4.to_string()),
            IpAddr::V6(v6) => Address::Ipv6(v6.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    /// TS-0001 7.2: AE-IDs (`C`/`S` stems, `/cse/C...`, `/S...`, absolute)
    /// against CSE-IDs (`/cse`, `//sp/cse`).
    #[test]
    fn names_ae_tells_ae_ids_from_cse_ids() {
        let cse = CseContext::new("//home.example", "/mn-cse").expect("cse");
        for ae in [
            "Cphone",
            "Sphone",
            "/mn-cse/Cphone",
            "/in-cse/Cmeter",
            "/Sphone",
            "//home.example/mn-cse/Cphone",
            "//other.example/Sx",
        ] {
            assert!(cse.names_ae(ae), "{ae}");
        }
        for not in [
            "/mn-cse",
            "/in-cse",
            "//home.example/in-cse",
            "C x",
            "/in-cse/cnt1/Cx",
        ] {
            assert!(!cse.names_ae(not), "{not}");
        }
    }

    use super::*;

    fn cse() -> CseContext {
        CseContext::new("//home.example", "/mn-cse-123456").expect("cse")
    }

    #[test]
    fn builds_every_parameter() {
        let cse = cse();
        let mut p = RequestPrimitive::new(
            pb::Operation::Retrieve,
            "/mn-cse-123456/frontDoor",
            "CownerPhone",
            "r1",
        );
        p.fu = Some(1);
        p.rids = vec!["owner@roles.home.example".into()];
        p.tkns = vec!["a.b.c".into()];
        p.tids = vec!["tk1@das.home.example".into()];
        p.ltids = vec!["lt1".into()];
        p.tqi = true;
        let req = DecisionRequestBuilder::new(&cse, &p)
            .client_ip("::ffff:192.168.1.7".parse().expect("ip"))
            .authenticated_as("//home.example/mn-cse-123456/CownerPhone")
            .target("frontDoor", Some(3))
            .build()
            .expect("request");
        assert_eq!(req.operation, pb::Operation::Retrieve as i32);
        assert!(req.discovery);
        assert!(req.authenticated, "stem and absolute form are the same AE");
        assert_eq!(req.target, "frontDoor");
        assert_eq!(req.target_type, Some(3));
        assert_eq!(req.resource_type, None);
        assert_eq!(req.hosting_cse_id, "/mn-cse-123456");
        assert_eq!(req.hosting_sp_id, "//home.example");
        assert_eq!(req.request_id, "r1");
        assert_eq!(req.token_ids, vec!["tk1@das.home.example".to_owned()]);
        assert_eq!(req.local_token_ids, vec!["lt1".to_owned()]);
        assert!(req.token_request_indicator);
        assert_eq!(
            req.originator_ip,
            Some(pb::IpAddress {
                address: Some(pb::ip_address::Address::Ipv4("192.168.1.7".into()))
            })
        );
    }

    #[test]
    fn other_identity_is_not_authenticated() {
        let cse = cse();
        let p = RequestPrimitive::new(pb::Operation::Update, "frontDoor", "CownerPhone", "r1");
        let req = DecisionRequestBuilder::new(&cse, &p)
            .authenticated_as("Cbabysitter")
            .build()
            .expect("request");
        assert!(!req.authenticated);
        let req = DecisionRequestBuilder::new(&cse, &p)
            .build()
            .expect("request");
        assert!(!req.authenticated);
    }

    #[test]
    fn local_checks() {
        let cse = cse();
        let mut p = RequestPrimitive::new(pb::Operation::Create, "frontDoor", "CownerPhone", "r1");
        assert!(matches!(
            DecisionRequestBuilder::new(&cse, &p).build(),
            Err(PepError::BadRequest(m)) if m.contains("ty")
        ));
        p.ty = Some(4);
        assert_eq!(
            DecisionRequestBuilder::new(&cse, &p)
                .build()
                .expect("ok")
                .resource_type,
            Some(4)
        );
        p.fr.clear();
        assert!(DecisionRequestBuilder::new(&cse, &p).build().is_err());
        let mut p = RequestPrimitive::new(pb::Operation::Retrieve, "x", "C1", "r");
        p.fu = Some(7);
        assert!(DecisionRequestBuilder::new(&cse, &p).build().is_err());
        p.fu = Some(2);
        assert!(
            !DecisionRequestBuilder::new(&cse, &p)
                .build()
                .expect("ok")
                .discovery
        );
        let p = RequestPrimitive::new(pb::Operation::Retrieve, "x", "C1", "");
        assert!(DecisionRequestBuilder::new(&cse, &p).build().is_err());
    }

    /// TS-0001 9.6.1.3.2: an Update of `acpi` alone is marked for the PDP;
    /// nothing else may be one (a local 4000), and by default nothing is.
    #[test]
    fn ts0001_9_6_1_3_2_an_acpi_change_is_marked_on_updates_only() {
        let cse = cse();
        let update = RequestPrimitive::new(pb::Operation::Update, "frontDoor", "CownerPhone", "r1");
        let req = DecisionRequestBuilder::new(&cse, &update)
            .build()
            .expect("request");
        assert!(!req.updates_acpi);
        let req = DecisionRequestBuilder::new(&cse, &update)
            .updates_acpi(true)
            .build()
            .expect("request");
        assert!(req.updates_acpi);
        let retrieve =
            RequestPrimitive::new(pb::Operation::Retrieve, "frontDoor", "CownerPhone", "r1");
        assert!(matches!(
            DecisionRequestBuilder::new(&cse, &retrieve)
                .updates_acpi(true)
                .build(),
            Err(PepError::BadRequest(m)) if m.contains("only an Update changes acpi")
        ));
    }
}
