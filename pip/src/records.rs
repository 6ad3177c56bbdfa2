//! What the PIP stores: `<role>` (TS-0001 9.6.38), `<token>` (9.6.39),
//! `<group>` members (9.6.2.1 via `acor`) and originator positions (TS-0003
//! Annex F.2.1), with their checks and wire conversions.
//!
//! IDs of holders, members and subjects are kept in absolute form
//! (`//sp/cse/...`, project Decision 2), canonicalized with the PIP's hosting
//! CSE on the way in, so that a lookup by the PDP's canonical originator is
//! an exact match. So are `<group>` resource IDs, so that the groups the PIP
//! reports name one group each, whichever CSE hosts the request.

use authz_core::HostingContext;
use authz_core::ids::{IdError, OriginatorEntry, canonical_resource_id};
use authz_core::request::Position;
use authz_core::resources::check_owner_id;
use authz_core::token::check_scoped_id;
use authz_proto::convert::{
    MAX_ID_BYTES, is_ncname, position_from_pb, position_to_pb, timestamp_field, timestamp_to_pb,
};
use authz_proto::{ConversionError, pb};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A `<role>` resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// `rlid`: `name@fqdn`.
    pub role_id: String,
    /// `tkis`: the issuing Authorization Authority, as given.
    pub issuer: String,
    /// `tkhd`: the holder, absolute.
    pub holder: String,
    /// `tknb`.
    pub not_before: DateTime<Utc>,
    /// `tkna`.
    pub not_after: DateTime<Utc>,
    /// `rlnm`.
    #[serde(default)]
    pub role_name: String,
    /// `rltl`.
    #[serde(default)]
    pub token_link: String,
}

/// A `<token>` resource (the token object is kept as given; its claims are
/// verified by the PDP when it is used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// `tkid`: `name@fqdn`.
    pub token_id: String,
    /// `tkob`: the JWS or JWE compact serialization.
    pub token_object: String,
    /// `vr`.
    #[serde(default)]
    pub version: String,
    /// `tkis`, as given.
    #[serde(default)]
    pub issuer: String,
    /// `tkhd`: the holder, absolute (empty when not given).
    #[serde(default)]
    pub holder: String,
    /// `tknb`.
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    /// `tkna`.
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
    /// `tknm`.
    #[serde(default)]
    pub token_name: String,
    /// `tkau`.
    #[serde(default)]
    pub audience: Vec<String>,
    /// `tkps` as JSON text.
    #[serde(default)]
    pub permissions_json: String,
    /// `tkex`.
    #[serde(default)]
    pub extension: String,
    /// The Local-Token-ID the hosting CSE assigned to it (an NCName,
    /// TS-0001 7.1.16); empty: none. Rows written before the field have
    /// none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_token_id: String,
}

impl TokenRecord {
    /// Whether the token has expired at `at` (after its `tkna`): its
    /// Local-Token-ID may then go to another token (TS-0001 7.1.16). A
    /// token without `tkna` never expires here.
    pub fn expired_at(&self, at: DateTime<Utc>) -> bool {
        self.not_after.is_some_and(|na| at > na)
    }

    /// The attributes (wire field names) in which `other` differs from this
    /// token, the Local-Token-ID aside: that is the hosting CSE's, assigned
    /// once, not one of the token's.
    pub fn differing_attributes(&self, other: &TokenRecord) -> Vec<&'static str> {
        // Destructured, so that a new attribute cannot be left out.
        let TokenRecord {
            token_id,
            token_object,
            version,
            issuer,
            holder,
            not_before,
            not_after,
            token_name,
            audience,
            permissions_json,
            extension,
            local_token_id: _,
        } = self;
        let same = [
            ("token_id", *token_id == other.token_id),
            ("token_object", *token_object == other.token_object),
            ("version", *version == other.version),
            ("issuer", *issuer == other.issuer),
            ("holder", *holder == other.holder),
            ("not_before", *not_before == other.not_before),
            ("not_after", *not_after == other.not_after),
            ("token_name", *token_name == other.token_name),
            ("audience", *audience == other.audience),
            (
                "permissions_json",
                *permissions_json == other.permissions_json,
            ),
            ("extension", *extension == other.extension),
        ];
        same.into_iter()
            .filter(|(_, same)| !same)
            .map(|(name, _)| name)
            .collect()
    }
}

