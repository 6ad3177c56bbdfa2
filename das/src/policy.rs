//! The DAS policies and their evaluation (TS-0003 7.3.2.2 step 3.1: "the DAS
//! Server applies the policies with which it is configured").
//!
//! A policy's `rule` is an `m2m:accessControlRule`, decided by the same
//! engine as every stored ACP ([`authz_core::decide`] over
//! [`CompiledAcp::from_privileges`]) on a [`DecisionRequest`] built from the
//! `dynAuthDasRequest`: originator `or`, operation `op`, target `trid`,
//! target type `trt`, time `rts` (or now), IP `oip`, location `olo`. A policy
//! matches when its rule permits that request, `trid` is one of its
//! `targets` and `trt` one of its `resource_types` (when listed; such a
//! policy grants through `Consult` only, see [`Channel`]). Policies
//! are tried in file order; **the first that matches decides**, and grants
//! what its `grant` says, or nothing at all when that is empty.
//!
//! What the DAS cannot know, it leaves to the hosting CSE, by copying the
//! rule's conditions into what it grants:
//!
//! - the granted rule is `{acor: [holder], acop: grant.acop}` plus the
//!   policy rule's `acco`, `acaf` and `acod`. The hosting CSE therefore
//!   re-checks the time windows, IP ranges and regions at every use of the
//!   grant (a token obtained at the end of a daytime window does not open
//!   the door at night), the authentication flag (the DAS evaluates as if
//!   the originator were authenticated), and, for a CREATE, the object
//!   details, which need the created resource's type that a
//!   `dynAuthDasRequest` does not carry (so `acod` is not evaluated here);
//! - `acor` Role-IDs and `<group>` IDs cannot match at the DAS, which has no
//!   role or group repository; Role-IDs are refused in the configuration.
//!
//! A granted Role-ID (the token's `rids`) carries no condition: the hosting
//! CSE adds it to the originator's roles for the token's whole life
//! (TS-0003 7.3.2.5) and decides with the stored rules that name the role.
//! So a policy may grant roles only when its rule has no condition to carry:
//! [`Policy::compile`] refuses `grant.roles` when the rule has an `acco`
//! element with a time window, an IP range or a region, `acaf` true, or an
//! `acod`, since the role would hold outside them (a role obtained in a
//! daytime window would still work at night, and from anywhere). Put such
//! conditions in the stored rules that name the role, or grant operations,
//! whose `pv` carries them.
//!
//! Lifetime: the grant is valid from now (whole seconds) for
//! `min(max_lifetime_s, ppl)`, where `ppl` (m2m:absRelTimestamp) is an
//! absolute `YYYYMMDDThhmmss` end or a relative time in milliseconds from
//! now. A proposed lifetime that has already ended grants nothing.
//!
//! Roles: only the policy's `grant.roles` that are among the request's `rfa`
//! (the Role-IDs the hosting CSE found in the rules that would permit it,
//! those associated with this DAS: TS-0003 table 7.3.2.2-1) are granted,
//! since those are the roles that help. An empty `rfa` grants no role (the
//! hosting CSE sends an empty list when its ACPs name no Role-ID of this
//! DAS, and on the wire an absent `rfa` is an empty one); a policy whose
//! grant is then left with neither operations nor roles grants nothing, so
//! no token is issued or stored. Roles are granted in tokens only: a policy
//! of mode `dynamic_acp` with `grant.roles` is refused at load.
//!
//! The request's `oip` and `olo` are what the caller says. From `Consult`
//! they come from the hosting CSE; from `IssueToken` the DAS replaces `oip`
//! by the address the call came from, while `olo` is the originator's own
//! claim, so an `aclr` evaluated here only pre-filters: the hosting CSE
//! checks the region again, with its own knowledge of the originator, at
//! every use of the granted `pv`.

use std::net::IpAddr;
use std::sync::Arc;

use authz_core::compile::{CompiledAcp, ValidationError};
use authz_core::decision::PrivilegeKind;
pub use authz_core::ids::canonical_resource_id;
use authz_core::json::format_timestamp;
use authz_core::model::{AccessControlContext, AccessControlRule, SetOfAcrs, acop};
use authz_core::request::{DecisionRequest, Operation, Position};
use authz_core::token::{TokenClaims, TokenPermission, TokenPermissions, issuer_fqdn};
use authz_core::{Applicable, DecideOptions, HostingContext, NoAttributes};
use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{GrantMode, PolicyFile};

