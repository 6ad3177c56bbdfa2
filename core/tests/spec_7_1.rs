//! TS-0003 clause 7.1 (Access Control Mechanism), pinned table by table and
//! rule by rule against the public API of `authz-core`.
//!
//! Every expectation below is written from the specification text (seed 002,
//! clauses 7.1.1-7.1.5), from `spec-notes.md` §1, §2.1, §2.3, §2.4, §3 and §8,
//! and from its "Decisions for this project", which override the rest. Tests
//! are named after the clause, table or decision they pin:
//!
//! - `table_7_1_3_1_*`: parameters of an access-control-rule-tuple (acop bits);
//! - `table_7_1_3_2_*`: "Examples of using wildcard characters in CSE-IDs and
//!   AE-IDs" (printed as "Table 7.1.3-32" in the seed's change-marked text);
//! - `table_7_1_3_3_*`: parameters of accessControlContexts ("7.1.3-23");
//! - `table_7_1_3_4_*`: parameters of accessControlObjectDetails ("7.1.3-34");
//! - `table_7_1_5_1_*`: evaluating res_authn(k);
//! - `clause_7_1_x_*`, `decision_n_*`, `spec_notes_n_*`, `ts_xxxx_*`: the
//!   clause, project decision, spec-notes section or other TS they pin;
//! - `validation_*`: field-path messages of validation (TS-0004 4000 cases).
//!
//! The hosting CSE of most tests is `/id-in` in SP `//m2msp.org` (the SP of
//! the table 7.1.3-2 examples). Every decision is taken twice, with and
//! without an explanation, and both must agree.

use std::net::IpAddr;

use authz_core::compile::{ValidationError, check_create};
use authz_core::decision::{ContextFailure, FailedCondition, MissingAttribute, RuleFailure};
use authz_core::json::{JsonError, parse_and_validate, parse_policies, request_from_json};
use authz_core::{
    Applicable, AttributeSource, AuthorizationStatus, CompiledAcp, DecideOptions, Decision,
    DecisionRequest, Effect, HostingContext, InMemoryAttributes, Lookup, NoAttributes, Operation,
    Position, PrivilegeKind, Specialization, decide,
};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// SP of the hosting CSE (and of the table 7.1.3-2 examples).
const SP: &str = "//m2msp.org";
/// The hosting CSE.
const HOST_CSE: &str = "/id-in";
/// Default request time: a Friday, 12:00:00 UTC.
const NOON: &str = "2024-03-15T12:00:00Z";
/// The `pvs` of every ACP built by [`pv`]: only `Cacpadmin` may touch the ACP.
const PVS_ADMIN: &str = r#"[{"acor": ["Cacpadmin"], "acop": 63}]"#;

fn host() -> HostingContext {
    HostingContext::new(SP, HOST_CSE).unwrap()
}