/// A `<group>`: its resource ID and its members (absolute IDs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The resource ID in absolute form (`//sp/cse/...`, Decision 2), as
    /// [`canonical_resource_id`] gives it for the PIP's hosting CSE; rows of
    /// older stores hold it as written ([`crate::state`] reads them).
    pub group_id: String,
    /// `mid`, absolute, sorted and deduplicated.
    pub members: Vec<String>,
    /// For each member written as an `S...` stem, its other reading: an
    /// AE-ID stem is SP-relative (`//sp/S...`, in `members`), but a `mid`
    /// may also be the CSE-relative resource ID of an `<AE>` (`//sp/cse/S...`,
    /// TS-0001 7.2; spec notes §2.4). Indexed too, so that either finds the
    /// group. Sorted, deduplicated, none also in `members`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_aliases: Vec<String>,
}

impl GroupRecord {
    /// Every ID the group is found by as a member: `members` and
    /// `member_aliases`.
    pub fn member_keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.members.iter().chain(&self.member_aliases)
    }

    /// Whether `id` (absolute) is one of [`GroupRecord::member_keys`]: the
    /// stored content only; whether the entry names a sub-group, and so
    /// admits no originator spelled like it, is the state's question
    /// ([`crate::state::PipState::groups_of`]).
    pub fn has_member(&self, id: &str) -> bool {
        let find = |list: &[String]| list.binary_search_by(|m| m.as_str().cmp(id)).is_ok();
        find(&self.members) || find(&self.member_aliases)
    }

    /// The readings of the one `mid` entry that the member key `key` reads:
    /// `key` itself and, for an entry written as an `S...` stem, its other
    /// reading (the AE-ID `//sp/S...` in `members` with the resource ID
    /// `//sp/cse/S...` in `member_aliases`). Empty when `key` is no member
    /// key. An entry is a sub-group when any of its readings is a stored
    /// `<group>` ID (Decision 3).
    pub fn entry_readings<'a>(&'a self, key: &'a str) -> Vec<&'a str> {
        let find = |list: &'a [String]| {
            list.binary_search_by(|m| m.as_str().cmp(key))
                .ok()
                .map(|i| list[i].as_str())
        };
        if let Some(alias) = find(&self.member_aliases) {
            let mut readings = vec![alias];
            readings.extend(
                self.members
                    .iter()
                    .map(String::as_str)
                    .filter(|m| is_stem_pair(alias, m)),
            );
            return readings;
        }
        let Some(member) = find(&self.members) else {
            return Vec::new();
        };
        let mut readings = vec![member];
        readings.extend(
            self.member_aliases
                .iter()
                .map(String::as_str)
                .filter(|a| is_stem_pair(a, member)),
        );
        readings
    }
}

/// Whether `alias` (`//sp/cse/S...`) and `member` (`//sp/S...`) are the two
/// readings of one `S...` stem entry (see [`GroupRecord::member_aliases`]):
/// the same SP and the same stem, the alias with the hosting CSE between
/// (a CSE-ID is one segment).
fn is_stem_pair(alias: &str, member: &str) -> bool {
    let (Some(alias), Some(member)) = (alias.strip_prefix("//"), member.strip_prefix("//")) else {
        return false;
    };
    let (Some((alias_sp, in_cse)), Some((member_sp, stem))) =
        (alias.split_once('/'), member.split_once('/'))
    else {
        return false;
    };
    alias_sp == member_sp
        && stem.starts_with('S')
        && in_cse.split_once('/').is_some_and(|(_, s)| s == stem)
}

/// The last reported position of an originator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// Whose, absolute.
    pub subject: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Uncertainty radius, metres.
    pub uncertainty_m: f64,
    /// When it was measured.
    pub measured_at: DateTime<Utc>,
}

impl PositionRecord {
    /// As a core position.
    pub fn position(&self) -> Position {
        Position {
            lat: self.lat,
            lon: self.lon,
            uncertainty_m: self.uncertainty_m,
        }
    }
}

/// Collects field errors.
#[derive(Default)]
struct Check(Vec<ConversionError>);