/// Largest `max_lifetime_s` accepted: one year.
pub const MAX_LIFETIME_S: u64 = 366 * 24 * 3600;

/// A resource ID pattern of `targets`: exact, or a prefix (written with a
/// trailing `*`), both in absolute form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPattern {
    /// This resource ID only.
    Exact(String),
    /// Every resource ID starting with this text.
    Prefix(String),
}

impl TargetPattern {
    /// Parses a pattern, making it absolute in `hosting`. A `*` is allowed
    /// only at the end; the text before it must not be empty.
    pub fn parse(text: &str, hosting: &HostingContext) -> Result<Self, String> {
        match text.strip_suffix('*') {
            Some(prefix) => {
                if prefix.contains('*') {
                    return Err("'*' is allowed only at the end".into());
                }
                if prefix.is_empty() {
                    return Err("a prefix pattern needs text before its '*'".into());
                }
                canonical_resource_id(prefix, hosting).map(Self::Prefix)
            }
            None if text.contains('*') => Err("'*' is allowed only at the end".into()),
            None => canonical_resource_id(text, hosting).map(Self::Exact),
        }
    }

    /// Does the absolute resource ID `target` match?
    pub fn matches(&self, target: &str) -> bool {
        match self {
            Self::Exact(t) => t == target,
            Self::Prefix(p) => target.starts_with(p.as_str()),
        }
    }
}

/// `m2m:absRelTimestamp`, shared with the PDP (which parses the `pl` of a
/// `dai` with it).
pub use authz_core::json::AbsRelTimestamp;

/// A checked `dynAuthDasRequest`, IDs absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct DasRequest {
    /// `or`, absolute.
    pub originator: String,
    /// `op`.
    pub operation: Operation,
    /// `trid`, absolute.
    pub target: String,
    /// `trt`.
    pub target_type: Option<u32>,
    /// The time the policies are evaluated at (`rts`, or now).
    pub time: DateTime<Utc>,
    /// `oip`.
    pub ip: Option<IpAddr>,
    /// `olo` as a position (a circle region: its centre, its radius as the
    /// uncertainty).
    pub position: Option<Position>,
    /// `olo` as country codes.
    pub countries: Vec<String>,
    /// `ppl`.
    pub proposed_lifetime: Option<AbsRelTimestamp>,
    /// `rfa`.
    pub role_ids_from_acps: Vec<String>,
    /// `tids`.
    pub token_ids: Vec<String>,
}

impl DasRequest {
    /// The request the rules are decided on. The originator counts as
    /// authenticated: `acaf` is carried into the grant and checked where it
    /// is used.
    pub fn decision_request(&self) -> DecisionRequest {
        let mut r = DecisionRequest::new(
            self.originator.clone(),
            self.operation,
            self.target.clone(),
            self.time,
        );
        r.target_type = self.target_type;
        r.ip = self.ip;
        r.position = self.position;
        r.countries = self.countries.clone();
        r.authenticated = true;
        r
    }
}

/// What a policy grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// `acop` bits granted on the target (0: none).
    pub acop: u32,
    /// Role-IDs granted.
    pub roles: Vec<String>,
    /// Token, dynamic ACP or both.
    pub mode: GrantMode,
}

/// A compiled DAS policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name (the `tknm` of its tokens).
    pub name: String,
    /// The rule as written; its conditions are carried into grants.
    pub rule: AccessControlRule,
    /// The rule without `acod`, compiled for evaluation.
    evaluation: CompiledAcp,
    /// The targets, absolute.
    pub targets: Vec<TargetPattern>,
    /// `ty` codes `trt` must be one of; empty means any.
    pub resource_types: Vec<u32>,
    /// What it grants.
    pub grant: Grant,
    /// The longest lifetime of a grant.
    pub max_lifetime: TimeDelta,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        path: path.into(),
        message: message.into(),
    }
}

