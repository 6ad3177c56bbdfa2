//! Conversions between the wire messages of [`crate::pb`] and the core model
//! of [`authz_core`].
//!
//! - Policies, both ways and losslessly: [`acp_to_pb`] and [`acp_from_pb`].
//!   The core model keeps attributes it does not interpret in
//!   [`AccessControlPolicy::other`](authz_core::model::AccessControlPolicy::other);
//!   `lbl`, `et`, `adri`, `apri` and `airi` move between that map and the
//!   typed fields of `pb::AccessControlPolicy`, everything else travels in
//!   `other_attributes`. `acp_from_pb(acp_to_pb(x)?)? == x` for every policy
//!   `acp_to_pb` accepts; it refuses only shapes the wire cannot carry, all of
//!   which the core validator rejects anyway (an `aclr` with both `accc` and
//!   `accr`, an `accr` without exactly 3 numbers, an `acod` without `chty`).
//!   An `aclr` with neither (`{}`, no constraint: Decision 11) travels as a
//!   `LocationRegion` whose `region` is not set, and comes back as `{}`.
//! - Requests: [`decision_request_from_pb`] checks a `pb::DecisionRequest`
//!   and splits it into the engine's [`DecisionRequest`], the hosting CSE and
//!   the parameters the PDP handles itself ([`ConvertedRequest`]);
//!   [`decision_request_to_pb`] goes back.
//! - Decisions: [`decision_to_pb`] and [`decision_from_pb`].
//!
//! Every error is a [`ConversionError`] naming the offending field, and a
//! conversion reports all of them, not just the first. Fields of wire
//! messages are named by their proto field names (`originator_ip.ipv4`),
//! except inside a set of rules, named by oneM2M short names
//! (`pv.acr[0].acod[1].spty`, `pv.acr[0].acco[1].aclr`) wherever the error
//! is found, in conversion or in the core validator, so one reply never
//! names the same rule two ways.
//! [`invalid_argument`] turns the errors into a gRPC status.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use authz_core::HostingContext;
use authz_core::decision::{
    AuthorizationStatus, ContextFailure, Decision, Effect, Explanation, FailedCondition,
    MissingAttribute, PrivilegeKind, RuleFailure, RuleRef,
};
use authz_core::ids::IdError;
use authz_core::model::{self, Specialization};
use authz_core::request::{DecisionRequest, Operation, Position};
use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::pb;

/// One field that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConversionError {
    /// Path of the field: proto field names for wire messages
    /// (`originator_location.position.latitude`), oneM2M short names for the
    /// core policy model (`pv.acr[0].acco[1].aclr`).
    pub field: String,
    /// Why the value cannot be converted.
    pub message: String,
}

/// Collects errors while walking a message.
#[derive(Default)]
struct Errors(Vec<ConversionError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConversionError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<ConversionError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// The most bytes one record a service stores takes encoded (an ACP, a
/// target resource, a dynamic ACP): far more than any real one, and a
/// bound on what each message naming it and each part of a snapshot
/// holding it carries, so that no writer can make a message no peer
/// decodes.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The largest message a client of the services here decodes (tonic's
/// default is 4 MiB): a `<group>` listing or an answer about a large group
/// can be larger than that, and a service that cannot read one is stuck.
pub const MAX_DECODING_MESSAGE_BYTES: usize = 256 << 20;

/// The most Role-IDs a decision request claims (`role_ids`, `rids`): each
/// is verified with the PIP and cached per originator, so a request of
/// thousands would cost every decision of that originator, and the PDP's
/// memory, what the caller likes. An originator holds a handful.
pub const MAX_ROLE_IDS: usize = 64;

/// An INVALID_ARGUMENT cause for `record` (named `field`) when it is
/// larger encoded than [`MAX_RECORD_BYTES`].
pub fn record_size_violation(record: &impl prost::Message, field: &str) -> Option<ConversionError> {
    let len = record.encoded_len();
    (len > MAX_RECORD_BYTES).then(|| ConversionError {
        field: field.to_owned(),
        message: format!(
            "is {len} bytes encoded; a stored record has at most {MAX_RECORD_BYTES} (1 MiB)"
        ),
    })
}

/// A cause per entry of `list` (a repeated field named `field`) that an
/// earlier entry gives already: `field[i]: x is listed already, as
/// field[j]`. A list of IDs to look up names each once, so that a small
/// request cannot ask for one large answer many times over.
pub fn repeated_entries(list: &[String], field: &str) -> Vec<ConversionError> {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match first.get(entry.as_str()) {
            Some(j) => errors.push(ConversionError {
                field: format!("{field}[{i}]"),
                message: format!("{entry} is listed already, as {field}[{j}]"),
            }),
            None => {
                first.insert(entry.as_str(), i);
            }
        }
    }
    errors
}

/// Every error as `field: message`, separated by `; `.
pub fn join_errors(errors: &[ConversionError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The most bytes of one field violation's description (and field path) in
/// an INVALID_ARGUMENT status, and the most violations it lists: a status
/// travels in HTTP/2 headers (`grpc-message`, `grpc-status-details-bin`),
/// which a peer may cap at 16 KiB, so a long value echoed back (a
/// 5 000-byte country code) must not make the answer a protocol error
/// instead of the error it is.
pub const MAX_VIOLATION_BYTES: usize = 256;
/// See [`MAX_VIOLATION_BYTES`].
pub const MAX_VIOLATIONS: usize = 16;
/// The most bytes of all the violations' fields and descriptions in one
/// status, and of its message (which `grpc-status-details-bin` repeats):
/// with the details base64-encoded, a status's headers stay under 8 KiB,
/// the default cap of clients built on gRPC's C core (Python, C++), past
/// which they lose the status for a RESOURCE_EXHAUSTED of their own.
pub const MAX_VIOLATIONS_TOTAL_BYTES: usize = 2048;
/// See [`MAX_VIOLATIONS_TOTAL_BYTES`].
pub const MAX_FIELD_STATUS_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes at a character boundary, with `…` and
/// the full length when cut.
fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

/// A message cut to at most `max` bytes (plus the note of what was cut)
/// keeping its start and its end: a message that quotes a long value
/// before the reason (`'…' is not an IPv4 address`) still says why.
fn bounded_message(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut head = max / 3;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - max / 2;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… ({} bytes) …{}",
        &text[..head],
        text.len(),
        &text[tail..]
    ))
}

/// A gRPC `INVALID_ARGUMENT` status for conversion errors, with a
/// `google.rpc.BadRequest` detail holding one field violation per error.
///
/// The message lists every error ([`join_errors`]), each cut to about
/// [`MAX_VIOLATION_BYTES`] (its start and its end kept, so a long value
/// quoted before the reason does not hide the reason), at most [`MAX_VIOLATIONS`] of them (then how
/// many more there were), so the status fits the headers it travels in.
pub fn invalid_argument(errors: &[ConversionError]) -> Status {
    field_status(Code::InvalidArgument, errors)
}

/// A gRPC status of `code` about request fields (an `ALREADY_EXISTS` for
/// an ID a field gives, a PIP's for `token.local_token_id`, say), with a `google.rpc.BadRequest` naming them,
/// bounded as [`invalid_argument`] describes. Every status with details
/// goes through here: the servers' cut of `grpc-message`
/// ([`crate::serving::bound_status_message`]) cannot shorten the details,
/// which travel in headers too.
pub fn field_status(code: Code, errors: &[ConversionError]) -> Status {
    let mut shown: Vec<ConversionError> = Vec::new();
    let mut total = 0;
    for e in errors.iter().take(MAX_VIOLATIONS) {
        let e = ConversionError {
            field: bounded(&e.field, MAX_VIOLATION_BYTES).into_owned(),
            message: bounded_message(&e.message, MAX_VIOLATION_BYTES).into_owned(),
        };
        total += e.field.len() + e.message.len();
        // The first always (it fits on its own).
        if total > MAX_VIOLATIONS_TOTAL_BYTES && !shown.is_empty() {
            break;
        }
        shown.push(e);
    }
    let mut message = if shown.is_empty() {
        code.description().to_owned()
    } else {
        join_errors(&shown)
    };
    if errors.len() > shown.len() {
        message.push_str(&format!("; and {} more", errors.len() - shown.len()));
    }
    let message = bounded_message(&message, MAX_FIELD_STATUS_MESSAGE_BYTES).into_owned();
    let violations: Vec<FieldViolation> = shown
        .into_iter()
        .map(|e| FieldViolation::new(e.field, e.message))
        .collect();
    Status::with_error_details(code, message, ErrorDetails::with_bad_request(violations))
}