fn host_at(cse: &str) -> HostingContext {
    HostingContext::new(SP, cse).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn pos(lat: f64, lon: f64, uncertainty_m: f64) -> Position {
    Position {
        lat,
        lon,
        uncertainty_m,
    }
}

/// An `m2m:acp` document with the given `ri` and `pv` / `pvs` rule lists.
fn acp_doc(id: &str, pv_rules: &str, pvs_rules: &str) -> String {
    format!(
        "{{\"m2m:acp\": {{\"ri\": \"{id}\", \"pv\": {{\"acr\": {pv_rules}}}, \"pvs\": {{\"acr\": {pvs_rules}}}}}}}"
    )
}

/// Parses, validates and compiles a one-ACP document.
fn compile_one(doc: &str) -> CompiledAcp {
    let acps = parse_and_validate(doc).unwrap_or_else(|e| panic!("{doc}\nrejected: {e}"));
    assert_eq!(acps.len(), 1, "{doc}");
    CompiledAcp::compile(acps[0].id().expect("ri"), &acps[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// An ACP with this ID whose `pv` holds `rules` (a JSON list).
fn acp_named(id: &str, rules: &str) -> CompiledAcp {
    compile_one(&acp_doc(id, rules, PVS_ADMIN))
}

/// ACP `acp1` whose `pv` holds `rules` (a JSON list).
fn pv(rules: &str) -> CompiledAcp {
    acp_named("acp1", rules)
}

/// ACP `acp1` whose `pv` holds this one rule.
fn one_rule(rule: Value) -> CompiledAcp {
    pv(&json!([rule]).to_string())
}

/// A request at [`NOON`] on `/id-in/cnt1`; a CREATE creates a
/// contentInstance (4) under that container (3).
fn req(fr: &str, op: Operation) -> DecisionRequest {
    let mut r = DecisionRequest::new(fr, op, "/id-in/cnt1", at(NOON));
    if op == Operation::Create {
        r.resource_type = Some(4);
        r.target_type = Some(3);
    }
    r
}

fn retrieve(fr: &str) -> DecisionRequest {
    req(fr, Operation::Retrieve)
}

fn retrieve_at(fr: &str, time: &str) -> DecisionRequest {
    let mut r = retrieve(fr);
    r.time = at(time);
    r
}

fn retrieve_from_ip(fr: &str, addr: &str) -> DecisionRequest {
    let mut r = retrieve(fr);
    r.ip = Some(ip(addr));
    r
}

fn create(fr: &str, target_type: Option<u32>, resource_type: u32) -> DecisionRequest {
    let mut r = req(fr, Operation::Create);
    r.target_type = target_type;
    r.resource_type = Some(resource_type);
    r
}

fn pv_of(acp: &CompiledAcp) -> Applicable<'_> {
    Applicable {
        acp,
        kind: PrivilegeKind::Privileges,
    }
}

fn pvs_of(acp: &CompiledAcp) -> Applicable<'_> {
    Applicable {
        acp,
        kind: PrivilegeKind::SelfPrivileges,
    }
}

/// Decides twice, without and with an explanation; both must agree.
fn run(
    policies: &[Applicable<'_>],
    r: &DecisionRequest,
    ctx: &HostingContext,
    attrs: &dyn AttributeSource,
    granted: &[String],
) -> Decision {
    let quiet = decide(
        r,
        ctx,
        policies,
        attrs,
        &DecideOptions {
            explain: false,
            granted_roles: granted,
        },
    );
    let loud = decide(
        r,
        ctx,
        policies,
        attrs,
        &DecideOptions {
            explain: true,
            granted_roles: granted,
        },
    );
    assert_eq!(
        (quiet.effect, quiet.status, &quiet.permitted_by),
        (loud.effect, loud.status, &loud.permitted_by),
        "asking for an explanation changed the decision for {r:?}"
    );
    assert!(quiet.explanation.is_none(), "{quiet:?}");
    assert!(loud.explanation.is_some(), "{loud:?}");
    loud
}

/// `pv` of one ACP, hosting CSE `/id-in`, no attributes.
fn check(acp: &CompiledAcp, r: &DecisionRequest) -> Decision {
    run(&[pv_of(acp)], r, &host(), &NoAttributes, &[])
}

/// `pv` of one ACP, hosting CSE `/id-in`, with attributes.
fn check_with(acp: &CompiledAcp, r: &DecisionRequest, attrs: &dyn AttributeSource) -> Decision {
    run(&[pv_of(acp)], r, &host(), attrs, &[])
}

#[track_caller]
fn assert_permit(d: &Decision) {
    assert_eq!(d.effect, Effect::Permit, "expected Permit: {d:#?}");
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert!(d.permitted_by.is_some(), "{d:#?}");
}

#[track_caller]
fn assert_deny(d: &Decision) {
    assert_eq!(d.effect, Effect::Deny, "expected Deny: {d:#?}");
    assert!(d.permitted_by.is_none(), "{d:#?}");
}

/// The rules that named the originator and failed, from the explanation.
fn failures(d: &Decision) -> &[RuleFailure] {
    &d.explanation.as_ref().expect("explained").failed_rules
}

/// The first failed condition of the first rule that named the originator.
#[track_caller]
fn first_failed(d: &Decision) -> &FailedCondition {
    &failures(d)
        .first()
        .unwrap_or_else(|| panic!("no rule named the originator: {d:#?}"))
        .failed
}

/// The context failures of the first rule that named the originator.
#[track_caller]
fn context_failures(d: &Decision) -> &[ContextFailure] {
    match first_failed(d) {
        FailedCondition::Context { elements } => elements,
        other => panic!("expected a context failure, got {other:?}"),
    }
}

/// Checks, for one `acor` entry, which originators it admits.
#[track_caller]
fn assert_acor(entry: &str, ctx: &HostingContext, cases: &[(&str, bool)]) {
    let acp = one_rule(json!({"acor": [entry], "acop": 63}));
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|&(originator, want)| {
            let d = run(
                &[pv_of(&acp)],
                &retrieve(originator),
                ctx,
                &NoAttributes,
                &[],
            );
            (d.is_permit() != want).then(|| {
                format!(
                    "  From {originator:?}: expected {}, got {:?} (status {:?})",
                    if want { "Permit" } else { "Deny" },
                    d.effect,
                    d.status
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "acor [{entry:?}] at hosting CSE {}/{}:\n{}",
        ctx.sp_fqdn(),
        ctx.cse_id(),
        wrong.join("\n")
    );
}

/// The validation errors of a document: `parse_and_validate` must reject it,
/// and compiling the parsed resource must report the same errors.
#[track_caller]
fn rejected(doc: &str) -> Vec<ValidationError> {
    let errors = match parse_and_validate(doc) {
        Err(JsonError::Invalid(e)) => e.0,
        Err(other) => panic!("expected validation errors, got {other}"),
        Ok(_) => panic!("expected {doc} to be rejected"),
    };
    let acps = parse_policies(doc).expect("the JSON shape is fine");
    let direct = CompiledAcp::compile("acp1", &acps[0]).expect_err("compile must reject it too");
    assert_eq!(direct.0, errors, "compile and parse_and_validate disagree");
    errors
}

#[track_caller]
fn assert_error_at(errors: &[ValidationError], path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "no error at {path} mentioning {needle:?}: {errors:#?}"
    );
}

// ---------------------------------------------------------------------------
// Table 7.1.5-1: evaluating res_authn(k)
// ---------------------------------------------------------------------------

fn acaf_rule(flag: Option<bool>) -> CompiledAcp {
    let mut rule = json!({"acor": ["Cphone"], "acop": 63});
    if let Some(flag) = flag {
        rule["acaf"] = json!(flag);
    }
    one_rule(rule)
}

fn authn_retrieve(authenticated: bool) -> DecisionRequest {
    let mut r = retrieve("Cphone");
    r.authenticated = authenticated;
    r
}

#[test]
fn table_7_1_5_1_acaf_true_rq_authn_true_permits() {
    assert_permit(&check(&acaf_rule(Some(true)), &authn_retrieve(true)));
}

#[test]
fn table_7_1_5_1_acaf_true_rq_authn_false_denies() {
    let d = check(&acaf_rule(Some(true)), &authn_retrieve(false));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
    assert_eq!(first_failed(&d), &FailedCondition::AuthenticationFlag);
}

#[test]
fn table_7_1_5_1_acaf_false_rq_authn_true_permits() {
    assert_permit(&check(&acaf_rule(Some(false)), &authn_retrieve(true)));
}

#[test]
fn table_7_1_5_1_acaf_false_rq_authn_false_permits() {
    assert_permit(&check(&acaf_rule(Some(false)), &authn_retrieve(false)));
}

/// 7.1.3: "If the accessControlAuthenticationFlag parameter is not present,
/// then the value is assumed to be FALSE."
#[test]
fn clause_7_1_3_acaf_absent_is_false() {
    assert_permit(&check(&acaf_rule(None), &authn_retrieve(false)));
    assert_permit(&check(&acaf_rule(None), &authn_retrieve(true)));
}

// ---------------------------------------------------------------------------
// Table 7.1.3-2: wildcard examples in CSE-IDs and AE-IDs
// ---------------------------------------------------------------------------

/// CSE-ID, absolute: `//m2msp.org/myCSEID`.
#[test]
fn table_7_1_3_2_cse_id_absolute_m2msp_org_mycseid() {
    assert_acor(
        "//m2msp.org/myCSEID",
        &host(),
        &[
            ("//m2msp.org/myCSEID", true),
            // The same CSE in SP-relative form, from the hosting SP (Decision 2).
            ("/myCSEID", true),
            // Non-matching SP.
            ("//other.org/myCSEID", false),
            // An AE under that CSE is not the CSE.
            ("//m2msp.org/myCSEID/C9886", false),
            ("//m2msp.org/myCSEID2", false),
            ("//m2msp.org/myCSEI", false),
        ],
    );
}

/// CSE-ID, absolute: `//*/myCSEID`.
#[test]
fn table_7_1_3_2_cse_id_absolute_star_mycseid() {
    assert_acor(
        "//*/myCSEID",
        &host(),
        &[
            ("//m2msp.org/myCSEID", true),
            ("//other.org/myCSEID", true),
            ("/myCSEID", true),
            ("//m2msp.org/myCSEID2", false),
            // An AE under a matching CSE does not match a CSE pattern.
            ("//m2msp.org/myCSEID/C9886", false),
            // `*` does not cross `/`: it cannot absorb `m2msp.org/x`.
            ("//m2msp.org/x/myCSEID", false),
        ],
    );
}

/// CSE-ID, absolute: `//*/myCSE*`.
#[test]
fn table_7_1_3_2_cse_id_absolute_star_mycse_star() {
    assert_acor(
        "//*/myCSE*",
        &host(),
        &[
            ("//m2msp.org/myCSEID", true),
            ("//other.org/myCSE01", true),
            ("/myCSE7", true),
            ("//m2msp.org/yourCSE", false),
            ("//m2msp.org/xmyCSE1", false),
            // AE under a matching CSE.
            ("//m2msp.org/myCSE1/C9886", false),
            // `*` does not cross `/`.
            ("//other.org/myCSE1/sub", false),
        ],
    );
}

/// CSE-ID, SP-relative: `/myCSEID` — any matching CSE *from the SP hosting
/// the target*.
#[test]
fn table_7_1_3_2_cse_id_sp_relative_mycseid() {
    assert_acor(
        "/myCSEID",
        &host(),
        &[
            ("/myCSEID", true),
            ("//m2msp.org/myCSEID", true),
            // Same CSE-ID in another SP: not from the hosting SP.
            ("//other.org/myCSEID", false),
            ("/myCSEID/C9886", false),
            ("/myCSEID2", false),
        ],
    );
}

/// CSE-ID, SP-relative: `/myCSE*`.
#[test]
fn table_7_1_3_2_cse_id_sp_relative_mycse_star() {
    assert_acor(
        "/myCSE*",
        &host(),
        &[
            ("/myCSE7", true),
            ("/myCSEID", true),
            ("//m2msp.org/myCSEabc", true),
            ("//other.org/myCSE7", false),
            ("/myCSE7/C9886", false),
            ("/yourCSE", false),
            // An AE registered to the hosting CSE is not a CSE.
            ("CmyCSE1", false),
        ],
    );
}

/// AE-ID, absolute: `//m2msp.org/S988`.
#[test]
fn table_7_1_3_2_ae_id_absolute_m2msp_org_s988() {
    assert_acor(
        "//m2msp.org/S988",
        &host(),
        &[
            ("//m2msp.org/S988", true),
            // The same AE as stem and SP-relative ID, from the hosting SP.
            ("S988", true),
            ("/S988", true),
            // Non-matching SP for an absolute entry.
            ("//other.org/S988", false),
            ("//m2msp.org/S9880", false),
            ("//m2msp.org/myCSEID/S988", false),
        ],
    );
    // Hosted by another SP, the stem `S988` is another AE.
    assert_acor(
        "//m2msp.org/S988",
        &HostingContext::new("//other.org", "/id-in").unwrap(),
        &[("S988", false), ("//m2msp.org/S988", true)],
    );
}

/// AE-ID, absolute: `//*/myCSEID/C9886`.
#[test]
fn table_7_1_3_2_ae_id_absolute_star_mycseid_c9886() {
    assert_acor(
        "//*/myCSEID/C9886",
        &host(),
        &[
            ("//m2msp.org/myCSEID/C9886", true),
            ("//other.org/myCSEID/C9886", true),
            ("/myCSEID/C9886", true),
            ("//m2msp.org/myCSEID/C98861", false),
            ("//m2msp.org/myCSEID/C9887", false),
            ("//m2msp.org/other/C9886", false),
            // The CSE itself is not the AE.
            ("//m2msp.org/myCSEID", false),
            // The stem from /id-in is //m2msp.org/id-in/C9886.
            ("C9886", false),
        ],
    );
    // An AE registered with a hosting CSE called myCSEID sends its stem.
    assert_acor(
        "//*/myCSEID/C9886",
        &host_at("/myCSEID"),
        &[("C9886", true)],
    );
}

/// AE-ID, absolute: `//*/myCSE*/C9886`.
#[test]
fn table_7_1_3_2_ae_id_absolute_star_mycse_star_c9886() {
    assert_acor(
        "//*/myCSE*/C9886",
        &host(),
        &[
            ("//m2msp.org/myCSE1/C9886", true),
            ("//other.org/myCSEID/C9886", true),
            ("/myCSE99/C9886", true),
            ("//m2msp.org/myCSE1/C9887", false),
            ("//m2msp.org/yourCSE/C9886", false),
            // `*` does not cross `/`.
            ("//m2msp.org/myCSE1/x/C9886", false),
            ("//m2msp.org/myCSE1", false),
        ],
    );
}

/// AE-ID, SP-relative: `/myCSEID/C9886`.
#[test]
fn table_7_1_3_2_ae_id_sp_relative_mycseid_c9886() {
    assert_acor(
        "/myCSEID/C9886",
        &host(),
        &[
            ("/myCSEID/C9886", true),
            ("//m2msp.org/myCSEID/C9886", true),
            // Not from the hosting SP.
            ("//other.org/myCSEID/C9886", false),
            ("/myCSEID", false),
            ("/myCSEID/C98860", false),
            // A stem sent to /id-in is an AE of /id-in.
            ("C9886", false),
        ],
    );
    assert_acor("/myCSEID/C9886", &host_at("/myCSEID"), &[("C9886", true)]);
}

/// AE-ID, SP-relative: `/myCSEID/C98*`.
#[test]
fn table_7_1_3_2_ae_id_sp_relative_mycseid_c98_star() {
    assert_acor(
        "/myCSEID/C98*",
        &host(),
        &[
            ("/myCSEID/C9886", true),
            ("/myCSEID/C98abc", true),
            ("//m2msp.org/myCSEID/C9801", true),
            ("//other.org/myCSEID/C9886", false),
            ("/myCSEID/C9786", false),
            ("/myCSEID/XC98", false),
            ("/myCSEID2/C9886", false),
            ("/myCSEID", false),
        ],
    );
    assert_acor(
        "/myCSEID/C98*",
        &host_at("/myCSEID"),
        &[("C9812", true), ("C9912", false)],
    );
}

/// AE-ID, SP-relative: `/myCSE*/C98*`.
#[test]
fn table_7_1_3_2_ae_id_sp_relative_mycse_star_c98_star() {
    assert_acor(
        "/myCSE*/C98*",
        &host(),
        &[
            ("/myCSE1/C9812", true),
            ("/myCSEID/C9886", true),
            ("//m2msp.org/myCSE2/C98", true),
            ("//other.org/myCSE1/C9812", false),
            ("/myCSE1/C97", false),
            ("/yourCSE/C9812", false),
            // `*` does not cross `/`.
            ("/myCSE1/sub/C9812", false),
            ("/myCSE1", false),
        ],
    );
}

/// AE-ID, SP-relative: `/SmyAE*`.
#[test]
fn table_7_1_3_2_ae_id_sp_relative_smyae_star() {
    assert_acor(
        "/SmyAE*",
        &host(),
        &[
            ("/SmyAE1", true),
            // An S-stem is SP-relative `/S...` (TS-0001 7.2).
            ("SmyAE1", true),
            ("//m2msp.org/SmyAEx", true),
            ("//other.org/SmyAE1", false),
            ("/myCSEID/SmyAE1", false),
            ("/SyourAE", false),
            // A C-stem registered to the hosting CSE is //m2msp.org/id-in/CmyAE1.
            ("CmyAE1", false),
        ],
    );
}

// ---------------------------------------------------------------------------
// 7.1.3: SP domains, `all`, Role-IDs, groups, canonical IDs
// ---------------------------------------------------------------------------

/// 7.1.3: "Using a SP domain name in accessControlOriginators means all
/// AE-IDs and CSE-IDs matching the given domain name can be authorized."
#[test]
fn clause_7_1_3_sp_domain_matches_every_ae_and_cse_of_that_sp() {
    assert_acor(
        "//m2msp.org",
        &host(),
        &[
            ("//m2msp.org/myCSEID", true),
            ("//m2msp.org/myCSEID/C9886", true),
            ("//m2msp.org/S988", true),
            ("/other-cse", true),
            ("/other-cse/C1", true),
            ("S988", true),
            ("Cphone", true),
        ],
    );
}

#[test]
fn clause_7_1_3_sp_domain_does_not_match_another_sp() {
    assert_acor(
        "//m2msp.org",
        &host(),
        &[
            ("//other.org/myCSEID", false),
            ("//other.org/myCSEID/C9886", false),
            ("//m2msp.org.evil.com/myCSEID", false),
            ("//evilm2msp.org/myCSEID", false),
            ("//org/myCSEID", false),
        ],
    );
    // Hosted in another SP, stems belong to that SP.
    assert_acor(
        "//m2msp.org",
        &HostingContext::new("//other.org", "/id-in").unwrap(),
        &[
            ("Cphone", false),
            ("/id-in", false),
            ("//m2msp.org/x", true),
        ],
    );
}

/// Decision 1: domain entries take no wildcard; `//*` is rejected at
/// validation (it is not read as "every SP").
#[test]
fn decision_1_wildcard_sp_domain_is_rejected_at_validation() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[{"acor": ["Cphone", "//*"], "acop": 2}]"#,
        PVS_ADMIN,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "pv.acr[0].acor[1]");

    let errors = rejected(&acp_doc(
        "acp1",
        PVS_ADMIN,
        r#"[{"acor": ["//*.m2msp.org"], "acop": 2}]"#,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "pvs.acr[0].acor[0]");
}

/// 7.1.3: the reserved keyword "all" grants access to all originators.
#[test]
fn clause_7_1_3_all_matches_every_originator() {
    assert_acor(
        "all",
        &host(),
        &[
            ("Cphone", true),
            ("S988", true),
            ("/other-cse", true),
            ("/other-cse/C1", true),
            ("//m2msp.org/myCSEID/C9886", true),
            ("//other.org/anyCSE/Cany", true),
        ],
    );
}

const ROLE: &str = "tenant@roles.example.com";
/// Absolute ID of `Cphone` registered to the hosting CSE.
const PHONE_ABS: &str = "//m2msp.org/id-in/Cphone";

fn role_acp() -> CompiledAcp {
    one_rule(json!({"acor": [ROLE], "acop": 2}))
}

fn retrieve_claiming(fr: &str, roles: &[&str]) -> DecisionRequest {
    let mut r = retrieve(fr);
    r.role_ids = roles.iter().map(|s| s.to_string()).collect();
    r
}

/// 7.1.3 / spec-notes §8: a Role-ID entry matches a *verified* role of the
/// originator.
#[test]
fn clause_7_1_3_role_id_verified_role_permits() {
    let attrs = InMemoryAttributes::new().with_role(PHONE_ABS, ROLE);
    assert_permit(&check_with(
        &role_acp(),
        &retrieve_claiming("Cphone", &[ROLE]),
        &attrs,
    ));
    // The same originator in its absolute form.
    assert_permit(&check_with(
        &role_acp(),
        &retrieve_claiming(PHONE_ABS, &[ROLE]),
        &attrs,
    ));
}

#[test]
fn clause_7_1_3_role_id_unverified_claim_is_denied() {
    let d = check_with(
        &role_acp(),
        &retrieve_claiming("Cphone", &[ROLE]),
        &InMemoryAttributes::new(),
    );
    assert_deny(&d);
    let d = check(&role_acp(), &retrieve_claiming("Cphone", &[ROLE]));
    assert_deny(&d);
}

#[test]
fn clause_7_1_3_role_id_verified_for_another_originator_is_denied() {
    let attrs = InMemoryAttributes::new().with_role("//m2msp.org/id-in/Cother", ROLE);
    assert_deny(&check_with(
        &role_acp(),
        &retrieve_claiming("Cphone", &[ROLE]),
        &attrs,
    ));
}

#[test]
fn clause_7_1_3_role_id_without_claim_is_denied_even_if_held() {
    let attrs = InMemoryAttributes::new().with_role(PHONE_ABS, ROLE);
    assert_deny(&check_with(&role_acp(), &retrieve("Cphone"), &attrs));
}

/// Roles verified by other means (e.g. the `rids` of a verified token) come
/// in through `granted_roles`.
#[test]
fn clause_7_1_3_role_id_granted_roles_permit() {
    let granted = vec![ROLE.to_owned()];
    let acp = role_acp();
    let d = run(
        &[pv_of(&acp)],
        &retrieve("Cphone"),
        &host(),
        &NoAttributes,
        &granted,
    );
    assert_permit(&d);
    let other = vec!["other@roles.example.com".to_owned()];
    let d = run(
        &[pv_of(&acp)],
        &retrieve("Cphone"),
        &host(),
        &NoAttributes,
        &other,
    );
    assert_deny(&d);
}

/// 7.1.3: "Wildcard characters are not applicable to ... Role IDs": an entry
/// `*@roles.example.com` is either rejected or matches only that literal.
#[test]
fn clause_7_1_3_role_id_takes_no_wildcard() {
    let doc = acp_doc(
        "acp1",
        r#"[{"acor": ["*@roles.example.com", "ten*@roles.example.com"], "acop": 2}]"#,
        PVS_ADMIN,
    );
    if parse_and_validate(&doc).is_err() {
        return;
    }
    let acp = compile_one(&doc);
    let attrs = InMemoryAttributes::new().with_role(PHONE_ABS, ROLE);
    assert_deny(&check_with(
        &acp,
        &retrieve_claiming("Cphone", &[ROLE]),
        &attrs,
    ));
    let granted = vec![ROLE.to_owned()];
    assert_deny(&run(
        &[pv_of(&acp)],
        &retrieve("Cphone"),
        &host(),
        &NoAttributes,
        &granted,
    ));
}

/// Decision 10: a role that cannot be verified is Deny, reported as a
/// missing attribute.
#[test]
fn decision_10_role_verification_unavailable_is_missing_attribute() {
    let attrs = InMemoryAttributes {
        unavailable: Some("role repository down".to_owned()),
        ..InMemoryAttributes::default()
    };
    let d = check_with(&role_acp(), &retrieve_claiming("Cphone", &[ROLE]), &attrs);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    assert!(
        d.missing
            .iter()
            .any(|m| matches!(m, MissingAttribute::Role { role, .. } if role == ROLE)),
        "{d:#?}"
    );
}

const GROUP: &str = "/id-in/grp01";
/// [`GROUP`] as attribute sources know it: absolute (Decision 2).
const GROUP_ID: &str = "//m2msp.org/id-in/grp01";

fn group_acp() -> CompiledAcp {
    one_rule(json!({"acor": [GROUP], "acop": 2}))
}

fn group_attrs() -> InMemoryAttributes {
    InMemoryAttributes::new().with_group(
        GROUP_ID,
        ["//m2msp.org/id-in/Cmember", "//m2msp.org/other-cse"],
    )
}

/// TS-0001 9.6.2.1 / spec-notes §2.4: a `<group>` resource ID in acor admits
/// the group's members.
#[test]
fn ts_0001_9_6_2_1_group_member_is_permitted() {
    let attrs = group_attrs();
    for member in [
        "Cmember",
        "/id-in/Cmember",
        "//m2msp.org/id-in/Cmember",
        "/other-cse",
    ] {
        assert_permit(&check_with(&group_acp(), &retrieve(member), &attrs));
    }
}

#[test]
fn ts_0001_9_6_2_1_group_non_member_is_denied() {
    let attrs = group_attrs();
    for stranger in [
        "Cstranger",
        "/other-cse/Cmember",
        "//other.org/id-in/Cmember",
    ] {
        assert_deny(&check_with(&group_acp(), &retrieve(stranger), &attrs));
    }
}

/// An attribute source that answers group questions one by one and cannot
/// list an originator's groups, so that the engine asks entry by entry.
struct AskEachGroup(InMemoryAttributes);

impl AttributeSource for AskEachGroup {
    fn role_verified(&self, o: &str, r: &str, at: DateTime<Utc>) -> authz_core::Lookup<bool> {
        self.0.role_verified(o, r, at)
    }
    fn group_has_member(&self, group_id: &str, originator: &str) -> authz_core::Lookup<bool> {
        self.0.group_has_member(group_id, originator)
    }
    fn position(&self, o: &str, at: DateTime<Utc>) -> authz_core::Lookup<Position> {
        self.0.position(o, at)
    }
    fn countries_of_position(&self, p: &Position) -> authz_core::Lookup<Vec<String>> {
        self.0.countries_of_position(p)
    }
    fn country_of_ip(&self, ip: std::net::IpAddr) -> authz_core::Lookup<String> {
        self.0.country_of_ip(ip)
    }
}

/// TS-0001 9.6.2.1 with TS-0003 7.1.3 and Decision 2: a `<group>` resource
/// ID in acor names the group in any of its forms (TS-0001 7.2), read
/// against the hosting CSE of the request: CSE-relative `grp01`,
/// SP-relative `/id-in/grp01`, absolute with the SP domain in any case. A
/// CSE-relative entry at another hosting CSE names that CSE's group, never
/// the group of `/id-in`. Whether the source lists the originator's groups
/// or is asked entry by entry.
#[test]
fn ts_0001_9_6_2_1_group_ids_in_acor_are_read_against_the_hosting_cse() {
    let member = "//m2msp.org/id-in/Cmember";
    let groups = InMemoryAttributes::new()
        .with_group(GROUP_ID, [member])
        .with_group("//m2msp.org/id-in/Sgrp", [member]);
    let asked = AskEachGroup(groups.clone());
    for attrs in [&groups as &dyn AttributeSource, &asked] {
        for (entry, cse, permit) in [
            ("grp01", "/id-in", true),
            ("/id-in/grp01", "/id-in", true),
            ("//m2msp.org/id-in/grp01", "/id-in", true),
            ("//M2MSP.Org/id-in/grp01", "/id-in", true),
            // An `S...` stem is a CSE-relative resource ID here.
            ("Sgrp", "/id-in", true),
            ("grp01", "/id-mn", false),
            ("Sgrp", "/id-mn", false),
            ("/id-in/grp01", "/id-mn", true),
            ("//M2MSP.org/id-in/grp01", "/id-mn", true),
            ("/id-mn/grp01", "/id-in", false),
            ("//other.org/id-in/grp01", "/id-in", false),
            // Only the domain is case-insensitive.
            ("//m2msp.org/id-in/GRP01", "/id-in", false),
            ("/ID-IN/grp01", "/id-in", false),
        ] {
            let acp = one_rule(json!({"acor": [entry], "acop": 2}));
            let d = run(&[pv_of(&acp)], &retrieve(member), &host_at(cse), attrs, &[]);
            assert_eq!(
                d.effect,
                if permit { Effect::Permit } else { Effect::Deny },
                "acor {entry} at {cse}: {d:#?}"
            );
        }
    }
}

/// TS-0001 9.6.1.3.2 (spec notes §2.3 step 4): the default policy grants
/// "the Originator of the successful Create only". A `<group>` whose
/// resource ID equals the creator's (or custodian's) ID admits none of its
/// members through it, though the same entry in a stored ACP would.
#[test]
fn ts_0001_9_6_1_3_2_default_policy_owner_is_never_a_group() {
    for (owner, group) in [
        ("CBob", "//m2msp.org/id-in/CBob"),
        ("/id-in/grpX", "//m2msp.org/id-in/grpX"),
    ] {
        let attrs = InMemoryAttributes::new().with_group(group, ["//m2msp.org/id-in/CMallory"]);
        let rules: authz_core::SetOfAcrs =
            serde_json::from_value(json!({"acr": [{"acor": [owner], "acop": 63}]})).expect("rules");
        let default = CompiledAcp::default_policy("cnt", &rules).expect("compiles");
        assert_eq!(default.id().as_str(), "defaultPolicy:cnt");
        assert_deny(&check_with(&default, &retrieve("CMallory"), &attrs));
        if owner == "CBob" {
            assert_permit(&check_with(&default, &retrieve("CBob"), &attrs));
        }
        let stored = CompiledAcp::from_privileges("acp1", &rules).expect("compiles");
        assert_permit(&check_with(&stored, &retrieve("CMallory"), &attrs));
    }
}

/// Decision 3: an `acor` entry that the attribute source knows as a
/// `<group>` resource ID is that group and nothing else. The PIP's group
/// `grp1` of `/id-in` (known by its absolute ID) lists `Cae2`; a rule with
/// acor `grp1` (in any form) permits `Cae2` and denies the AE-ID stem
/// `grp1`, whose absolute ID `//sp.example.com/id-in/grp1` is spelled like
/// the entry but is no member. An `S` stem entry is the CSE-relative
/// resource ID `//sp/id-in/Sgrp` (a group here), not the AE-ID `//sp/Sgrp`;
/// `/Sgrp` is that AE-ID, no group, and still names it. A source that
/// cannot tell whether the entry is a group leaves it undetermined as an
/// originator ID (7.1.4; Decision 10): a Deny naming what is missing; a
/// source that keeps no group IDs (`NotFound`) leaves it an ID.
#[test]
fn decision_3_an_acor_entry_known_as_a_group_is_not_an_originator_id() {
    let ctx = HostingContext::new("//sp.example.com", "/id-in").expect("hosting");
    let attrs = InMemoryAttributes::new()
        .with_group(
            "//sp.example.com/id-in/grp1",
            ["//sp.example.com/id-in/Cae2"],
        )
        .with_group(
            "//sp.example.com/id-in/Sgrp",
            ["//sp.example.com/id-in/Cae2"],
        );
    let decide_one = |entry: &str, originator: &str, attrs: &dyn AttributeSource| {
        let acp = one_rule(json!({"acor": [entry], "acop": 2}));
        run(&[pv_of(&acp)], &retrieve(originator), &ctx, attrs, &[]).effect
    };
    for entry in [
        "grp1",
        "/id-in/grp1",
        "//sp.example.com/id-in/grp1",
        "//SP.example.com/id-in/grp1",
    ] {
        for originator in ["grp1", "/id-in/grp1", "//sp.example.com/id-in/grp1"] {
            assert_eq!(
                decide_one(entry, originator, &attrs),
                Effect::Deny,
                "acor {entry}, originator {originator}"
            );
        }
        assert_eq!(decide_one(entry, "Cae2", &attrs), Effect::Permit, "{entry}");
    }
    assert_eq!(decide_one("Sgrp", "Sgrp", &attrs), Effect::Deny);
    assert_eq!(decide_one("Sgrp", "Cae2", &attrs), Effect::Permit);
    assert_eq!(decide_one("/Sgrp", "Sgrp", &attrs), Effect::Permit);
    // A rule naming the originator by another entry (its SP domain, a
    // wildcard) still permits it.
    for other in ["//sp.example.com", "grp*"] {
        let acp = one_rule(json!({"acor": ["grp1", other], "acop": 2}));
        let d = run(&[pv_of(&acp)], &retrieve("grp1"), &ctx, &attrs, &[]);
        assert_permit(&d);
    }
    // Not a group the source knows: an originator ID as ever.
    assert_eq!(decide_one("grp2", "grp2", &attrs), Effect::Permit);
    let down = InMemoryAttributes {
        unavailable: Some("PIP down".to_owned()),
        ..attrs.clone()
    };
    let d = run(
        &[pv_of(&one_rule(json!({"acor": ["grp1"], "acop": 2})))],
        &retrieve("grp1"),
        &ctx,
        &down,
        &[],
    );
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        d.missing.iter().any(|m| matches!(
            m,
            MissingAttribute::GroupKind { id, reason }
                if id == "//sp.example.com/id-in/grp1" && reason == "PIP down"
        )),
        "{d:#?}"
    );
    // `S` stem entries are asked about one by one, with the same outcome.
    assert_eq!(decide_one("Sgrp", "Sgrp", &down), Effect::Deny);
    assert_eq!(decide_one("grp1", "grp1", &NoAttributes), Effect::Permit);
}

/// TS-0001 9.6.2.1: if the group cannot be retrieved the request shall be
/// rejected; Decision 10 reports it as a missing attribute naming the group.
#[test]
fn ts_0001_9_6_2_1_group_unavailable_denies_with_missing_attribute() {
    let attrs = InMemoryAttributes {
        unavailable: Some("group host unreachable".to_owned()),
        ..group_attrs()
    };
    let d = check_with(&group_acp(), &retrieve("Cmember"), &attrs);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    assert!(
        d.missing.iter().any(|m| matches!(
            m,
            MissingAttribute::GroupMembership { group, .. } if group == GROUP_ID
        )),
        "{d:#?}"
    );
}

/// TS-0001 9.6.2.1: a group that does not exist rejects the request.
#[test]
fn ts_0001_9_6_2_1_group_that_does_not_exist_denies() {
    assert_deny(&check(&group_acp(), &retrieve("Cmember")));
    assert_deny(&check_with(
        &group_acp(),
        &retrieve("Cmember"),
        &InMemoryAttributes::new(),
    ));
}

/// Permit-overrides (7.1.5): an unavailable group does not stop another rule
/// that names the originator directly from permitting, when the source can
/// tell that the direct entry is no group. When it cannot even tell that,
/// the direct entry is undetermined too (Decision 3, 10): Deny.
#[test]
fn clause_7_1_5_unavailable_group_does_not_block_a_direct_permit() {
    let acp = pv(r#"[{"acor": ["/id-in/grp01"], "acop": 63}, {"acor": ["Cmember"], "acop": 2}]"#);
    assert_permit(&check_with(&acp, &retrieve("Cmember"), &GroupIdsOnly));
    let down = InMemoryAttributes {
        unavailable: Some("group host unreachable".to_owned()),
        ..group_attrs()
    };
    let d = check_with(&acp, &retrieve("Cmember"), &down);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
}

/// 7.1.3: "Wildcard characters are not applicable to ... resource-IDs of
/// <group> resources": `/id-in/grp*` never expands to group `/id-in/grp01`.
#[test]
fn clause_7_1_3_group_id_takes_no_wildcard() {
    let acp = one_rule(json!({"acor": ["/id-in/grp*"], "acop": 2}));
    assert_deny(&check_with(&acp, &retrieve("Cmember"), &group_attrs()));
}

/// Decision 2: the AE-ID stem `Cxyz` sent to the hosting CSE, its
/// SP-relative form `/id-in/Cxyz` and its absolute form
/// `//m2msp.org/id-in/Cxyz` are the same originator, on either side.
#[test]
fn decision_2_ae_id_stem_sp_relative_and_absolute_forms_are_one_originator() {
    let forms = ["Cxyz", "/id-in/Cxyz", "//m2msp.org/id-in/Cxyz"];
    for entry in forms {
        assert_acor(
            entry,
            &host(),
            &[
                (forms[0], true),
                (forms[1], true),
                (forms[2], true),
                // Same stem on another CSE, or in another SP: someone else.
                ("/other-cse/Cxyz", false),
                ("//other.org/id-in/Cxyz", false),
                ("Cxyz2", false),
            ],
        );
    }
}

/// Decision 2 for SP-assigned stems: `Sxyz`, `/Sxyz`, `//m2msp.org/Sxyz`.
#[test]
fn decision_2_s_stem_forms_are_one_originator() {
    let forms = ["Sxyz", "/Sxyz", "//m2msp.org/Sxyz"];
    for entry in forms {
        assert_acor(
            entry,
            &host(),
            &[
                (forms[0], true),
                (forms[1], true),
                (forms[2], true),
                ("//other.org/Sxyz", false),
                ("/id-in/Sxyz", false),
            ],
        );
    }
}

/// Decision 2 whatever a CSE-relative entry holds: `Cx/y` is
/// `//m2msp.org/id-in/Cx/y`, as `/id-in/Cx/y` is, so the three forms match
/// one another, and a stem wildcard of two segments matches too.
#[test]
fn decision_2_a_cse_relative_entry_with_a_slash_is_one_originator() {
    let forms = ["Cx/y", "/id-in/Cx/y", "//m2msp.org/id-in/Cx/y"];
    for entry in forms.into_iter().chain(["C*/y"]) {
        assert_acor(
            entry,
            &host(),
            &[
                (forms[0], true),
                (forms[1], true),
                (forms[2], true),
                ("Cx", false),
                ("/other-cse/Cx/y", false),
                ("Cx/y/z", false),
            ],
        );
    }
}

/// Decision 2: a stem means an AE registered with the *hosting* CSE; the
/// same policy hosted elsewhere admits another AE.
#[test]
fn decision_2_stem_entry_depends_on_the_hosting_cse() {
    assert_acor(
        "Cxyz",
        &host_at("/mn-cse"),
        &[
            ("Cxyz", true),
            ("/mn-cse/Cxyz", true),
            ("//m2msp.org/mn-cse/Cxyz", true),
            ("/id-in/Cxyz", false),
        ],
    );
}

// ---------------------------------------------------------------------------
// Table 7.1.3-1 / spec-notes §1: accessControlOperations
// ---------------------------------------------------------------------------

/// The op needs exactly `bit`: a rule with only that bit permits, a rule with
/// every other bit denies (status Ok, failed on the operation).
#[track_caller]
fn assert_op_needs_bit(op: Operation, discovery: bool, bit: u32) {
    let mut r = req("Cphone", op);
    r.discovery = discovery;
    let only = one_rule(json!({"acor": ["Cphone"], "acop": bit}));
    assert_permit(&check(&only, &r));
    let others = one_rule(json!({"acor": ["Cphone"], "acop": 63 & !bit}));
    let d = check(&others, &r);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
    assert_eq!(
        first_failed(&d),
        &FailedCondition::Operation {
            requested: bit,
            allowed: 63 & !bit
        }
    );
}

#[test]
fn table_7_1_3_1_acop_create_is_bit_1() {
    assert_op_needs_bit(Operation::Create, false, 1);
}

#[test]
fn table_7_1_3_1_acop_retrieve_is_bit_2() {
    assert_op_needs_bit(Operation::Retrieve, false, 2);
}

#[test]
fn table_7_1_3_1_acop_update_is_bit_4() {
    assert_op_needs_bit(Operation::Update, false, 4);
}

#[test]
fn table_7_1_3_1_acop_delete_is_bit_8() {
    assert_op_needs_bit(Operation::Delete, false, 8);
}

#[test]
fn table_7_1_3_1_acop_notify_is_bit_16() {
    assert_op_needs_bit(Operation::Notify, false, 16);
}

#[test]
fn table_7_1_3_1_acop_discovery_is_bit_32() {
    assert_op_needs_bit(Operation::Retrieve, true, 32);
}

#[test]
fn table_7_1_3_1_acop_63_grants_every_operation() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 63}));
    for op in [
        Operation::Create,
        Operation::Retrieve,
        Operation::Update,
        Operation::Delete,
        Operation::Notify,
    ] {
        assert_permit(&check(&acp, &req("Cphone", op)));
    }
    let mut discovery = retrieve("Cphone");
    discovery.discovery = true;
    assert_permit(&check(&acp, &discovery));
}

/// Spec-notes §1: a Discovery (Retrieve with filterUsage 1) needs DISCOVERY;
/// RETRIEVE alone does not grant it.
#[test]
fn spec_notes_1_discovery_is_not_granted_by_retrieve_alone() {
    let mut r = retrieve("Cphone");
    r.discovery = true;
    let d = check(&one_rule(json!({"acor": ["Cphone"], "acop": 2})), &r);
    assert_deny(&d);
    assert_eq!(
        first_failed(&d),
        &FailedCondition::Operation {
            requested: 32,
            allowed: 2
        }
    );
    assert_permit(&check(
        &one_rule(json!({"acor": ["Cphone"], "acop": 34})),
        &r,
    ));
}

/// Spec-notes §1: "DISCOVERY alone does not grant a RETRIEVE of the resource
/// itself."
#[test]
fn spec_notes_1_discovery_alone_does_not_grant_plain_retrieve() {
    let d = check(
        &one_rule(json!({"acor": ["Cphone"], "acop": 32})),
        &retrieve("Cphone"),
    );
    assert_deny(&d);
    assert_eq!(
        first_failed(&d),
        &FailedCondition::Operation {
            requested: 2,
            allowed: 32
        }
    );
}

/// Spec-notes §1: fu=1 (discovery criteria) and fu=3 (IPE on-demand
/// discovery) are Discovery; fu=2 or no fu is a plain Retrieve.
#[test]
fn spec_notes_1_filter_usage_selects_discovery() {
    let retrieve_only = one_rule(json!({"acor": ["Cphone"], "acop": 2}));
    let discover_only = one_rule(json!({"acor": ["Cphone"], "acop": 32}));
    let now = at(NOON);
    for (doc, is_discovery) in [
        (
            r#"{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2, "fu": 1}"#,
            true,
        ),
        (
            r#"{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2, "fu": 3}"#,
            true,
        ),
        (
            r#"{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2, "fu": 2}"#,
            false,
        ),
        (r#"{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2}"#, false),
    ] {
        let r = request_from_json(doc, now).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(r.discovery, is_discovery, "{doc}");
        assert_eq!(check(&discover_only, &r).is_permit(), is_discovery, "{doc}");
        assert_eq!(
            check(&retrieve_only, &r).is_permit(),
            !is_discovery,
            "{doc}"
        );
    }
}

// ---------------------------------------------------------------------------
// Table 7.1.3-3 and 7.1.5: accessControlContexts
// ---------------------------------------------------------------------------

/// 7.1.5: res_ctxts(k) = res_context(k,1) OR ... OR res_context(k,M_k).
#[test]
fn clause_7_1_5_acco_elements_are_ored() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"acip": {"ipv4": ["10.0.0.0/8"]}},
        {"actw": ["* * 12 * * * *"]}
    ]}));
    // Only the second element holds.
    let mut r = retrieve_from_ip("Cphone", "192.0.2.1");
    assert_permit(&check(&acp, &r));
    // Only the first element holds.
    r.time = at("2024-03-15T13:00:00Z");
    r.ip = Some(ip("10.1.2.3"));
    assert_permit(&check(&acp, &r));
    // Neither holds.
    r.ip = Some(ip("192.0.2.1"));
    let d = check(&acp, &r);
    assert_deny(&d);
    assert_eq!(context_failures(&d).len(), 2, "{d:#?}");
}

