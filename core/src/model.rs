//! The `<accessControlPolicy>` resource as policy authors write it: oneM2M's
//! JSON short names (TS-0004 8.2, `m2m:acp`), kept close to the wire so that a
//! file loads unchanged and writes back with the same meaning (every value
//! kept; empty lists and NULLs the model reads as absent are left out, and
//! `accr` numbers are written as floats).
//!
//! These types hold *uncompiled* text (crontab strings, CIDR strings); they
//! are checked and turned into an evaluation form by [`crate::compile`].
//! Attributes of the resource the engine does not interpret (`et`, `lbl`,
//! `adri`, ...) are kept in [`AccessControlPolicy::other`]; an unknown
//! attribute *inside* a rule is a parse error instead, because silently
//! ignoring a constraint (for example a Release 4 `acec`) would widen access.

use serde::{Deserialize, Serialize};

/// An `<accessControlPolicy>` resource (TS-0001 9.6.2; ty = 1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccessControlPolicy {
    /// `rn`: resource name.
    #[serde(rename = "rn", default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `ri`: resource ID, assigned by the hosting CSE.
    #[serde(rename = "ri", default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// `pi`: parent resource ID.
    #[serde(rename = "pi", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// `pv`: privileges, applied to requests on resources that link this ACP.
    #[serde(rename = "pv", default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<SetOfAcrs>,
    /// `pvs`: selfPrivileges, applied to requests on this ACP itself.
    #[serde(rename = "pvs", default, skip_serializing_if = "Option::is_none")]
    pub self_privileges: Option<SetOfAcrs>,
    /// Every other attribute (`ty`, `et`, `lbl`, `ct`, `lt`, `adri`, ...), kept verbatim.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl AccessControlPolicy {
    /// The identifier this ACP is known by: `ri` when set, else `rn`.
    pub fn id(&self) -> Option<&str> {
        self.resource_id
            .as_deref()
            .or(self.resource_name.as_deref())
    }

    /// What is wrong with the common attributes it carries, by short name
    /// (`ty`, `pi`, `rn`, `et`), if anything: a `ty` other than 1 (it is
    /// read-only, but one that states another type is no ACP; spec notes
    /// §4), a parent ID no request could name (TS-0001 7.2), a resource
    /// name that is empty, longer than [`crate::ids::MAX_ID_BYTES`] or holds
    /// a `/`, white space or a control character (it is one path segment),
    /// an `et` that is no m2m:timestamp
    /// `YYYYMMDDThhmmss`.
    pub fn common_attribute_errors(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if let Some(e) = self.other.get("ty").and_then(resource_type_error) {
            errors.push(("ty", e));
        }
        if let Some(pi) = &self.parent_id
            && let Err(e) = crate::ids::check_resource_id(pi)
        {
            errors.push(("pi", format!("'{pi}' is not a resource ID: {e}")));
        }
        if let Some(rn) = &self.resource_name
            && rn.len() > crate::ids::MAX_ID_BYTES
        {
            errors.push((
                "rn",
                format!(
                    "is {} bytes long; a resource name has at most {}",
                    rn.len(),
                    crate::ids::MAX_ID_BYTES
                ),
            ));
        } else if let Some(rn) = &self.resource_name
            && (rn.is_empty()
                || rn.contains('/')
                || rn.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            errors.push((
                "rn",
                format!(
                    "'{}' is not a resource name (one non-empty path segment, no white space)",
                    rn.escape_debug()
                ),
            ));
        }
        match self.other.get("et") {
            // `null` is absent (README: attributes as CSEs write them).
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(et)) if crate::json::parse_timestamp(et).is_some() => {}
            Some(et) => errors.push((
                "et",
                format!("{et} is not an m2m:timestamp YYYYMMDDThhmmss"),
            )),
        }
        errors
    }
}

/// What is wrong with the `ty` an ACP states, if anything: it is read-only,
/// but one other than 1 (or `"1"`, as some CSEs write numbers) is no ACP
/// (spec notes §4).
pub(crate) fn resource_type_error(ty: &serde_json::Value) -> Option<String> {
    // `null` is absent (README: attributes as CSEs write them).
    (!ty.is_null() && ty.as_u64() != Some(1) && ty.as_str() != Some("1")).then(|| {
        format!("an accessControlPolicy has resource type 1 (TS-0004 6.3.4.2.1), found {ty}")
    })
}

/// `m2m:setOfAcrs` (TS-0004 6.3.5.26): the value of `pv` and `pvs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOfAcrs {
    /// `acr`: the access control rules.
    #[serde(rename = "acr", default)]
    pub rules: Vec<AccessControlRule>,
}

/// `m2m:accessControlRule` (TS-0004 6.3.5.27; TS-0003 table 7.1.3-1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControlRule {
    /// `acor`: accessControlOriginators (IDs, wildcards, SP domains, groups, Role-IDs, `all`).
    #[serde(rename = "acor")]
    pub originators: Vec<String>,
    /// `acop`: accessControlOperations bitmask (1 C, 2 R, 4 U, 8 D, 16 N, 32 Discovery).
    #[serde(rename = "acop")]
    pub operations: u32,
    /// `acco`: accessControlContexts, ORed.
    #[serde(rename = "acco", default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<AccessControlContext>,
    /// `acaf`: accessControlAuthenticationFlag; absent means false.
    #[serde(rename = "acaf", default, skip_serializing_if = "Option::is_none")]
    pub authentication_flag: Option<bool>,
    /// `acod`: accessControlObjectDetails, ORed; CREATE only.
    #[serde(rename = "acod", default, skip_serializing_if = "Vec::is_empty")]
    pub object_details: Vec<ObjectDetails>,
}