/// The most bytes of a value a client sent that [`echo`] keeps.
pub const MAX_ECHO_BYTES: usize = 64;

/// `value`, a value a client sent, as an error message quotes it: cut to
/// [`MAX_ECHO_BYTES`] (with `…` and its full length when cut), so that the
/// rest of a bounded message ([`field_status`]) still says what is wrong.
pub fn echo(value: &str) -> std::borrow::Cow<'_, str> {
    bounded(value, MAX_ECHO_BYTES)
}

// ---------------------------------------------------------------------------
// Enumerations
// ---------------------------------------------------------------------------

impl From<Operation> for pb::Operation {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Create => Self::Create,
            Operation::Retrieve => Self::Retrieve,
            Operation::Update => Self::Update,
            Operation::Delete => Self::Delete,
            Operation::Notify => Self::Notify,
        }
    }
}

/// The core operation of a wire `Operation` value; `None` for
/// `OPERATION_UNSPECIFIED` and unknown numbers.
pub fn operation_from_pb(value: i32) -> Option<Operation> {
    u32::try_from(value).ok().and_then(Operation::from_code)
}

impl From<Effect> for pb::AuthorizationDecision {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::Permit => Self::Permit,
            Effect::Deny => Self::Deny,
        }
    }
}

impl From<AuthorizationStatus> for pb::AuthorizationStatus {
    fn from(status: AuthorizationStatus) -> Self {
        match status {
            AuthorizationStatus::Ok => Self::Ok,
            AuthorizationStatus::NotApplicable => Self::NotApplicable,
            AuthorizationStatus::MissingAttribute => Self::MissingAttribute,
            AuthorizationStatus::SyntaxError => Self::SyntaxError,
            AuthorizationStatus::ProcessingError => Self::ProcessingError,
        }
    }
}

impl From<PrivilegeKind> for pb::PrivilegeKind {
    fn from(kind: PrivilegeKind) -> Self {
        match kind {
            PrivilegeKind::Privileges => Self::Privileges,
            PrivilegeKind::SelfPrivileges => Self::SelfPrivileges,
        }
    }
}

impl From<&Specialization> for pb::Specialization {
    fn from(spec: &Specialization) -> Self {
        use pb::specialization::Kind;
        Self {
            kind: Some(match spec {
                Specialization::MgmtDefinition(mgd) => Kind::MgmtDefinition(*mgd),
                Specialization::ContainerDefinition(cnd) => Kind::ContainerDefinition(cnd.clone()),
            }),
        }
    }
}