/// 7.1.5: res_context(k,m) = res_time(k,m) AND res_ip(k,m) AND res_loc(k,m).
#[test]
fn clause_7_1_5_parts_of_one_acco_element_are_anded() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{
        "actw": ["* * 12 * * * *"],
        "acip": {"ipv4": ["10.0.0.0/8"]},
        "aclr": {"accc": ["DE"]}
    }]}));
    let good = || {
        let mut r = retrieve_from_ip("Cphone", "10.1.2.3");
        r.countries = vec!["DE".to_owned()];
        r
    };
    assert_permit(&check(&acp, &good()));

    let mut wrong_time = good();
    wrong_time.time = at("2024-03-15T13:00:00Z");
    assert_deny(&check(&acp, &wrong_time));

    let mut wrong_ip = good();
    wrong_ip.ip = Some(ip("192.0.2.1"));
    assert_deny(&check(&acp, &wrong_ip));

    let mut wrong_country = good();
    wrong_country.countries = vec!["KR".to_owned()];
    assert_deny(&check(&acp, &wrong_country));
}

/// 7.1.3 (pairs): a rule without accessControlContexts admits any context.
#[test]
fn clause_7_1_3_rule_without_contexts_admits_any_context() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2}));
    let mut r = retrieve_from_ip("Cphone", "198.51.100.7");
    r.time = at("2031-12-31T23:59:59Z");
    r.countries = vec!["KR".to_owned()];
    assert_permit(&check(&acp, &r));
    assert_permit(&check(&acp, &retrieve("Cphone")));
}

fn window(w: &str) -> CompiledAcp {
    one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"actw": [w]}]}))
}

#[track_caller]
fn assert_window(w: &str, cases: &[(&str, bool)]) {
    let acp = window(w);
    let wrong: Vec<String> = cases
        .iter()
        .filter(|&&(t, want)| check(&acp, &retrieve_at("Cphone", t)).is_permit() != want)
        .map(|&(t, want)| format!("  {t}: expected {}", if want { "Permit" } else { "Deny" }))
        .collect();
    assert!(wrong.is_empty(), "actw {w:?}:\n{}", wrong.join("\n"));
}

/// Spec-notes §3: `* 0-5 2,6,10 * * * *` means 02:00:00-02:05:59,
/// 06:00:00-06:05:59 and 10:00:00-10:05:59 every day.
#[test]
fn table_7_1_3_3_actw_spec_notes_example() {
    assert_window(
        "* 0-5 2,6,10 * * * *",
        &[
            ("2024-03-15T02:00:00Z", true),
            ("2024-03-15T02:05:59Z", true),
            ("2024-03-15T06:03:30Z", true),
            ("2024-03-15T10:00:00Z", true),
            ("2024-03-15T10:05:59Z", true),
            ("2024-12-25T06:00:00Z", true),
            ("2024-03-15T01:59:59Z", false),
            ("2024-03-15T02:06:00Z", false),
            ("2024-03-15T03:00:00Z", false),
            ("2024-03-15T10:06:00Z", false),
            ("2024-03-15T14:02:00Z", false),
            ("2024-03-15T22:05:00Z", false),
        ],
    );
}