impl Check {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConversionError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn id(&mut self, hosting: &HostingContext, field: &str, id: &str) -> String {
        if id.is_empty() {
            self.add(field, "required");
            return String::new();
        }
        match hosting.canonicalize(id) {
            Ok(c) => c.into_owned(),
            Err(e) => {
                self.add(field, e.to_string());
                String::new()
            }
        }
    }

    /// An ID that names one originator, an AE-ID or CSE-ID in stem,
    /// SP-relative or absolute form (a `<group>` member, spec notes §2.4; a
    /// `<role>` holder, §7.3; a position's subject), canonicalized. `all`,
    /// an SP domain, a wildcard or a Role-ID name many originators or none,
    /// so the core's `cr`/`cstn` check ([`check_owner_id`]) refuses them.
    fn originator_id(&mut self, hosting: &HostingContext, field: &str, id: &str) -> String {
        if id.is_empty() {
            self.add(field, "required");
            return String::new();
        }
        if let Err(e) = check_owner_id(id) {
            self.add(field, format!("not an AE-ID or CSE-ID: {e}"));
            return String::new();
        }
        self.id(hosting, field, id)
    }

    /// An m2m:ID given as is: not empty, no whitespace, printable ASCII
    /// (as every ID the project reads).
    fn plain_id(&mut self, field: &str, id: &str) {
        if id.trim().is_empty() {
            self.add(field, "empty or blank");
        } else if id.len() > authz_core::ids::MAX_ID_BYTES {
            self.add(
                field,
                authz_core::ids::IdError::TooLong(id.len()).to_string(),
            );
        } else if id.chars().any(char::is_whitespace) {
            self.add(field, "must not contain whitespace");
        } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
            self.add(
                field,
                format!(
                    "'{}' holds a control or non-ASCII character: IDs are printable ASCII",
                    id.escape_debug()
                ),
            );
        }
    }

    fn time(&mut self, field: &str, ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
        match ts.map(|t| timestamp_field(t, field)) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                self.0.push(e);
                None
            }
            None => None,
        }
    }

    /// `not_after` may not lie before `not_before` (either may be absent):
    /// `tknb`/`tkna` bound a validity period (TS-0001 9.6.38 `<role>`,
    /// 9.6.39 `<token>`), and a reversed one holds at no time. Names
    /// `{prefix}.not_after`.
    fn validity_order(
        &mut self,
        prefix: &str,
        not_before: Option<DateTime<Utc>>,
        not_after: Option<DateTime<Utc>>,
    ) {
        if let (Some(nb), Some(na)) = (not_before, not_after)
            && na < nb
        {
            self.add(format!("{prefix}.not_after"), "earlier than not_before");
        }
    }

    /// `tkis` of a `<role>` (spec notes §7.3: an m2m:ID, the issuing
    /// Authorization Authority, compared with the trusted issuers): one
    /// identifier, an AE-ID, CSE-ID or the SP's own domain (`//fqdn`, the
    /// M2M SP issues Role-IDs, §7.2). Not `all`, not a Role-ID, no
    /// wildcard or whitespace: none of those names one authority.
    fn issuer(&mut self, field: &str, issuer: &str) {
        if issuer.is_empty() {
            self.add(field, "required");
            return;
        }
        let refused = match OriginatorEntry::parse(issuer) {
            Ok(OriginatorEntry::Exact { .. } | OriginatorEntry::Domain(_)) => return,
            Ok(OriginatorEntry::All) => {
                "'all' names every originator, not one Authorization Authority".to_owned()
            }
            Ok(OriginatorEntry::Role(_)) => {
                "'@' marks a Role-ID, not the m2m:ID of an Authorization Authority".to_owned()
            }
            Ok(OriginatorEntry::Pattern { .. }) => {
                "a wildcard '*' names many originators, not one Authorization Authority".to_owned()
            }
            Err(e) => e.to_string(),
        };
        self.add(field, refused);
    }

    /// `rltl` of a `<role>` (optional): an anyURI pointing to a `<token>`
    /// (spec notes §7.3). White space and control characters are not URI
    /// characters (RFC 3986), and such a link could not be followed.
    fn token_link(&mut self, field: &str, link: &str) {
        if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.add(
                field,
                format!("{link:?} is not an anyURI: it contains white space or control characters"),
            );
        } else if link.len() > MAX_ID_BYTES {
            // As long as the longest ID it may name.
            self.add(
                field,
                format!("is {} bytes long; at most {MAX_ID_BYTES}", link.len()),
            );
        }
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<ConversionError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// Canonicalizes an originator ID (absolute form) or names `field`.
pub fn canonical_id(
    hosting: &HostingContext,
    field: &str,
    id: &str,
) -> Result<String, Vec<ConversionError>> {
    let mut check = Check::default();
    let id = check.originator_id(hosting, field, id);
    check.finish(id)
}