fn specialization_from_pb(
    spec: &pb::Specialization,
    path: &str,
    errors: &mut Errors,
) -> Option<Specialization> {
    use pb::specialization::Kind;
    match &spec.kind {
        Some(Kind::MgmtDefinition(mgd)) => Some(Specialization::MgmtDefinition(*mgd)),
        Some(Kind::ContainerDefinition(cnd)) => {
            Some(Specialization::ContainerDefinition(cnd.clone()))
        }
        None => {
            errors.add(
                path,
                "one of mgmt_definition or container_definition must be set",
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

/// Short names of the attributes that `pb::AccessControlPolicy` carries in
/// typed fields whenever they are present.
const ALWAYS_TYPED: [&str; 5] = ["rn", "ri", "pi", "pv", "pvs"];

/// Converts a core policy to its wire form.
///
/// `lbl`, `adri`, `apri` and `airi` move from `other` to the typed fields when
/// they are non-empty lists of strings, `et` when it is a non-empty string;
/// in any other shape they stay in `other_attributes` with the rest of
/// `other`. Errors name fields by their oneM2M short names.
pub fn acp_to_pb(
    acp: &model::AccessControlPolicy,
) -> Result<pb::AccessControlPolicy, Vec<ConversionError>> {
    let mut errors = Errors::default();
    let mut other = acp.other.clone();
    for key in ALWAYS_TYPED {
        if other.contains_key(key) {
            errors.add(
                key,
                "present in `other` although the policy has a field for it",
            );
        }
    }
    let labels = take_string_list(&mut other, "lbl");
    let pdp_addresses = take_string_list(&mut other, "adri");
    let prp_addresses = take_string_list(&mut other, "apri");
    let pip_addresses = take_string_list(&mut other, "airi");
    let expiration_time = match other.get("et") {
        Some(Value::String(et)) if !et.is_empty() => {
            let et = et.clone();
            other.remove("et");
            et
        }
        _ => String::new(),
    };
    let other_attributes = (!other.is_empty()).then(|| json_map_to_struct(&other, "", &mut errors));
    let out = pb::AccessControlPolicy {
        resource_id: acp.resource_id.clone(),
        resource_name: acp.resource_name.clone(),
        parent_id: acp.parent_id.clone(),
        labels,
        expiration_time,
        privileges: acp
            .privileges
            .as_ref()
            .map(|p| set_of_acrs_to_pb(p, "pv", &mut errors)),
        self_privileges: acp
            .self_privileges
            .as_ref()
            .map(|p| set_of_acrs_to_pb(p, "pvs", &mut errors)),
        pdp_addresses,
        prp_addresses,
        pip_addresses,
        other_attributes,
    };
    errors.finish(out)
}

/// Removes `key` from `other` and returns it when it is a non-empty list of
/// strings; leaves it in place otherwise.
fn take_string_list(other: &mut Map<String, Value>, key: &str) -> Vec<String> {
    let list = match other.get(key) {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    match list {
        Some(list) => {
            other.remove(key);
            list
        }
        None => Vec::new(),
    }
}

/// Converts a `setOfAcrs` (`pv` or `pvs`, named by `path`) to its wire form.
pub fn set_of_acrs_to_pb(
    set: &model::SetOfAcrs,
    path: &str,
    errors: &mut impl ErrorSink,
) -> pb::SetOfAcrs {
    pb::SetOfAcrs {
        rules: set
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| rule_to_pb(rule, &format!("{path}.acr[{i}]"), errors))
            .collect(),
    }
}

fn rule_to_pb(
    rule: &model::AccessControlRule,
    path: &str,
    errors: &mut impl ErrorSink,
) -> pb::AccessControlRule {
    pb::AccessControlRule {
        originators: rule.originators.clone(),
        operations: rule.operations,
        contexts: rule
            .contexts
            .iter()
            .enumerate()
            .map(|(i, c)| context_to_pb(c, &format!("{path}.acco[{i}]"), errors))
            .collect(),
        authentication_flag: rule.authentication_flag,
        object_details: rule
            .object_details
            .iter()
            .enumerate()
            .map(|(i, o)| object_details_to_pb(o, &format!("{path}.acod[{i}]"), errors))
            .collect(),
    }
}

fn context_to_pb(
    ctx: &model::AccessControlContext,
    path: &str,
    errors: &mut impl ErrorSink,
) -> pb::AccessControlContext {
    pb::AccessControlContext {
        time_windows: ctx.time_windows.clone(),
        ip_addresses: ctx.ip_addresses.as_ref().map(|ip| pb::IpAddresses {
            ipv4: ip.ipv4.clone(),
            ipv6: ip.ipv6.clone(),
        }),
        location_region: ctx
            .location_region
            .as_ref()
            .and_then(|lr| location_region_to_pb(lr, &format!("{path}.aclr"), errors)),
    }
}

fn location_region_to_pb(
    region: &model::LocationRegion,
    path: &str,
    errors: &mut impl ErrorSink,
) -> Option<pb::LocationRegion> {
    use pb::location_region::Region;
    // An empty `accc` or `accr` is absent (Decision 11), as the engine
    // compiles it: `{"accc": [], "accr": [...]}` is the circle alone, and
    // `{"accr": []}` no constraint. (`{"accc": []}` alone stays as
    // written: the wire holds an empty list of codes.)
    let (codes, circle) = match (&region.country_codes, &region.circle) {
        (codes, Some(c)) if c.is_empty() => (codes.as_ref(), None),
        (Some(c), circle @ Some(_)) if c.is_empty() => (None, circle.as_ref()),
        (codes, circle) => (codes.as_ref(), circle.as_ref()),
    };
    let region = match (codes, circle) {
        (Some(codes), None) => Region::CountryCodes(pb::CountryCodes {
            codes: codes.clone(),
        }),
        (None, Some(circle)) => match circle.as_slice() {
            &[latitude, longitude, radius_m] => Region::Circle(pb::Circle {
                latitude,
                longitude,
                radius_m,
            }),
            other => {
                errors.add_error(
                    format!("{path}.accr"),
                    format!(
                        "must hold exactly 3 numbers [latitude, longitude, radius], not {}",
                        other.len()
                    ),
                );
                return None;
            }
        },
        (Some(_), Some(_)) => {
            errors.add_error(path, "must hold exactly one of accc and accr, not both");
            return None;
        }
        // `aclr: {}` constrains nothing (Decision 11); the wire carries it as
        // a region with neither set.
        (None, None) => return Some(pb::LocationRegion { region: None }),
    };
    Some(pb::LocationRegion {
        region: Some(region),
    })
}

fn object_details_to_pb(
    od: &model::ObjectDetails,
    path: &str,
    errors: &mut impl ErrorSink,
) -> pb::ObjectDetails {
    if od.child_resource_types.is_none() {
        errors.add_error(
            format!("{path}.chty"),
            "childResourceType is mandatory in an acod element",
        );
    }
    pb::ObjectDetails {
        resource_type: od.resource_type,
        specialization: od.specialization.as_ref().map(pb::Specialization::from),
        child_resource_types: od.child_resource_types.clone().unwrap_or_default(),
    }
}

/// Where nested conversions report errors; implemented for the collector
/// used inside this module and for a plain `Vec<ConversionError>`, so that
/// callers converting a bare `setOfAcrs` (a DAS grant, a token permission)
/// can collect errors themselves.
pub trait ErrorSink {
    /// Records one error.
    fn add_error(&mut self, field: impl Into<String>, message: impl Into<String>);
}

impl ErrorSink for Errors {
    fn add_error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.add(field, message);
    }
}

impl ErrorSink for Vec<ConversionError> {
    fn add_error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(ConversionError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Converts a wire policy to the core model.
///
/// The typed fields `labels`, `expiration_time` and the address lists become
/// `lbl`, `et`, `adri`, `apri` and `airi` in `other` when non-empty; the
/// entries of `other_attributes` are added to `other` as they are. Errors
/// name fields by their proto field names.
pub fn acp_from_pb(
    acp: &pb::AccessControlPolicy,
) -> Result<model::AccessControlPolicy, Vec<ConversionError>> {
    let mut errors = Errors::default();
    let mut other = match &acp.other_attributes {
        Some(s) => struct_to_json_map(s, "other_attributes", &mut errors),
        None => Map::new(),
    };
    for key in ALWAYS_TYPED {
        if other.contains_key(key) {
            errors.add(
                format!("other_attributes.{key}"),
                "must not be given here: AccessControlPolicy has a field for it",
            );
        }
    }
    // A name that would silently drop rules, as in a file (the check
    // `authz check` and `policy apply` make).
    for key in other.keys().filter(|k| !ALWAYS_TYPED.contains(&k.as_str())) {
        if let Some(message) = authz_core::json::other_attribute_name_error(key, false) {
            errors.add(format!("other_attributes.{key}"), message);
        }
    }
    let typed: [(&str, &str, Option<Value>); 5] = [
        ("lbl", "labels", string_list_value(&acp.labels)),
        (
            "et",
            "expiration_time",
            (!acp.expiration_time.is_empty()).then(|| Value::String(acp.expiration_time.clone())),
        ),
        (
            "adri",
            "pdp_addresses",
            string_list_value(&acp.pdp_addresses),
        ),
        (
            "apri",
            "prp_addresses",
            string_list_value(&acp.prp_addresses),
        ),
        (
            "airi",
            "pip_addresses",
            string_list_value(&acp.pip_addresses),
        ),
    ];
    for (key, field, value) in typed {
        if let Some(value) = value {
            if other.contains_key(key) {
                errors.add(
                    format!("other_attributes.{key}"),
                    format!("must not be given together with {field}"),
                );
            } else {
                other.insert(key.to_owned(), value);
            }
        }
    }
    let out = model::AccessControlPolicy {
        resource_name: acp.resource_name.clone(),
        resource_id: acp.resource_id.clone(),
        parent_id: acp.parent_id.clone(),
        privileges: acp
            .privileges
            .as_ref()
            .map(|p| set_of_acrs_from_pb(p, "pv", &mut errors)),
        self_privileges: acp
            .self_privileges
            .as_ref()
            .map(|p| set_of_acrs_from_pb(p, "pvs", &mut errors)),
        other,
    };
    errors.finish(out)
}

fn string_list_value(list: &[String]) -> Option<Value> {
    (!list.is_empty()).then(|| Value::Array(list.iter().cloned().map(Value::String).collect()))
}

/// Converts a wire `SetOfAcrs` (named by `path`, e.g. `pv`) to the core
/// model; errors name fields by oneM2M short names (`pv.acr[0].acod[1].spty`),
/// as the core's validation does.
pub fn set_of_acrs_from_pb(
    set: &pb::SetOfAcrs,
    path: &str,
    errors: &mut impl ErrorSink,
) -> model::SetOfAcrs {
    model::SetOfAcrs {
        rules: set
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| rule_from_pb(rule, &format!("{path}.acr[{i}]"), errors))
            .collect(),
    }
}

fn rule_from_pb(
    rule: &pb::AccessControlRule,
    path: &str,
    errors: &mut impl ErrorSink,
) -> model::AccessControlRule {
    model::AccessControlRule {
        originators: rule.originators.clone(),
        operations: rule.operations,
        contexts: rule.contexts.iter().map(context_from_pb).collect(),
        authentication_flag: rule.authentication_flag,
        object_details: rule
            .object_details
            .iter()
            .enumerate()
            .map(|(i, o)| object_details_from_pb(o, &format!("{path}.acod[{i}]"), errors))
            .collect(),
    }
}

fn context_from_pb(ctx: &pb::AccessControlContext) -> model::AccessControlContext {
    use pb::location_region::Region;
    model::AccessControlContext {
        time_windows: ctx.time_windows.clone(),
        ip_addresses: ctx.ip_addresses.as_ref().map(|ip| model::IpAddresses {
            ipv4: ip.ipv4.clone(),
            ipv6: ip.ipv6.clone(),
        }),
        location_region: ctx.location_region.as_ref().map(|lr| match &lr.region {
            Some(Region::CountryCodes(c)) => model::LocationRegion {
                country_codes: Some(c.codes.clone()),
                circle: None,
            },
            Some(Region::Circle(c)) => model::LocationRegion {
                country_codes: None,
                circle: Some(vec![c.latitude, c.longitude, c.radius_m]),
            },
            // Neither set: no constraint, as `aclr: {}` in JSON (Decision
            // 11), into which it converts.
            None => model::LocationRegion::default(),
        }),
    }
}

fn object_details_from_pb(
    od: &pb::ObjectDetails,
    path: &str,
    errors: &mut impl ErrorSink,
) -> model::ObjectDetails {
    // An empty one is absent (Decision 11), as `"spty": {}` is.
    let specialization = od
        .specialization
        .as_ref()
        .filter(|s| s.kind.is_some())
        .and_then(|s| {
            let mut inner = Errors::default();
            let spec = specialization_from_pb(s, &format!("{path}.spty"), &mut inner);
            for e in inner.0 {
                errors.add_error(e.field, e.message);
            }
            spec
        });
    model::ObjectDetails {
        resource_type: od.resource_type,
        specialization,
        child_resource_types: Some(od.child_resource_types.clone()),
    }
}

// --- JSON values <-> google.protobuf.Struct --------------------------------

/// The largest integer a double represents exactly, with all below it.
const MAX_EXACT_INT: u64 = 1 << 53;

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn json_map_to_struct(
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Errors,
) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v, &join_key(path, k), errors)))
            .collect(),
    }
}