impl Policy {
    /// Checks and compiles one policy of the file; `path` (e.g.
    /// `policies[0]`) prefixes the field of every error.
    ///
    /// `role_issuers`: the FQDNs whose Role-IDs the DAS grants (its own
    /// and its configured `role_issuers`).
    pub fn compile(
        file: &PolicyFile,
        hosting: &HostingContext,
        role_issuers: &[&str],
        path: &str,
    ) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        if file.name.is_empty() {
            errors.push(err(format!("{path}.name"), "must not be empty"));
        }
        // The whole rule is validated; evaluation uses it without `acod`.
        let full = SetOfAcrs {
            rules: vec![file.rule.clone()],
        };
        // And, as a PRP checks a stored rule, each `acor` ID in the
        // absolute form it is matched in (Decision 2): one too long there
        // could never match.
        let compiled = CompiledAcp::from_privileges(file.name.as_str(), &full).map(drop);
        for e in [
            compiled,
            authz_core::compile::check_set_entry_lengths("pv", &full, hosting),
        ]
        .into_iter()
        .filter_map(Result::err)
        {
            for mut v in e.0 {
                let inner = v.path.strip_prefix("pv.acr[0]").unwrap_or(&v.path);
                v.path = format!("{path}.rule{inner}");
                errors.push(v);
            }
        }
        for (i, o) in file.rule.originators.iter().enumerate() {
            if o.contains('@') {
                errors.push(err(
                    format!("{path}.rule.acor[{i}]"),
                    format!(
                        "'{o}' is a Role-ID; the DAS has no role repository, so it could never match"
                    ),
                ));
            }
        }
        let mut evaluated = file.rule.clone();
        evaluated.object_details.clear();
        let evaluation = CompiledAcp::from_privileges(
            Arc::<str>::from(file.name.as_str()),
            &SetOfAcrs {
                rules: vec![evaluated],
            },
        );

        if file.targets.is_empty() {
            errors.push(err(
                format!("{path}.targets"),
                "at least one target is needed",
            ));
        }
        let mut targets = Vec::new();
        for (i, t) in file.targets.iter().enumerate() {
            match TargetPattern::parse(t, hosting) {
                Ok(p) => targets.push(p),
                Err(m) => errors.push(err(format!("{path}.targets[{i}]"), m)),
            }
        }

        let acop = file.grant.acop.unwrap_or(file.rule.operations);
        if acop & !acop::ALL != 0 {
            errors.push(err(
                format!("{path}.grant.acop"),
                format!("{acop} has bits outside 1-63"),
            ));
        }
        for (i, r) in file.grant.roles.iter().enumerate() {
            match issuer_fqdn(r) {
                None => errors.push(err(
                    format!("{path}.grant.roles[{i}]"),
                    format!("'{r}' is not a Role-ID (name@fqdn)"),
                )),
                // A hosting CSE sends a DAS in `rfa` only the Role-IDs that
                // identify it (TS-0003 7.3.2.2 step 2.2.1, Decision 8), and
                // a role is granted only from `rfa`: any other would never be.
                Some(f) if !role_issuers.contains(&f) => errors.push(err(
                    format!("{path}.grant.roles[{i}]"),
                    format!(
                        "'{r}' is issued by {f}, which is neither this DAS's fqdn nor one of its \
                         role_issuers ({}): no hosting CSE would send it to this DAS, so it \
                         could never be granted",
                        role_issuers.join(", ")
                    ),
                )),
                Some(_) => {}
            }
        }
        if acop == 0 && file.grant.roles.is_empty() {
            errors.push(err(
                format!("{path}.grant"),
                "grants nothing: give acop or roles",
            ));
        }
        if !file.grant.roles.is_empty() {
            if file.grant.mode == GrantMode::DynamicAcp {
                errors.push(err(
                    format!("{path}.grant.roles"),
                    "roles are granted in tokens only; mode dynamic_acp would drop them (use token or both)",
                ));
            }
            let conditions = conditions(&file.rule);
            if !conditions.is_empty() {
                errors.push(err(
                    format!("{path}.grant.roles"),
                    format!(
                        "policy '{name}' cannot grant roles under a rule with {c}: a role carries \
                         no condition, so the hosting CSE could not re-check {c} and the role \
                         would hold for the token's whole life regardless; grant acop instead \
                         (its pv carries the conditions), or put them in the stored rules that \
                         name the role",
                        name = file.name,
                        c = conditions.join(", ")
                    ),
                ));
            }
        }
        if file.grant.mode == GrantMode::DynamicAcp && acop == 0 {
            errors.push(err(
                format!("{path}.grant.acop"),
                "a dynamic ACP grants operations: acop must not be 0",
            ));
        }
        // A request's `trt` of 0 is refused, so such an entry matches nothing.
        for (i, ty) in file.resource_types.iter().enumerate() {
            if *ty == 0 {
                errors.push(err(
                    format!("{path}.resource_types[{i}]"),
                    authz_core::model::NO_RESOURCE_TYPE_0,
                ));
            }
        }
        if file.max_lifetime_s == 0 || file.max_lifetime_s > MAX_LIFETIME_S {
            errors.push(err(
                format!("{path}.max_lifetime_s"),
                format!("must be 1..={MAX_LIFETIME_S} seconds"),
            ));
        }