/// Spec-notes §3 / Decision 4: day-of-week 0-6 with 0 = Sunday.
/// 2024-01-06 is a Saturday, 2024-01-07 a Sunday, 2024-01-08 a Monday.
#[test]
fn table_7_1_3_3_actw_day_of_week_0_is_sunday() {
    assert_window(
        "* * * * * 0 *",
        &[
            ("2024-01-07T00:00:00Z", true),
            ("2024-01-07T23:59:59Z", true),
            ("2024-01-06T12:00:00Z", false),
            ("2024-01-08T00:00:00Z", false),
        ],
    );
    assert_window(
        "* * * * * 6 *",
        &[
            ("2024-01-06T12:00:00Z", true),
            ("2024-01-07T12:00:00Z", false),
        ],
    );
    assert_window(
        "* * * * * 1-5 *",
        &[
            ("2024-01-08T12:00:00Z", true),
            ("2024-01-12T12:00:00Z", true),
            ("2024-01-06T12:00:00Z", false),
            ("2024-01-07T12:00:00Z", false),
        ],
    );
}

/// Spec-notes §3 / Decision 4: windows are interpreted in UTC, whatever the
/// local offset of the hosting CSE or the originator.
#[test]
fn table_7_1_3_3_actw_is_evaluated_in_utc() {
    // 2024-01-08 01:30 at +02:00 is Sunday 2024-01-07 23:30 UTC.
    let local = FixedOffset::east_opt(2 * 3600)
        .unwrap()
        .with_ymd_and_hms(2024, 1, 8, 1, 30, 0)
        .unwrap();
    let mut r = retrieve("Cphone");
    r.time = local.with_timezone(&Utc);
    assert_permit(&check(&window("* * 23 * * 0 *"), &r));
    assert_deny(&check(&window("* * 1 * * 1 *"), &r));

    // The m2m:timestamp of a request is UTC too.
    let r = request_from_json(
        r#"{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2, "rtm": "20240107T233000"}"#,
        at(NOON),
    )
    .unwrap();
    assert_eq!(r.time, at("2024-01-07T23:30:00Z"));
    assert_permit(&check(&window("* 30 23 7 1 0 2024"), &r));
}

/// Spec-notes §2.1: inside one actw list a match on any entry is enough.
#[test]
fn table_7_1_3_3_actw_list_entries_are_ored() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"actw": ["* * 2 * * * *", "* * 12 * * * *"]}
    ]}));
    assert_permit(&check(&acp, &retrieve_at("Cphone", "2024-03-15T02:30:00Z")));
    assert_permit(&check(&acp, &retrieve_at("Cphone", "2024-03-15T12:30:00Z")));
    assert_deny(&check(&acp, &retrieve_at("Cphone", "2024-03-15T07:30:00Z")));
}

/// Decision 4: day-of-month and day-of-week are ANDed like every other field
/// (unlike Vixie cron). 2024-01-01 is a Monday.
#[test]
fn decision_4_actw_day_of_month_and_day_of_week_are_anded() {
    assert_window(
        "* * * 1 * 1 *",
        &[
            ("2024-01-01T12:00:00Z", true),
            ("2024-01-08T12:00:00Z", false),
            ("2024-02-01T12:00:00Z", false),
        ],
    );
}

/// Spec-notes §3 / Decision 4: ranges with steps, `*/n`, and the year field.
#[test]
fn decision_4_actw_steps_and_years() {
    assert_window(
        "* * 0-23/2 * * * *",
        &[
            ("2024-03-15T00:10:00Z", true),
            ("2024-03-15T12:10:00Z", true),
            ("2024-03-15T22:10:00Z", true),
            ("2024-03-15T13:10:00Z", false),
        ],
    );
    assert_window(
        "* */15 * * * * *",
        &[
            ("2024-03-15T12:00:10Z", true),
            ("2024-03-15T12:45:10Z", true),
            ("2024-03-15T12:31:10Z", false),
        ],
    );
    assert_window(
        "* * * * * * 2024",
        &[
            ("2024-03-15T12:00:00Z", true),
            ("2025-03-15T12:00:00Z", false),
        ],
    );
    assert_window(
        "* * * * 3 * 2025-2030",
        &[
            ("2027-03-01T00:00:00Z", true),
            ("2024-03-15T12:00:00Z", false),
            ("2027-04-01T00:00:00Z", false),
        ],
    );
}

fn acip(v4: &[&str], v6: &[&str]) -> CompiledAcp {
    one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"acip": {"ipv4": v4, "ipv6": v6}}
    ]}))
}

#[track_caller]
fn assert_ips(acp: &CompiledAcp, cases: &[(&str, bool)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|&&(a, want)| check(acp, &retrieve_from_ip("Cphone", a)).is_permit() != want)
        .map(|&(a, want)| format!("  {a}: expected {}", if want { "Permit" } else { "Deny" }))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Table 7.1.3-3: IPv4 in dotted-decimal notation with CIDR suffix.
#[test]
fn table_7_1_3_3_acip_ipv4_cidr() {
    assert_ips(
        &acip(&["192.168.1.0/24", "10.125.0.0/16"], &[]),
        &[
            ("192.168.1.0", true),
            ("192.168.1.77", true),
            ("192.168.1.255", true),
            ("10.125.200.1", true),
            ("192.168.0.255", false),
            ("192.168.2.0", false),
            ("10.126.0.1", false),
        ],
    );
    assert_ips(
        &acip(&["0.0.0.0/0"], &[]),
        &[("1.2.3.4", true), ("255.255.255.255", true)],
    );
}

/// Spec-notes §2.1: the CIDR suffix is optional; a bare address admits only
/// itself.
#[test]
fn table_7_1_3_3_acip_ipv4_bare_address() {
    assert_ips(
        &acip(&["122.77.12.1"], &[]),
        &[
            ("122.77.12.1", true),
            ("122.77.12.2", false),
            ("122.77.12.0", false),
        ],
    );
}

/// Table 7.1.3-3: IPv6 as colon-separated hexadecimal groups with CIDR suffix.
#[test]
fn table_7_1_3_3_acip_ipv6_cidr() {
    assert_ips(
        &acip(&[], &["abcd:ffff:abb0:aaaa::/64", "fd00::/8"]),
        &[
            ("abcd:ffff:abb0:aaaa::1", true),
            ("abcd:ffff:abb0:aaaa:ffff:ffff:ffff:ffff", true),
            ("fd12:3456::1", true),
            ("abcd:ffff:abb0:aaab::1", false),
            ("fe80::1", false),
        ],
    );
    assert_ips(
        &acip(&[], &["::/0"]),
        &[("2001:db8::1", true), ("::1", true)],
    );
}

#[test]
fn table_7_1_3_3_acip_ipv6_bare_address() {
    assert_ips(
        &acip(&[], &["2001:db8::1"]),
        &[
            ("2001:db8::1", true),
            ("2001:db8::2", false),
            ("2001:db8:0:0:0:0:0:1", true),
        ],
    );
}

/// Table 7.1.3-3 and spec notes §2.1: dotted decimal with an optional CIDR
/// suffix, read the same with or without it. A zero-padded octet
/// (`192.168.001.010`, which some tools read as octal) or prefix (`/08`) is
/// refused both ways, never read one way with a suffix and refused without.
#[test]
fn table_7_1_3_3_acip_one_reading_with_or_without_a_suffix() {
    for (v4, v6, path) in [
        (r#"["192.168.001.010"]"#, "[]", "ipv4[0]"),
        (r#"["192.168.001.010/32"]"#, "[]", "ipv4[0]"),
        (r#"["010.0.0.1/32"]"#, "[]", "ipv4[0]"),
        (r#"["10.0.0.0/08"]"#, "[]", "ipv4[0]"),
        (r#"["10.0.0.0/"]"#, "[]", "ipv4[0]"),
        (r#"["10.0.0.0/+8"]"#, "[]", "ipv4[0]"),
        (r#"["10.0.0.0/33"]"#, "[]", "ipv4[0]"),
        ("[]", r#"["::ffff:010.0.0.1"]"#, "ipv6[0]"),
        ("[]", r#"["::ffff:010.0.0.1/128"]"#, "ipv6[0]"),
        ("[]", r#"["fd00::/0129"]"#, "ipv6[0]"),
        ("[]", r#"["fd00::/129"]"#, "ipv6[0]"),
    ] {
        let errors = rejected(&acp_doc(
            "acp1",
            &format!(
                r#"[{{"acor": ["C0"], "acop": 2, "acco": [{{"acip": {{"ipv4": {v4}, "ipv6": {v6}}}}}]}}]"#
            ),
            PVS_ADMIN,
        ));
        assert_error_at(
            &errors,
            &format!("pv.acr[0].acco[0].acip.{path}"),
            "is not an IPv",
        );
    }
    assert_ips(
        &acip(&["192.168.1.10/32", "10.0.0.0/8"], &["::ffff:10.0.0.1/128"]),
        &[
            ("192.168.1.10", true),
            ("10.9.9.9", true),
            ("192.168.1.11", false),
        ],
    );
}

/// Spec-notes §2.1: acip may carry ipv4, ipv6 or both; a match in either list
/// is enough, and an address of the other family never matches a list.
#[test]
fn table_7_1_3_3_acip_families() {
    assert_ips(
        &acip(&["192.168.1.0/24"], &["fd00::/8"]),
        &[
            ("192.168.1.9", true),
            ("fd00::9", true),
            ("10.0.0.1", false),
            ("2001:db8::1", false),
        ],
    );
    assert_ips(&acip(&["0.0.0.0/0"], &[]), &[("2001:db8::1", false)]);
    assert_ips(&acip(&[], &["2001:db8::/32"]), &[("192.0.2.1", false)]);
}

/// 7.1.4 / Decision 10: an acip rule cannot hold for a request whose IP is
/// unknown; that is Deny, never Permit, "reported with a status explaining
/// why": MISSING_ATTRIBUTE, naming the IP address.
#[test]
fn table_7_1_3_3_acip_request_without_ip_denies() {
    let d = check(&acip(&["0.0.0.0/0"], &["::/0"]), &retrieve("Cphone"));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    assert!(
        matches!(d.missing.as_slice(), [MissingAttribute::IpAddress { .. }]),
        "{d:#?}"
    );
    assert!(
        matches!(context_failures(&d), [ContextFailure::IpAddress { .. }]),
        "{d:#?}"
    );
    // With the IP given and outside the ranges, the Deny is determinate.
    let d = check(
        &acip(&["10.0.0.0/8"], &[]),
        &retrieve_from_ip("Cphone", "11.0.0.1"),
    );
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
    assert!(d.missing.is_empty(), "{d:#?}");
}

/// Project choice (README): an IPv4 address and its IPv4-mapped IPv6 form
/// `::ffff:a.b.c.d` are the same peer, whichever form the entry or the
/// request uses.
#[test]
fn table_7_1_3_3_acip_ipv4_mapped_either_way() {
    assert_ips(
        &acip(&["10.0.0.0/8"], &[]),
        &[("::ffff:10.1.2.3", true), ("::ffff:11.1.2.3", false)],
    );
    assert_ips(
        &acip(&[], &["::ffff:10.0.0.0/104"]),
        &[
            ("10.1.2.3", true),
            ("::ffff:10.1.2.3", true),
            ("11.1.2.3", false),
            ("::ffff:11.1.2.3", false),
        ],
    );
}

/// Table 7.1.3-3 lists IPv4 and IPv6 addresses as separate sets: an IPv6
/// entry that is not in the mapped form (`::/0`, `::/1`, `::fffe:0:0/95`)
/// holds IPv6 addresses only. It admits no address given as IPv4; an
/// IPv4-mapped address given as IPv6 is an IPv6 address it contains
/// (`ismember`, 7.1.5), so a wider entry never admits less than the
/// mapped block inside it.
#[test]
fn table_7_1_3_3_acip_ipv6_entries_hold_ipv6_addresses_only() {
    for (entry, v6_peer) in [
        ("::/0", "2001:db8::1"),
        ("::/1", "::1"),
        ("::/80", "::1"),
        ("::fffe:0:0/95", "::fffe:0:1"),
    ] {
        assert_ips(
            &acip(&[], &[entry]),
            &[
                ("10.0.0.1", false),
                ("::ffff:10.0.0.1", true),
                (v6_peer, true),
            ],
        );
    }
    // Outside the entry, the mapped form is refused like any address.
    assert_ips(
        &acip(&[], &["2001:db8::/32"]),
        &[("::ffff:10.0.0.1", false), ("10.0.0.1", false)],
    );
    // An IPv4 entry admits no IPv6 peer, however wide.
    assert_ips(
        &acip(&["0.0.0.0/0"], &[]),
        &[("2001:db8::1", false), ("::1", false), ("10.0.0.1", true)],
    );
}

/// Munich, 500 m.
fn circle() -> CompiledAcp {
    one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"aclr": {"accr": [48.137, 11.575, 500.0]}}
    ]}))
}

fn retrieve_at_position(p: Position) -> DecisionRequest {
    let mut r = retrieve("Cphone");
    r.position = Some(p);
    r
}

/// Table 7.1.3-3 / Annex F: a circle with radius R around (lat, lon).
/// 0.003 degrees of latitude is about 334 m.
#[test]
fn table_7_1_3_3_aclr_circle_inside_permits() {
    assert_permit(&check(
        &circle(),
        &retrieve_at_position(pos(48.137, 11.575, 0.0)),
    ));
    assert_permit(&check(
        &circle(),
        &retrieve_at_position(pos(48.140, 11.575, 0.0)),
    ));
    assert_permit(&check(
        &circle(),
        &retrieve_at_position(pos(48.134, 11.575, 0.0)),
    ));
}

/// 0.01 degrees of latitude is about 1.1 km.
#[test]
fn table_7_1_3_3_aclr_circle_outside_denies() {
    let d = check(&circle(), &retrieve_at_position(pos(48.147, 11.575, 0.0)));
    assert_deny(&d);
    assert!(
        matches!(context_failures(&d), [ContextFailure::Location { .. }]),
        "{d:#?}"
    );
    assert_deny(&check(
        &circle(),
        &retrieve_at_position(pos(-48.137, -11.575, 0.0)),
    ));
}

/// Decision 5: with an uncertainty radius, the whole uncertainty disk must lie
/// inside the circle (distance + uncertainty <= radius).
#[test]
fn decision_5_aclr_circle_uncertainty_disk_partly_outside_denies() {
    // ~334 m + 200 m > 500 m: partly outside.
    assert_deny(&check(
        &circle(),
        &retrieve_at_position(pos(48.140, 11.575, 200.0)),
    ));
    // Centre inside, disk larger than the circle.
    assert_deny(&check(
        &circle(),
        &retrieve_at_position(pos(48.137, 11.575, 600.0)),
    ));
    // ~334 m + 100 m <= 500 m: wholly inside.
    assert_permit(&check(
        &circle(),
        &retrieve_at_position(pos(48.140, 11.575, 100.0)),
    ));
}

/// Decision 5 (haversine distance <= radius): one point written two ways
/// is at distance 0 from itself, so it lies in a circle of radius 0 around
/// the other spelling, and a disk whose uncertainty equals the radius fits.
/// The formula's rounding (about 1e-9 m for these) must not exclude it;
/// a point a metre away stays outside.
#[test]
fn decision_5_aclr_circle_one_point_written_two_ways_is_inside() {
    let around = |lat: f64, lon: f64, radius: f64| {
        one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
            {"aclr": {"accr": [lat, lon, radius]}}
        ]}))
    };
    for (centre, at, uncertainty) in [
        ((0.0, 180.0), (0.0, -180.0), 0.0),
        ((0.0, 180.0), (0.0, -180.0), 100.0),
        ((90.0, 0.0), (90.0, 123.0), 0.0),
        ((-90.0, 45.0), (-90.0, -170.0), 0.0),
    ] {
        let acp = around(centre.0, centre.1, uncertainty);
        assert_permit(&check(
            &acp,
            &retrieve_at_position(pos(at.0, at.1, uncertainty)),
        ));
    }
    // About 1.1 m east of the antimeridian point: outside a 1 m circle.
    assert_deny(&check(
        &around(0.0, 180.0, 1.0),
        &retrieve_at_position(pos(0.0, -179.99999, 0.0)),
    ));
    // At the centre, a disk a millimetre wider than the circle is not in
    // it: the allowance is for rounding (a micrometre), not for inputs.
    assert_deny(&check(
        &around(10.0, 20.0, 1000.0),
        &retrieve_at_position(pos(10.0, 20.0, 1000.001)),
    ));
    assert_permit(&check(
        &around(10.0, 20.0, 1000.0),
        &retrieve_at_position(pos(10.0, 20.0, 1000.0)),
    ));
}

/// Decision 5: the position may come from the attribute source.
#[test]
fn decision_5_aclr_circle_position_from_attributes() {
    let inside = InMemoryAttributes::new().with_position(PHONE_ABS, pos(48.140, 11.575, 0.0));
    assert_permit(&check_with(&circle(), &retrieve("Cphone"), &inside));
    let outside = InMemoryAttributes::new().with_position(PHONE_ABS, pos(48.147, 11.575, 0.0));
    assert_deny(&check_with(&circle(), &retrieve("Cphone"), &outside));
}

/// Decision 5: a location rule whose position is unknown does not match.
#[test]
fn decision_5_aclr_circle_position_unknown_denies() {
    assert_deny(&check(&circle(), &retrieve("Cphone")));
    assert_deny(&check_with(
        &circle(),
        &retrieve("Cphone"),
        &InMemoryAttributes::new(),
    ));
}

fn countries(codes: &[&str]) -> CompiledAcp {
    one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {"accc": codes}}]}))
}