fn json_to_value(value: &Value, path: &str, errors: &mut Errors) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(number_to_f64(n, path, errors)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items
                .iter()
                .enumerate()
                .map(|(i, v)| json_to_value(v, &format!("{path}[{i}]"), errors))
                .collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_map_to_struct(map, path, errors)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn number_to_f64(n: &Number, path: &str, errors: &mut Errors) -> f64 {
    let exact = if let Some(u) = n.as_u64() {
        u <= MAX_EXACT_INT
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs() <= MAX_EXACT_INT
    } else {
        true
    };
    if !exact {
        errors.add(
            path,
            format!("integer {n} cannot be carried exactly as a protobuf double"),
        );
    }
    n.as_f64().unwrap_or(f64::NAN)
}

fn struct_to_json_map(
    s: &prost_types::Struct,
    path: &str,
    errors: &mut Errors,
) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v, &join_key(path, k), errors)))
        .collect()
}

fn value_to_json(value: &prost_types::Value, path: &str, errors: &mut Errors) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(f)) => f64_to_json(*f, path, errors),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(i, v)| value_to_json(v, &format!("{path}[{i}]"), errors))
                .collect(),
        ),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json_map(s, path, errors)),
    }
}

/// Integral doubles within ±2^53 become JSON integers, so that `"ty": 1`
/// survives a round trip as `1`, not `1.0`.
fn f64_to_json(f: f64, path: &str, errors: &mut Errors) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_EXACT_INT as f64 {
        // Exact: |f| <= 2^53 and integral.
        return if f >= 0.0 {
            Value::Number(Number::from(f as u64))
        } else {
            Value::Number(Number::from(f as i64))
        };
    }
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => {
            errors.add(path, format!("{f} is not a JSON number"));
            Value::Null
        }
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A checked `pb::DecisionRequest`, split into what the engine decides on and
/// what the PDP handles around it (policy lookup, tokens, explanation).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedRequest {
    /// The request as the engine sees it. `time` is `request_time`, or the
    /// `now` the caller passed when the request carried none.
    pub request: DecisionRequest,
    /// The hosting CSE from `hosting_sp_id` and `hosting_cse_id`; `None` when
    /// both are empty, meaning the PDP's configured hosting CSE.
    pub hosting: Option<HostingContext>,
    /// `tkns`: tokens, each checked to be a JWS or JWE compact serialization.
    pub tokens: Vec<String>,
    /// `tids`: Token-IDs.
    pub token_ids: Vec<String>,
    /// `ltids`: Local Token IDs.
    pub local_token_ids: Vec<String>,
    /// `tqi`: the originator wants Token Request Information on a Deny.
    pub token_request_indicator: bool,
    /// Explicit ACP IDs; when non-empty they replace the PRP lookup.
    pub acp_ids: Vec<String>,
    /// An explanation was asked for.
    pub explain: bool,
    /// `rqi`, to echo in the decision.
    pub request_id: String,
}

/// Checks a wire decision request and converts it for the engine.
///
/// `now` is used as the request time when `request_time` is absent. Every
/// problem is reported, each naming its field by proto field name, e.g.
/// `operation: 0 is not an operation (1-5)` or
/// `originator_ip.ipv4: '300.1.1.1' is not an IPv4 address: an octet is at most 255`.
///
/// `resource_type` and `specialization` are passed on whatever the
/// operation; the engine uses them for a Create only.
pub fn decision_request_from_pb(
    req: &pb::DecisionRequest,
    now: DateTime<Utc>,
) -> Result<ConvertedRequest, Vec<ConversionError>> {
    let mut errors = Errors::default();

    // A malformed originator is an error, not a decision (Decision 9).
    if let Err(e) = authz_core::ids::check_originator_id(&req.originator) {
        errors.add("originator", e.to_string());
    }
    // No resource has such an ID (Decision 9): the one check of a target,
    // `authz check`'s `to` included (an empty segment, `/acp1/`, would
    // otherwise be taken for a resource other than the ACP `/acp1`).
    if let Err(e) = authz_core::ids::check_resource_id(&req.target) {
        errors.add("target", e.to_string());
    }

    let operation = operation_from_pb(req.operation);
    if operation.is_none() {
        errors.add(
            "operation",
            format!("{} is not an operation (1-5)", req.operation),
        );
    }
    if req.discovery && operation.is_some_and(|op| op != Operation::Retrieve) {
        errors.add(
            "discovery",
            "a discovery (filterUsage 1) must be an OPERATION_RETRIEVE",
        );
    }
    // TS-0001 9.6.1.3.2: an acpi change is an Update of a resource that has
    // acpi; an ACP and the types without acpi have none (spec notes §2.3).
    // A target the request gives no type for is checked by the PDP against
    // its replica.
    if req.updates_acpi {
        if operation.is_some_and(|op| op != Operation::Update) {
            errors.add(
                "updates_acpi",
                "an acpi change (TS-0001 9.6.1.3.2) must be an OPERATION_UPDATE",
            );
        }
        if let Some(ty) = req
            .target_type
            .filter(|ty| !authz_core::resources::type_has_acpi(*ty))
        {
            errors.add(
                "updates_acpi",
                format!(
                    "the request's target_type {ty} has no accessControlPolicyIDs (acpi) to \
                     change (an ACP, or a type without acpi; spec notes §2.3)"
                ),
            );
        }
    }

    if req.role_ids.len() > MAX_ROLE_IDS {
        errors.add(
            "role_ids",
            format!(
                "{} Role-IDs; a request claims at most {MAX_ROLE_IDS}",
                req.role_ids.len()
            ),
        );
    } else {
        for (i, rid) in req.role_ids.iter().enumerate() {
            check_at_id(rid, &format!("role_ids[{i}]"), "Role-ID", &mut errors);
        }
    }
    // Syntax only (Decision 9), whatever DASes the PDP trusts.
    for (i, token) in req.tokens.iter().enumerate() {
        if let Err(e) = authz_core::token::check_syntax(token) {
            errors.add(format!("tokens[{i}]"), e.to_string());
        }
    }
    // Token-IDs strictly (Decision 9): their FQDN names the DAS to fetch
    // them from (Decision 8), so a malformed one is the originator's invalid
    // argument, not a Deny. Role-IDs stay lax: `acor` may name any.
    for (i, tid) in req.token_ids.iter().enumerate() {
        let field = format!("token_ids[{i}]");
        if check_id(tid, &field, &mut errors)
            && let Err(why) = authz_core::token::check_scoped_id(tid)
        {
            errors.add(
                field,
                format!("not a Token-ID (name@fqdn, TS-0001 7.1.15): {why}"),
            );
        }
    }
    for (i, ltid) in req.local_token_ids.iter().enumerate() {
        let field = format!("local_token_ids[{i}]");
        if check_id(ltid, &field, &mut errors) && !is_ncname(ltid) {
            errors.add(field, not_ncname_message(ltid));
        }
    }
    // An explicit ACP ID is a resource ID as a target is: one with an
    // empty `/` segment names no ACP (TS-0001 7.2).
    for (i, acp) in req.acp_ids.iter().enumerate() {
        if let Err(e) = authz_core::ids::check_resource_id(acp) {
            errors.add(format!("acp_ids[{i}]"), e.to_string());
        }
    }

    // An empty one is absent, as in a policy's object details and as
    // `"spty": {}` is in a request document.
    let specialization = req
        .specialization
        .as_ref()
        .filter(|s| s.kind.is_some())
        .and_then(|s| specialization_from_pb(s, "specialization", &mut errors));
    if let Some(Specialization::ContainerDefinition(cnd)) = &specialization
        && cnd.is_empty()
    {
        errors.add("specialization.container_definition", "must not be empty");
    }
    if let (Some(s), Some(ty)) = (&specialization, req.resource_type)
        && let Err(why) = s.check_created_type(ty)
    {
        errors.add("specialization", why);
    }
    // Given, a type is one (as in a policy's acod and `authz check`).
    for (field, ty) in [
        ("target_type", req.target_type),
        ("resource_type", req.resource_type),
    ] {
        if ty == Some(0) {
            errors.add(field, authz_core::model::NO_RESOURCE_TYPE_0);
        }
    }

    let time = match &req.request_time {
        None => now,
        Some(ts) => timestamp_from_pb(ts, "request_time", &mut errors).unwrap_or(now),
    };

    let ip = req.originator_ip.as_ref().and_then(|ip| {
        use pb::ip_address::Address;
        match &ip.address {
            Some(Address::Ipv4(text)) => match text.parse::<Ipv4Addr>() {
                Ok(a) => Some(IpAddr::V4(a)),
                Err(_) => {
                    errors.add(
                        "originator_ip.ipv4",
                        format!(
                            "'{text}' is not an IPv4 address: {}",
                            authz_core::compile::ipv4_fault(text)
                        ),
                    );
                    None
                }
            },
            Some(Address::Ipv6(text)) => match text.parse::<Ipv6Addr>() {
                // Kept as given: the engine matches an IPv4-mapped address
                // (`::ffff:a.b.c.d`) both as its IPv4 peer and as the IPv6
                // address it was written as, like `authz check` does.
                Ok(a) => Some(IpAddr::V6(a)),
                Err(_) => {
                    errors.add(
                        "originator_ip.ipv6",
                        format!("'{text}' is not an IPv6 address"),
                    );
                    None
                }
            },
            None => {
                errors.add("originator_ip", "one of ipv4 or ipv6 must be set");
                None
            }
        }
    });

    let (position, countries) = match &req.originator_location {
        None => (None, Vec::new()),
        Some(loc) => {
            let position = loc.position.as_ref().and_then(|p| {
                match position_from_pb(p, "originator_location.position") {
                    Ok(p) => Some(p),
                    Err(e) => {
                        errors.0.extend(e);
                        None
                    }
                }
            });
            for (i, code) in loc.country_codes.iter().enumerate() {
                if let Some(fault) = authz_core::location::country_code_fault(code) {
                    errors.add(format!("originator_location.country_codes[{i}]"), fault);
                }
            }
            (position, loc.country_codes.clone())
        }
    };

    let hosting = match (req.hosting_sp_id.is_empty(), req.hosting_cse_id.is_empty()) {
        (true, true) => None,
        (false, true) => {
            errors.add("hosting_cse_id", "required when hosting_sp_id is set");
            None
        }
        (true, false) => {
            errors.add("hosting_sp_id", "required when hosting_cse_id is set");
            None
        }
        (false, false) => match HostingContext::new(&req.hosting_sp_id, &req.hosting_cse_id) {
            Ok(h) => Some(h),
            Err(e) => {
                let field = match e {
                    IdError::BadCseId(..) => "hosting_cse_id",
                    _ => "hosting_sp_id",
                };
                errors.add(field, e.to_string());
                None
            }
        },
    };

    let Some(operation) = operation else {
        return Err(errors.0);
    };
    let request = DecisionRequest {
        originator: req.originator.clone(),
        role_ids: req.role_ids.clone(),
        operation,
        discovery: req.discovery,
        updates_acpi: req.updates_acpi,
        target: req.target.clone(),
        target_type: req.target_type,
        resource_type: req.resource_type,
        specialization,
        time,
        ip,
        position,
        countries,
        authenticated: req.authenticated,
    };
    errors.finish(ConvertedRequest {
        request,
        hosting,
        tokens: req.tokens.clone(),
        token_ids: req.token_ids.clone(),
        local_token_ids: req.local_token_ids.clone(),
        token_request_indicator: req.token_request_indicator,
        acp_ids: req.acp_ids.clone(),
        explain: req.explain,
        request_id: req.request_id.clone(),
    })
}