/// Converts and checks a wire role; fields are named under `role`.
pub fn role_from_pb(
    hosting: &HostingContext,
    r: &pb::Role,
) -> Result<RoleRecord, Vec<ConversionError>> {
    if let Some(too_large) = authz_proto::convert::record_size_violation(r, "role") {
        return Err(vec![too_large]);
    }
    let mut check = Check::default();
    if let Err(e) = check_scoped_id(&r.role_id) {
        check.add("role.role_id", e);
    }
    check.issuer("role.issuer", &r.issuer);
    let holder = check.originator_id(hosting, "role.holder", &r.holder);
    let not_before = check.time("role.not_before", r.not_before.as_ref());
    let not_after = check.time("role.not_after", r.not_after.as_ref());
    if r.not_before.is_none() {
        check.add("role.not_before", "required");
    }
    if r.not_after.is_none() {
        check.add("role.not_after", "required");
    }
    check.validity_order("role", not_before, not_after);
    check.token_link("role.token_link", &r.token_link);
    let (Some(not_before), Some(not_after)) = (not_before, not_after) else {
        return Err(check.0);
    };
    check.finish(RoleRecord {
        role_id: r.role_id.clone(),
        issuer: r.issuer.clone(),
        holder,
        not_before,
        not_after,
        role_name: r.role_name.clone(),
        token_link: r.token_link.clone(),
    })
}

/// Checks a role's tokenLink (`rltl`, an anyURI) as [`role_from_pb`] does,
/// naming `field`.
pub fn check_token_link(field: &str, link: &str) -> Result<(), Vec<ConversionError>> {
    let mut check = Check::default();
    check.token_link(field, link);
    check.finish(())
}

/// A role as its wire form.
pub fn role_to_pb(r: &RoleRecord) -> pb::Role {
    pb::Role {
        role_id: r.role_id.clone(),
        issuer: r.issuer.clone(),
        holder: r.holder.clone(),
        not_before: Some(timestamp_to_pb(&r.not_before)),
        not_after: Some(timestamp_to_pb(&r.not_after)),
        role_name: r.role_name.clone(),
        token_link: r.token_link.clone(),
    }
}

/// Why `id` is not a Token-ID (`name@fqdn`, TS-0001 7.1.15), naming
/// `field`: the check of a stored token's ID, also applied to the IDs that
/// reads and deletes name, so that a malformed one is INVALID_ARGUMENT
/// rather than unknown.
pub fn token_id_violation(id: &str, field: &str) -> Option<ConversionError> {
    check_scoped_id(id).err().map(|e| ConversionError {
        field: field.to_owned(),
        message: e,
    })
}