        match evaluation {
            Ok(evaluation) if errors.is_empty() => Ok(Self {
                name: file.name.clone(),
                rule: file.rule.clone(),
                evaluation,
                targets,
                resource_types: file.resource_types.clone(),
                grant: Grant {
                    acop,
                    roles: file.grant.roles.clone(),
                    mode: file.grant.mode,
                },
                // Bounded by MAX_LIFETIME_S above.
                max_lifetime: TimeDelta::seconds(
                    i64::try_from(file.max_lifetime_s).unwrap_or(i64::MAX),
                ),
            }),
            _ => Err(errors),
        }
    }

    /// Does this policy match `req`: target, resource type, and the rule
    /// decided by the engine in `hosting`?
    pub fn matches(&self, req: &DasRequest, hosting: &HostingContext) -> bool {
        if !self.targets.iter().any(|t| t.matches(&req.target)) {
            return false;
        }
        if !self.resource_types.is_empty()
            && !req
                .target_type
                .is_some_and(|ty| self.resource_types.contains(&ty))
        {
            return false;
        }
        let applicable = [Applicable {
            acp: &self.evaluation,
            kind: PrivilegeKind::Privileges,
        }];
        authz_core::decide(
            &req.decision_request(),
            hosting,
            &applicable,
            &NoAttributes,
            &DecideOptions::default(),
        )
        .is_permit()
    }
}

/// The conditions of `rule` that constrain a request (Decision 11: an empty
/// list or object constrains nothing): `acco` when one of its elements has a
/// time window, an IP address or a region, `acaf` when true, `acod` when
/// listed. These travel in a granted `pv` and are lost in a granted role.
fn conditions(rule: &AccessControlRule) -> Vec<&'static str> {
    let mut found = Vec::new();
    let constrains = |c: &AccessControlContext| {
        !c.time_windows.is_empty()
            || c.ip_addresses
                .as_ref()
                .is_some_and(|ip| !ip.ipv4.is_empty() || !ip.ipv6.is_empty())
            || c.location_region.is_some()
    };
    if rule.contexts.iter().any(constrains) {
        found.push("acco");
    }
    if rule.authentication_flag == Some(true) {
        found.push("acaf true");
    }
    if !rule.object_details.is_empty() {
        found.push("acod");
    }
    found
}

/// Which grants the caller can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `Consult` from a hosting CSE: tokens and dynamic ACPs.
    Consult,
    /// `IssueToken` from the originator: tokens only; policies granting only
    /// dynamic ACPs are skipped, and so are policies with `resource_types`
    /// (the originator's `trt` is no evidence of the target's type).
    IssueToken,
}

/// What the first matching policy grants one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Award {
    /// The policy's name.
    pub policy: String,
    /// The holder: the originator's absolute ID.
    pub holder: String,
    /// The target, absolute.
    pub target: String,
    /// Start of validity (now, whole seconds).
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// The granted rules (`acor: [holder]`), when operations are granted.
    pub privileges: Option<SetOfAcrs>,
    /// The granted Role-IDs.
    pub roles: Vec<String>,
    /// Issue a token.
    pub token: bool,
    /// Grant a dynamic ACP.
    pub dynamic_acp: bool,
}

impl Award {
    /// The claims of the token (`tkps.pm` = one permission on the target
    /// with the granted rules and roles), or `None` when no token is due.
    pub fn token_claims(
        &self,
        token_id: String,
        issuer: &str,
        audience: Vec<String>,
    ) -> Option<TokenClaims> {
        if !self.token {
            return None;
        }
        let mut claims = TokenClaims::new(
            token_id,
            issuer,
            self.holder.clone(),
            self.not_before,
            self.not_after,
        );
        claims.token_name = Some(self.policy.clone());
        claims.audience = audience;
        claims.permissions = TokenPermissions {
            pm: vec![TokenPermission {
                ris: vec![self.target.clone()],
                pv: self.privileges.clone(),
                rids: self.roles.clone(),
            }],
        };
        Some(claims)
    }