/// Checks that an identifier is one a request can name ([`is_usable_id`]:
/// not empty, no white space or control characters, at most
/// [`MAX_ID_BYTES`]); true if so.
fn check_id(id: &str, field: &str, errors: &mut Errors) -> bool {
    if is_usable_id(id) {
        true
    } else {
        errors.add(field, unusable_id_reason(id));
        false
    }
}

/// What is wrong with a Local-Token-ID that is no NCName, for an error
/// naming its field (the one wording of the PDP and the PIP).
pub fn not_ncname_message(value: &str) -> String {
    format!(
        "'{}' is not an NCName (a letter or '_', then letters, digits, '.', '-', '_'; TS-0001 7.1.16)",
        echo(value)
    )
}

/// Is `s` an XML NCName (a Local-Token-ID, TS-0001 7.1.16)? Letters
/// include every non-ASCII letter; other characters are the ASCII ones of
/// the NCName production (no `:`).
pub fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The violation of a claimed Role-ID in `field`, if it is none (empty, or
/// not `issuerRelativeID@issuerID`): what the PDP says of `role_ids[i]`,
/// for other services that take Role-IDs.
pub fn role_id_violation(id: &str, field: &str) -> Option<ConversionError> {
    let mut errors = Errors(Vec::new());
    if id.is_empty() {
        errors.add(field, "required");
    } else {
        check_at_id(id, field, "Role-ID", &mut errors);
    }
    errors.0.pop()
}

/// Checks a `name@issuer` identifier (m2m:roleID, m2m:tokenID).
fn check_at_id(id: &str, field: &str, what: &str, errors: &mut Errors) {
    match authz_core::ids::check_role_id(id) {
        Ok(()) => {}
        Err(IdError::BadRoleId(reason)) => {
            errors.add(field, format!("not a {what} (name@issuer): {reason}"))
        }
        Err(IdError::Whitespace) => {
            errors.add(field, format!("'{id}' must not contain whitespace"))
        }
        Err(e) => errors.add(field, e.to_string()),
    }
}

fn timestamp_from_pb(
    ts: &prost_types::Timestamp,
    field: &str,
    errors: &mut Errors,
) -> Option<DateTime<Utc>> {
    let Ok(nanos) = u32::try_from(ts.nanos) else {
        errors.add(
            format!("{field}.nanos"),
            format!("{} out of range 0..999999999", ts.nanos),
        );
        return None;
    };
    if nanos > 999_999_999 {
        errors.add(
            format!("{field}.nanos"),
            format!("{nanos} out of range 0..999999999"),
        );
        return None;
    }
    // The protobuf Timestamp range, not chrono's wider one: a time outside
    // it is refused by standard clients when it is answered back (its JSON
    // form has 4-digit years), so it may not be stored in the first place.
    let t = DateTime::from_timestamp(ts.seconds, nanos)
        .filter(|_| (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds));
    if t.is_none() {
        errors.add(
            format!("{field}.seconds"),
            format!(
                "{} is outside the representable time range \
                 0001-01-01T00:00:00Z..=9999-12-31T23:59:59Z of a protobuf Timestamp",
                ts.seconds
            ),
        );
    }
    t
}

/// The first second of a protobuf `Timestamp`, 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = authz_core::json::FIRST_TIMESTAMP_SECONDS;

/// The last second of a protobuf `Timestamp`, 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = authz_core::json::LAST_TIMESTAMP_SECONDS;

/// Converts and checks a wire position (latitude -90..90, longitude
/// -180..180, uncertainty a finite number of metres >= 0), naming fields
/// under `path`.
pub fn position_from_pb(p: &pb::Position, path: &str) -> Result<Position, Vec<ConversionError>> {
    let mut errors = Errors::default();
    if !(-90.0..=90.0).contains(&p.latitude) {
        errors.add(
            format!("{path}.latitude"),
            format!("{} out of range -90..90", p.latitude),
        );
    }
    if !(-180.0..=180.0).contains(&p.longitude) {
        errors.add(
            format!("{path}.longitude"),
            format!("{} out of range -180..180", p.longitude),
        );
    }
    if !(p.uncertainty_m.is_finite() && p.uncertainty_m >= 0.0) {
        errors.add(
            format!("{path}.uncertainty_m"),
            format!("{} must be a finite number of metres >= 0", p.uncertainty_m),
        );
    }
    errors.finish(Position {
        lat: p.latitude,
        lon: p.longitude,
        uncertainty_m: p.uncertainty_m,
    })
}

/// A position as its wire form.
pub fn position_to_pb(p: &Position) -> pb::Position {
    pb::Position {
        latitude: p.lat,
        longitude: p.lon,
        uncertainty_m: p.uncertainty_m,
    }
}

/// Converts a wire timestamp, naming `field` when it is out of range.
pub fn timestamp_field(
    ts: &prost_types::Timestamp,
    field: &str,
) -> Result<DateTime<Utc>, ConversionError> {
    let mut errors = Errors::default();
    match timestamp_from_pb(ts, field, &mut errors) {
        Some(t) => Ok(t),
        None => Err(errors.0.into_iter().next().unwrap_or(ConversionError {
            field: field.to_owned(),
            message: "invalid timestamp".to_owned(),
        })),
    }
}

/// A time as a wire timestamp.
pub fn timestamp_to_pb(t: &DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        // Always < 2e9 (a leap second adds at most 1e9), so it fits.
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(i32::MAX),
    }
}