/// Table 7.1.3-3: a country code; Decision 5: given in the request.
#[test]
fn table_7_1_3_3_aclr_country_from_request() {
    let acp = countries(&["KR", "DE"]);
    let mut r = retrieve("Cphone");
    r.countries = vec!["DE".to_owned()];
    assert_permit(&check(&acp, &r));
    r.countries = vec!["KR".to_owned()];
    assert_permit(&check(&acp, &r));
    r.countries = vec!["FR".to_owned()];
    assert_deny(&check(&acp, &r));
}

/// Decision 5: the country derived by the PIP from the originator's IP.
#[test]
fn decision_5_aclr_country_from_ip_via_attributes() {
    let attrs = InMemoryAttributes::new()
        .with_ip_country("203.0.113.0/24".parse().unwrap(), "DE")
        .with_ip_country("198.51.100.0/24".parse().unwrap(), "FR");
    let acp = countries(&["DE"]);
    assert_permit(&check_with(
        &acp,
        &retrieve_from_ip("Cphone", "203.0.113.5"),
        &attrs,
    ));
    assert_deny(&check_with(
        &acp,
        &retrieve_from_ip("Cphone", "198.51.100.5"),
        &attrs,
    ));
}

/// Decision 5: the country derived by the PIP from the originator's position
/// (carried in the request, or known to the PIP).
#[test]
fn decision_5_aclr_country_from_position_via_attributes() {
    let germany =
        InMemoryAttributes::new().with_country_circle(pos(51.0, 10.0, 0.0), 450_000.0, "DE");
    let acp = countries(&["DE"]);
    assert_permit(&check_with(
        &acp,
        &retrieve_at_position(pos(48.137, 11.575, 0.0)),
        &germany,
    ));
    assert_deny(&check_with(
        &acp,
        &retrieve_at_position(pos(40.4, -3.7, 0.0)),
        &germany,
    ));

    let known = germany
        .clone()
        .with_position(PHONE_ABS, pos(52.52, 13.405, 0.0));
    assert_permit(&check_with(&acp, &retrieve("Cphone"), &known));
    let far = germany.with_position(PHONE_ABS, pos(40.4, -3.7, 0.0));
    assert_deny(&check_with(&acp, &retrieve("Cphone"), &far));
}

/// Decision 5: unknown country → the location rule does not match (Deny);
/// Decision 10: the Deny says the country is missing.
#[test]
fn decision_5_aclr_country_unknown_denies() {
    let acp = countries(&["DE"]);
    let d = check(&acp, &retrieve("Cphone"));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    // The country alone is what the rule needed: a position nobody knows
    // is said in the country's note, not as a second missing attribute.
    assert!(
        matches!(d.missing.as_slice(), [MissingAttribute::Country { reason }]
            if reason.contains("position")),
        "{d:#?}"
    );
    // A position the source could not look up is reported too.
    let down = InMemoryAttributes {
        unavailable: Some("location server unreachable".to_owned()),
        ..InMemoryAttributes::new()
    };
    let d = check_with(&acp, &retrieve("Cphone"), &down);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    assert!(
        d.missing.iter().any(|m| matches!(m,
            MissingAttribute::Position { reason } if reason == "location server unreachable")),
        "{d:#?}"
    );
    // IP and position known, but the PIP knows no country for them.
    let mut r = retrieve_from_ip("Cphone", "192.0.2.1");
    r.position = Some(pos(0.0, -160.0, 0.0));
    let d = check_with(&acp, &r, &InMemoryAttributes::new());
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
}

/// Decision 5 / 10: a position known to be in no country (at sea) is an
/// answer, not a missing attribute: Deny with status OK.
#[test]
fn decision_5_aclr_position_in_no_country_is_a_determinate_deny() {
    /// A source that knows every position lies in no country.
    struct AtSea;
    impl AttributeSource for AtSea {
        fn role_verified(&self, _: &str, _: &str, _: DateTime<Utc>) -> authz_core::Lookup<bool> {
            authz_core::Lookup::NotFound
        }
        fn group_has_member(&self, _: &str, _: &str) -> authz_core::Lookup<bool> {
            authz_core::Lookup::NotFound
        }
        fn position(&self, _: &str, _: DateTime<Utc>) -> authz_core::Lookup<Position> {
            authz_core::Lookup::NotFound
        }
        fn countries_of_position(&self, _: &Position) -> authz_core::Lookup<Vec<String>> {
            authz_core::Lookup::Found(Vec::new())
        }
        fn country_of_ip(&self, _: IpAddr) -> authz_core::Lookup<String> {
            authz_core::Lookup::NotFound
        }
    }
    let acp = countries(&["DE"]);
    let d = check_with(&acp, &retrieve_at_position(pos(0.0, -160.0, 0.0)), &AtSea);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert!(d.missing.is_empty(), "{d:#?}");
}

/// Decision 10: a circle rule for an originator whose position nobody
/// knows is a Deny that names the missing position.
#[test]
fn decision_10_unknown_position_is_reported_missing() {
    let d = check_with(&circle(), &retrieve("Cphone"), &InMemoryAttributes::new());
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute);
    assert!(
        matches!(d.missing.as_slice(), [MissingAttribute::Position { .. }]),
        "{d:#?}"
    );
}

/// Decision 11: `acco: []` constrains nothing.
#[test]
fn decision_11_empty_acco_list_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": []}));
    assert_permit(&check(&acp, &retrieve("Cphone")));
}

/// Decision 11: an `acco` element `{}` admits every request, so the OR of the
/// elements holds whatever the other elements say.
#[test]
fn decision_11_empty_acco_element_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{}]}));
    assert_permit(&check(&acp, &retrieve("Cphone")));
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"actw": ["* * * * * * 2000"]}, {}
    ]}));
    assert_permit(&check(&acp, &retrieve("Cphone")));
}

/// Decision 11: `actw: []` constrains nothing; the other parts still do.
#[test]
fn decision_11_empty_actw_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"actw": []}]}));
    assert_permit(&check(&acp, &retrieve_at("Cphone", "2031-07-04T03:04:05Z")));
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"actw": [], "acip": {"ipv4": ["10.0.0.0/8"]}}
    ]}));
    assert_permit(&check(&acp, &retrieve_from_ip("Cphone", "10.9.9.9")));
    assert_deny(&check(&acp, &retrieve_from_ip("Cphone", "11.9.9.9")));
}

/// Decision 11: `acip: {}` and an acip whose lists are all empty constrain
/// nothing, even for a request without an IP address.
#[test]
fn decision_11_empty_acip_is_no_constraint() {
    for rule in [
        json!({"acor": ["Cphone"], "acop": 2, "acco": [{"acip": {}}]}),
        json!({"acor": ["Cphone"], "acop": 2, "acco": [{"acip": {"ipv4": [], "ipv6": []}}]}),
    ] {
        let acp = one_rule(rule);
        assert_permit(&check(&acp, &retrieve("Cphone")));
        assert_permit(&check(&acp, &retrieve_from_ip("Cphone", "2001:db8::1")));
    }
}

/// Decision 11: an empty object in general: `aclr: {}` constrains nothing.
#[test]
fn decision_11_empty_aclr_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {}}]}));
    assert_permit(&check(&acp, &retrieve("Cphone")));
}

/// Decision 11: `spty: {}` in an `acod` element constrains nothing, exactly
/// as an absent `spty`: a CREATE of a `chty` type with any specialization,
/// or none, is permitted; `chty` still decides.
#[test]
fn decision_11_empty_spty_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"spty": {}, "chty": [13, 4]}
    ]}));
    let mut firmware = create("Cphone", Some(3), 13);
    firmware.specialization = Some(Specialization::MgmtDefinition(1001));
    assert_permit(&check(&acp, &firmware));
    assert_permit(&check(&acp, &create("Cphone", Some(3), 4)));
    assert_deny(&check(&acp, &create("Cphone", Some(3), 3)));
}

/// Decision 11: `acod: []` constrains nothing (applies to all child types).
#[test]
fn decision_11_empty_acod_is_no_constraint() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": []}));
    for (target, created) in [(3, 4), (2, 3), (5, 2), (3, 23)] {
        assert_permit(&check(&acp, &create("Cphone", Some(target), created)));
    }
}

// ---------------------------------------------------------------------------
// Table 7.1.3-4 and 7.1.5: accessControlObjectDetails
// ---------------------------------------------------------------------------

/// 7.1.3 / 7.1.5: "res_objd(k) applies to Create request primitives only";
/// 7.1.2-1: the Resource Type is "Applicable to Create operations only".
#[test]
fn clause_7_1_3_acod_applies_to_create_only() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 63, "acod": [{"ty": 3, "chty": [4]}]}));
    for op in [
        Operation::Retrieve,
        Operation::Update,
        Operation::Delete,
        Operation::Notify,
    ] {
        let mut r = req("Cphone", op);
        // The target is an AE, not a container: the acod would fail for a CREATE.
        r.target_type = Some(2);
        assert_permit(&check(&acp, &r));
    }
    let mut discovery = retrieve("Cphone");
    discovery.discovery = true;
    discovery.target_type = Some(2);
    assert_permit(&check(&acp, &discovery));
    // The CREATE itself is held to the acod.
    assert_deny(&check(&acp, &create("Cphone", Some(2), 4)));
}

/// 7.1.5: res_childResource = ismember(Resource Type, childResourceType).
#[test]
fn table_7_1_3_4_chty_membership() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"chty": [4, 23]}]}));
    assert_permit(&check(&acp, &create("Cphone", Some(3), 4)));
    assert_permit(&check(&acp, &create("Cphone", Some(3), 23)));
    let d = check(&acp, &create("Cphone", Some(3), 3));
    assert_deny(&d);
    assert!(
        matches!(first_failed(&d), FailedCondition::ObjectDetails { .. }),
        "{d:#?}"
    );
}

/// 7.1.5: `ty` is compared with the type of the resource addressed in the To
/// parameter (the parent), not with the type being created.
#[test]
fn table_7_1_3_4_ty_matches_the_target_type() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 3, "chty": [3, 4]}]}));
    // contentInstance or container under a container.
    assert_permit(&check(&acp, &create("Cphone", Some(3), 4)));
    assert_permit(&check(&acp, &create("Cphone", Some(3), 3)));
    // A container under an AE: the created type is 3, the target's is 2.
    assert_deny(&check(&acp, &create("Cphone", Some(2), 3)));
    // Target type unknown: cannot match.
    assert_deny(&check(&acp, &create("Cphone", None, 4)));
}

/// Decision 13: `spty` is compared with the specialization (mgd) of the
/// resource being created (TS-0003 7.1.5).
#[test]
fn decision_13_spty_mgd_matches_the_created_resource() {
    // mgmtObj (13) of mgmtDefinition 1001 (firmware) under a node (14).
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"ty": 14, "spty": {"mgd": 1001}, "chty": [13]}
    ]}));
    let mut r = create("Cphone", Some(14), 13);
    r.specialization = Some(Specialization::MgmtDefinition(1001));
    assert_permit(&check(&acp, &r));
    r.specialization = Some(Specialization::MgmtDefinition(1007));
    assert_deny(&check(&acp, &r));
    r.specialization = None;
    assert_deny(&check(&acp, &r));
    // Right specialization, wrong target type.
    let mut r = create("Cphone", Some(3), 13);
    r.specialization = Some(Specialization::MgmtDefinition(1001));
    assert_deny(&check(&acp, &r));
}

/// Decision 13 with a containerDefinition (flexContainer, 28), and without
/// `ty`: then only the specialization and chty are checked.
#[test]
fn decision_13_spty_cnd_matches_the_created_resource() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"spty": {"cnd": "org.onem2m.home.moduleclass.binarySwitch"}, "chty": [28]}
    ]}));
    let doc = r#"{"fr": "Cphone", "to": "/id-in/dev1", "op": 1, "rrt": 28, "tgty": 28,
                  "spty": {"cnd": "org.onem2m.home.moduleclass.binarySwitch"}}"#;
    let r = request_from_json(doc, at(NOON)).unwrap();
    assert_permit(&check(&acp, &r));
    let mut other = r.clone();
    other.specialization = Some(Specialization::ContainerDefinition(
        "org.onem2m.home.moduleclass.colour".to_owned(),
    ));
    assert_deny(&check(&acp, &other));
    let mut any_target = r.clone();
    any_target.target_type = Some(5);
    assert_permit(&check(&acp, &any_target));
}

/// 7.1.5: res_objd(k) = res_objdetails(k,1) OR ... OR res_objdetails(k,M_k).
#[test]
fn clause_7_1_5_acod_elements_are_ored() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"ty": 2, "chty": [3]},
        {"ty": 3, "chty": [4]}
    ]}));
    assert_permit(&check(&acp, &create("Cphone", Some(2), 3)));
    assert_permit(&check(&acp, &create("Cphone", Some(3), 4)));
    assert_deny(&check(&acp, &create("Cphone", Some(2), 4)));
    assert_deny(&check(&acp, &create("Cphone", Some(3), 3)));
}

/// 7.1.5: "If the value of the resourceType element is 13 ... or 28 ..., the
/// optional specializationID element shall also be included."
#[test]
fn clause_7_1_5_ty_13_or_28_without_spty_is_rejected() {
    for ty in [13, 28] {
        let doc = acp_doc(
            "acp1",
            &json!([{"acor": ["Cphone"], "acop": 1, "acod": [{"ty": ty, "chty": [4]}]}])
                .to_string(),
            PVS_ADMIN,
        );
        let errors = rejected(&doc);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].path, "pv.acr[0].acod[0].spty", "{errors:#?}");
    }
    // With spty it is fine.
    pv(
        r#"[{"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 13, "spty": {"mgd": 1001}, "chty": [23]}]}]"#,
    );
}

/// 7.1.5: "The childResourceType element is mandatory in any given
/// accessControlObjectDetails element."
#[test]
fn clause_7_1_5_acod_element_without_chty_is_rejected() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[{"acor": ["Cphone"], "acop": 1}, {"acor": ["Cphone"], "acop": 1, "acod": [{"chty": [4]}, {"ty": 3}]}]"#,
        PVS_ADMIN,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "pv.acr[1].acod[1].chty");
}

/// Spec notes §4: resource types start at 1 (0 is memberType "mixed", no
/// resource type), so an acod `ty` or `chty` entry 0 could never match.
#[test]
fn acod_resource_type_0_is_rejected_with_its_path() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[{"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 0, "chty": [4, 0]}]}]"#,
        PVS_ADMIN,
    ));
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["pv.acr[0].acod[0].chty[1]", "pv.acr[0].acod[0].ty"],
        "{errors:#?}"
    );
}

/// 7.1.4: a CREATE whose Resource Type is unknown cannot satisfy an acod.
#[test]
fn clause_7_1_4_create_without_resource_type_fails_acod() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"chty": [4]}]}));
    let mut r = req("Cphone", Operation::Create);
    r.resource_type = None;
    assert_deny(&check(&acp, &r));
}

/// Decision 10 with 7.1.5 res_objdetails: a part of the CREATE that an
/// `acod` needs and the request does not give is indeterminate: Deny with
/// status MISSING_ATTRIBUTE naming it, not a plain Deny (which a PEP may
/// cache as settled).
#[test]
fn decision_10_acod_part_not_given_is_a_missing_attribute() {
    let missing = |d: &Decision| {
        assert_deny(d);
        assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
        d.missing.clone()
    };
    // tgty absent, acod ty set.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 3, "chty": [4]}]}));
    let m = missing(&check(&acp, &create("Cphone", None, 4)));
    assert!(
        matches!(m[..], [MissingAttribute::TargetType { .. }]),
        "{m:#?}"
    );
    // Given but different: an answer, not a missing attribute.
    let d = check(&acp, &create("Cphone", Some(2), 4));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
    // rrt absent.
    let mut r = create("Cphone", Some(3), 4);
    r.resource_type = None;
    let m = missing(&check(&acp, &r));
    assert!(
        matches!(m[..], [MissingAttribute::ResourceType { .. }]),
        "{m:#?}"
    );
    // spty absent for a created mgmtObj (13).
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"ty": 14, "spty": {"mgd": 1001}, "chty": [13]}
    ]}));
    let m = missing(&check(&acp, &create("Cphone", Some(14), 13)));
    assert!(
        matches!(m[..], [MissingAttribute::Specialization { .. }]),
        "{m:#?}"
    );
    // A created contentInstance (4) has no specialization: its absence is
    // an answer.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
        {"spty": {"mgd": 1001}, "chty": [4, 13]}
    ]}));
    let d = check(&acp, &create("Cphone", Some(3), 4));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    // ... and the explanation says so, not that it is unknown.
    match first_failed(&d) {
        FailedCondition::ObjectDetails { elements } => assert!(
            elements[0].contains("the created resource (ty 4) has no mgd")
                && !elements[0].contains("unknown"),
            "{elements:?}"
        ),
        other => panic!("expected object details, got {other:?}"),
    }
    // An `mgd` belongs to a <mgmtObj> (13) only and a `cnd` to a
    // <flexContainer> (28) only: a created flexContainer without `spty`
    // certainly has no `mgd` (and a mgmtObj no `cnd`), so the element is
    // FALSE, not undetermined (7.1.4: a final result).
    for (spty, created) in [(json!({"mgd": 1001}), 28), (json!({"cnd": "org.x"}), 13)] {
        let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [
            {"spty": spty, "chty": [created]}
        ]}));
        let d = check(&acp, &create("Cphone", Some(3), created));
        assert_deny(&d);
        assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
        assert!(d.missing.is_empty(), "{d:#?}");
        match first_failed(&d) {
            FailedCondition::ObjectDetails { elements } => assert!(
                elements[0].contains(&format!("the created resource (ty {created}) has no "))
                    && !elements[0].contains("unknown"),
                "{elements:?}"
            ),
            other => panic!("expected object details, got {other:?}"),
        }
    }
}