    /// `dai`: the granted privileges and the absolute end of their lifetime
    /// (`pl`), or `None` when no dynamic ACP is due.
    pub fn dynamic_acp_info(&self) -> Option<(SetOfAcrs, String)> {
        if !self.dynamic_acp {
            return None;
        }
        self.privileges
            .clone()
            .map(|gp| (gp, format_timestamp(self.not_after)))
    }
}

/// Evaluates `req` against `policies` in order (module documentation): the
/// first policy that matches decides. `None` when none matches or the first
/// match grants nothing to this caller (no operations and no helpful roles,
/// or a proposed lifetime already over).
pub fn evaluate(
    policies: &[Policy],
    req: &DasRequest,
    hosting: &HostingContext,
    now: DateTime<Utc>,
    channel: Channel,
) -> Option<Award> {
    let policy = policies
        .iter()
        .filter(|p| match channel {
            Channel::Consult => true,
            // The originator states `trt` itself, which proves nothing, and
            // a token has no field to bind the type to: a policy that asks
            // for a type grants through a hosting CSE's `Consult` only.
            Channel::IssueToken => p.grant.mode.tokens() && p.resource_types.is_empty(),
        })
        .find(|p| p.matches(req, hosting))?;

    let not_before = DateTime::from_timestamp(now.timestamp(), 0)?;
    let mut not_after = not_before.checked_add_signed(policy.max_lifetime)?;
    // A proposed end beyond the clock's range bounds nothing: the
    // policy's maximum does.
    if let Some(end) = req.proposed_lifetime.and_then(|p| p.resolve(now)) {
        let end = DateTime::from_timestamp(end.timestamp(), 0)?;
        not_after = not_after.min(end);
    }
    if not_after <= not_before {
        return None;
    }

    // Only the roles that help: `rfa` is the set of Role-IDs of the ACPs
    // associated with this DAS (TS-0003 table 7.3.2.2-1). An empty `rfa`
    // (a protobuf repeated field cannot tell absent from empty; the hosting
    // CSE sends one per DAS, empty when the ACPs name none of its roles)
    // means that none of them helps, so none is granted.
    let roles: Vec<String> = policy
        .grant
        .roles
        .iter()
        .filter(|r| req.role_ids_from_acps.contains(r))
        .cloned()
        .collect();
    let privileges = (policy.grant.acop != 0).then(|| SetOfAcrs {
        rules: vec![AccessControlRule {
            originators: vec![req.originator.clone()],
            operations: policy.grant.acop,
            contexts: policy.rule.contexts.clone(),
            authentication_flag: policy.rule.authentication_flag,
            object_details: policy.rule.object_details.clone(),
        }],
    });
    let token = policy.grant.mode.tokens() && (privileges.is_some() || !roles.is_empty());
    let dynamic_acp =
        channel == Channel::Consult && policy.grant.mode.dynamic_acp() && privileges.is_some();
    if !token && !dynamic_acp {
        return None;
    }
    Some(Award {
        policy: policy.name.clone(),
        holder: req.originator.clone(),
        target: req.target.clone(),
        not_before,
        not_after,
        privileges,
        roles,
        token,
        dynamic_acp,
    })
}

#[cfg(test)]
mod tests {
    use authz_core::json::parse_timestamp;

    use super::*;

    fn hosting() -> HostingContext {
        HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting")
    }

    fn policy(json: serde_json::Value) -> Policy {
        let file: PolicyFile = serde_json::from_value(json).expect("policy file");
        Policy::compile(&file, &hosting(), &["das.home.example"], "policies[0]").expect("compiles")
    }

    fn request(or: &str, op: Operation, target: &str, time: &str) -> DasRequest {
        let h = hosting();
        DasRequest {
            originator: h.canonicalize(or).expect("or").into_owned(),
            operation: op,
            target: canonical_resource_id(target, &h).expect("trid"),
            target_type: Some(3),
            time: parse_timestamp(time).expect("time"),
            ip: None,
            position: None,
            countries: Vec::new(),
            proposed_lifetime: None,
            role_ids_from_acps: Vec::new(),
            token_ids: Vec::new(),
        }
    }