/// One element of `acco` (TS-0003 table 7.1.3-2): its parts are ANDed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControlContext {
    /// `actw`: time windows in extended crontab (TS-0004 7.4.9.1), ORed.
    #[serde(rename = "actw", default, skip_serializing_if = "Vec::is_empty")]
    pub time_windows: Vec<String>,
    /// `acip`: IP address ranges.
    #[serde(rename = "acip", default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<IpAddresses>,
    /// `aclr`: location region.
    #[serde(rename = "aclr", default, skip_serializing_if = "Option::is_none")]
    pub location_region: Option<LocationRegion>,
}

/// `acip`: IPv4 and IPv6 addresses with optional CIDR suffix.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddresses {
    /// `ipv4`: dotted decimal, optional `/n`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4: Vec<String>,
    /// `ipv6`: RFC 5952 text, optional `/n`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
}

/// `m2m:locationRegion` (TS-0004 6.3.5.28): exactly one of `accc` or `accr`.
///
/// Both are optional here so that a file with both or neither parses and
/// gets a validation error naming the field, rather than a serde message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRegion {
    /// `accc`: ISO 3166-1 alpha-2 country codes.
    #[serde(rename = "accc", default, skip_serializing_if = "Option::is_none")]
    pub country_codes: Option<Vec<String>>,
    /// `accr`: circle `[latitude, longitude, radius in metres]`.
    #[serde(rename = "accr", default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<Vec<f64>>,
}

/// One element of `acod` (TS-0003 table 7.1.3-3; TS-0004 6.3.5.x).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectDetails {
    /// `ty`: resource type the *target* (parent) must have.
    #[serde(rename = "ty", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<u32>,
    /// `spty`: specialization the created resource must have; `{}` is
    /// absent (Decision 11: an empty object imposes no constraint).
    #[serde(
        rename = "spty",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "Specialization::read_optional"
    )]
    pub specialization: Option<Specialization>,
    /// `chty`: child resource types the rule lets the originator create (mandatory).
    #[serde(rename = "chty", default, skip_serializing_if = "Option::is_none")]
    pub child_resource_types: Option<Vec<u32>>,
}

/// `m2m:specializationType` (TS-0004 6.3.5.67): `{"mgd": n}` or `{"cnd": "uri"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Specialization {
    /// `mgd`: mgmtDefinition of a `<mgmtObj>` (1001 firmware ... 0 self-defined).
    #[serde(rename = "mgd")]
    MgmtDefinition(u32),
    /// `cnd`: containerDefinition URI of a `<flexContainer>`.
    #[serde(rename = "cnd")]
    ContainerDefinition(String),
}

/// `spty` as written: each member optional, so that a member's error
/// names it (`spty.mgd`), a `null` member is absent (as every optional
/// attribute), and the choice is checked after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecializationFields {
    #[serde(default)]
    mgd: Option<u32>,
    #[serde(default)]
    cnd: Option<String>,
}

impl Specialization {
    /// Reads an optional `spty` (TS-0004 6.3.5.67: one of `mgd`, `cnd`):
    /// `null`, `{}` and members all `null` are absent (Decision 11: an
    /// empty object imposes no constraint); both members is an error saying
    /// what `spty` holds.
    pub fn read_optional<'de, D>(d: D) -> Result<Option<Self>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        use serde::de::Error;
        let Some(fields) = Option::<SpecializationFields>::deserialize(d)? else {
            return Ok(None);
        };
        match (fields.mgd, fields.cnd) {
            (None, None) => Ok(None),
            (Some(mgd), None) => Ok(Some(Self::MgmtDefinition(mgd))),
            (None, Some(cnd)) => Ok(Some(Self::ContainerDefinition(cnd))),
            (Some(_), Some(_)) => Err(D::Error::custom(
                "holds one of mgd (a mgmtObj's mgmtDefinition) or cnd (a flexContainer's \
                 containerDefinition), not both",
            )),
        }
    }

    /// Checks a request's specialization against the type of the resource
    /// it creates: another type has no specialization, so a request that
    /// pairs them is malformed (and would otherwise match an `acod`'s
    /// `spty` for a resource that has none).
    pub fn check_created_type(&self, created: u32) -> Result<(), String> {
        let (name, owner, ty) = match self {
            Self::MgmtDefinition(_) => ("mgd (mgmtDefinition)", "<mgmtObj>", 13),
            Self::ContainerDefinition(_) => ("cnd (containerDefinition)", "<flexContainer>", 28),
        };
        if created == ty {
            Ok(())
        } else {
            Err(format!(
                "{name} belongs to a {owner} (resource type {ty}), not to the created resource type {created}"
            ))
        }
    }
}

/// Why a resource type of 0 is refused wherever one is given (a policy's
/// `acod`, a request's created or target type).
pub const NO_RESOURCE_TYPE_0: &str =
    "0 is no resource type (m2m:resourceType starts at 1, spec notes §4)";

/// Access control operation bits of `acop` (TS-0004 6.3.4.2.29).
pub mod acop {
    /// CREATE.
    pub const CREATE: u32 = 1;
    /// RETRIEVE.
    pub const RETRIEVE: u32 = 2;
    /// UPDATE.
    pub const UPDATE: u32 = 4;
    /// DELETE.
    pub const DELETE: u32 = 8;
    /// NOTIFY.
    pub const NOTIFY: u32 = 16;
    /// DISCOVERY (a RETRIEVE with filterUsage 1).
    pub const DISCOVERY: u32 = 32;
    /// Every defined bit.
    pub const ALL: u32 = 63;
}