/// Converts a checked request back to its wire form (for clients and
/// tests); `decision_request_from_pb(&decision_request_to_pb(r), _)` gives
/// `r` back.
///
/// The hosting CSE is written as `//sp` and `/cse`.
pub fn decision_request_to_pb(req: &ConvertedRequest) -> pb::DecisionRequest {
    let r = &req.request;
    let originator_location =
        (r.position.is_some() || !r.countries.is_empty()).then(|| pb::OriginatorLocation {
            position: r.position.as_ref().map(position_to_pb),
            country_codes: r.countries.clone(),
        });
    let (hosting_sp_id, hosting_cse_id) = match &req.hosting {
        Some(h) => (format!("//{}", h.sp_fqdn()), format!("/{}", h.cse_id())),
        None => (String::new(), String::new()),
    };
    pb::DecisionRequest {
        originator: r.originator.clone(),
        role_ids: r.role_ids.clone(),
        tokens: req.tokens.clone(),
        token_ids: req.token_ids.clone(),
        local_token_ids: req.local_token_ids.clone(),
        token_request_indicator: req.token_request_indicator,
        operation: pb::Operation::from(r.operation) as i32,
        discovery: r.discovery,
        target: r.target.clone(),
        target_type: r.target_type,
        resource_type: r.resource_type,
        specialization: r.specialization.as_ref().map(pb::Specialization::from),
        request_time: Some(timestamp_to_pb(&r.time)),
        originator_ip: r.ip.map(|ip| pb::IpAddress {
            address: Some(match ip {
                IpAddr::V4(a) => pb::ip_address::Address::Ipv4(a.to_string()),
                IpAddr::V6(a) => pb::ip_address::Address::Ipv6(a.to_string()),
            }),
        }),
        originator_location,
        authenticated: r.authenticated,
        hosting_cse_id,
        hosting_sp_id,
        acp_ids: req.acp_ids.clone(),
        explain: req.explain,
        request_id: req.request_id.clone(),
        updates_acpi: r.updates_acpi,
    }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

fn rule_ref_to_pb(r: &RuleRef) -> pb::RuleRef {
    pb::RuleRef {
        acp_id: r.acp.to_string(),
        privileges: pb::PrivilegeKind::from(r.privileges) as i32,
        rule_index: u32::try_from(r.rule).unwrap_or(u32::MAX),
    }
}

/// A missing attribute in its wire form (`attribute`, `name`, `reason`).
pub fn missing_to_pb(m: &MissingAttribute) -> pb::MissingAttribute {
    let (attribute, name, reason) = match m {
        MissingAttribute::Role { role, reason } => ("role", role.as_str(), reason),
        MissingAttribute::GroupMembership { group, reason } => {
            ("group_membership", group.as_str(), reason)
        }
        MissingAttribute::GroupKind { id, reason } => ("group_kind", id.as_str(), reason),
        MissingAttribute::IpAddress { reason } => ("ip_address", "", reason),
        MissingAttribute::Position { reason } => ("position", "", reason),
        MissingAttribute::Country { reason } => ("country", "", reason),
        MissingAttribute::TargetType { reason } => ("target_type", "", reason),
        MissingAttribute::ResourceType { reason } => ("resource_type", "", reason),
        MissingAttribute::Specialization { reason } => ("specialization", "", reason),
        MissingAttribute::DynamicAuthorization { das, reason } => {
            ("dynamic_authorization", das.as_str(), reason)
        }
        MissingAttribute::Token { id, reason } => ("token", id.as_str(), reason),
    };
    pb::MissingAttribute {
        attribute: attribute.to_owned(),
        name: name.to_owned(),
        reason: reason.clone(),
    }
}

fn failed_condition_to_pb(f: &FailedCondition) -> pb::FailedCondition {
    use pb::context_failure::Part;
    use pb::failed_condition::Condition;
    let condition = match f {
        FailedCondition::Operation { requested, allowed } => {
            Condition::Operation(pb::OperationMismatch {
                requested: *requested,
                allowed: *allowed,
            })
        }
        FailedCondition::AuthenticationFlag => {
            Condition::Authentication(pb::AuthenticationRequired {})
        }
        FailedCondition::Context { elements } => Condition::Context(pb::ContextMismatch {
            elements: elements
                .iter()
                .map(|e| pb::ContextFailure {
                    part: Some(match e {
                        ContextFailure::TimeWindow { next_open } => {
                            Part::TimeWindow(pb::TimeWindowClosed {
                                next_open: next_open.as_ref().map(timestamp_to_pb),
                            })
                        }
                        ContextFailure::IpAddress { reason } => {
                            Part::IpAddress(pb::IpAddressMismatch {
                                reason: reason.clone(),
                            })
                        }
                        ContextFailure::Location { reason } => {
                            Part::Location(pb::LocationMismatch {
                                reason: reason.clone(),
                            })
                        }
                    }),
                })
                .collect(),
        }),
        FailedCondition::ObjectDetails { elements } => {
            Condition::ObjectDetails(pb::ObjectDetailsMismatch {
                reasons: elements.clone(),
            })
        }
    };
    pb::FailedCondition {
        condition: Some(condition),
    }
}

/// A one-line account of a decision, as put in `Decision.summary`.
///
/// For example `PERMIT by acpA.pv.acr[0] (acor 'CphoneApp')`, or
/// `DENY (not applicable): no rule of the applicable policies names the originator`.
pub fn summary(d: &Decision) -> String {
    let matched = d
        .explanation
        .as_ref()
        .and_then(|e| e.matched_originator.as_deref());
    match (d.effect, &d.permitted_by) {
        (Effect::Permit, Some(rule)) => {
            // Built by hand: `format!` here was a tenth of a PDP decision.
            let mut s = String::with_capacity(48 + rule.acp.len() + matched.map_or(0, str::len));
            s.push_str("PERMIT by ");
            rule.write_to(&mut s);
            if let Some(m) = matched {
                s.push_str(" (acor '");
                s.push_str(m);
                s.push_str("')");
            }
            s
        }
        (Effect::Permit, None) => "PERMIT".to_owned(),
        (Effect::Deny, _) => {
            let status = match d.status {
                AuthorizationStatus::Ok => "ok",
                AuthorizationStatus::NotApplicable => "not applicable",
                AuthorizationStatus::MissingAttribute => "missing attribute",
                AuthorizationStatus::SyntaxError => "syntax error",
                AuthorizationStatus::ProcessingError => "processing error",
            };
            let mut reasons: Vec<String> = Vec::new();
            if d.status == AuthorizationStatus::NotApplicable {
                reasons.push("no rule of the applicable policies names the originator".into());
            }
            reasons.extend(d.missing.iter().map(|m| format!("missing {m}")));
            if let Some(e) = &d.explanation {
                // A line, not the whole explanation: the first few.
                const LISTED: usize = 8;
                reasons.extend(
                    e.failed_rules
                        .iter()
                        .take(LISTED)
                        .map(|f| format!("{}: {}", f.rule, f.failed)),
                );
                let more = e.failed_rules.len().saturating_sub(LISTED) + e.more_failed_rules;
                if more > 0 {
                    reasons.push(format!("{more} more rules failed"));
                }
            }
            if reasons.is_empty() {
                reasons.push("no rule permitted".into());
            }
            format!("DENY ({status}): {}", reasons.join("; "))
        }
    }
}

/// Converts the engine's decision to its wire form, with [`summary`] filled
/// in.
///
/// `decision_id`, `policy_revision`, `policy_store`, `request_id`, `token_request_info`,
/// `assigned_token_ids`, `reusable_until` and `judged_acpi_change` are left
/// empty for the PDP to set.
pub fn decision_to_pb(d: &Decision) -> pb::Decision {
    pb::Decision {
        decision: pb::AuthorizationDecision::from(d.effect) as i32,
        status: pb::AuthorizationStatus::from(d.status) as i32,
        decision_id: String::new(),
        permitted_by: d.permitted_by.as_ref().map(rule_ref_to_pb),
        missing: d.missing.iter().map(missing_to_pb).collect(),
        explanation: d.explanation.as_ref().map(|e| pb::Explanation {
            matched_originator: e.matched_originator.clone(),
            failed_rules: e
                .failed_rules
                .iter()
                .map(|f| pb::RuleFailure {
                    rule: Some(rule_ref_to_pb(&f.rule)),
                    matched_originator: f.matched_originator.clone(),
                    failed: Some(failed_condition_to_pb(&f.failed)),
                })
                .collect(),
            more_failed_rules: u32::try_from(e.more_failed_rules).unwrap_or(u32::MAX),
        }),
        summary: summary(d),
        reusable_until: None,
        judged_acpi_change: false,
        policy_revision: 0,
        policy_store: String::new(),
        token_request_info: None,
        assigned_token_ids: Vec::new(),
        request_id: String::new(),
    }
}

fn rule_ref_from_pb(r: &pb::RuleRef, path: &str, errors: &mut Errors) -> Option<RuleRef> {
    let privileges = match pb::PrivilegeKind::try_from(r.privileges) {
        Ok(pb::PrivilegeKind::Privileges) => PrivilegeKind::Privileges,
        Ok(pb::PrivilegeKind::SelfPrivileges) => PrivilegeKind::SelfPrivileges,
        _ => {
            errors.add(
                format!("{path}.privileges"),
                format!(
                    "{} is not PRIVILEGES (1) or SELF_PRIVILEGES (2)",
                    r.privileges
                ),
            );
            return None;
        }
    };
    Some(RuleRef {
        acp: r.acp_id.as_str().into(),
        privileges,
        rule: r.rule_index as usize,
    })
}

fn failed_condition_from_pb(
    f: &pb::FailedCondition,
    path: &str,
    errors: &mut Errors,
) -> Option<FailedCondition> {
    use pb::context_failure::Part;
    use pb::failed_condition::Condition;
    Some(match &f.condition {
        Some(Condition::Operation(o)) => FailedCondition::Operation {
            requested: o.requested,
            allowed: o.allowed,
        },
        Some(Condition::Authentication(_)) => FailedCondition::AuthenticationFlag,
        Some(Condition::Context(c)) => FailedCondition::Context {
            elements: c
                .elements
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let field = format!("{path}.context.elements[{i}]");
                    match &e.part {
                        Some(Part::TimeWindow(t)) => Some(ContextFailure::TimeWindow {
                            next_open: t.next_open.as_ref().and_then(|ts| {
                                timestamp_from_pb(
                                    ts,
                                    &format!("{field}.time_window.next_open"),
                                    errors,
                                )
                            }),
                        }),
                        Some(Part::IpAddress(ip)) => Some(ContextFailure::IpAddress {
                            reason: ip.reason.clone(),
                        }),
                        Some(Part::Location(l)) => Some(ContextFailure::Location {
                            reason: l.reason.clone(),
                        }),
                        None => {
                            errors.add(
                                field,
                                "one of time_window, ip_address or location must be set",
                            );
                            None
                        }
                    }
                })
                .collect(),
        },
        Some(Condition::ObjectDetails(o)) => FailedCondition::ObjectDetails {
            elements: o.reasons.clone(),
        },
        None => {
            errors.add(
                path,
                "one of operation, authentication, context or object_details must be set",
            );
            return None;
        }
    })
}