    fn door() -> Policy {
        policy(serde_json::json!({
            "name": "door",
            "rule": {"acor": ["Cguest"], "acop": 4, "acco": [{"actw": ["* * 8-17 * * * *"]}]},
            "targets": ["frontDoor", "/mn-cse-123456/lights/*"],
            "grant": {"mode": "both"},
            "max_lifetime_s": 3600
        }))
    }

    /// Roles, under a rule without conditions.
    fn guest_roles() -> Policy {
        policy(serde_json::json!({
            "name": "guest-roles",
            "rule": {"acor": ["Cguest"], "acop": 4},
            "targets": ["frontDoor"],
            "grant": {"roles": ["guest@das.home.example", "other@das.home.example"], "mode": "both"},
            "max_lifetime_s": 3600
        }))
    }

    #[test]
    fn targets_are_exact_or_prefix_in_absolute_form() {
        let h = hosting();
        let exact = TargetPattern::parse("frontDoor", &h).expect("exact");
        assert!(exact.matches("//home.example/mn-cse-123456/frontDoor"));
        assert!(!exact.matches("//home.example/mn-cse-123456/frontDoorState"));
        let prefix = TargetPattern::parse("//HOME.example/mn-cse-123456/lights/*", &h).expect("p");
        assert!(prefix.matches("//home.example/mn-cse-123456/lights/kitchen"));
        assert!(TargetPattern::parse("*", &h).is_err());
        assert!(TargetPattern::parse("a*b", &h).is_err());
    }

    #[test]
    fn abs_rel_timestamps() {
        let now = parse_timestamp("20260601T120000").expect("now");
        assert_eq!(
            AbsRelTimestamp::parse("20260601T130000").and_then(|t| t.resolve(now)),
            parse_timestamp("20260601T130000")
        );
        assert_eq!(
            AbsRelTimestamp::parse("600000").and_then(|t| t.resolve(now)),
            parse_timestamp("20260601T121000")
        );
        assert_eq!(
            AbsRelTimestamp::parse("-1000").and_then(|t| t.resolve(now)),
            parse_timestamp("20260601T115959")
        );
        assert_eq!(AbsRelTimestamp::parse("soon"), None);
    }

    #[test]
    fn the_rule_is_decided_by_the_engine_and_carried_into_the_grant() {
        let policies = [door()];
        let h = hosting();
        let now = parse_timestamp("20260601T120000").expect("now");
        let req = request("Cguest", Operation::Update, "frontDoor", "20260601T120000");
        let award = evaluate(&policies, &req, &h, now, Channel::Consult).expect("granted");
        assert_eq!(award.holder, "//home.example/mn-cse-123456/Cguest");
        assert_eq!(award.not_after - award.not_before, TimeDelta::hours(1));
        let rule = &award.privileges.as_ref().expect("pv").rules[0];
        assert_eq!(rule.originators, vec![award.holder.clone()]);
        assert_eq!(rule.operations, 4);
        assert_eq!(rule.contexts, policies[0].rule.contexts);
        assert!(award.token && award.dynamic_acp);

        for (or, op, target, time) in [
            ("Cguest", Operation::Update, "frontDoor", "20260601T230000"),
            ("Cguest", Operation::Delete, "frontDoor", "20260601T120000"),
            (
                "Cburglar",
                Operation::Update,
                "frontDoor",
                "20260601T120000",
            ),
            ("Cguest", Operation::Update, "backDoor", "20260601T120000"),
        ] {
            let req = request(or, op, target, time);
            assert_eq!(evaluate(&policies, &req, &h, now, Channel::Consult), None);
        }
    }

    #[test]
    fn rfa_narrows_roles_and_ppl_narrows_lifetime() {
        let policies = [guest_roles()];
        let h = hosting();
        let now = parse_timestamp("20260601T120000").expect("now");
        let mut req = request("Cguest", Operation::Update, "frontDoor", "20260601T120000");
        req.role_ids_from_acps = vec!["guest@das.home.example".into()];
        req.proposed_lifetime = AbsRelTimestamp::parse("20260601T121500");
        let award = evaluate(&policies, &req, &h, now, Channel::IssueToken).expect("granted");
        assert_eq!(award.roles, vec!["guest@das.home.example"]);
        assert_eq!(award.not_after - award.not_before, TimeDelta::minutes(15));
        assert!(!award.dynamic_acp);
        req.proposed_lifetime = AbsRelTimestamp::parse("20260601T115959");
        assert_eq!(evaluate(&policies, &req, &h, now, Channel::Consult), None);
    }