/// Converts and checks a wire token; fields are named under `token`. The
/// optional holder (`tkhd`, TS-0001 9.6.39) is checked and stored like a
/// role's holder (an AE-ID or CSE-ID, absolute); a given issuer (`tkis`) or
/// audience entry (`tkau`, a list of m2m:ID) may not be blank or hold
/// whitespace; a given Local-Token-ID must be an NCName (TS-0001 7.1.16).
pub fn token_from_pb(
    hosting: &HostingContext,
    t: &pb::Token,
) -> Result<TokenRecord, Vec<ConversionError>> {
    if let Some(too_large) = authz_proto::convert::record_size_violation(t, "token") {
        return Err(vec![too_large]);
    }
    let mut check = Check::default();
    let holder = if t.holder.is_empty() {
        String::new()
    } else {
        check.originator_id(hosting, "token.holder", &t.holder)
    };
    if !t.issuer.is_empty() {
        check.plain_id("token.issuer", &t.issuer);
    }
    for (i, a) in t.audience.iter().enumerate() {
        check.plain_id(&format!("token.audience[{i}]"), a);
    }
    if let Some(e) = token_id_violation(&t.token_id, "token.token_id") {
        check.0.push(e);
    }
    if t.token_object.is_empty() {
        check.add("token.token_object", "required");
    } else if t.token_object.len() > authz_core::token::SYNTAX_CHECK_LIMIT {
        // A PDP refuses a larger token unread (Decision 9): one stored
        // could never be used, and each answer naming it would carry it.
        check.add(
            "token.token_object",
            format!(
                "is {} bytes long; a token has at most {} (a PDP refuses larger ones)",
                t.token_object.len(),
                authz_core::token::SYNTAX_CHECK_LIMIT
            ),
        );
    } else {
        // m2m:dynAuthJWT: JWS (3 parts) or JWE (5 parts) compact, base64url.
        let parts = t.token_object.split('.').count();
        let charset_ok = t
            .token_object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !(parts == 3 || parts == 5) || !charset_ok {
            check.add(
                "token.token_object",
                "not a JWS or JWE compact serialization (base64url parts separated by '.')",
            );
        }
    }
    // An `ltids` entry of a request must be an NCName (TS-0001 7.1.16), so
    // an ID that is none could never be used.
    if t.local_token_id.len() > authz_core::ids::MAX_ID_BYTES {
        check.add(
            "token.local_token_id",
            authz_core::ids::IdError::TooLong(t.local_token_id.len()).to_string(),
        );
    } else if !t.local_token_id.is_empty() && !is_ncname(&t.local_token_id) {
        check.add(
            "token.local_token_id",
            authz_proto::convert::not_ncname_message(&t.local_token_id),
        );
    }
    // `tkps`, m2m:tokenPermissions, checked as a token's own are.
    if !t.permissions_json.is_empty()
        && let Err(errors) = authz_core::token::TokenPermissions::from_json(
            &t.permissions_json,
            "token.permissions_json",
        )
    {
        for e in errors.0 {
            check.add(&e.path, e.message);
        }
    }
    let not_before = check.time("token.not_before", t.not_before.as_ref());
    let not_after = check.time("token.not_after", t.not_after.as_ref());
    check.validity_order("token", not_before, not_after);
    check.finish(TokenRecord {
        token_id: t.token_id.clone(),
        token_object: t.token_object.clone(),
        version: t.version.clone(),
        issuer: t.issuer.clone(),
        holder,
        not_before,
        not_after,
        token_name: t.token_name.clone(),
        audience: t.audience.clone(),
        permissions_json: t.permissions_json.clone(),
        extension: t.extension.clone(),
        local_token_id: t.local_token_id.clone(),
    })
}

/// A token as its wire form.
pub fn token_to_pb(t: &TokenRecord) -> pb::Token {
    pb::Token {
        token_id: t.token_id.clone(),
        token_object: t.token_object.clone(),
        version: t.version.clone(),
        issuer: t.issuer.clone(),
        holder: t.holder.clone(),
        not_before: t.not_before.as_ref().map(timestamp_to_pb),
        not_after: t.not_after.as_ref().map(timestamp_to_pb),
        token_name: t.token_name.clone(),
        audience: t.audience.clone(),
        permissions_json: t.permissions_json.clone(),
        extension: t.extension.clone(),
        local_token_id: t.local_token_id.clone(),
    }
}

/// Why `id` (not empty) cannot be a `<group>` ID, if it cannot. The group ID
/// is written in acor (spec notes §2.4), where only an exact ID can be a
/// group (Decision 3: `@` marks a Role-ID, `all` everyone; `//fqdn` is an SP
/// domain and `*` a wildcard pattern, both matched as such and never looked
/// up as a group).
///
/// Its absolute form, which the PIP stores and is asked by, is an ID too:
/// at most [`MAX_ID_BYTES`] long.
fn group_id_refusal(hosting: &HostingContext, id: &str) -> Option<String> {
    match OriginatorEntry::parse(id) {
        Ok(OriginatorEntry::Exact { .. }) => canonical_resource_id(id, hosting)
            .ok()
            .filter(|abs| abs.len() > MAX_ID_BYTES)
            .map(|abs| IdError::TooLongAbsolute(abs.len()).to_string()),
        Ok(OriginatorEntry::All | OriginatorEntry::Role(_)) => Some(format!(
            "'{id}' would be read as a Role-ID or `all` in acor"
        )),
        Ok(OriginatorEntry::Domain(_)) => Some(format!(
            "'{id}' would be read as an SP domain in acor, not a group"
        )),
        Ok(OriginatorEntry::Pattern { .. }) => Some(format!(
            "'{id}' would be read as a wildcard pattern in acor, not a group"
        )),
        Err(e) => Some(format!("'{id}' is not a resource ID: {e}")),
    }
}