/// Converts a wire decision back to the engine's form (for clients and
/// tests); `decision_from_pb(&decision_to_pb(d)) == Ok(d)`.
///
/// The PDP-level fields (`decision_id`, `summary`, `policy_revision`,
/// `request_id` and the dynamic authorization fields) have no counterpart in
/// the engine's decision and are ignored.
pub fn decision_from_pb(d: &pb::Decision) -> Result<Decision, Vec<ConversionError>> {
    let mut errors = Errors::default();
    let effect = match pb::AuthorizationDecision::try_from(d.decision) {
        Ok(pb::AuthorizationDecision::Permit) => Some(Effect::Permit),
        Ok(pb::AuthorizationDecision::Deny) => Some(Effect::Deny),
        _ => {
            errors.add(
                "decision",
                format!("{} is not PERMIT (1) or DENY (2)", d.decision),
            );
            None
        }
    };
    let status = match pb::AuthorizationStatus::try_from(d.status) {
        Ok(pb::AuthorizationStatus::Ok) => Some(AuthorizationStatus::Ok),
        Ok(pb::AuthorizationStatus::NotApplicable) => Some(AuthorizationStatus::NotApplicable),
        Ok(pb::AuthorizationStatus::MissingAttribute) => {
            Some(AuthorizationStatus::MissingAttribute)
        }
        Ok(pb::AuthorizationStatus::SyntaxError) => Some(AuthorizationStatus::SyntaxError),
        Ok(pb::AuthorizationStatus::ProcessingError) => Some(AuthorizationStatus::ProcessingError),
        _ => {
            errors.add(
                "status",
                format!("{} is not an authorization status (1-5)", d.status),
            );
            None
        }
    };
    let permitted_by = d
        .permitted_by
        .as_ref()
        .and_then(|r| rule_ref_from_pb(r, "permitted_by", &mut errors));
    let missing = d
        .missing
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let reason = m.reason.clone();
            Some(match m.attribute.as_str() {
                "role" => MissingAttribute::Role {
                    role: m.name.clone(),
                    reason,
                },
                "group_membership" => MissingAttribute::GroupMembership {
                    group: m.name.clone(),
                    reason,
                },
                "group_kind" => MissingAttribute::GroupKind {
                    id: m.name.clone(),
                    reason,
                },
                "ip_address" => MissingAttribute::IpAddress { reason },
                "position" => MissingAttribute::Position { reason },
                "country" => MissingAttribute::Country { reason },
                "target_type" => MissingAttribute::TargetType { reason },
                "resource_type" => MissingAttribute::ResourceType { reason },
                "specialization" => MissingAttribute::Specialization { reason },
                "dynamic_authorization" => MissingAttribute::DynamicAuthorization {
                    das: m.name.clone(),
                    reason,
                },
                "token" => MissingAttribute::Token {
                    id: m.name.clone(),
                    reason,
                },
                other => {
                    errors.add(
                        format!("missing[{i}].attribute"),
                        format!(
                            "'{other}' is not role, group_membership, group_kind, ip_address, position, country, target_type, resource_type, specialization, dynamic_authorization or token"
                        ),
                    );
                    return None;
                }
            })
        })
        .collect();
    let explanation = d.explanation.as_ref().map(|e| Explanation {
        matched_originator: e.matched_originator.clone(),
        failed_rules: e
            .failed_rules
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let path = format!("explanation.failed_rules[{i}]");
                let Some(rule) = &f.rule else {
                    errors.add(format!("{path}.rule"), "must be set");
                    return None;
                };
                let rule = rule_ref_from_pb(rule, &format!("{path}.rule"), &mut errors);
                let failed = match &f.failed {
                    Some(c) => failed_condition_from_pb(c, &format!("{path}.failed"), &mut errors),
                    None => {
                        errors.add(format!("{path}.failed"), "must be set");
                        None
                    }
                };
                Some(RuleFailure {
                    rule: rule?,
                    matched_originator: f.matched_originator.clone(),
                    failed: failed?,
                })
            })
            .collect(),
        more_failed_rules: e.more_failed_rules as usize,
    });
    let (Some(effect), Some(status)) = (effect, status) else {
        return Err(errors.0);
    };
    errors.finish(Decision {
        effect,
        status,
        permitted_by,
        missing,
        explanation,
    })
}

pub use authz_core::ids::MAX_ID_BYTES;

/// Whether `id` is an ID a request can name (m2m:ID): an empty one, or one
/// with white space or control characters, could never be resolved, so a
/// record under it would be stored and never used; and at most
/// [`MAX_ID_BYTES`].
pub fn is_usable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Why [`is_usable_id`] refuses `id`, for an error naming its field; an ID
/// too long is not quoted.
pub fn unusable_id_reason(id: &str) -> String {
    if id.is_empty() {
        "must not be empty".to_owned()
    } else if id.len() > MAX_ID_BYTES {
        format!(
            "is {} bytes long; an ID has at most {MAX_ID_BYTES}",
            id.len()
        )
    } else {
        format!("{id:?} is not an ID: it contains white space or control characters")
    }
}