    /// TS-0003 table 7.3.2.2-1: `rfa` is the set of Role-IDs associated
    /// with this DAS, so an empty one (the ACPs name only other issuers'
    /// roles, or none) means none of this DAS's roles helps: none is
    /// granted, and a grant left with nothing is no grant at all.
    #[test]
    fn empty_rfa_grants_no_roles_table_7_3_2_2_1() {
        let h = hosting();
        let now = parse_timestamp("20260601T120000").expect("now");
        let mut req = request("Cguest", Operation::Update, "frontDoor", "20260601T120000");
        for rfa in [vec![], vec!["guest@roles.other.example".to_owned()]] {
            req.role_ids_from_acps = rfa.clone();
            for channel in [Channel::Consult, Channel::IssueToken] {
                // Operations and roles: the operations only.
                let award =
                    evaluate(&[guest_roles()], &req, &h, now, channel).expect("operations granted");
                assert!(award.roles.is_empty(), "rfa {rfa:?}: {:?}", award.roles);
                assert!(award.privileges.is_some() && award.token);
                let claims = award
                    .token_claims("t@das.home.example".into(), "//i/CDas", vec![])
                    .expect("token");
                assert!(claims.permissions.pm[0].rids.is_empty());

                // Roles only: nothing at all.
                let roles_only = policy(serde_json::json!({
                    "name": "roles-only",
                    "rule": {"acor": ["Cguest"], "acop": 4},
                    "targets": ["frontDoor"],
                    "grant": {"acop": 0, "roles": ["resident@das.home.example"], "mode": "token"},
                    "max_lifetime_s": 3600
                }));
                assert_eq!(
                    evaluate(&[roles_only], &req, &h, now, channel),
                    None,
                    "rfa {rfa:?}"
                );
            }
        }
    }

    /// TS-0003 7.3.2.5: a token's `rids` join the originator's roles with no
    /// condition, so a role granted under a time window, an IP range, a
    /// region, `acaf` or `acod` would hold outside them for the token's whole
    /// life: refused at load, naming the policy's field.
    #[test]
    fn roles_are_refused_under_a_rule_with_conditions_7_3_2_5() {
        let compile = |rule: serde_json::Value, mode: &str| {
            let file: PolicyFile = serde_json::from_value(serde_json::json!({
                "name": "guest", "rule": rule, "targets": ["frontDoor"],
                "grant": {"roles": ["guest@r.example"], "mode": mode},
                "max_lifetime_s": 86400
            }))
            .expect("parses");
            Policy::compile(
                &file,
                &hosting(),
                &["das.home.example", "r.example"],
                "policies[2]",
            )
        };
        for (rule, named) in [
            (
                serde_json::json!({"acor": ["Cguest"], "acop": 4, "acco": [{
                    "actw": ["* * 7-19 * * * *"], "acip": {"ipv4": ["192.168.1.0/24"]}}]}),
                "acco",
            ),
            (
                serde_json::json!({"acor": ["Cguest"], "acop": 4,
                                   "acco": [{"acip": {"ipv6": ["2001:db8::/32"]}}]}),
                "acco",
            ),
            (
                serde_json::json!({"acor": ["Cguest"], "acop": 4,
                                   "acco": [{"aclr": {"accc": ["DE"]}}]}),
                "acco",
            ),
            (
                serde_json::json!({"acor": ["Cguest"], "acop": 4, "acaf": true}),
                "acaf",
            ),
            (
                serde_json::json!({"acor": ["Cguest"], "acop": 1, "acod": [{"chty": [4]}]}),
                "acod",
            ),
        ] {
            let errors = compile(rule.clone(), "token").expect_err("refused");
            assert_eq!(errors.len(), 1, "{rule}: {errors:?}");
            assert_eq!(errors[0].path, "policies[2].grant.roles", "{rule}");
            assert!(errors[0].message.contains(named), "{rule}: {errors:?}");
        }
        // Decision 11: empty contexts constrain nothing; acaf false neither.
        for rule in [
            serde_json::json!({"acor": ["Cguest"], "acop": 4}),
            serde_json::json!({"acor": ["Cguest"], "acop": 4, "acco": [{}], "acaf": false}),
            serde_json::json!({"acor": ["Cguest"], "acop": 4, "acco": [{"actw": [], "acip": {}}]}),
        ] {
            compile(rule.clone(), "both").unwrap_or_else(|e| panic!("{rule}: {e:?}"));
        }
        // Roles live in tokens only.
        let errors = compile(
            serde_json::json!({"acor": ["Cguest"], "acop": 4}),
            "dynamic_acp",
        )
        .expect_err("refused");
        assert_eq!(errors[0].path, "policies[2].grant.roles");
    }