/// Why the group ID `id` of a new `<group>` names no resource, if it does
/// not: `/cse`, `//sp/cse` and this CSE's own ID name a CSE, `/Sxyz` an
/// AE, and a group under such an ID would turn every `acor` entry naming
/// that CSE or AE into the group's (TS-0001 7.2: a resource of a CSE is
/// `//sp/cse/name...`). Checked where a group is written, not where one
/// is read or deleted, so a store holding such a group can drop it.
fn names_no_resource(hosting: &HostingContext, id: &str) -> Option<String> {
    let abs = canonical_resource_id(id, hosting).ok()?;
    (abs.trim_start_matches('/').split('/').count() < 3).then(|| {
        format!(
            "'{id}' names a CSE (or an SP-relative AE-ID), not a <group> resource: write \
             `grp`, `/cse-id/grp` or `//sp/cse-id/grp`"
        )
    })
}

/// Converts and checks a wire group; fields are named under `group`.
pub fn group_from_pb(
    hosting: &HostingContext,
    g: &pb::Group,
) -> Result<GroupRecord, Vec<ConversionError>> {
    let mut check = Check::default();
    if g.group_id.is_empty() {
        check.add("group.group_id", "required");
    } else if let Some(reason) =
        group_id_refusal(hosting, &g.group_id).or_else(|| names_no_resource(hosting, &g.group_id))
    {
        check.add("group.group_id", reason);
    }
    // `mid` holds IDs held by the `<group>`: a CSE-relative or SP-relative
    // one is relative to the CSE that hosts the group, the one its ID names
    // (TS-0001 7.2), not to this PIP's (a group `/cse2/grp` listing `Cae7`
    // lists cse2's AE, not this CSE's).
    let group_cse = authz_core::ids::resource_cse(&g.group_id, hosting);
    let members_of = group_cse.as_ref().unwrap_or(hosting);
    let mut members: Vec<String> = g
        .member_ids
        .iter()
        .enumerate()
        .map(|(i, m)| check.originator_id(members_of, &format!("group.member_ids[{i}]"), m))
        .collect();
    members.sort();
    members.dedup();
    let mut member_aliases: Vec<String> = g
        .member_ids
        .iter()
        .filter(|m| m.starts_with('S'))
        .filter_map(|m| canonical_resource_id(m, members_of).ok())
        .filter(|m| members.binary_search(m).is_err())
        .collect();
    member_aliases.sort();
    member_aliases.dedup();
    // Stored and looked up in absolute form (Decision 2), so that an `acor`
    // entry of any form and any hosting CSE is compared with the group it
    // names, not with text that means another group elsewhere.
    let group_id = canonical_resource_id(&g.group_id, hosting).unwrap_or_default();
    check.finish(GroupRecord {
        group_id,
        members,
        member_aliases,
    })
}

/// The absolute form of a `<group>` resource ID given in any form
/// (`grp`, `/cse/grp`, `//sp/cse/grp`: TS-0001 7.2), as the PIP stores it,
/// or names `field`.
///
/// An ID no group can have (see [`group_from_pb`]) is refused too, so that a
/// read or delete of one is INVALID_ARGUMENT, not NOT_FOUND.
pub fn canonical_group_id(
    hosting: &HostingContext,
    field: &str,
    id: &str,
) -> Result<String, Vec<ConversionError>> {
    let refusal = if id.is_empty() {
        Some("required".to_owned())
    } else {
        group_id_refusal(hosting, id)
    };
    if let Some(message) = refusal {
        return Err(vec![ConversionError {
            field: field.to_owned(),
            message,
        }]);
    }
    canonical_resource_id(id, hosting).map_err(|message| {
        vec![ConversionError {
            field: field.to_owned(),
            message,
        }]
    })
}