/// 7.1.4 and Decision 10: a rule is undetermined (MISSING_ATTRIBUTE) only
/// when no condition of it is certainly FALSE. `res_acr` and `res_context`
/// are ANDs (7.1.5): one FALSE part makes the rule FALSE whatever the
/// missing attribute would have been, and that Deny is a final result
/// (status OK, nothing reported missing).
#[test]
fn decision_10_a_rule_certainly_false_elsewhere_is_not_undetermined() {
    let certain = |d: &Decision| {
        assert_deny(d);
        assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
        assert!(d.missing.is_empty(), "{d:#?}");
    };
    // The IP is unknown, but the created type is not in chty.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 63,
        "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}}], "acod": [{"chty": [4]}]}));
    certain(&check(&acp, &create("Cphone", Some(3), 3)));
    // ... while with an allowed type the IP decides: undetermined.
    let d = check(&acp, &create("Cphone", Some(3), 4));
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(d.missing[..], [MissingAttribute::IpAddress { .. }]),
        "{d:#?}"
    );

    // Inside one acco element: the IP is unknown, the position is far
    // outside the circle.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2,
        "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}, "aclr": {"accr": [0, 0, 1000]}}]}));
    let mut r = retrieve("Cphone");
    r.position = Some(pos(50.0, 50.0, 0.0));
    certain(&check(&acp, &r));

    // acod: tgty is not given, but chty excludes the created type.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 3, "chty": [4]}]}));
    certain(&check(&acp, &create("Cphone", None, 23)));
}

/// 7.1.4 with Decision 10, in the explanation: when a condition lacks its
/// attribute and a later one of the same AND is certainly FALSE, the Deny
/// is final (status OK) because of the later one, so the explanation names
/// it, not the unknown attribute, which would not have helped.
#[test]
fn decision_10_the_explanation_names_the_condition_certainly_false() {
    // One acco element: the IP is unknown, the position outside the circle.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2,
        "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}, "aclr": {"accr": [0, 0, 1000]}}]}));
    let mut r = retrieve("Cphone");
    r.position = Some(pos(5.0, 5.0, 0.0));
    let d = check(&acp, &r);
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert!(
        matches!(context_failures(&d), [ContextFailure::Location { reason }]
            if reason.contains("not inside the circle")),
        "{d:#?}"
    );
    // Contexts undetermined (no IP), object details certainly FALSE.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1,
        "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}}], "acod": [{"chty": [4]}]}));
    let d = check(&acp, &create("Cphone", Some(3), 23));
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert!(
        matches!(first_failed(&d), FailedCondition::ObjectDetails { elements }
            if elements.len() == 1 && elements[0].contains("resource type 23 not in chty [4]")),
        "{d:#?}"
    );
    // Inside one acod element: the target's type unknown, the created type
    // not in chty.
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 1, "acod": [{"ty": 3, "chty": [4]}]}));
    let d = check(&acp, &create("Cphone", None, 23));
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert!(
        matches!(first_failed(&d), FailedCondition::ObjectDetails { elements }
            if elements.len() == 1 && elements[0].contains("resource type 23 not in chty [4]")),
        "{d:#?}"
    );
    // Only unknowns: the first is named, and the Deny is undetermined.
    let d = check(&acp, &create("Cphone", None, 4));
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(first_failed(&d), FailedCondition::ObjectDetails { elements }
            if elements[0].contains("target type unknown")),
        "{d:#?}"
    );
}

/// Decision 10 for `res_origs`: a rule that names the originator only
/// through a role or `<group>` the source cannot answer is undetermined,
/// unless another of its conditions is certainly FALSE. Then the Deny is
/// final and nothing is reported missing; since no rule is known to name
/// the originator, its status is NOT_APPLICABLE.
#[test]
fn decision_10_an_unanswered_role_or_group_is_missing_only_where_it_decides() {
    let down = InMemoryAttributes {
        unavailable: Some("PIP down".to_owned()),
        ..InMemoryAttributes::default()
    };
    // The role's rule allows only CREATE (acop 1); the request is a RETRIEVE.
    let create_only = one_rule(json!({"acor": [ROLE], "acop": 1}));
    let d = check_with(&create_only, &retrieve_claiming("Cphone", &[ROLE]), &down);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable, "{d:#?}");
    assert!(d.missing.is_empty(), "{d:#?}");
    // With RETRIEVE allowed, the role decides: missing.
    let d = check_with(&role_acp(), &retrieve_claiming("Cphone", &[ROLE]), &down);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(&d.missing[..], [MissingAttribute::Role { role, .. }] if role == ROLE),
        "{d:#?}"
    );
    // The same for a group entry.
    let d = check_with(
        &one_rule(json!({"acor": [GROUP], "acop": 1})),
        &retrieve("Cmember"),
        &down,
    );
    assert_eq!(d.status, AuthorizationStatus::NotApplicable, "{d:#?}");
    assert!(d.missing.is_empty(), "{d:#?}");
    let d = check_with(&group_acp(), &retrieve("Cmember"), &down);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(&d.missing[..], [MissingAttribute::GroupMembership { group, .. }] if group == GROUP_ID),
        "{d:#?}"
    );
}

/// `accc` (TS-0003 table 7.1.3-1, Annex F.2.2): an originator in several
/// countries matches only when every one is listed; the explanation names
/// the countries that are not, of all the originator is in.
#[test]
fn annex_f_every_country_of_the_originator_must_be_listed() {
    let acp = one_rule(
        json!({"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {"accc": ["DE", "AT"]}}]}),
    );
    let mut r = retrieve("Cphone");
    r.countries = vec!["DE".to_owned(), "AT".to_owned()];
    assert_permit(&check(&acp, &r));
    r.countries = vec!["DE".to_owned(), "FR".to_owned()];
    let d = check(&acp, &r);
    assert_deny(&d);
    assert!(
        matches!(context_failures(&d), [ContextFailure::Location { reason }]
            if reason == "originator countries DE,FR: FR not listed"),
        "{d:#?}"
    );
    r.countries = vec!["FR".to_owned()];
    let d = check(&acp, &r);
    assert!(
        matches!(context_failures(&d), [ContextFailure::Location { reason }]
            if reason == "originator country FR is not listed"),
        "{d:#?}"
    );
}

/// Decision 10 inside `res_ctxts`: an `acco` element that is certainly
/// FALSE (the country is not listed) leaves nothing missing, although it
/// also needed the unknown IP; the element after it, which needs the
/// unknown position, is what is missing.
#[test]
fn decision_10_a_certainly_false_acco_element_reports_nothing_missing() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"acip": {"ipv4": ["10.0.0.0/8"]}, "aclr": {"accc": ["DE"]}},
        {"aclr": {"accr": [48.0, 11.0, 1000.0]}}]}));
    let mut r = retrieve("Cphone");
    r.countries = vec!["FR".to_owned()];
    let d = check(&acp, &r);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(&d.missing[..], [MissingAttribute::Position { .. }]),
        "{d:#?}"
    );
}

/// Annex F.2.2 with an IPv4-mapped request address (`::ffff:a.b.c.d`, as
/// dual-stack sockets report IPv4 peers): its country is the IPv4
/// address's, as `acip` treats it as that address.
#[test]
fn annex_f_the_country_of_a_mapped_ipv4_address_is_the_ipv4_country() {
    let acp =
        one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {"accc": ["DE"]}}]}));
    let attrs = InMemoryAttributes::new().with_ip_country("1.2.3.0/24".parse().unwrap(), "DE");
    let mut r = retrieve("Cphone");
    r.ip = Some("::ffff:1.2.3.4".parse().unwrap());
    assert_permit(&check_with(&acp, &r, &attrs));
}

/// Annex F.2.2: the country comes from the IP address; the position counts
/// only "if [the] Hosting CSE cannot distinguish the country using the
/// Originator's IP address". While the IP's country is unavailable (a PDP
/// cache that has not fetched it yet) the position, whose country is known,
/// does not decide: the IP might be in another country. The Deny is
/// undetermined, naming the country; with the IP's country known, that
/// decides, and only an IP in no known country lets the position decide.
#[test]
fn annex_f_2_2_an_unavailable_ip_country_is_not_replaced_by_the_position() {
    struct Source(authz_core::Lookup<String>);
    impl AttributeSource for Source {
        fn role_verified(&self, _: &str, _: &str, _: DateTime<Utc>) -> authz_core::Lookup<bool> {
            authz_core::Lookup::NotFound
        }
        fn group_has_member(&self, _: &str, _: &str) -> authz_core::Lookup<bool> {
            authz_core::Lookup::NotFound
        }
        fn position(&self, _: &str, _: DateTime<Utc>) -> authz_core::Lookup<Position> {
            authz_core::Lookup::Found(pos(48.137, 11.575, 10.0))
        }
        fn countries_of_position(&self, _: &Position) -> authz_core::Lookup<Vec<String>> {
            authz_core::Lookup::Found(vec!["DE".to_owned()])
        }
        fn country_of_ip(&self, _: std::net::IpAddr) -> authz_core::Lookup<String> {
            self.0.clone()
        }
    }
    let acp =
        one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {"accc": ["DE"]}}]}));
    let r = retrieve_from_ip("Cphone", "10.1.0.1");
    let d = check_with(
        &acp,
        &r,
        &Source(authz_core::Lookup::Unavailable("not cached yet".into())),
    );
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(&d.missing[..], [MissingAttribute::Country { reason }] if reason == "not cached yet"),
        "{d:#?}"
    );
    let d = check_with(&acp, &r, &Source(authz_core::Lookup::Found("FR".into())));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok, "{d:#?}");
    assert_permit(&check_with(&acp, &r, &Source(authz_core::Lookup::NotFound)));
}

/// Decision 10 over several rules: a position the attribute source cannot
/// give is reported for the rule it leaves undetermined, also when an
/// earlier rule that needed it too was certainly FALSE for another reason.
#[test]
fn decision_10_a_missing_attribute_is_reported_for_every_rule_it_leaves_undetermined() {
    let acp = pv(r#"[
        {"acor": ["Cphone"], "acop": 1, "acco": [{"aclr": {"accr": [0, 0, 1000]}}], "acod": [{"chty": [4]}]},
        {"acor": ["Cphone"], "acop": 1, "acco": [{"aclr": {"accr": [0, 0, 1000]}}]}
    ]"#);
    let attrs = InMemoryAttributes {
        unavailable: Some("location server unreachable".to_owned()),
        ..InMemoryAttributes::new()
    };
    let d = check_with(&acp, &create("Cphone", Some(3), 3), &attrs);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    // Reported once, for the second rule. (The source, down, cannot tell
    // either whether `Cphone` names a `<group>`, nor that group's members:
    // those are missing too.)
    let positions = d
        .missing
        .iter()
        .filter(|m| matches!(m, MissingAttribute::Position { .. }))
        .count();
    assert_eq!(positions, 1, "{d:#?}");
    assert!(
        d.missing.iter().all(|m| matches!(
            m,
            MissingAttribute::Position { .. }
                | MissingAttribute::GroupKind { .. }
                | MissingAttribute::GroupMembership { .. }
        )),
        "{d:#?}"
    );
}

// ---------------------------------------------------------------------------
// 7.1.1: privileges and selfPrivileges
// ---------------------------------------------------------------------------

fn owner_acp() -> CompiledAcp {
    compile_one(&acp_doc(
        "acpOwner",
        r#"[{"acor": ["Cuser"], "acop": 63}]"#,
        r#"[{"acor": ["Cowner"], "acop": 63}]"#,
    ))
}

/// 7.1.1: "Access requests to ACP's itself are evaluated against the
/// selfPrivileges attribute of that ACP."
#[test]
fn clause_7_1_1_self_privileges_evaluate_pvs_only() {
    let acp = owner_acp();
    for op in [Operation::Retrieve, Operation::Update, Operation::Delete] {
        let d = run(
            &[pvs_of(&acp)],
            &req("Cowner", op),
            &host(),
            &NoAttributes,
            &[],
        );
        assert_permit(&d);
        let by = d.permitted_by.unwrap();
        assert_eq!(by.privileges, PrivilegeKind::SelfPrivileges);
        assert_eq!(&*by.acp, "acpOwner");
        // pv's Cuser has no say over the ACP itself.
        let d = run(
            &[pvs_of(&acp)],
            &req("Cuser", op),
            &host(),
            &NoAttributes,
            &[],
        );
        assert_deny(&d);
        assert_eq!(d.status, AuthorizationStatus::NotApplicable);
    }
}

/// 7.1.1: requests on other resources are evaluated against the privileges.
#[test]
fn clause_7_1_1_privileges_evaluate_pv_only() {
    let acp = owner_acp();
    let d = run(
        &[pv_of(&acp)],
        &retrieve("Cuser"),
        &host(),
        &NoAttributes,
        &[],
    );
    assert_permit(&d);
    assert_eq!(
        d.permitted_by.unwrap().privileges,
        PrivilegeKind::Privileges
    );
    let d = run(
        &[pv_of(&acp)],
        &retrieve("Cowner"),
        &host(),
        &NoAttributes,
        &[],
    );
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable);
}