    /// TS-0003 7.3.2.2 step 2.2.1 and Decision 8: a hosting CSE sends a DAS
    /// in `rfa` only the Role-IDs whose FQDN identifies that DAS, and roles
    /// are granted only from `rfa`; a role of another FQDN could never be
    /// granted, so it is refused at load, naming the entry.
    #[test]
    fn roles_of_fqdns_the_das_does_not_issue_are_refused() {
        let file: PolicyFile = serde_json::from_value(serde_json::json!({
            "name": "guest", "rule": {"acor": ["Cguest"], "acop": 2}, "targets": ["frontDoor"],
            "grant": {"roles": ["guest@das.home.example", "guest@roles.example.com"], "mode": "token"},
            "max_lifetime_s": 600
        }))
        .expect("parses");
        let errors = Policy::compile(&file, &hosting(), &["das.home.example"], "policies[0]")
            .expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "policies[0].grant.roles[1]");
        assert!(errors[0].message.contains("role_issuers"), "{errors:?}");
        let issuers = ["das.home.example", "roles.example.com"];
        let policy = Policy::compile(&file, &hosting(), &issuers, "policies[0]").expect("compiles");
        assert_eq!(policy.grant.roles.len(), 2);
    }

    #[test]
    fn compile_errors_name_the_field() {
        let file: PolicyFile = serde_json::from_value(serde_json::json!({
            "name": "bad",
            "rule": {"acor": ["x@roles.example"], "acop": 4, "acco": [{"actw": ["* * 25 * * * *"]}]},
            "targets": ["a*b"],
            "grant": {"acop": 0, "mode": "dynamic_acp"},
            "max_lifetime_s": 0
        }))
        .expect("parses");
        let errors = Policy::compile(&file, &hosting(), &["das.home.example"], "policies[3]")
            .expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "policies[3].rule.acco[0].actw[0]",
            "policies[3].rule.acor[0]",
            "policies[3].targets[0]",
            "policies[3].grant",
            "policies[3].grant.acop",
            "policies[3].max_lifetime_s",
        ] {
            assert!(paths.contains(&p), "{p} not in {paths:?}");
        }
    }

    /// Decision 2: an `acor` ID is matched in absolute form, which is an
    /// ID of at most 2048 bytes too; one that only grows past it there
    /// could never match, and is refused as a PRP refuses it in a stored
    /// rule, naming the entry.
    #[test]
    fn an_acor_entry_too_long_in_absolute_form_is_refused() {
        let file = |entry: String| -> PolicyFile {
            serde_json::from_value(serde_json::json!({
                "name": "long", "rule": {"acor": ["Cguest", entry], "acop": 2},
                "targets": ["frontDoor"], "grant": {"mode": "dynamic_acp"}, "max_lifetime_s": 600
            }))
            .expect("parses")
        };
        let grows = format!("C{}", "x".repeat(2047));
        let errors = Policy::compile(
            &file(grows),
            &hosting(),
            &["das.home.example"],
            "policies[0]",
        )
        .expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "policies[0].rule.acor[1]");
        assert!(errors[0].message.contains("absolute form"), "{errors:?}");
        // What fits in absolute form is taken.
        let prefix = "//home.example/mn-cse-123456/".len();
        let fits = format!("C{}", "x".repeat(2047 - prefix));
        Policy::compile(
            &file(fits),
            &hosting(),
            &["das.home.example"],
            "policies[0]",
        )
        .expect("fits");
    }
}