/// Converts a wire target resource to the core model, naming fields under
/// `path` (`resource.resource_id: is mandatory`).
///
/// `acpi` and `daci` are refused on the types that have no `acpi`: an
/// `<accessControlPolicy>` and
/// [`TYPES_WITHOUT_ACPI`](authz_core::resources::TYPES_WITHOUT_ACPI), which
/// need a `parent_id` instead. `creator` and `custodian` are empty (absent)
/// or one originator ID
/// ([`check_owner_id`](authz_core::resources::check_owner_id)): the default
/// policy grants them alone (TS-0001 9.6.1.3.2), so `all`, an SP domain
/// `//fqdn`, a wildcard `*`, a Role-ID (`@`) or whitespace is an error.
pub fn resource_from_pb(
    r: &pb::TargetResource,
    path: &str,
) -> Result<authz_core::resources::Resource, Vec<ConversionError>> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| {
        errors.push(ConversionError {
            field: format!("{path}.{field}"),
            message: message.to_owned(),
        })
    };
    if r.resource_id.is_empty() {
        bad("resource_id", "is mandatory");
    }
    for (field, id) in [("resource_id", &r.resource_id), ("parent_id", &r.parent_id)] {
        if !id.is_empty() && !is_usable_id(id) {
            bad(field, &unusable_id_reason(id));
        }
    }
    for (field, list) in [("acpi", &r.acpi), ("daci", &r.daci)] {
        for (i, id) in list.iter().enumerate() {
            if !is_usable_id(id) {
                bad(&format!("{field}[{i}]"), &unusable_id_reason(id));
            }
        }
    }
    if r.resource_type == 0 {
        bad("resource_type", "is mandatory (m2m:resourceType)");
    }
    if !r.acpi_set && !r.acpi.is_empty() {
        bad("acpi", "is given although acpi_set is false");
    }
    if !r.parent_id.is_empty() && r.parent_id == r.resource_id {
        bad("parent_id", "a resource cannot be its own parent");
    }
    // Types without an acpi attribute (spec notes §2.3): an ACP is judged
    // by its own pvs, the others by their parent's applicable policies
    // (TS-0001 10.2.3.1), so an acpi would be stored and never used, and
    // without a parent nothing would apply.
    let ty = r.resource_type;
    let via_parent = authz_core::resources::TYPES_WITHOUT_ACPI.contains(&ty);
    if ty == authz_core::resources::TY_ACP {
        // Its rules are what judge requests to it (its own pvs, TS-0001
        // 10.2.3.1): a record without them would deny everything.
        bad(
            "resource_type",
            "1 is an <accessControlPolicy>: create it with its rules (CreateAcp), not as a resource",
        );
    } else if r.acpi_set && via_parent {
        bad(
            "acpi",
            &format!(
                "resource_type {ty} has no acpi attribute: its parent's applicable policies apply (TS-0001 10.2.3.1)"
            ),
        );
    }
    // daci sits beside acpi, on the same types (spec notes §6.4): an ACP
    // has neither, and a type without acpi is covered by its parent's DAC
    // (TS-0001 9.6.1.3.2), so a daci there would be stored and never used.
    if !r.daci.is_empty() && via_parent {
        bad(
            "daci",
            &format!(
                "resource_type {ty} has no daci attribute: daci sits beside acpi, and its parent's applicable policies and dynamicAuthorizationConsultationIDs apply (TS-0001 9.6.1.3.2, 10.2.3.1)"
            ),
        );
    }
    if via_parent && r.parent_id.is_empty() {
        bad(
            "parent_id",
            &format!(
                "is mandatory for resource_type {ty}, which has no acpi: its parent's applicable policies apply (TS-0001 10.2.3.1)"
            ),
        );
    }
    let is_dac = r.resource_type == authz_core::resources::DYNAMIC_AUTHORIZATION_CONSULTATION;
    if !is_dac && (r.dac_enabled.is_some() || !r.dac_poa.is_empty() || !r.dac_lifetime.is_empty()) {
        bad(
            "dac_enabled",
            "dac_* attributes belong to a <dynamicAuthorizationConsultation> (resource_type 34)",
        );
    }
    if is_dac && r.dac_enabled.is_none() {
        bad(
            "dac_enabled",
            "is mandatory for a <dynamicAuthorizationConsultation> (dae)",
        );
    }
    if is_dac && r.dac_poa.is_empty() {
        bad(
            "dac_poa",
            "is mandatory and non-empty for a <dynamicAuthorizationConsultation> (dap)",
        );
    }
    // A `dap` entry is an address a hosting CSE consults (m2m:poaList):
    // one that names no scheme and place could never be.
    for (i, poa) in r.dac_poa.iter().enumerate() {
        let usable = poa
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
            && !poa.chars().any(|c| c.is_whitespace() || c.is_control());
        if !usable {
            bad(
                &format!("dac_poa[{i}]"),
                "not an address (scheme://host...), as a hosting CSE consults a DAS at",
            );
        }
    }
    if !r.dac_lifetime.is_empty() && authz_core::json::parse_timestamp(&r.dac_lifetime).is_none() {
        bad("dac_lifetime", "not an m2m:timestamp YYYYMMDDThhmmss");
    }
    // The default policy grants the creator (or custodian) alone (TS-0001
    // 9.6.1.3.2): each must name one originator, not an acor pattern.
    for (field, value) in [("creator", &r.creator), ("custodian", &r.custodian)] {
        if !value.is_empty()
            && let Err(e) = authz_core::resources::check_owner_id(value)
        {
            bad(
                field,
                &format!("{value:?} is not one originator ID (AE-ID or CSE-ID): {e}"),
            );
        }
    }
    check_member_ids(r, &mut bad);
    if !errors.is_empty() {
        return Err(errors);
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(authz_core::resources::Resource {
        resource_id: r.resource_id.clone(),
        parent_id: non_empty(&r.parent_id),
        resource_type: r.resource_type,
        acpi: r.acpi_set.then(|| r.acpi.clone()),
        daci: (!r.daci.is_empty()).then(|| r.daci.clone()),
        creator: non_empty(&r.creator),
        custodian: non_empty(&r.custodian),
        dac_enabled: r.dac_enabled,
        dac_poa: r.dac_poa.clone(),
        dac_lifetime: non_empty(&r.dac_lifetime),
        ae_id: non_empty(&r.ae_id),
        cse_id: non_empty(&r.cse_id),
    })
}

/// `ae_id` (`aei`) only on an `<AE>` and `cse_id` (`csi`) only on a
/// `<remoteCSE>`, each one ID of its kind: the PDP counts the originator
/// they name as the resource in `<group>` `mid` lists (TS-0001 9.6.2.1).
fn check_member_ids(r: &pb::TargetResource, bad: &mut impl FnMut(&str, &str)) {
    use authz_core::resources::{MemberIdError, TY_AE, TY_REMOTE_CSE, check_ae_id, check_cse_id};
    type Check = fn(&str) -> Result<(), MemberIdError>;
    let checks: [(&str, &str, u32, &str, Check); 2] = [
        (
            "ae_id",
            &r.ae_id,
            TY_AE,
            "an <AE> (resource_type 2)",
            check_ae_id,
        ),
        (
            "cse_id",
            &r.cse_id,
            TY_REMOTE_CSE,
            "a <remoteCSE> (resource_type 16)",
            check_cse_id,
        ),
    ];
    for (field, value, ty, owner, check) in checks {
        if value.is_empty() {
            continue;
        }
        if r.resource_type != ty {
            bad(
                field,
                &format!("belongs to {owner}, not resource_type {}", r.resource_type),
            );
        } else if let Err(e) = check(value) {
            bad(field, &format!("{value:?}: {e}"));
        }
    }
}

/// Converts a core target resource to its wire form.
pub fn resource_to_pb(r: &authz_core::resources::Resource) -> pb::TargetResource {
    pb::TargetResource {
        resource_id: r.resource_id.clone(),
        parent_id: r.parent_id.clone().unwrap_or_default(),
        resource_type: r.resource_type,
        acpi_set: r.acpi.is_some(),
        acpi: r.acpi.clone().unwrap_or_default(),
        daci: r.daci.clone().unwrap_or_default(),
        creator: r.creator.clone().unwrap_or_default(),
        custodian: r.custodian.clone().unwrap_or_default(),
        dac_enabled: r.dac_enabled,
        dac_poa: r.dac_poa.clone(),
        dac_lifetime: r.dac_lifetime.clone().unwrap_or_default(),
        ae_id: r.ae_id.clone().unwrap_or_default(),
        cse_id: r.cse_id.clone().unwrap_or_default(),
    }
}