/// TS-0004 7.4.2.2.1 (spec-notes §2.2): creating an ACP needs pv and pvs, and
/// pvs needs at least one rule (4000 otherwise).
#[test]
fn ts_0004_7_4_2_2_1_check_create_requires_a_pvs_rule() {
    let parse = |doc: &str| parse_policies(doc).unwrap().remove(0);
    let good = parse(&acp_doc("a", "[]", r#"[{"acor": ["Cowner"], "acop": 63}]"#));
    assert_eq!(check_create(&good), Ok(()));

    let no_pvs = parse(r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2}]}}}"#);
    let e = check_create(&no_pvs).unwrap_err();
    assert!(e.0.iter().any(|e| e.path == "pvs"), "{e:#?}");

    let empty_pvs = parse(&acp_doc("a", r#"[{"acor": ["all"], "acop": 2}]"#, "[]"));
    let e = check_create(&empty_pvs).unwrap_err();
    assert!(e.0.iter().any(|e| e.path.starts_with("pvs")), "{e:#?}");

    let no_pv = parse(r#"{"m2m:acp": {"pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}}}"#);
    let e = check_create(&no_pv).unwrap_err();
    assert!(e.0.iter().any(|e| e.path == "pv"), "{e:#?}");
}

/// TS-0001 9.6.2.0 (spec notes §2.2): with a non-NULL pv, adri and apri
/// shall not be present; with a NULL pv, adri or apri, never both. airi is
/// free, and an empty list names nothing, so it counts as absent.
#[test]
fn ts_0001_9_6_2_0_adri_apri_only_without_pv_and_never_both() {
    use authz_core::compile::check_authorization_addresses;
    let parse = |doc: &str| parse_policies(doc).unwrap().remove(0);
    let paths = |acp: &authz_core::AccessControlPolicy| {
        check_authorization_addresses(acp)
            .err()
            .map(|e| e.0.into_iter().map(|e| e.path).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    const PVS: &str = r#""pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}"#;
    let with_pv = |extra: &str| {
        parse(&format!(
            r#"{{"m2m:acp": {{"pv": {{"acr": []}}, {PVS}{extra}}}}}"#
        ))
    };
    let without_pv = |extra: &str| parse(&format!(r#"{{"m2m:acp": {{{PVS}{extra}}}}}"#));

    // pv non-NULL (an empty pv included): neither adri nor apri.
    assert_eq!(paths(&with_pv(r#", "adri": ["/id-in/pdp1"]"#)), ["adri"]);
    assert_eq!(paths(&with_pv(r#", "apri": ["/id-in/prp1"]"#)), ["apri"]);
    assert_eq!(
        paths(&with_pv(
            r#", "adri": ["/id-in/pdp1"], "apri": ["/id-in/prp1"]"#
        )),
        ["adri", "apri"]
    );
    assert_eq!(paths(&with_pv(r#", "adri": "not-a-list""#)), ["adri"]);
    assert!(paths(&with_pv(r#", "airi": ["/id-in/pip1"]"#)).is_empty());
    assert!(paths(&with_pv(r#", "adri": [], "apri": null"#)).is_empty());
    let e = check_create(&with_pv(r#", "apri": ["/id-in/prp1"]"#)).unwrap_err();
    assert!(e.0.iter().any(|e| e.path == "apri"), "{e:#?}");

    // pv NULL: one of them, never both.
    assert!(paths(&without_pv(r#", "adri": ["/id-in/pdp1"]"#)).is_empty());
    assert!(paths(&without_pv(r#", "apri": ["/id-in/prp1"]"#)).is_empty());
    assert_eq!(
        paths(&without_pv(
            r#", "adri": ["/id-in/pdp1"], "apri": ["/id-in/prp1"]"#
        )),
        ["adri", "apri"]
    );
}

// ---------------------------------------------------------------------------
// 7.1.5: permit-overrides across rules and ACPs
// ---------------------------------------------------------------------------

/// A rule that names Cphone but cannot permit the default request (wrong
/// IP range), and one that can.
const NARROW: &str =
    r#"{"acor": ["Cphone"], "acop": 2, "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}}]}"#;
const WIDE: &str = r#"{"acor": ["Cphone", "Cother"], "acop": 3}"#;
const WRONG_OP: &str = r#"{"acor": ["all"], "acop": 60}"#;

/// 7.1.5: res_acrs = res_acr(1) OR ... OR res_acr(K): a rule that does not
/// permit never overrides one that does, whatever the order.
#[test]
fn clause_7_1_5_permit_overrides_across_rules_in_any_order() {
    let r = retrieve_from_ip("Cphone", "192.0.2.1");
    for (rules, permitting) in [
        (format!("[{NARROW}, {WRONG_OP}, {WIDE}]"), 2),
        (format!("[{WIDE}, {NARROW}, {WRONG_OP}]"), 0),
        (format!("[{WRONG_OP}, {WIDE}, {NARROW}]"), 1),
    ] {
        let d = check(&pv(&rules), &r);
        assert_permit(&d);
        assert_eq!(d.permitted_by.as_ref().unwrap().rule, permitting, "{rules}");
    }
}

/// 7.1.5: permit-overrides also combines the ACPs of the set: one permitting
/// rule in any ACP permits, in any order of the ACPs.
#[test]
fn clause_7_1_5_permit_overrides_across_acps_in_any_order() {
    let a = acp_named("acpA", &format!("[{NARROW}, {WRONG_OP}]"));
    let b = acp_named("acpB", &format!("[{WIDE}]"));
    let empty = acp_named("acpEmpty", "[]");
    let r = retrieve_from_ip("Cphone", "192.0.2.1");
    for set in [
        vec![pv_of(&a), pv_of(&b)],
        vec![pv_of(&b), pv_of(&a)],
        vec![pv_of(&empty), pv_of(&a), pv_of(&b)],
        vec![pv_of(&a), pv_of(&b), pv_of(&empty)],
    ] {
        let d = run(&set, &r, &host(), &NoAttributes, &[]);
        assert_permit(&d);
        assert_eq!(&*d.permitted_by.unwrap().acp, "acpB");
    }
    // Without acpB nothing permits.
    let d = run(&[pv_of(&a), pv_of(&empty)], &r, &host(), &NoAttributes, &[]);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
}

/// 7.1.5 item 1: "Permit" for a single rule of a single ACP is enough, among
/// many rules that do not permit.
#[test]
fn clause_7_1_5_single_permitting_rule_among_many() {
    let mut rules: Vec<Value> = (0..40)
        .map(|i| json!({"acor": [format!("C{i}"), "Cphone"], "acop": 61}))
        .collect();
    rules.insert(23, json!({"acor": ["/id-in/Cphone"], "acop": 2}));
    let acp = pv(&Value::Array(rules).to_string());
    let d = check(&acp, &retrieve("Cphone"));
    assert_permit(&d);
    assert_eq!(d.permitted_by.unwrap().rule, 23);
}

// ---------------------------------------------------------------------------
// 7.1.4: Deny, its status and its explanation
// ---------------------------------------------------------------------------

/// 7.1.4: with no applicable policy the result is Deny (status
/// NotApplicable).
#[test]
fn clause_7_1_4_no_applicable_policy_denies_not_applicable() {
    let d = run(&[], &retrieve("Cphone"), &host(), &NoAttributes, &[]);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable);
    let empty = acp_named("acpEmpty", "[]");
    let d = check(&empty, &retrieve("Cphone"));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable);
}

#[test]
fn clause_7_1_4_no_rule_naming_the_originator_denies_not_applicable() {
    let acp = pv(r#"[{"acor": ["Cother", "/id-in/C1", "//other.org"], "acop": 63}]"#);
    let d = check(&acp, &retrieve("Cphone"));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable);
    assert!(failures(&d).is_empty(), "{d:#?}");
}

#[test]
fn clause_7_1_4_rule_naming_the_originator_denies_with_status_ok() {
    let acp = pv(r#"[{"acor": ["Cother"], "acop": 63}, {"acor": ["Cphone"], "acop": 1}]"#);
    let d = check(&acp, &retrieve("Cphone"));
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::Ok);
    let f = failures(&d);
    assert_eq!(f.len(), 1, "{d:#?}");
    assert_eq!(f[0].rule.rule, 1);
    assert_eq!(&*f[0].rule.acp, "acp1");
    assert_eq!(f[0].rule.privileges, PrivilegeKind::Privileges);
    assert_eq!(f[0].matched_originator, "Cphone");
}

/// The explanation lists every rule that named the originator, each with its
/// first failed condition.
#[test]
fn clause_7_1_5_explanation_lists_every_rule_naming_the_originator() {
    let acp = pv(r#"[
        {"acor": ["Cphone"], "acop": 1},
        {"acor": ["Cnobody"], "acop": 2},
        {"acor": ["//m2msp.org"], "acop": 2, "acaf": true}
    ]"#);
    let d = check(&acp, &retrieve("Cphone"));
    assert_deny(&d);
    let f = failures(&d);
    assert_eq!(f.len(), 2, "{d:#?}");
    assert_eq!(f[0].rule.rule, 0);
    assert_eq!(
        f[0].failed,
        FailedCondition::Operation {
            requested: 2,
            allowed: 1
        }
    );
    assert_eq!(f[1].rule.rule, 2);
    assert_eq!(f[1].matched_originator, "//m2msp.org");
    assert_eq!(f[1].failed, FailedCondition::AuthenticationFlag);
}

/// A Permit names the permitting rule and the acor entry that matched.
#[test]
fn clause_7_1_5_permit_names_rule_and_matched_entry() {
    let acp = pv(r#"[{"acor": ["Cother"], "acop": 2}, {"acor": ["Cx", "/id-in/C*"], "acop": 2}]"#);
    let d = check(&acp, &retrieve("Cphone"));
    assert_permit(&d);
    let by = d.permitted_by.as_ref().unwrap();
    assert_eq!(
        (&*by.acp, by.privileges, by.rule),
        ("acp1", PrivilegeKind::Privileges, 1)
    );
    assert_eq!(
        d.explanation
            .as_ref()
            .unwrap()
            .matched_originator
            .as_deref(),
        Some("/id-in/C*")
    );
}

/// One rule failing on every condition; each stage of
/// [`ordering_request`] fixes one more condition, in the order the
/// explanation reports them: operation, authentication flag, context (time,
/// IP, location), object details.
fn ordering_acp() -> CompiledAcp {
    one_rule(json!({
        "acor": ["Cphone"], "acop": 1, "acaf": true,
        "acco": [{"actw": ["* * 12 * * * *"], "acip": {"ipv4": ["10.0.0.0/8"]}, "aclr": {"accc": ["DE"]}}],
        "acod": [{"chty": [23]}]
    }))
}

fn ordering_request(fixed: usize) -> DecisionRequest {
    let mut r = retrieve_at("Cphone", "2024-03-15T13:00:00Z");
    r.ip = Some(ip("192.0.2.1"));
    r.countries = vec!["KR".to_owned()];
    if fixed >= 1 {
        r.operation = Operation::Create;
        r.target_type = Some(3);
        r.resource_type = Some(4);
    }
    if fixed >= 2 {
        r.authenticated = true;
    }
    if fixed >= 3 {
        r.time = at(NOON);
    }
    if fixed >= 4 {
        r.ip = Some(ip("10.1.2.3"));
    }
    if fixed >= 5 {
        r.countries = vec!["DE".to_owned()];
    }
    if fixed >= 6 {
        r.resource_type = Some(23);
    }
    r
}

#[test]
fn clause_7_1_5_explanation_operation_is_reported_first() {
    let d = check(&ordering_acp(), &ordering_request(0));
    assert_deny(&d);
    assert_eq!(
        first_failed(&d),
        &FailedCondition::Operation {
            requested: 2,
            allowed: 1
        }
    );
}

#[test]
fn clause_7_1_5_explanation_authentication_flag_is_reported_second() {
    let d = check(&ordering_acp(), &ordering_request(1));
    assert_deny(&d);
    assert_eq!(first_failed(&d), &FailedCondition::AuthenticationFlag);
}

#[test]
fn clause_7_1_5_explanation_time_window_is_reported_before_ip_and_location() {
    let d = check(&ordering_acp(), &ordering_request(2));
    assert_deny(&d);
    // 13:00 on 2024-03-15: the 12:00-12:59:59 window opens next at 12:00 the next day.
    assert_eq!(
        context_failures(&d),
        &[ContextFailure::TimeWindow {
            next_open: Some(at("2024-03-16T12:00:00Z"))
        }]
    );
}

#[test]
fn clause_7_1_5_explanation_ip_is_reported_before_location() {
    let d = check(&ordering_acp(), &ordering_request(3));
    assert_deny(&d);
    assert!(
        matches!(context_failures(&d), [ContextFailure::IpAddress { .. }]),
        "{d:#?}"
    );
}

#[test]
fn clause_7_1_5_explanation_location_is_reported_after_ip() {
    let d = check(&ordering_acp(), &ordering_request(4));
    assert_deny(&d);
    assert!(
        matches!(context_failures(&d), [ContextFailure::Location { .. }]),
        "{d:#?}"
    );
}

#[test]
fn clause_7_1_5_explanation_object_details_are_reported_last() {
    let d = check(&ordering_acp(), &ordering_request(5));
    assert_deny(&d);
    assert!(
        matches!(first_failed(&d), FailedCondition::ObjectDetails { .. }),
        "{d:#?}"
    );
    assert_permit(&check(&ordering_acp(), &ordering_request(6)));
}

/// The next opening of `* 0-5 2,6,10 * * * *`, worked out by hand.
#[test]
fn clause_7_1_5_explanation_time_window_next_open_by_hand() {
    let acp = window("* 0-5 2,6,10 * * * *");
    for (now, next) in [
        ("2024-03-15T03:00:00Z", "2024-03-15T06:00:00Z"),
        ("2024-03-15T02:06:00Z", "2024-03-15T06:00:00Z"),
        ("2024-03-15T06:06:00Z", "2024-03-15T10:00:00Z"),
        // After the last window of the day: 02:00 the next day.
        ("2024-03-15T10:06:00Z", "2024-03-16T02:00:00Z"),
        // Across a month and a year end.
        ("2024-02-29T23:00:00Z", "2024-03-01T02:00:00Z"),
        ("2024-12-31T11:00:00Z", "2025-01-01T02:00:00Z"),
    ] {
        let d = check(&acp, &retrieve_at("Cphone", now));
        assert_deny(&d);
        assert_eq!(
            context_failures(&d),
            &[ContextFailure::TimeWindow {
                next_open: Some(at(next))
            }],
            "at {now}"
        );
    }
    // Mondays 09:00:00 only; from Sunday 2024-01-07 noon.
    let d = check(
        &window("0 0 9 * * 1 *"),
        &retrieve_at("Cphone", "2024-01-07T12:00:00Z"),
    );
    assert_eq!(
        context_failures(&d),
        &[ContextFailure::TimeWindow {
            next_open: Some(at("2024-01-08T09:00:00Z"))
        }]
    );
    // A window in the past never opens again.
    let d = check(&window("* * * * * * 2020"), &retrieve("Cphone"));
    assert_eq!(
        context_failures(&d),
        &[ContextFailure::TimeWindow { next_open: None }]
    );
}

/// With several acco elements, the explanation has one entry per element, in
/// order, each naming its first failing part.
#[test]
fn clause_7_1_5_explanation_one_entry_per_acco_element() {
    let acp = one_rule(json!({"acor": ["Cphone"], "acop": 2, "acco": [
        {"actw": ["* * 2 * * * *"], "acip": {"ipv4": ["10.0.0.0/8"]}},
        {"acip": {"ipv6": ["fd00::/8"]}},
        {"aclr": {"accc": ["DE"]}}
    ]}));
    let d = check(&acp, &retrieve_from_ip("Cphone", "192.0.2.1"));
    assert_deny(&d);
    let elements = context_failures(&d);
    assert_eq!(elements.len(), 3, "{d:#?}");
    assert_eq!(
        elements[0],
        ContextFailure::TimeWindow {
            next_open: Some(at("2024-03-16T02:00:00Z"))
        }
    );
    assert!(
        matches!(elements[1], ContextFailure::IpAddress { .. }),
        "{d:#?}"
    );
    assert!(
        matches!(elements[2], ContextFailure::Location { .. }),
        "{d:#?}"
    );
}

// ---------------------------------------------------------------------------
// Validation: messages name the field path
// ---------------------------------------------------------------------------

#[test]
fn validation_actw_error_names_rule_element_and_entry() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[
            {"acor": ["C0"], "acop": 2},
            {"acor": ["C1"], "acop": 2, "acco": [{"actw": ["* * * * * 0-6 *"]}]},
            {"acor": ["C2"], "acop": 2, "acco": [{"actw": ["* * 8-19 * * 1-5 *", "* * * * * 7 *"]}]}
        ]"#,
        PVS_ADMIN,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "pv.acr[2].acco[0].actw[1]");
    assert!(
        errors[0].message.contains("day-of-week 7 out of range 0-6"),
        "{errors:#?}"
    );
    assert!(
        errors[0]
            .to_string()
            .starts_with("pv.acr[2].acco[0].actw[1]: "),
        "{}",
        errors[0]
    );
}

/// Spec-notes §3 / Decisions 4 and 12: exactly the extended crontab grammar.
#[test]
fn validation_actw_grammar_decisions_4_and_12() {
    for (w, needle) in [
        ("* * * * * *", "7 fields"),
        ("* * * * * * * *", "7 fields"),
        ("* * 24 * * * *", "hour 24 out of range 0-23"),
        ("* * * 0 * * *", "day-of-month 0 out of range 1-31"),
        ("* * * * 13 * *", "month 13 out of range 1-12"),
        ("* * * * * * 1999", "year 1999 out of range 2000-9999"),
        ("* * 10-2 * * * *", "10-2"),
        ("* * * * * MON *", "MON"),
        ("* * * ? * * *", "?"),
        ("* 5/10 * * * * *", "5/10"),
    ] {
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2, "acco": [{"actw": [w]}]}]).to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{w}: {errors:#?}");
        assert_eq!(errors[0].path, "pv.acr[0].acco[0].actw[0]", "{w}");
        assert!(
            errors[0].message.contains(needle),
            "{w}: {:?} does not mention {needle:?}",
            errors[0].message
        );
    }
}

#[test]
fn validation_bad_ipv4_names_acip_ipv4_index() {
    for bad in [
        "192.168.1.300",
        "10.0.0.0/33",
        "fd00::/8",
        "10.0.0",
        "10.0.0.0/",
    ] {
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2, "acco": [
                {"acip": {"ipv4": [bad, "10.0.0.0/8"]}}
            ]}])
            .to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(errors[0].path, "pv.acr[0].acco[0].acip.ipv4[0]", "{bad}");
        assert!(errors[0].message.contains(bad), "{bad}: {errors:#?}");
    }
}

#[test]
fn validation_bad_ipv6_names_acip_ipv6_index() {
    for bad in ["fd00::/129", "10.0.0.1", "gggg::1", "1:2:3:4:5:6:7:8:9"] {
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2, "acco": [
                {"actw": ["* * * * * * *"]},
                {"acip": {"ipv4": ["10.0.0.0/8"], "ipv6": ["::/0", bad]}}
            ]}])
            .to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(errors[0].path, "pv.acr[0].acco[1].acip.ipv6[1]", "{bad}");
    }
}

/// A prefix with host bits set (RFC 4632: a prefix's host bits are zero)
/// is refused, not read as the network holding its address: that would
/// silently widen the entry (`::ffff:10.0.0.0/8` is `::/8`, which holds
/// every IPv4-mapped address and `::1`). The error says what to write.
#[test]
fn validation_acip_prefix_with_host_bits_set_is_refused_with_the_fix() {
    for (v4, v6, needle) in [
        (
            Some("10.0.0.5/8"),
            None,
            "write 10.0.0.0/8 for the network, or 10.0.0.5 for the host",
        ),
        (Some("192.168.1.1/24"), None, "192.168.1.0/24"),
        (None, Some("2001:db8::1/32"), "write 2001:db8::/32"),
        (None, Some("::ffff:10.0.0.0/8"), "::ffff:10.0.0.0/104"),
        // The suggestion is a valid prefix itself: the IPv4 part masked.
        (None, Some("::ffff:10.0.0.5/8"), "e.g. ::ffff:10.0.0.0/104"),
        (None, Some("::ffff:1.2.3.4/24"), "e.g. ::ffff:1.2.3.0/120"),
        (None, Some("::ffff:10.0.0.0/0"), "e.g. ::ffff:0.0.0.0/96"),
        // No widening network is suggested for a mapped address.
        (
            None,
            Some("::ffff:0:0/95"),
            "holds every IPv4-mapped address",
        ),
        (None, Some("::ffff:10.0.0.0/64"), "/96 to /128"),
    ] {
        let bad = v4.or(v6).unwrap_or_default();
        let (field, acip) = match v4 {
            Some(e) => ("ipv4", json!({"ipv4": [e]})),
            None => ("ipv6", json!({"ipv6": [v6]})),
        };
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2, "acco": [{"acip": acip}]}]).to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(errors[0].path, format!("pv.acr[0].acco[0].acip.{field}[0]"));
        let m = &errors[0].message;
        assert!(
            m.contains("host bits set") && m.contains(needle),
            "{bad}: {m}"
        );
    }
    // The network itself, a host, and the mapped form at /96 + n load
    // (every suggestion above among them).
    let ok = compile_one(&acp_doc(
        "acp1",
        &json!([{"acor": ["C0"], "acop": 2, "acco": [{"acip": {
            "ipv4": ["10.0.0.0/8", "10.0.0.5", "0.0.0.0/0"],
            "ipv6": ["::ffff:10.0.0.0/104", "::ffff:1.2.3.0/120", "::ffff:0.0.0.0/96", "2001:db8::/32", "::/0"]
        }}]}])
        .to_string(),
        PVS_ADMIN,
    ));
    assert_eq!(ok.rules(PrivilegeKind::Privileges).len(), 1);
}

/// Spec-notes §2.1: m2m:locationRegion holds exactly one of accc and accr.
#[test]
fn validation_aclr_with_both_accc_and_accr() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[{"acor": ["C0"], "acop": 2, "acco": [{"aclr": {"accc": ["DE"], "accr": [48.1, 11.5, 500]}}]}]"#,
        PVS_ADMIN,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "pv.acr[0].acco[0].aclr");
}

/// Spec-notes §2.1: accr is [latitude ±90, longitude ±180, radius in metres];
/// accc holds ISO 3166-1 two-letter codes.
#[test]
fn validation_aclr_values() {
    for (aclr, path) in [
        (json!({"accr": [48.1, 11.5]}), "pv.acr[0].acco[0].aclr.accr"),
        (
            json!({"accr": [48.1, 11.5, 500, 1]}),
            "pv.acr[0].acco[0].aclr.accr",
        ),
        (
            json!({"accr": [91.0, 11.5, 500]}),
            "pv.acr[0].acco[0].aclr.accr[0]",
        ),
        (
            json!({"accr": [48.1, -180.5, 500]}),
            "pv.acr[0].acco[0].aclr.accr[1]",
        ),
        (
            json!({"accr": [48.1, 11.5, -1]}),
            "pv.acr[0].acco[0].aclr.accr[2]",
        ),
        (
            json!({"accc": ["DE", "DEU"]}),
            "pv.acr[0].acco[0].aclr.accc[1]",
        ),
        (json!({"accc": ["D1"]}), "pv.acr[0].acco[0].aclr.accc[0]"),
        // Spec notes §2.1: ISO 3166-1 alpha-2 codes, so assigned ones: `UK`
        // (reserved; the country is GB) and `XX` name no country.
        (
            json!({"accc": ["GB", "UK"]}),
            "pv.acr[0].acco[0].aclr.accc[1]",
        ),
        (json!({"accc": ["XX"]}), "pv.acr[0].acco[0].aclr.accc[0]"),
    ] {
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2, "acco": [{"aclr": aclr}]}]).to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{aclr}: {errors:#?}");
        assert_eq!(errors[0].path, path, "{aclr}");
    }
}

/// Spec-notes §1: acop bits 1..32; 63 is all six; higher bits are invalid.
#[test]
fn validation_acop_64_is_rejected() {
    for acop in [64, 65, 127, 128, 1 << 20] {
        let errors = rejected(&acp_doc(
            "acp1",
            &json!([{"acor": ["C0"], "acop": 2}, {"acor": ["C1"], "acop": acop}]).to_string(),
            PVS_ADMIN,
        ));
        assert_eq!(errors.len(), 1, "{acop}: {errors:#?}");
        assert_eq!(errors[0].path, "pv.acr[1].acop", "{acop}");
    }
    pv(r#"[{"acor": ["C0"], "acop": 63}, {"acor": ["C1"], "acop": 32}]"#);
}

/// Errors in selfPrivileges carry `pvs.`, and every error of a document is
/// reported, in document order.
#[test]
fn validation_reports_every_error_with_its_path() {
    let errors = rejected(&acp_doc(
        "acp1",
        r#"[
            {"acor": ["C0"], "acop": 64},
            {"acor": ["C1"], "acop": 2, "acco": [{"actw": ["* * * * * 7 *"], "acip": {"ipv4": ["1.2.3.4/40"]}}]}
        ]"#,
        r#"[{"acor": ["Cowner"], "acop": 63, "acco": [{"aclr": {"accc": ["DE"], "accr": [1, 2, 3]}}]}]"#,
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "pv.acr[0].acop",
            "pv.acr[1].acco[0].actw[0]",
            "pv.acr[1].acco[0].acip.ipv4[0]",
            "pvs.acr[0].acco[0].aclr",
        ],
        "{errors:#?}"
    );
    assert_error_at(
        &errors,
        "pv.acr[1].acco[0].actw[0]",
        "day-of-week 7 out of range 0-6",
    );
}

/// The shape itself (spec-notes §2.1): `ty` is a single int.
#[test]
fn validation_acod_ty_as_a_list_is_malformed() {
    let doc = acp_doc(
        "acp1",
        r#"[{"acor": ["C0"], "acop": 1, "acod": [{"ty": [3], "chty": [4]}]}]"#,
        PVS_ADMIN,
    );
    match parse_and_validate(&doc) {
        Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, "pv.acr[0].acod[0].ty"),
        other => panic!("expected a malformed ty, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 7.1.4: indeterminate inputs are Deny and never panic
// ---------------------------------------------------------------------------

/// An originator is an ID, never a pattern: a wildcard in From is a syntax
/// error, and the request is denied even by an `all` rule.
#[test]
fn clause_7_1_4_originator_with_wildcard_is_denied_with_syntax_error() {
    let acp = pv(r#"[{"acor": ["all", "//m2msp.org", "/id-in/C*"], "acop": 63}]"#);
    for fr in [
        "C*",
        "*",
        "/id-in/C*",
        "//*/id-in/C1",
        "//m2msp.org/*",
        "",
        "C 1",
        " ",
    ] {
        let d = check(&acp, &retrieve(fr));
        assert_deny(&d);
        assert_eq!(d.status, AuthorizationStatus::SyntaxError, "From {fr:?}");
    }
}

/// 7.1.4: "If ... the access decision algorithm is not capable of deriving a
/// final result (e.g. due to indeterminate parameters), then the access
/// decision ... shall be Deny." Odd inputs must never panic.
#[test]
fn clause_7_1_4_odd_inputs_never_panic() {
    let acp = pv(r#"[
        {"acor": ["Cphone", "/id-in/C*", "//*/id-in/*", "/S*", "C*"], "acop": 2,
         "acco": [{"actw": ["* * * * * * *"], "acip": {"ipv4": ["10.0.0.0/8"], "ipv6": ["fd00::/8"]},
                   "aclr": {"accr": [48.1, 11.5, 500]}},
                  {"aclr": {"accc": ["DE"]}}],
         "acod": [{"ty": 3, "chty": [4]}]},
        {"acor": ["/id-in/grp01", "x@y.z"], "acop": 63}
    ]"#);
    let attrs = InMemoryAttributes::new()
        .with_country_circle(pos(51.0, 10.0, 0.0), 300_000.0, "DE")
        .with_group(GROUP_ID, ["//m2msp.org/id-in/Cmember"]);
    let originators = [
        "/",
        "//",
        "///",
        "////",
        "//m2msp.org//x",
        "/id-in//",
        "é",
        "/\u{0}",
        "@",
        "x@y.z",
        "//M2MSP.ORG/id-in/Cphone",
        "/id-in/C\u{1F600}",
        "S",
        "C",
    ];
    for fr in originators {
        for op in [Operation::Create, Operation::Retrieve, Operation::Notify] {
            let mut r = req(fr, op);
            r.position = Some(pos(f64::NAN, f64::INFINITY, f64::NAN));
            r.ip = Some(ip("::ffff:10.0.0.1"));
            r.countries = vec!["zz".to_owned(), String::new(), "ÄÖ".to_owned()];
            r.role_ids = vec![String::new(), "x@y.z".to_owned()];
            r.target_type = Some(u32::MAX);
            r.resource_type = Some(u32::MAX);
            let _ = run(&[pv_of(&acp), pvs_of(&acp)], &r, &host(), &attrs, &[]);
        }
    }
    // A position that is not a number is never inside a circle.
    let d = check(&circle(), &retrieve_at_position(pos(f64::NAN, 11.575, 0.0)));
    assert_deny(&d);
    let d = check(
        &circle(),
        &retrieve_at_position(pos(48.137, 11.575, f64::NAN)),
    );
    assert_deny(&d);
}

/// 7.1.4: an originator that is not a well-formed AE-ID or CSE-ID (TS-0001
/// 7.2: empty segments, a bare `/`) is indeterminate: it must not be taken
/// for an AE or CSE of the SP.
#[test]
fn clause_7_1_4_malformed_originator_is_not_a_member_of_the_sp_domain() {
    let malformed = [
        "/",
        "//",
        "///",
        "///id-in",
        "//m2msp.org/",
        "//m2msp.org//x",
        "//m2msp.org/id-in/",
        "/id-in/",
        "/id-in//Cphone",
        "Cphone/",
    ];
    let mut wrong = Vec::new();
    for entry in ["//m2msp.org", "/id-in/*", "//*/id-in", "//*/*", "/*", "*"] {
        let acp = one_rule(json!({"acor": [entry], "acop": 63}));
        for fr in malformed {
            let d = check(&acp, &retrieve(fr));
            if d.is_permit() {
                wrong.push(format!("  acor {entry:?} admits From {fr:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "malformed originators matched as AE-IDs/CSE-IDs:\n{}",
        wrong.join("\n")
    );
}

/// Table 7.1.2-1: From is mandatory; a Create carries the Resource Type;
/// a malformed request is an error, not a panic and not a decision.
#[test]
fn table_7_1_2_1_malformed_request_json_is_an_error() {
    let now = at(NOON);
    assert!(matches!(
        request_from_json(r#"{"fr": "C1""#, now),
        Err(JsonError::Syntax(_))
    ));
    for (doc, path) in [
        (r#"{"fr": "C1", "to": "/id-in/cnt1", "op": 9}"#, "op"),
        (r#"{"fr": "C1", "to": "/id-in/cnt1", "op": 1}"#, "rrt"),
        (
            r#"{"fr": "C1", "to": "/id-in/cnt1", "op": 3, "fu": 1}"#,
            "fu",
        ),
        (r#"{"fr": "", "to": "/id-in/cnt1", "op": 2}"#, "fr"),
        (
            r#"{"fr": "C1", "to": "/id-in/cnt1", "op": 2, "oip": {"ip4": "300.1.1.1"}}"#,
            "oip.ip4",
        ),
        (
            r#"{"fr": "C1", "to": "/id-in/cnt1", "op": 2, "rtm": "yesterday"}"#,
            "rtm",
        ),
    ] {
        match request_from_json(doc, now) {
            Err(JsonError::Invalid(e)) => {
                assert!(e.0.iter().any(|e| e.path == path), "{doc}: {e}")
            }
            other => panic!("{doc}: expected an error at {path}, got {other:?}"),
        }
    }
    assert!(request_from_json(r#"{"to": "/id-in/cnt1", "op": 2}"#, now).is_err());
}

/// The request of table 7.1.2-1/7.1.2-2 in short names, end to end: IP,
/// position and authentication carried by the request.
#[test]
fn table_7_1_2_2_context_parameters_from_request_json() {
    let acp = one_rule(
        json!({"acor": ["Cphone"], "acop": 2, "acaf": true, "acco": [{
            "actw": ["* * 12 * * 5 2024"],
            "acip": {"ipv4": ["192.168.1.0/24"]},
            "aclr": {"accr": [48.137, 11.575, 500.0]}
        }]}),
    );
    let doc = |ip4: &str, unc: f64| {
        format!(
            r#"{{"fr": "Cphone", "to": "/id-in/cnt1", "op": 2, "rtm": "20240315T120500",
                "oip": {{"ip4": "{ip4}"}}, "olo": {{"accr": [48.139, 11.575, {unc}]}}, "authn": true}}"#
        )
    };
    let now = at("2030-01-01T00:00:00Z");
    assert_permit(&check(
        &acp,
        &request_from_json(&doc("192.168.1.20", 10.0), now).unwrap(),
    ));
    assert_deny(&check(
        &acp,
        &request_from_json(&doc("192.168.2.20", 10.0), now).unwrap(),
    ));
    assert_deny(&check(
        &acp,
        &request_from_json(&doc("192.168.1.20", 400.0), now).unwrap(),
    ));
}

/// A source that keeps the IDs of its groups but cannot list members (a
/// PDP whose PIP watch is down after its first listing).
struct GroupIdsOnly;

impl AttributeSource for GroupIdsOnly {
    fn role_verified(&self, _: &str, _: &str, _: DateTime<Utc>) -> Lookup<bool> {
        Lookup::NotFound
    }
    fn knows_groups(&self) -> bool {
        true
    }
    fn is_group(&self, group_id: &str) -> Lookup<bool> {
        Lookup::Found(group_id == GROUP_ID)
    }
    fn group_has_member(&self, _: &str, _: &str) -> Lookup<bool> {
        Lookup::Unavailable("PIP down".to_owned())
    }
    fn for_each_group_containing(&self, _: &str, _: &mut dyn FnMut(&str)) -> Lookup<()> {
        Lookup::Unavailable("PIP down".to_owned())
    }
    fn position(&self, _: &str, _: DateTime<Utc>) -> Lookup<Position> {
        Lookup::NotFound
    }
    fn countries_of_position(&self, _: &Position) -> Lookup<Vec<String>> {
        Lookup::NotFound
    }
    fn country_of_ip(&self, _: IpAddr) -> Lookup<String> {
        Lookup::NotFound
    }
}

/// Decisions 3 and 10: while members cannot be asked, only the entries the
/// source knows as `<group>`s are missing; an entry it knows is no group is
/// an originator ID, which either names the originator or not: a rule that
/// names `Cowner` alone gives a final Deny to `Cstranger`, with nothing
/// missing, and the group rule's membership is the one thing missing.
#[test]
fn decision_3_an_entry_known_as_no_group_is_not_reported_as_a_missing_group() {
    let owner_only = one_rule(json!({"acor": ["Cowner"], "acop": 63}));
    let d = check_with(&owner_only, &retrieve("Cstranger"), &GroupIdsOnly);
    assert_deny(&d);
    assert_eq!(d.status, AuthorizationStatus::NotApplicable, "{d:#?}");
    assert!(d.missing.is_empty(), "{d:#?}");
    let d = check_with(&owner_only, &retrieve("Cowner"), &GroupIdsOnly);
    assert_eq!(d.effect, Effect::Permit, "{d:#?}");

    let both = pv(&json!([
        {"acor": ["Cowner"], "acop": 63},
        {"acor": [GROUP], "acop": 2}
    ])
    .to_string());
    let d = check_with(&both, &retrieve("Cstranger"), &GroupIdsOnly);
    assert_eq!(d.status, AuthorizationStatus::MissingAttribute, "{d:#?}");
    assert!(
        matches!(&d.missing[..], [MissingAttribute::GroupMembership { group, .. }] if group == GROUP_ID),
        "{d:#?}"
    );
}