/// A group as its wire form.
pub fn group_to_pb(g: &GroupRecord) -> pb::Group {
    pb::Group {
        group_id: g.group_id.clone(),
        member_ids: g.members.clone(),
    }
}

/// How far after the PIP's clock a reported `measured_at` may lie (clock
/// skew between a Location Server and the PIP). A later time is refused: a
/// position measured in the future would stay fresh for that much longer.
pub const MAX_MEASURED_AT_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Converts and checks a position report; `measured_at` is `now` when the
/// report has none, and may not lie more than [`MAX_MEASURED_AT_SKEW`] after
/// `now`.
pub fn position_report_from_pb(
    hosting: &HostingContext,
    r: &pb::ReportPositionRequest,
    now: DateTime<Utc>,
) -> Result<PositionRecord, Vec<ConversionError>> {
    let mut check = Check::default();
    let subject = check.originator_id(hosting, "subject", &r.subject);
    let position = match &r.position {
        Some(p) => match position_from_pb(p, "position") {
            Ok(p) => Some(p),
            Err(e) => {
                check.0.extend(e);
                None
            }
        },
        None => {
            check.add("position", "required");
            None
        }
    };
    let measured_at = check
        .time("measured_at", r.measured_at.as_ref())
        .unwrap_or(now);
    if now
        .checked_add_signed(MAX_MEASURED_AT_SKEW)
        .is_some_and(|latest| measured_at > latest)
    {
        check.add(
            "measured_at",
            format!(
                "{measured_at} is more than {} s after the PIP's clock ({now})",
                MAX_MEASURED_AT_SKEW.num_seconds()
            ),
        );
    }
    let Some(p) = position else {
        return Err(check.0);
    };
    check.finish(PositionRecord {
        subject,
        lat: p.lat,
        lon: p.lon,
        uncertainty_m: p.uncertainty_m,
        measured_at,
    })
}

/// A position fix as its wire form.
pub fn fix_to_pb(p: &PositionRecord, fresh_until: DateTime<Utc>) -> pb::PositionFix {
    pb::PositionFix {
        position: Some(position_to_pb(&p.position())),
        measured_at: Some(timestamp_to_pb(&p.measured_at)),
        fresh_until: Some(timestamp_to_pb(&fresh_until)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two readings of one `S...` entry pair up: same SP, same stem, the
    /// hosting CSE in between (nested groups, spec notes §2.4, Decision 3).
    #[test]
    fn the_readings_of_an_s_entry_pair_up() {
        assert!(is_stem_pair("//sp/id-in/Sx", "//sp/Sx"));
        assert!(!is_stem_pair("//sp/id-in/Sx", "//other/Sx"));
        assert!(!is_stem_pair("//sp/id-in/Sx", "//sp/Sy"));
        assert!(!is_stem_pair("//sp/id-in/Cx", "//sp/Cx"));
        assert!(!is_stem_pair("//sp/Sx", "//sp/Sx"));
        let g = GroupRecord {
            group_id: "//sp/id-in/grp".into(),
            members: vec!["//sp/Sx".into(), "//sp/id-in/Cy".into()],
            member_aliases: vec!["//sp/id-in/Sx".into()],
        };
        assert_eq!(g.entry_readings("//sp/Sx"), ["//sp/Sx", "//sp/id-in/Sx"]);
        assert_eq!(
            g.entry_readings("//sp/id-in/Sx"),
            ["//sp/id-in/Sx", "//sp/Sx"]
        );
        assert_eq!(g.entry_readings("//sp/id-in/Cy"), ["//sp/id-in/Cy"]);
        assert!(g.entry_readings("//sp/id-in/Cz").is_empty());
    }

    #[test]
    fn role_and_token_ids_are_name_at_fqdn() {
        // TS-0004 table 6.3.3-1 (spec notes 7.2).
        assert!(check_scoped_id("1234abcd@role-issuer.com").is_ok());
        assert!(check_scoped_id("guest.v1_x-y@roles.example.com").is_ok());
        assert!(check_scoped_id("guest").is_err());
        assert!(check_scoped_id("@roles.example.com").is_err());
        assert!(check_scoped_id("gu est@roles.example.com").is_err());
        assert!(check_scoped_id("guest@Roles.example.com").is_err());
        assert!(check_scoped_id("guest@roles..com").is_err());
    }
}
