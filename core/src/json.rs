//! Reading and writing `m2m:acp` JSON documents (TS-0004 JSON serialization
//! with short names).
//!
//! A document holds one resource or a list of them, in any of these shapes:
//! `{"m2m:acp": {...}}`, `{"m2m:acp": [{...}, ...]}`,
//! `[{"m2m:acp": {...}}, ...]`, or the bare resource object(s). Errors carry
//! the path of the offending field (`pv.acr[0].acod[0].ty: invalid type:
//! sequence, expected u32`), prefixed with `m2m:acp[i].` in a list.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::compile::{
    CompiledAcp, ValidationError, ValidationErrors, check_authorization_addresses,
};
use crate::model::{AccessControlPolicy, SetOfAcrs};

/// The root element name of an ACP in oneM2M JSON.
pub const ROOT: &str = "m2m:acp";

/// A document that is not a valid `m2m:acp` document.
#[derive(Debug, Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// JSON, but fields are missing, mistyped or invalid.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// Parses JSON text like `serde_json::from_str::<Value>`, except that an
/// object with the same key twice is an error naming where it is
/// (`duplicate key `acop` at m2m:acp.pv.acr[0]`): for a policy or a
/// request, silently keeping the last of two `acop` or `fr` values is a
/// guess about what the author meant.
///
/// A leading byte order mark is skipped (RFC 8259 8.1 lets a parser ignore
/// it): editors on Windows write one, and such a file must load unchanged.
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut path = JsonPath::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictSeed(&mut path)
        .deserialize(&mut de)
        .map_err(|e| at_path(e, &path))?;
    de.end()?;
    Ok(value)
}

/// `e` with the path of the value being read when it was raised (kept by
/// [`StrictVisitor`], which does not pop a failed step): a number beyond
/// the range of `f64` (`1e400`, which RFC 8259 9 lets a parser refuse), a
/// document nested too deep, or a syntax error in a nested value is then
/// named like a field that fails validation (`pv.acr[0].acco[0].aclr.accr[2]:
/// number out of range at line 1 column 123`). An error at the top level,
/// and a duplicate key (which names its place), are left as they are.
fn at_path(e: serde_json::Error, path: &JsonPath) -> serde_json::Error {
    let text = e.to_string();
    if path.0.is_empty() || text.starts_with("duplicate key") || text.starts_with("key `") {
        return e;
    }
    serde::de::Error::custom(format_args!("{path}: {text}"))
}

/// Where the strict parser is in the document, to name a duplicate key.
#[derive(Default)]
struct JsonPath(Vec<PathStep>);

enum PathStep {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the top level");
        }
        // A document nested past serde_json's limit (128) would make a path
        // of hundreds of characters: its start and its end say where.
        const SHOWN: usize = 12;
        let n = self.0.len();
        for (i, step) in self.0.iter().enumerate() {
            if n > SHOWN + 2 && i == SHOWN - 2 {
                write!(f, "…({} levels)…", n - SHOWN)?;
            }
            if n > SHOWN + 2 && (SHOWN - 2..n - 2).contains(&i) {
                continue;
            }
            match step {
                PathStep::Key(k) if i == 0 => write!(f, "{}", ShownKey(k))?,
                PathStep::Key(k) => write!(f, ".{}", ShownKey(k))?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The longest key a document may hold. Keys are attribute short names
/// and the fields of requests, bundles and configuration files, none near
/// this long; one longer would otherwise be repeated whole, twice, by an
/// "unknown field" message.
const MAX_KEY_BYTES: usize = 256;

/// A key of a document as an error message shows it: control characters
/// escaped (a key holding a line break cannot forge a line of the
/// message), and cut after [`ShownKey::MAX`] characters.
struct ShownKey<'k>(&'k str);

impl ShownKey<'_> {
    const MAX: usize = 40;
}

impl std::fmt::Display for ShownKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == Self::MAX {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Reads one [`Value`] whose objects have no duplicate keys, keeping
/// track of its path.
struct StrictSeed<'p>(&'p mut JsonPath);

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor(self.0))
    }
}

/// A list item at `index`, entered onto the path only once the parser
/// reads the item itself: an error before it (a trailing comma, a missing
/// `]`, the end of the file) is the list's, not an item's that does not
/// exist.
struct ItemSeed<'p> {
    path: &'p mut JsonPath,
    index: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // Popped only on success: a failed step stays, for [`at_path`].
        self.path.0.push(PathStep::Index(self.index));
        let value = d.deserialize_any(StrictVisitor(&mut *self.path))?;
        self.path.0.pop();
        Ok(value)
    }
}

struct StrictVisitor<'p>(&'p mut JsonPath);

impl<'de> serde::de::Visitor<'de> for StrictVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let next = seq.next_element_seed(ItemSeed {
                path: &mut *self.0,
                index: items.len(),
            })?;
            match next {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Every key of these documents is an attribute's name or a
            // known field: one with a control character, or longer than
            // [`MAX_KEY_BYTES`], is neither, and would otherwise reach
            // an "unknown field" message as it is (a line break in it
            // forging a line of the message, 20 000 bytes of it filling the
            // terminal).
            if key.chars().any(char::is_control) || key.len() > MAX_KEY_BYTES {
                return Err(serde::de::Error::custom(format_args!(
                    "key `{}` at {}: {}",
                    ShownKey(&key),
                    self.0,
                    if key.len() > MAX_KEY_BYTES {
                        format!("longer than {MAX_KEY_BYTES} bytes")
                    } else {
                        "holds a control character".to_owned()
                    }
                )));
            }
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{}` at {}",
                    ShownKey(&key),
                    self.0
                )));
            }
            // Popped only on success: a failed step stays, for [`at_path`].
            self.0.0.push(PathStep::Key(key));
            let value = map.next_value_seed(StrictSeed(&mut *self.0))?;
            let step = self.0.0.pop();
            // The step pushed above, giving the key back.
            if let Some(PathStep::Key(key)) = step {
                out.insert(key, value);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses a document into ACP resources, without checking their rules
/// beyond their JSON shape (see [`parse_and_validate`]).
pub fn parse_policies(text: &str) -> Result<Vec<AccessControlPolicy>, JsonError> {
    let doc = parse_json(text)?;
    let (items, listed) = split_document(doc);
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let prefix = if listed {
            format!("{ROOT}[{i}].")
        } else {
            String::new()
        };
        match policy_from_value(item) {
            Ok(acp) => out.push(acp),
            // A list item that is no object is the item itself, not a
            // nested `m2m:acp`.
            Err(e) if listed && e.path == ROOT => errors.push(ValidationError {
                path: format!("{ROOT}[{i}]"),
                message: e.message,
            }),
            Err(e) => errors.push(ValidationError {
                path: format!("{prefix}{}", e.path),
                message: e.message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(JsonError::Invalid(ValidationErrors(errors)))
    }
}

/// Parses a document and validates every resource by compiling it and by
/// [`check_authorization_addresses`], so that the result is known to be
/// usable.
pub fn parse_and_validate(text: &str) -> Result<Vec<AccessControlPolicy>, JsonError> {
    let acps = parse_policies(text)?;
    let listed = acps.len() > 1 || is_list(text);
    let mut errors = Vec::new();
    for (i, acp) in acps.iter().enumerate() {
        let prefix = if listed {
            format!("{ROOT}[{i}].")
        } else {
            String::new()
        };
        if let Err(e) = CompiledAcp::compile(acp.id().unwrap_or(""), acp) {
            errors.extend(e.prefixed(&prefix).0);
        }
        if let Err(e) = check_authorization_addresses(acp) {
            errors.extend(e.prefixed(&prefix).0);
        }
        // A request on an ACP names it by its `ri` (TS-0001 10.2.3.1): an
        // `ri` no request can name (`acp/`, `a b`, empty) would load an ACP
        // that is never recognised as a target. The check of a target.
        if let Some(ri) = &acp.resource_id
            && let Err(e) = crate::ids::check_resource_id(ri)
        {
            errors.push(ValidationError {
                path: format!("{prefix}ri"),
                message: resource_id_error(ri, &e),
            });
        }
        errors.extend(
            acp.common_attribute_errors()
                .into_iter()
                .map(|(name, message)| ValidationError {
                    path: format!("{prefix}{name}"),
                    message,
                }),
        );
    }
    if errors.is_empty() {
        Ok(acps)
    } else {
        Err(JsonError::Invalid(ValidationErrors(errors)))
    }
}

/// Whether a policy document is a list of resources (`[...]` or
/// `{"m2m:acp": [...]}`), so that its errors name each by `m2m:acp[i]`.
pub fn is_list(text: &str) -> bool {
    parse_json(text)
        .map(|v| split_document(v).1)
        .unwrap_or(false)
}

/// Splits a document into resource objects; the flag tells whether it was a list.
fn split_document(doc: Value) -> (Vec<Value>, bool) {
    match doc {
        Value::Array(items) => (items.into_iter().map(unwrap_root).collect(), true),
        Value::Object(mut map) if map.len() == 1 && map.contains_key(ROOT) => {
            match map.remove(ROOT).unwrap_or(Value::Null) {
                Value::Array(items) => (items, true),
                one => (vec![one], false),
            }
        }
        other => (vec![other], false),
    }
}

fn unwrap_root(v: Value) -> Value {
    match v {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(ROOT) => {
            map.remove(ROOT).unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Reads one resource object. `pv` and `pvs` are deserialized on their own
/// so that errors inside them keep their full path.
pub fn policy_from_value(v: Value) -> Result<AccessControlPolicy, ValidationError> {
    let Value::Object(mut map) = v else {
        return Err(ValidationError {
            path: ROOT.to_owned(),
            message: format!("expected an object, found {}", kind(&v)),
        });
    };
    let has_privileges = map.contains_key("pv") || map.contains_key("pvs");
    let acp = AccessControlPolicy {
        resource_name: take_string(&mut map, "rn")?,
        resource_id: take_string(&mut map, "ri")?,
        parent_id: take_string(&mut map, "pi")?,
        privileges: take_acrs(&mut map, "pv")?,
        self_privileges: take_acrs(&mut map, "pvs")?,
        other: map,
    };
    // Other attributes are kept as they are, but a long name or a nested
    // root is a mistake that would silently drop rules (an ACP whose
    // `privileges` were ignored grants nothing and says nothing).
    let alone = acp.other.len() == 1 && !has_privileges;
    for key in acp.other.keys() {
        let error = |message: String| ValidationError {
            path: key.clone(),
            message,
        };
        if let Some(message) = other_attribute_name_error(key, alone) {
            return Err(error(message));
        }
        if key == "ty"
            && let Some(e) = acp
                .other
                .get(key)
                .and_then(crate::model::resource_type_error)
        {
            return Err(error(e));
        }
    }
    // Neither `pv` nor `pvs`: not an ACP an author meant (both are
    // mandatory attributes, TS-0001 9.6.2), rather than one that grants
    // nothing.
    if !has_privileges {
        return Err(ValidationError {
            path: "pv".to_owned(),
            message: format!(
                "missing: an `{ROOT}` resource has `pv` (privileges) and `pvs` (selfPrivileges)"
            ),
        });
    }
    Ok(acp)
}

/// Attribute names of `m2m:accessControlRule` and its parts, which are
/// mistakes at the level of the resource.
const RULE_ATTRIBUTES: [&str; 11] = [
    "acr", "acor", "acop", "acco", "acaf", "acod", "actw", "acip", "aclr", "accc", "accr",
];

/// The short name of a long `<accessControlPolicy>` attribute name
/// (TS-0004 8.2.2, 8.2.3).
fn short_name_of(long: &str) -> Option<&'static str> {
    Some(match long {
        "resourceName" => "rn",
        "resourceType" => "ty",
        "resourceID" => "ri",
        "parentID" => "pi",
        "creationTime" => "ct",
        "lastModifiedTime" => "lt",
        "expirationTime" => "et",
        "labels" => "lbl",
        "announceTo" => "at",
        "announcedAttribute" => "aa",
        "privileges" => "pv",
        "selfPrivileges" => "pvs",
        "authorizationDecisionResourceIDs" => "adri",
        "authorizationPolicyResourceIDs" => "apri",
        "authorizationInformationResourceIDs" => "airi",
        "dynamicAuthorizationConsultationIDs" => "daci",
        "creator" => "cr",
        "custodian" => "cstn",
        _ => return None,
    })
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ValidationError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ValidationError {
            path: key.to_owned(),
            message: format!("expected a string, found {}", kind(&other)),
        }),
    }
}

fn take_acrs(
    map: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<SetOfAcrs>, ValidationError> {
    match map.remove(key) {
        // A NULL pv is how distributed authorization is expressed (TS-0001 9.6.2.0).
        None | Some(Value::Null) => Ok(None),
        Some(mut v) => {
            normalize_acrs(&mut v);
            check_shape(&v, &SET_OF_ACRS, key)?;
            deserialize_at(key, v).map(Some)
        }
    }
}

/// Why `key`, an attribute of an ACP beside `pv` and `pvs`, is a mistake
/// that would silently drop rules (an ACP whose `privileges` were ignored
/// grants nothing and says nothing), if it is one: a long name, a resource
/// root (`m2m:...`; `alone`: the only key, so the document is another
/// resource), `pv`/`pvs` in another case, a rule's attribute, a bundle's
/// key, an `acpi` (which an ACP does not have). The one check of attribute names, for files and for the wire's
/// `other_attributes` alike.
pub fn other_attribute_name_error(key: &str, alone: bool) -> Option<String> {
    if let Some(short) = short_name_of(key) {
        return Some(format!(
            "oneM2M JSON uses short names: write `{short}` (TS-0004 8.2)"
        ));
    }
    if key.starts_with("m2m:") {
        return Some(if alone {
            format!("`{key}` is not an `{ROOT}` resource")
        } else {
            format!(
                "a resource root must be the only key of its object; `{key}` stands next to other attributes"
            )
        });
    }
    if let Some(short) = ["pv", "pvs"]
        .into_iter()
        .find(|s| key.eq_ignore_ascii_case(s))
    {
        return Some(format!(
            "short names are case-sensitive: write `{short}` (TS-0004 8.2)"
        ));
    }
    if RULE_ATTRIBUTES.contains(&key) {
        return Some(format!(
            "`{key}` belongs to a rule inside `pv` or `pvs`: {{\"pv\": {{\"acr\": [{{\"acor\": [...], \"acop\": ...}}]}}}}"
        ));
    }
    if key == "acps" || key == "resources" {
        return Some(
            "a bundle ({\"acps\": [...], \"resources\": [...]}) is not an m2m:acp document; `authz policy apply` loads bundles".to_owned(),
        );
    }
    if key == "acpi" {
        // Kept, it would read as protecting the ACP and do nothing.
        return Some(
            "an <accessControlPolicy> has no acpi: a request on it is judged by its own pvs (spec notes §2.2)".to_owned(),
        );
    }
    None
}

/// A number written as a decimal string (`"63"`), as some CSEs emit them,
/// made that number; only a string that is a JSON number exactly.
fn number(v: &mut Value) {
    if let Value::String(s) = v
        && let Ok(n) = s.parse::<serde_json::Number>()
    {
        *v = Value::Number(n);
    }
}

/// [`number`] for a value or each item of a list.
fn numbers(v: Option<&mut Value>) {
    match v {
        Some(Value::Array(items)) => items.iter_mut().for_each(number),
        Some(v) => number(v),
        None => {}
    }
}

/// Removes the attributes of `keys` that `map` gives as `null`: an optional
/// attribute written so is absent (TS-0004 JSON writes NULL for an
/// attribute without a value).
fn drop_nulls(map: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if map.get(*key).is_some_and(Value::is_null) {
            map.remove(*key);
        }
    }
}

/// Reads a request as CSEs write it, in place, like a set of rules
/// ([`normalize_acrs`]): its numbers written as strings are numbers, its
/// optional attributes written as `null` absent.
fn normalize_request(request: &mut Value) {
    let Some(map) = request.as_object_mut() else {
        return;
    };
    drop_nulls(
        map,
        &[
            "fu", "rrt", "spty", "tgty", "rids", "rtm", "oip", "olo", "authn", "uacpi",
        ],
    );
    for key in ["oip", "olo"] {
        if let Some(inner) = map.get_mut(key).and_then(Value::as_object_mut) {
            drop_nulls(inner, &["ip4", "ip6", "accr", "accc"]);
        }
    }
    for key in ["op", "fu", "rrt", "tgty"] {
        numbers(map.get_mut(key));
    }
    if let Some(spty) = map.get_mut("spty").and_then(Value::as_object_mut) {
        numbers(spty.get_mut("mgd"));
    }
    if let Some(olo) = map.get_mut("olo").and_then(Value::as_object_mut) {
        numbers(olo.get_mut("accr"));
    }
}

/// Reads a set of rules as CSEs write them, in place, before its shape is
/// checked:
/// - an optional attribute given as `null` is absent (as `acaf`, `acip`
///   and `aclr` always were; TS-0004 JSON writes NULL for an attribute
///   without a value), so every one of them reads alike;
/// - a number written as a decimal string (`"acop": "63"`, `"ty": "13"`,
///   `"accr": ["52.52", "13.40", "1000"]`), as some CSEs emit them, is that
///   number: a policy author's files load unchanged. Only a string that is
///   a JSON number exactly is read so; anything else stays a type error.
fn normalize_acrs(set: &mut Value) {
    fn objects(v: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
        let items = match v {
            Some(Value::Array(items)) => items.as_mut_slice(),
            _ => &mut [],
        };
        items.iter_mut().filter_map(Value::as_object_mut)
    }
    let Some(set) = set.as_object_mut() else {
        return;
    };
    drop_nulls(set, &["acr"]);
    for rule in objects(set.get_mut("acr")) {
        drop_nulls(rule, &["acco", "acod", "acaf"]);
        numbers(rule.get_mut("acop"));
        for context in objects(rule.get_mut("acco")) {
            drop_nulls(context, &["actw", "acip", "aclr"]);
            if let Some(ips) = context.get_mut("acip").and_then(Value::as_object_mut) {
                drop_nulls(ips, &["ipv4", "ipv6"]);
            }
            if let Some(region) = context.get_mut("aclr").and_then(Value::as_object_mut) {
                drop_nulls(region, &["accc", "accr"]);
                numbers(region.get_mut("accr"));
            }
        }
        for details in objects(rule.get_mut("acod")) {
            drop_nulls(details, &["ty", "spty", "chty"]);
            numbers(details.get_mut("ty"));
            numbers(details.get_mut("chty"));
            if let Some(spty) = details.get_mut("spty").and_then(Value::as_object_mut) {
                numbers(spty.get_mut("mgd"));
            }
        }
    }
}

/// Where a document must hold objects. serde's derived structs also accept
/// a list of their fields in order, so `{"acr": [[["Cabc"], 2]]}` would
/// load as a rule; these positions are checked before deserializing.
enum Shape {
    /// An object, with the shapes of some of its attributes.
    Object(&'static [(&'static str, Shape)]),
    /// A list whose elements have this shape.
    ListOf(&'static Shape),
}

const OBJECT: Shape = Shape::Object(&[]);
const CONTEXT: Shape = Shape::Object(&[("acip", OBJECT), ("aclr", OBJECT)]);
const OBJECT_DETAILS: Shape = Shape::Object(&[("spty", OBJECT)]);
const RULE: Shape = Shape::Object(&[
    ("acco", Shape::ListOf(&CONTEXT)),
    ("acod", Shape::ListOf(&OBJECT_DETAILS)),
]);
const SET_OF_ACRS: Shape = Shape::Object(&[("acr", Shape::ListOf(&RULE))]);
const TOKEN_PERMISSION: Shape = Shape::Object(&[("pv", SET_OF_ACRS)]);
const TOKEN_PERMISSIONS: Shape = Shape::Object(&[("pm", Shape::ListOf(&TOKEN_PERMISSION))]);
const SHORT_REQUEST: Shape = Shape::Object(&[("oip", OBJECT), ("olo", OBJECT), ("spty", OBJECT)]);

/// Prepares a token's permissions (`m2m:tokenPermissions`, TS-0004
/// 6.3.5.41) at `path` for deserializing, as an ACP's `pv` is prepared:
/// each `pm[i].pv` normalized alike, and every position that must be an
/// object checked, so that a list of a struct's fields (which serde would
/// take) is an error in a token as in a policy file.
pub(crate) fn prepare_token_permissions(v: &mut Value, path: &str) -> Result<(), ValidationError> {
    if let Some(pm) = v.get_mut("pm").and_then(Value::as_array_mut) {
        for pv in pm.iter_mut().filter_map(|p| p.get_mut("pv")) {
            normalize_acrs(pv);
        }
    }
    check_shape(v, &TOKEN_PERMISSIONS, path)
}

/// Checks `v` against `shape`, naming the first position that is not an
/// object. A null, or a list where an object's attribute should be one,
/// is left to the deserializer's own error.
fn check_shape(v: &Value, shape: &Shape, path: &str) -> Result<(), ValidationError> {
    match (shape, v) {
        (_, Value::Null) => Ok(()),
        (Shape::Object(fields), Value::Object(map)) => {
            for (name, inner) in fields.iter() {
                if let Some(value) = map.get(*name) {
                    let at = if path.is_empty() {
                        (*name).to_owned()
                    } else {
                        format!("{path}.{name}")
                    };
                    check_shape(value, inner, &at)?;
                }
            }
            Ok(())
        }
        (Shape::Object(_), other) => Err(ValidationError {
            path: if path.is_empty() { "(top level)" } else { path }.to_owned(),
            message: format!("expected an object, found {}", kind(other)),
        }),
        (Shape::ListOf(inner), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_shape(item, inner, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Shape::ListOf(_), _) => Ok(()),
    }
}

/// Deserializes `v`, reporting errors at `prefix.<path inside v>`.
pub fn deserialize_at<T: DeserializeOwned>(prefix: &str, v: Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.inner().to_string();
        // A missing field is reported at its own path, not its parent's.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_owned);
        let inner = match (inner.as_str(), missing) {
            ("" | ".", Some(field)) => field,
            (_, Some(field)) => format!("{inner}.{field}"),
            _ => inner,
        };
        let path = if inner.is_empty() || inner == "." {
            prefix.to_owned()
        } else if inner.starts_with('[') || prefix.is_empty() {
            format!("{prefix}{inner}")
        } else {
            format!("{prefix}.{inner}")
        };
        ValidationError { path, message }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Writes one resource as `{"m2m:acp": {...}}`.
pub fn to_value(acp: &AccessControlPolicy) -> Value {
    let mut root = Map::new();
    root.insert(
        ROOT.to_owned(),
        serde_json::to_value(acp).unwrap_or(Value::Null),
    );
    Value::Object(root)
}

/// Writes several resources as `{"m2m:acp": [{...}, ...]}`.
pub fn list_to_value(acps: &[AccessControlPolicy]) -> Value {
    let mut root = Map::new();
    root.insert(
        ROOT.to_owned(),
        Value::Array(
            acps.iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect(),
        ),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_NOTES_EXAMPLE: &str = r#"{"m2m:acp": {
      "rn": "acpLock",
      "pv": {"acr": [
        {"acor": ["CphoneApp", "/id-in/Cguest*", "tenant@roles.example.com"],
         "acop": 34,
         "acco": [{"actw": ["* * 8-19 * * 1-5 *"],
                   "acip": {"ipv4": ["192.168.1.0/24"], "ipv6": ["fd00::/8"]},
                   "aclr": {"accr": [48.137, 11.575, 500.0]}},
                  {"aclr": {"accc": ["DE"]}}],
         "acaf": true},
        {"acor": ["Cowner"], "acop": 1,
         "acod": [{"ty": 3, "chty": [4, 23]}]}
      ]},
      "pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]},
      "et": "20301231T000000", "lbl": ["home"]
    }}"#;

    #[test]
    fn spec_notes_example_round_trips() {
        let acps = parse_policies(SPEC_NOTES_EXAMPLE).unwrap();
        assert_eq!(acps.len(), 1);
        let back = to_value(&acps[0]);
        let original: Value = serde_json::from_str(SPEC_NOTES_EXAMPLE).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn list_forms_are_accepted() {
        let one = r#"{"pv": {"acr": []}, "pvs": {"acr": [{"acor": ["all"], "acop": 2}]}}"#;
        let forms = [
            format!("{{\"m2m:acp\": [{one}, {one}]}}"),
            format!("[{{\"m2m:acp\": {one}}}, {{\"m2m:acp\": {one}}}]"),
            format!("[{one}, {one}]"),
        ];
        for f in forms {
            assert_eq!(parse_policies(&f).unwrap().len(), 2, "{f}");
        }
    }

    #[test]
    fn ty_as_a_list_is_malformed_with_its_path() {
        // spec notes §2.1: acod.ty is a single int; a list is malformed (4000).
        let doc = r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 1, "acod": [{"ty": [3], "chty": [4]}]}]}}}"#;
        let JsonError::Invalid(e) = parse_policies(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.0[0].path, "pv.acr[0].acod[0].ty");
    }

    #[test]
    fn unknown_rule_attribute_is_rejected_not_ignored() {
        let doc = r#"{"pv": {"acr": [{"acor": ["all"], "acop": 1, "acco": [{"acec": {}}]}]}}"#;
        let JsonError::Invalid(e) = parse_policies(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.0[0].path, "pv.acr[0].acco[0].acec");
    }

    /// A long attribute name would otherwise be kept as an unknown
    /// attribute, leaving the ACP without the rules its author wrote.
    #[test]
    fn long_attribute_names_are_rejected_with_the_short_name() {
        let doc =
            r#"{"m2m:acp": {"rn": "x", "privileges": {"acr": [{"acor": ["all"], "acop": 2}]}}}"#;
        let JsonError::Invalid(e) = parse_policies(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.0[0].path, "privileges");
        assert!(e.0[0].message.contains("`pv`"), "{}", e.0[0].message);
        // Attributes the engine does not use still load unchanged.
        let kept = r#"{"m2m:acp": {"rn": "x", "et": "20301231T000000", "lbl": ["a"], "adri": [], "pv": {"acr": []}, "pvs": {"acr": []}}}"#;
        assert_eq!(parse_policies(kept).unwrap()[0].other.len(), 3);
    }

    #[test]
    fn a_root_next_to_other_keys_is_rejected() {
        let doc = r#"{"m2m:acp": {"pv": {"acr": []}}, "lbl": ["x"]}"#;
        let JsonError::Invalid(e) = parse_policies(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.0[0].path, "m2m:acp");
    }

    fn invalid(doc: &str) -> ValidationError {
        match parse_policies(doc) {
            Err(JsonError::Invalid(mut e)) => e.0.remove(0),
            other => panic!("{doc}: {other:?}"),
        }
    }

    /// Issue #2: a bad file is an error. These shapes used to load as an
    /// ACP without rules, which denies everything and says nothing.
    #[test]
    fn documents_that_are_not_acps_are_rejected() {
        // Rules without the `pv` wrapper.
        let e = invalid(r#"{"m2m:acp": {"rn": "x", "acr": [{"acor": ["Cabc"], "acop": 2}]}}"#);
        assert_eq!(e.path, "acr");
        assert!(e.message.contains("inside `pv`"), "{}", e.message);
        // Short names are case-sensitive.
        let e = invalid(r#"{"m2m:acp": {"pV": {"acr": []}}}"#);
        assert_eq!(e.path, "pV");
        assert!(e.message.contains("write `pv`"), "{}", e.message);
        // A bundle is not an ACP.
        let e = invalid(r#"{"acps": [], "resources": []}"#);
        assert_eq!(e.path, "acps");
        // Another resource type.
        let e = invalid(r#"{"m2m:cnt": {"rn": "x"}}"#);
        assert_eq!(e.path, "m2m:cnt");
        assert!(e.message.contains("is not an `m2m:acp`"), "{}", e.message);
        // Neither pv nor pvs.
        let e = invalid(r#"{"m2m:acp": {"rn": "x", "lbl": ["a"]}}"#);
        assert_eq!(e.path, "pv");
        // Either one, or a NULL pv (distributed authorization), is an ACP.
        for ok in [
            r#"{"m2m:acp": {"pv": {"acr": []}}}"#,
            r#"{"m2m:acp": {"pvs": {"acr": []}}}"#,
            r#"{"m2m:acp": {"pv": null, "pvs": {"acr": []}}}"#,
        ] {
            assert!(parse_policies(ok).is_ok(), "{ok}");
        }
    }

    /// JSON the parser refuses inside a value (a number beyond `f64`, which
    /// RFC 8259 9 lets a parser refuse; nesting past serde_json's limit; a
    /// missing comma) names where, like a field that fails validation.
    #[test]
    fn json_refused_inside_a_value_names_its_path() {
        let message = |doc: &str| match parse_policies(doc) {
            Err(JsonError::Syntax(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let huge = r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Ca"], "acop": 2, "acco": [{"aclr": {"accr": [52.5, 13.4, 1e400]}}]}]}}}"#;
        let text = message(huge);
        assert!(
            text.starts_with(
                "m2m:acp.pv.acr[0].acco[0].aclr.accr[2]: number out of range at line 1"
            ),
            "{text}"
        );
        let comma = "{\"m2m:acp\": {\"pv\": {\"acr\": [{\"acop\": 2\n \"acor\": []}]}}}";
        let text = message(comma);
        assert!(
            text.starts_with("m2m:acp.pv.acr[0]: expected `,` or `}` at line 2"),
            "{text}"
        );
        // 200 levels: the path's start and end, and how many are left out.
        let deep = format!(
            r#"{{"m2m:acp": {{"lbl": {}{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let text = message(&deep);
        assert!(
            text.starts_with("m2m:acp.lbl[0][0][0][0][0][0][0][0]…(")
                && text.contains("recursion limit exceeded"),
            "{text}"
        );
        assert!(text.len() < 200, "{text}");
        // An error between items is the list's: no item that does not exist.
        for (doc, start) in [
            (
                r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Ca",], "acop": 2}]}}}"#,
                "m2m:acp.pv.acr[0].acor: trailing comma",
            ),
            (
                r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Ca""#,
                "m2m:acp.pv.acr[0].acor: EOF while parsing a list",
            ),
            (
                r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Ca", "Cb", "acop": 2}]}}}"#,
                "m2m:acp.pv.acr[0].acor: expected `,` or `]`",
            ),
        ] {
            let text = message(doc);
            assert!(text.starts_with(start), "{doc}: {text}");
        }
        // Keys are shown escaped and cut: a long key or one with a line
        // break neither makes a huge message nor forges a line.
        let long = format!(r#"{{"m2m:acp": {{"{}": [1e400]}}}}"#, "k".repeat(256));
        let text = message(&long);
        assert!(text.len() < 200 && !text.contains('\n'), "{text}");
        assert!(
            text.starts_with(&format!(
                "m2m:acp.{}…[0]: number out of range",
                "k".repeat(40)
            )),
            "{text}"
        );
        // Nor does an unknown key reach a message as it is: a key with a
        // control character or longer than an ID is refused as it is read.
        let forged =
            r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Ca"], "acop": 2, "x\nERROR: forged": 1}]}}}"#;
        let text = message(forged);
        assert_eq!(
            text,
            "key `x\\nERROR: forged` at m2m:acp.pv.acr[0]: holds a control character at line 1 column 74"
        );
        let huge = format!(
            r#"{{"m2m:acp": {{"pv": {{"acr": [{{"{}": 1}}]}}}}}}"#,
            "k".repeat(20_000)
        );
        let text = message(&huge);
        assert!(
            text.len() < 200 && text.contains("longer than 256 bytes"),
            "{text}"
        );
        let twice = format!(r#"{{"{0}\n": 1, "{0}\n": 2}}"#, "d".repeat(100));
        let text = message(&twice);
        assert!(text.len() < 200 && !text.contains('\n'), "{text}");
        // An item of a top-level list is named by its index; a value at the
        // top level has no path, and keeps serde_json's own message.
        assert_eq!(
            message("[1e400]"),
            "[0]: number out of range at line 1 column 6"
        );
        assert_eq!(message("1e400"), "number out of range at line 1 column 5");
        // A request names the field as well.
        match request_from_json(
            r#"{"fr": "Ca", "to": "x", "op": 2, "olo": {"accr": [1e400, 13, 10]}}"#,
            chrono::Utc::now(),
        ) {
            Err(JsonError::Syntax(e)) => {
                assert!(
                    e.to_string()
                        .starts_with("olo.accr[0]: number out of range"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_an_error_not_the_last_one_wins() {
        let doc = r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Cabc"], "acop": 2, "acop": 63}]}}}"#;
        match parse_policies(doc) {
            Err(JsonError::Syntax(e)) => {
                assert!(
                    e.to_string()
                        .contains("duplicate key `acop` at m2m:acp.pv.acr[0]"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        let req = r#"{"fr": "Cnobody", "to": "x", "op": 2, "fr": "Cabc"}"#;
        match request_from_json(req, chrono::Utc::now()) {
            Err(JsonError::Syntax(e)) => {
                assert!(
                    e.to_string()
                        .contains("duplicate key `fr` at the top level"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        // The same key in different objects is fine.
        let ok = r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["a"], "acop": 2}, {"acor": ["b"], "acop": 2}]}, "pvs": {"acr": []}}}"#;
        assert_eq!(
            parse_policies(ok).unwrap()[0]
                .privileges
                .as_ref()
                .unwrap()
                .rules
                .len(),
            2
        );
    }

    /// `spty` (TS-0004 6.3.5.67: one of `mgd`, `cnd`), in a policy's
    /// `acod` as in a request: an error names the member at fault
    /// (`spty.cnd`), a `null` member is absent as every optional attribute
    /// is, `{}` is absent (Decision 11), and both members at once is an
    /// error at `spty` saying what it holds.
    #[test]
    fn spty_errors_name_the_member_and_null_members_are_absent() {
        let policy = |spty: &str| {
            format!(
                r#"{{"m2m:acp":{{"pv":{{"acr":[{{"acor":["C1"],"acop":1,"acod":[{{"ty":2,"spty":{spty},"chty":[13]}}]}}]}}}}}}"#
            )
        };
        let error_at = |doc: String| match parse_and_validate(&doc) {
            Err(JsonError::Invalid(e)) => (e.0[0].path.clone(), e.0[0].message.clone()),
            other => panic!("{doc}: {other:?}"),
        };
        let (path, _) = error_at(policy(r#"{"cnd": 5}"#));
        assert_eq!(path, "pv.acr[0].acod[0].spty.cnd");
        let (path, _) = error_at(policy(r#"{"mgd": -5}"#));
        assert_eq!(path, "pv.acr[0].acod[0].spty.mgd");
        let (path, message) = error_at(policy(r#"{"mgd": 1001, "cnd": "x"}"#));
        assert_eq!(path, "pv.acr[0].acod[0].spty");
        assert!(
            message.contains("one of mgd") && message.contains("not both"),
            "{message}"
        );
        let mgd = |doc: String| {
            parse_and_validate(&doc).expect("loads")[0]
                .privileges
                .as_ref()
                .unwrap()
                .rules[0]
                .object_details[0]
                .specialization
                .clone()
        };
        assert_eq!(
            mgd(policy(r#"{"mgd": 1001, "cnd": null}"#)),
            Some(crate::model::Specialization::MgmtDefinition(1001))
        );
        assert_eq!(mgd(policy(r#"{"mgd": null}"#)), None);
        assert_eq!(mgd(policy("{}")), None);

        let now = chrono::Utc::now();
        let request = |spty: &str| {
            format!(r#"{{"fr": "Cx", "to": "cnt1", "op": 1, "rrt": 13, "spty": {spty}}}"#)
        };
        match request_from_json(&request(r#"{"cnd": 5}"#), now) {
            Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, "spty.cnd", "{e}"),
            other => panic!("{other:?}"),
        }
        let read = |spty: &str| {
            request_from_json(&request(spty), now)
                .expect("reads")
                .specialization
        };
        assert_eq!(
            read(r#"{"mgd": 1001, "cnd": null}"#),
            Some(crate::model::Specialization::MgmtDefinition(1001))
        );
        assert_eq!(read(r#"{"mgd": null}"#), None);
        assert_eq!(read("{}"), None);
    }

    /// A created resource of another type has no specialization (`mgd`
    /// belongs to a mgmtObj, 13; `cnd` to a flexContainer, 28): naming the
    /// field (TS-0003 7.1.5; Decision 13).
    #[test]
    fn a_request_spty_of_another_created_type_is_named() {
        let now = chrono::Utc::now();
        let req = |rrt: u32| {
            format!(
                r#"{{"fr": "Cx", "to": "cnt1", "op": 1, "rrt": {rrt}, "spty": {{"mgd": 1001}}}}"#
            )
        };
        assert!(request_from_json(&req(13), now).is_ok());
        match request_from_json(&req(3), now) {
            Err(JsonError::Invalid(e)) => {
                assert_eq!(e.0[0].path, "spty");
                assert!(e.0[0].message.contains("resource type 13"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// README `authz check` table: `spty` goes `mgd` only with `rrt` 13,
    /// `cnd` only with 28 (Decision 13: it is the created resource's), so
    /// an `spty` without `rrt` (on a Retrieve, say) is an error naming
    /// `spty`, not a field silently ignored.
    #[test]
    fn a_request_spty_without_rrt_is_named_decision_13() {
        let now = chrono::Utc::now();
        for req in [
            r#"{"fr": "Cd", "to": "r", "op": 2, "spty": {"mgd": 1001}}"#,
            r#"{"fr": "Cd", "to": "r", "op": 3, "spty": {"cnd": "org.example.x"}}"#,
        ] {
            match request_from_json(req, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0.len(), 1, "{req}: {e}");
                    assert_eq!(e.0[0].path, "spty", "{req}");
                    assert!(e.0[0].message.contains("with its type rrt"), "{e}");
                }
                other => panic!("{req}: {other:?}"),
            }
        }
        // A Create without rrt: both are named.
        match request_from_json(
            r#"{"fr": "Cd", "to": "r", "op": 1, "spty": {"mgd": 1001}}"#,
            now,
        ) {
            Err(JsonError::Invalid(e)) => {
                let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
                assert_eq!(paths, ["rrt", "spty"], "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A file saved with a byte order mark (RFC 8259 8.1) loads unchanged.
    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let doc = "\u{feff}{\"m2m:acp\": {\"ri\": \"a\", \"pv\": {\"acr\": [{\"acor\": [\"all\"], \"acop\": 2}]}}}";
        let acps = parse_and_validate(doc).expect("loads");
        assert_eq!(acps[0].id(), Some("a"));
        // Only at the start: elsewhere it is not JSON whitespace.
        assert!(parse_json("{\"a\": 1}\u{feff}").is_err());
    }

    #[test]
    fn a_duplicate_key_deep_in_a_list_is_named_by_its_path() {
        let doc = r#"[{"m2m:acp": {"pvs": {"acr": []}}},
            {"m2m:acp": {"pv": {"acr": [{"acor": ["a"], "acop": 2},
                {"acor": ["b"], "acop": 2, "acco": [{"actw": ["* * * * * * *"], "actw": []}]}]}}}]"#;
        match parse_policies(doc) {
            Err(JsonError::Syntax(e)) => assert!(
                e.to_string()
                    .contains("duplicate key `actw` at [1].m2m:acp.pv.acr[1].acco[0]"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_list_item_that_is_no_object_is_named_once() {
        let e = match parse_policies(r#"{"m2m:acp": [{"pv": {"acr": []}}, 5]}"#) {
            Err(JsonError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.0[0].path, "m2m:acp[1]");
        assert!(e.0[0].message.contains("expected an object"), "{e}");
    }

    /// Spec notes §4: `ty` 1 is accessControlPolicy; a document stating
    /// another type is not an ACP. (`"1"`, a number as some CSEs write it,
    /// is 1.)
    #[test]
    fn an_acp_document_states_resource_type_1_or_none() {
        assert!(parse_policies(r#"{"m2m:acp": {"ty": 1, "pv": {"acr": []}}}"#).is_ok());
        assert!(parse_policies(r#"{"m2m:acp": {"ty": "1", "pv": {"acr": []}}}"#).is_ok());
        for bad in [r#"3"#, r#""3""#, r#"[1]"#] {
            let doc = format!(r#"{{"m2m:acp": {{"ty": {bad}, "pv": {{"acr": []}}}}}}"#);
            let e = match parse_policies(&doc) {
                Err(JsonError::Invalid(e)) => e,
                other => panic!("{doc}: {other:?}"),
            };
            assert_eq!(e.0[0].path, "ty", "{doc}");
            assert!(e.0[0].message.contains("resource type 1"), "{e}");
        }
    }

    /// Spec notes §2.2: "An `acp` resource has no `acpi` of its own"; one
    /// written on it would read as protecting the ACP and do nothing, so it
    /// is refused, named, not kept as an unknown attribute.
    #[test]
    fn an_acp_has_no_acpi() {
        let doc = r#"{"m2m:acp": {"ri": "acp1", "acpi": ["acp2"], "pv": {"acr": []},
            "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#;
        let e = match parse_policies(doc) {
            Err(JsonError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.0[0].path, "acpi", "{e}");
        assert!(e.0[0].message.contains("own pvs"), "{e}");
    }

    /// Spec notes §2.2 (TS-0001 9.6.2.0): `adri`/`apri` only with a NULL
    /// `pv`. A file `authz check` loads is held to it too.
    #[test]
    fn parse_and_validate_refuses_authorization_addresses_beside_pv() {
        let doc = r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Cowner"], "acop": 63}]},
            "pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}, "adri": ["/id-in/pdp1"]}}"#;
        let e = match parse_and_validate(doc) {
            Err(JsonError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.0[0].path, "adri");
        let listed = format!("[{doc}, {doc}]");
        let e = match parse_and_validate(&listed) {
            Err(JsonError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        let paths: Vec<_> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["m2m:acp[0].adri", "m2m:acp[1].adri"]);
    }

    /// A NULL `pv` with `adri` is distributed authorization, which this
    /// product does not route: the Create is refused saying so.
    #[test]
    fn check_create_says_distributed_authorization_is_not_supported() {
        let acps = parse_policies(
            r#"{"m2m:acp": {"pv": null, "pvs": {"acr": [{"acor": ["Cadmin"], "acop": 63}]},
                "adri": ["/id-in/pdp1"]}}"#,
        )
        .unwrap();
        let e = crate::compile::check_create(&acps[0]).unwrap_err();
        assert_eq!(e.0[0].path, "pv");
        assert!(e.0[0].message.contains("is not supported"), "{e}");
    }
    #[test]
    fn lists_where_objects_belong_are_rejected() {
        let e = invalid(r#"{"m2m:acp": {"pv": {"acr": [[["Cabc"], 2]]}}}"#);
        assert_eq!(e.path, "pv.acr[0]");
        assert!(e.message.contains("expected an object"), "{}", e.message);
        let e = invalid(
            r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["a"], "acop": 2, "acco": [[[], {}]]}]}}}"#,
        );
        assert_eq!(e.path, "pv.acr[0].acco[0]");
        let e = invalid(r#"{"m2m:acp": {"pv": [[]]}}"#);
        assert_eq!(e.path, "pv");
        for (req, path) in [
            (r#"["Cabc", "x", 2]"#, "(top level)"),
            (
                r#"{"fr": "Cabc", "to": "x", "op": 2, "oip": ["1.2.3.4"]}"#,
                "oip",
            ),
        ] {
            match request_from_json(req, chrono::Utc::now()) {
                Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, path, "{req}"),
                other => panic!("{req}: {other:?}"),
            }
        }
    }

    #[test]
    fn request_error_paths_have_no_leading_dot() {
        for (req, path) in [
            (r#"{"to": "x", "op": 2}"#, "fr"),
            (
                r#"{"fr": "Cabc", "to": "x", "op": 2, "oip": {"ip5": "x"}}"#,
                "oip.ip5",
            ),
            // A string that is no number (`"2"` is read as 2, as CSEs write it).
            (r#"{"fr": "Cabc", "to": "x", "op": "two"}"#, "op"),
            // Spec notes §2.1: a circRegion is exactly three numbers; a
            // position without its uncertainty is not taken as exact.
            (
                r#"{"fr": "Cabc", "to": "x", "op": 2, "olo": {"accr": [48.1, 11.5]}}"#,
                "olo.accr",
            ),
        ] {
            match request_from_json(req, chrono::Utc::now()) {
                Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, path, "{req}"),
                other => panic!("{req}: {other:?}"),
            }
        }
    }

    /// TS-0001 10.2.3.1: an ACP is the target of a request that names its
    /// `ri`, so an `ri` that no request can name (the check of a target,
    /// `check_resource_id`) is an error naming its path, not an ACP that is
    /// silently never recognised.
    /// The common attributes an author writes are read as what they are
    /// (TS-0001 7.2, TS-0004 m2m:timestamp): `pi` a resource ID, `rn` one
    /// path segment, `et` a timestamp; each wrong one is named.
    #[test]
    fn common_attributes_are_checked_pi_rn_et() {
        let doc = |attrs: &str| {
            format!(
                r#"{{"m2m:acp": {{"ri": "acpC", {attrs}, "pv": {{"acr": []}}, "pvs": {{"acr": [{{"acor": ["Ca"], "acop": 63}}]}}}}}}"#
            )
        };
        for (attrs, path) in [
            (r#""pi": "a b""#, "pi"),
            (r#""pi": "cnt/""#, "pi"),
            (r#""rn": "a/b""#, "rn"),
            (r#""rn": "a b""#, "rn"),
            (r#""et": "notatime""#, "et"),
            (r#""et": "20250230T000000""#, "et"),
        ] {
            match parse_and_validate(&doc(attrs)) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0.len(), 1, "{attrs}: {e}");
                    assert_eq!(e.0[0].path, path, "{attrs}: {e}");
                }
                other => panic!("{attrs}: {other:?}"),
            }
        }
        let ok = doc(r#""pi": "/id-in/cnt", "rn": "acpC", "et": "20301231T235959""#);
        assert!(parse_and_validate(&ok).is_ok());
    }

    #[test]
    fn an_acp_ri_is_a_resource_id_ts_0001_10_2_3_1() {
        let acp = |ri: &str| {
            format!(
                r#"{{"m2m:acp": {{"ri": "{ri}", "pv": {{"acr": []}}, "pvs": {{"acr": [{{"acor": ["Ca"], "acop": 63}}]}}}}}}"#
            )
        };
        for (ri, why) in [
            (
                "a b",
                "'a b' is not a resource ID: must not contain whitespace",
            ),
            ("acp/", "'acp/' has an empty path segment"),
            ("/cse//acp", "has an empty path segment"),
            ("", "must not be empty"),
            ("a\\u0007", "control character"),
        ] {
            match parse_and_validate(&acp(ri)) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0.len(), 1, "{ri:?}: {e}");
                    assert_eq!(e.0[0].path, "ri", "{ri:?}");
                    assert!(e.0[0].message.contains(why), "{ri:?}: {}", e.0[0].message);
                }
                other => panic!("{ri:?}: {other:?}"),
            }
        }
        let long = "x".repeat(crate::ids::MAX_ID_BYTES + 1);
        match parse_and_validate(&acp(&long)) {
            Err(JsonError::Invalid(e)) => {
                assert_eq!(e.0[0].path, "ri");
                assert!(e.0[0].message.contains("bytes long"), "{}", e.0[0].message);
            }
            other => panic!("{other:?}"),
        }
        // In a list the path names the resource.
        let list = format!("[{}, {}]", acp("acp1"), acp("acp/"));
        match parse_and_validate(&list) {
            Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, "m2m:acp[1].ri"),
            other => panic!("{other:?}"),
        }
        for ri in ["acp1", "/cse/acp1", "//sp.example/cse/acp1", "acp*"] {
            assert!(parse_and_validate(&acp(ri)).is_ok(), "{ri}");
        }
    }

    /// TS-0001 7.2 and 10.2.3.1: a target with an empty path segment names
    /// no resource, so it is refused as `fr` is (Decision 9), rather than
    /// taken for a resource other than the ACP it spells and judged by the
    /// loaded ACPs' `pv`; `*` stays allowed (resource names may hold it).
    #[test]
    fn a_target_with_an_empty_segment_is_refused_ts_0001_7_2() {
        let now = chrono::Utc::now();
        for to in ["/mn1/acpZ/", "/mn1//acpZ", "/", "//", "a//b", "///x"] {
            let req = format!(r#"{{"fr": "Cw", "to": "{to}", "op": 3}}"#);
            match request_from_json(&req, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0.len(), 1, "{req}: {e}");
                    assert_eq!(e.0[0].path, "to", "{req}");
                    assert!(
                        e.0[0].message.contains("has an empty path segment"),
                        "{req}: {}",
                        e.0[0].message
                    );
                }
                other => panic!("{req}: {other:?}"),
            }
        }
        for (to, why) in [
            ("a\\u0001b", "control character"),
            ("a b", "whitespace"),
            ("", "must not be empty"),
        ] {
            let req = format!(r#"{{"fr": "Cw", "to": "{to}", "op": 3}}"#);
            match request_from_json(&req, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0[0].path, "to", "{req}");
                    assert!(e.0[0].message.contains(why), "{req}: {}", e.0[0].message);
                }
                other => panic!("{req}: {other:?}"),
            }
        }
        for to in [
            "/mn1/acpZ",
            "//sp.example/mn1/acpZ",
            "ae1/cnt*",
            "caf\\u00e9",
        ] {
            let req = format!(r#"{{"fr": "Cw", "to": "{to}", "op": 3}}"#);
            assert!(request_from_json(&req, now).is_ok(), "{req}");
        }
    }

    /// `uacpi` (no oneM2M short name): an Update that changes only the
    /// target's acpi (TS-0001 9.6.1.3.2); with another op, or a `tgty`
    /// without acpi (spec notes §2.3), it is an error naming `uacpi`.
    #[test]
    fn ts0001_9_6_1_3_2_uacpi_marks_an_acpi_change() {
        let now = chrono::Utc::now();
        let r = request_from_json(r#"{"fr": "C1", "to": "cnt1", "op": 3, "uacpi": true}"#, now)
            .unwrap();
        assert!(r.updates_acpi);
        let r = request_from_json(r#"{"fr": "C1", "to": "cnt1", "op": 3}"#, now).unwrap();
        assert!(!r.updates_acpi);
        for (req, why) in [
            (
                r#"{"fr": "C1", "to": "cnt1", "op": 2, "uacpi": true}"#,
                "op 3",
            ),
            (
                r#"{"fr": "C1", "to": "acp1", "op": 3, "tgty": 1, "uacpi": true}"#,
                "tgty 1",
            ),
            (
                r#"{"fr": "C1", "to": "cin1", "op": 3, "tgty": 4, "uacpi": true}"#,
                "tgty 4",
            ),
        ] {
            match request_from_json(req, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0[0].path, "uacpi", "{req}");
                    assert!(e.0[0].message.contains(why), "{req}: {}", e.0[0].message);
                }
                other => panic!("{req}: {other:?}"),
            }
        }
    }

    /// `rtm` is exactly `YYYYMMDDTHHMMSS` (m2m:timestamp, TS-0004 6.3.3).
    #[test]
    fn timestamps_must_have_every_digit() {
        for bad in [
            "2025111T000000",
            "2025 11 01T 00 00 00",
            "2025111T0 0 0",
            " 20251101T000000",
            "20251101T00000",
            "20251101 000000",
            "20251101T000000,",
            // Second 60: chrono would read a leap second.
            "20261128T120060",
            "20261231T235960",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
        for good in [
            "20251101T000000",
            "20251101T235959,123456",
            "20240229T120000",
        ] {
            assert!(parse_timestamp(good).is_some(), "{good:?}");
        }
        assert_eq!(parse_timestamp("20250229T120000"), None, "not a leap year");
        // The error says why a well-formed value is none.
        for (bad, why) in [
            ("20250229T120000", "2025-02 has no day 29"),
            ("20260431T000000", "2026-04 has no day 31"),
            ("20261328T000000", "month 13 is not 01-12"),
            ("20261128T160060", "16:00:60 is no time of day"),
            ("20261128T240000", "24:00:00 is no time of day"),
            ("2026112T160000", "not of the form YYYYMMDDTHHMMSS"),
            // Well formed, but before any time a service carries (a
            // protobuf Timestamp starts at 0001-01-01).
            ("00000101T000000", "year 0000 is before 0001"),
            (
                "20261128T160000,x",
                "a fraction of a second is one or more digits",
            ),
        ] {
            let err = read_timestamp(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    proptest::proptest! {
        /// Apart from second 60 (a leap second to chrono, no time of day
        /// here) and year 0000 (refused, above), the fields of a
        /// well-formed value mean what chrono's `%Y%m%dT%H%M%S` reads them
        /// as.
        #[test]
        fn timestamps_read_as_chrono_reads_them(
            y in 1u32..10_000, mo in 0u32..100, d in 0u32..100,
            h in 0u32..100, mi in 0u32..100, sec in 0u32..60,
        ) {
            let text = format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{sec:02}");
            let chrono = chrono::NaiveDateTime::parse_from_str(&text, "%Y%m%dT%H%M%S")
                .ok()
                .map(|t| t.and_utc());
            proptest::prop_assert_eq!(parse_timestamp(&text), chrono, "{}", text);
        }
    }

    /// A request's numbers written as strings, as some CSEs write them,
    /// read as those numbers, like a policy's; anything else that is not a
    /// number stays an error naming the field.
    #[test]
    fn request_numbers_written_as_strings_are_numbers() {
        let now = chrono::Utc::now();
        let as_strings = r#"{"fr":"Cx","to":"cnt","op":"1","rrt":"13","tgty":"3",
            "spty":{"mgd":"1001"},"olo":{"accr":["52.5","13.4","10"]},"rtm":"20261126T190000"}"#;
        let as_numbers = r#"{"fr":"Cx","to":"cnt","op":1,"rrt":13,"tgty":3,
            "spty":{"mgd":1001},"olo":{"accr":[52.5,13.4,10]},"rtm":"20261126T190000"}"#;
        let a = request_from_json(as_strings, now).expect("strings");
        let b = request_from_json(as_numbers, now).expect("numbers");
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let discovery = request_from_json(r#"{"fr":"Cx","to":"cnt","op":"2","fu":"1"}"#, now)
            .expect("discovery");
        assert!(discovery.discovery);
        match request_from_json(r#"{"fr":"Cx","to":"cnt","op":"three"}"#, now) {
            Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, "op", "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// Every optional attribute of a request written as `null` is absent,
    /// as in a policy (TS-0004 JSON writes NULL for an attribute without a
    /// value); a mandatory one stays an error naming it.
    #[test]
    fn request_null_optional_attributes_are_absent() {
        let now = chrono::Utc::now();
        let with_nulls = r#"{"fr":"Cx","to":"cnt","op":2,"fu":null,"rrt":null,"spty":null,
            "tgty":null,"rids":null,"rtm":null,"oip":{"ip4":null,"ip6":"fd00::1"},
            "olo":{"accr":null,"accc":["DE"]},"authn":null,"uacpi":null}"#;
        let without = r#"{"fr":"Cx","to":"cnt","op":2,"oip":{"ip6":"fd00::1"},
            "olo":{"accc":["DE"]}}"#;
        let a = request_from_json(with_nulls, now).expect("nulls are absent");
        let b = request_from_json(without, now).expect("without");
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(!a.authenticated && a.role_ids.is_empty() && !a.updates_acpi);
        match request_from_json(r#"{"fr":null,"to":"cnt","op":2}"#, now) {
            Err(JsonError::Invalid(e)) => assert_eq!(e.0[0].path, "fr", "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// A bad value is quoted with its control characters escaped, as every
    /// field's message does.
    #[test]
    fn request_errors_escape_the_values_they_quote() {
        let now = chrono::Utc::now();
        for (doc, path) in [
            (r#"{"fr":"C\u001b[31m","to":"cnt","op":2}"#, "fr"),
            (r#"{"fr":"Cx","to":"cnt","op":2,"rtm":"2026\u001b"}"#, "rtm"),
            (
                r#"{"fr":"Cx","to":"cnt","op":2,"oip":{"ip4":"1\u001b"}}"#,
                "oip.ip4",
            ),
            (
                r#"{"fr":"Cx","to":"cnt","op":2,"oip":{"ip6":"1\u001b"}}"#,
                "oip.ip6",
            ),
            (
                r#"{"fr":"Cx","to":"cnt","op":2,"olo":{"accc":["D\u001b"]}}"#,
                "olo.accc[0]",
            ),
        ] {
            match request_from_json(doc, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0[0].path, path, "{e}");
                    assert!(!e.0[0].message.contains('\u{1b}'), "{e}");
                    assert!(e.0[0].message.contains("\\u{1b}"), "{e}");
                }
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    /// An IPv4 `oip` must be dotted decimal (as `acip` entries are): the
    /// error says which part of it is not.
    #[test]
    fn request_ipv4_errors_say_why() {
        let now = chrono::Utc::now();
        for (ip, why) in [
            (
                "192.168.1.023",
                "an octet has no leading zero (octal to some tools)",
            ),
            ("192.168.1.256", "an octet is at most 255"),
            (
                "192.168.1",
                "dotted decimal is four octets separated by '.'",
            ),
            ("192.168.1.x", "an octet is one to three decimal digits"),
            ("192.168..1", "an octet is one to three decimal digits"),
        ] {
            let doc = format!(r#"{{"fr":"Cx","to":"cnt","op":2,"oip":{{"ip4":"{ip}"}}}}"#);
            match request_from_json(&doc, now) {
                Err(JsonError::Invalid(e)) => {
                    assert_eq!(e.0[0].path, "oip.ip4", "{e}");
                    assert_eq!(
                        e.0[0].message,
                        format!("'{ip}' is not an IPv4 address: {why}")
                    );
                }
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    #[test]
    fn list_errors_name_the_resource() {
        let doc = r#"[{"m2m:acp": {"pv": {"acr": []}}}, {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 99}]}}}]"#;
        let JsonError::Invalid(e) = parse_and_validate(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.0[0].path, "m2m:acp[1].pv.acr[0].acop");
    }
    /// A real CSE's `m2m:acp` (a published retrieve response) writes its
    /// numbers as strings: it loads unchanged, as the same ACP with JSON
    /// numbers, and only strings that are JSON numbers exactly are read so.
    #[test]
    fn numbers_written_as_strings_load_as_those_numbers() {
        let real = r#"{"m2m:acp":{"rn":"EgmAcp13","ty":"1","pi":"xe5vJKz8n","ri":"eZBI52UFb8",
            "ct":"20190613T142024","et":"20220613T142024","lt":"20190613T142024",
            "pv":{"acr":[{"acor":["Cegm"],"acop":"63","acco":[{"aclr":{"accr":["52.52","13.405","1000"]}}],
                "acod":[{"ty":"13","spty":{"mgd":"1001"},"chty":["23","4"]}]}]},
            "pvs":{"acr":[{"acor":["Cegm"],"acop":"63"}]}}}"#;
        let numeric = r#"{"m2m:acp":{"rn":"EgmAcp13","ty":1,"pi":"xe5vJKz8n","ri":"eZBI52UFb8",
            "ct":"20190613T142024","et":"20220613T142024","lt":"20190613T142024",
            "pv":{"acr":[{"acor":["Cegm"],"acop":63,"acco":[{"aclr":{"accr":[52.52,13.405,1000]}}],
                "acod":[{"ty":13,"spty":{"mgd":1001},"chty":[23,4]}]}]},
            "pvs":{"acr":[{"acor":["Cegm"],"acop":63}]}}}"#;
        let a = parse_and_validate(real).expect("loads unchanged");
        let b = parse_and_validate(numeric).expect("loads");
        assert_eq!(a[0].privileges, b[0].privileges);
        assert_eq!(a[0].self_privileges, b[0].self_privileges);
        assert_eq!(a[0].privileges.as_ref().unwrap().rules[0].operations, 63);
        for bad in ["\"63 \"", "\"063\"", "\"0x3f\"", "\"sixty\"", "\"\""] {
            let doc =
                format!(r#"{{"m2m:acp":{{"pv":{{"acr":[{{"acor":["C1"],"acop":{bad}}}]}}}}}}"#);
            let JsonError::Invalid(e) = parse_and_validate(&doc).unwrap_err() else {
                panic!("{doc}")
            };
            assert_eq!(e.0[0].path, "pv.acr[0].acop", "{doc}");
        }
    }

    /// An optional attribute written as `null` is absent, whichever it is
    /// (TS-0004: NULL is an attribute without a value).
    #[test]
    fn null_optional_attributes_are_absent() {
        let with_nulls = r#"{"m2m:acp":{"pv":{"acr":[
            {"acor":["C1"],"acop":2,"acco":null,"acod":null,"acaf":null},
            {"acor":["C2"],"acop":2,"acco":[{"actw":null,"acip":{"ipv4":null,"ipv6":["fd00::/8"]},"aclr":{"accc":null,"accr":[1,2,3]}}]},
            {"acor":["C3"],"acop":1,"acod":[{"ty":null,"spty":null,"chty":[4]}]}]},
            "pvs":{"acr":null}}}"#;
        let without = r#"{"m2m:acp":{"pv":{"acr":[
            {"acor":["C1"],"acop":2},
            {"acor":["C2"],"acop":2,"acco":[{"acip":{"ipv6":["fd00::/8"]},"aclr":{"accr":[1,2,3]}}]},
            {"acor":["C3"],"acop":1,"acod":[{"chty":[4]}]}]},
            "pvs":{}}}"#;
        let a = parse_and_validate(with_nulls).expect("loads");
        let b = parse_and_validate(without).expect("loads");
        assert_eq!(a[0].privileges, b[0].privileges);
        assert_eq!(a[0].self_privileges, b[0].self_privileges);
        // The resource's own optional attributes too.
        let common = r#"{"m2m:acp":{"ri":"a","rn":null,"pi":null,"et":null,"ty":null,
            "pv":{"acr":[{"acor":["C1"],"acop":2}]},"pvs":{"acr":[{"acor":["C1"],"acop":63}]}}}"#;
        assert!(
            parse_and_validate(common).is_ok(),
            "{:?}",
            parse_and_validate(common).err()
        );
    }
}

/// A decision request in oneM2M short names, as `authz check` reads it.
///
/// `fr`, `to` and `op` are mandatory; see the README for every field.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortRequest {
    fr: String,
    to: String,
    op: u32,
    #[serde(default)]
    fu: Option<u32>,
    #[serde(default)]
    rrt: Option<u32>,
    #[serde(
        default,
        deserialize_with = "crate::model::Specialization::read_optional"
    )]
    spty: Option<crate::model::Specialization>,
    #[serde(default)]
    tgty: Option<u32>,
    #[serde(default)]
    rids: Vec<String>,
    #[serde(default)]
    rtm: Option<String>,
    #[serde(default)]
    oip: Option<ShortIp>,
    #[serde(default)]
    olo: Option<ShortLocation>,
    #[serde(default)]
    authn: bool,
    /// Not a oneM2M short name (the primitive has none): the Update changes
    /// the target's `acpi` and nothing else (TS-0001 9.6.1.3.2).
    #[serde(default)]
    uacpi: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortIp {
    #[serde(default)]
    ip4: Option<String>,
    #[serde(default)]
    ip6: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortLocation {
    #[serde(default)]
    accr: Option<Vec<f64>>,
    #[serde(default)]
    accc: Option<Vec<String>>,
}

/// Reads a decision request in short names (`fr`, `to`, `op`, `fu`, `rrt`,
/// `spty`, `tgty`, `rids`, `rtm`, `oip`, `olo`, `authn`), and `uacpi`, which
/// is no oneM2M short name: `true` when the Update changes the target's
/// `acpi` and nothing else (TS-0001 9.6.1.3.2; op 3 only, and not with a
/// `tgty` that has no `acpi`). `now` is the request time when `rtm` is
/// absent.
pub fn request_from_json(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::request::DecisionRequest, JsonError> {
    use crate::request::{DecisionRequest, Operation, Position};
    let mut value = match parse_json(text)? {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("m2m:rqp") => {
            map.remove("m2m:rqp").unwrap_or(Value::Null)
        }
        other => other,
    };
    normalize_request(&mut value);
    let invalid = |e| JsonError::Invalid(ValidationErrors(vec![e]));
    check_shape(&value, &SHORT_REQUEST, "").map_err(invalid)?;
    let short: ShortRequest = deserialize_at("", value).map_err(invalid)?;
    let mut errors = Vec::new();
    let mut bad = |path: &str, message: String| {
        errors.push(ValidationError {
            path: path.to_owned(),
            message,
        })
    };
    let operation = Operation::from_code(short.op);
    if operation.is_none() {
        bad(
            "op",
            format!(
                "{} is not an operation (1 Create, 2 Retrieve, 3 Update, 4 Delete, 5 Notify)",
                short.op
            ),
        );
    }
    let discovery = match short.fu {
        None | Some(2) => false,
        // Discovery criteria, and IPE on-demand discovery (spec notes §1).
        Some(1) | Some(3) => true,
        Some(other) => {
            bad(
                "fu",
                format!(
                    "{other} is not a filterUsage (1 discovery, 2 conditional retrieval, 3 IPE on-demand discovery)"
                ),
            );
            false
        }
    };
    let time = match &short.rtm {
        None => now,
        Some(s) => read_timestamp(s).unwrap_or_else(|why| {
            bad(
                "rtm",
                format!(
                    "'{}' is not an m2m:timestamp (YYYYMMDDTHHMMSS, UTC): {why}",
                    s.escape_debug()
                ),
            );
            now
        }),
    };
    let ip = short
        .oip
        .as_ref()
        .and_then(|oip| match (&oip.ip4, &oip.ip6) {
            (Some(a), None) => a
                .parse::<std::net::Ipv4Addr>()
                .map(Into::into)
                .map_err(|_| {
                    bad(
                        "oip.ip4",
                        format!(
                            "'{}' is not an IPv4 address: {}",
                            a.escape_debug(),
                            crate::compile::ipv4_fault(a)
                        ),
                    )
                })
                .ok(),
            (None, Some(a)) => a
                .parse::<std::net::Ipv6Addr>()
                .map(Into::into)
                .map_err(|_| {
                    bad(
                        "oip.ip6",
                        format!("'{}' is not an IPv6 address", a.escape_debug()),
                    )
                })
                .ok(),
            _ => {
                bad("oip", "holds exactly one of ip4 and ip6".to_owned());
                None
            }
        });
    let mut position = None;
    let mut countries = Vec::new();
    if let Some(olo) = &short.olo {
        if let Some(accr) = &olo.accr {
            match accr.as_slice() {
                // Exactly three numbers, as in a policy's `aclr.accr`: a
                // position without its uncertainty taken as exact would
                // widen what a circle admits.
                [lat, lon, _]
                    if !(-90.0..=90.0).contains(lat) || !(-180.0..=180.0).contains(lon) =>
                {
                    bad(
                        "olo.accr",
                        format!("({lat}, {lon}) is not a latitude -90..90 and longitude -180..180"),
                    )
                }
                [lat, lon, unc] if unc.is_finite() && *unc >= 0.0 => {
                    position = Some(Position {
                        lat: *lat,
                        lon: *lon,
                        uncertainty_m: *unc,
                    })
                }
                [_, _, unc] => bad(
                    "olo.accr[2]",
                    format!("uncertainty {unc} must be a finite number of metres >= 0"),
                ),
                _ => bad(
                    "olo.accr",
                    format!(
                        "expected [latitude, longitude, uncertainty_m], found {} numbers",
                        accr.len()
                    ),
                ),
            }
        }
        for (i, c) in olo.accc.iter().flatten().enumerate() {
            match crate::location::country_code_fault(c) {
                None => countries.push(c.to_ascii_uppercase()),
                Some(fault) => bad(&format!("olo.accc[{i}]"), fault),
            }
        }
    }
    if operation == Some(Operation::Create) && short.rrt.is_none() {
        bad(
            "rrt",
            "the resource type being created is mandatory for op 1 (Create)".to_owned(),
        );
    }
    for (name, ty) in [("rrt", short.rrt), ("tgty", short.tgty)] {
        if ty == Some(0) {
            // As in a policy's `acod` (compile.rs).
            bad(name, crate::model::NO_RESOURCE_TYPE_0.to_owned());
        }
    }
    if let Some(crate::model::Specialization::ContainerDefinition(uri)) = &short.spty
        && uri.is_empty()
    {
        bad(
            "spty.cnd",
            "containerDefinition must not be empty".to_owned(),
        );
    }
    match (&short.spty, short.rrt) {
        (Some(s), Some(ty)) => {
            if let Err(why) = s.check_created_type(ty) {
                bad("spty", why);
            }
        }
        // `spty` is the specialization of the created resource (Decision
        // 13): without the created type it belongs to nothing, and would
        // otherwise be silently ignored (as on a Retrieve) or taken alone.
        (Some(_), None) => bad(
            "spty",
            "the specialization of a created resource goes with its type rrt (mgd with rrt 13, cnd with rrt 28)"
                .to_owned(),
        ),
        (None, _) => {}
    }
    if discovery && operation != Some(Operation::Retrieve) {
        bad("fu", "discovery applies to op 2 (Retrieve) only".to_owned());
    }
    if short.uacpi {
        if operation.is_some_and(|op| op != Operation::Update) {
            bad(
                "uacpi",
                "an acpi change (TS-0001 9.6.1.3.2) is an op 3 (Update)".to_owned(),
            );
        }
        if let Some(ty) = short
            .tgty
            .filter(|ty| !crate::resources::type_has_acpi(*ty))
        {
            bad(
                "uacpi",
                format!("a target of tgty {ty} has no acpi to change (spec notes §2.3)"),
            );
        }
    }
    if let Err(e) = crate::ids::check_originator_id(&short.fr) {
        // A malformed request is an error, not a decision (Decision 9).
        bad(
            "fr",
            format!("'{}' is not an originator ID: {e}", short.fr.escape_debug()),
        );
    }
    for (i, rid) in short.rids.iter().enumerate() {
        if let Err(e) = crate::ids::check_role_id(rid) {
            bad(&format!("rids[{i}]"), format!("not a Role-ID: {e}"));
        }
    }
    // The check the PDP makes of its `target` too: a target with an empty
    // segment (`/mn1/acp1/`) would be taken for no loaded ACP and judged by
    // the loaded ACPs' pv instead of that ACP's pvs (TS-0001 10.2.3.1).
    if let Err(e) = crate::ids::check_resource_id(&short.to) {
        bad("to", resource_id_error(&short.to, &e));
    }
    match operation {
        Some(operation) if errors.is_empty() => Ok(DecisionRequest {
            originator: short.fr,
            role_ids: short.rids,
            operation,
            discovery,
            updates_acpi: short.uacpi,
            target: short.to,
            target_type: short.tgty,
            resource_type: short.rrt,
            specialization: short.spty,
            time,
            ip,
            position,
            countries,
            authenticated: short.authn,
        }),
        _ => Err(JsonError::Invalid(ValidationErrors(errors))),
    }
}

/// Why `id` is no resource ID ([`crate::ids::check_resource_id`]), for
/// an error naming its field: the ID quoted, unless it is empty or too
/// long to quote.
fn resource_id_error(id: &str, e: &crate::ids::IdError) -> String {
    use crate::ids::IdError;
    match e {
        IdError::Empty => "the resource ID must not be empty".to_owned(),
        IdError::TooLong(_) => format!("not a resource ID: {e}"),
        _ => format!("'{}' is not a resource ID: {e}", id.escape_debug()),
    }
}

/// The first second every service can carry (a protobuf `Timestamp`'s),
/// 0001-01-01T00:00:00Z.
pub const FIRST_TIMESTAMP_SECONDS: i64 = -62_135_596_800;

/// The last second every service can carry, 9999-12-31T23:59:59Z.
pub const LAST_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Parses an `m2m:timestamp` (`YYYYMMDDTHHMMSS`, optionally `,ffffff`), UTC.
/// The fraction, when present, is one or more digits and is dropped.
pub fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    read_timestamp(s).ok()
}

/// [`parse_timestamp`], or why `s` is no `m2m:timestamp` (for an error that
/// quotes `s` beside it): not the form, or a date or time that does not
/// exist.
pub fn read_timestamp(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let (main, fraction) = match s.split_once([',', '.']) {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (s, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return Err("a fraction of a second is one or more digits".to_owned());
    }
    // Exactly `YYYYMMDDTHHMMSS`: chrono alone would take short fields
    // (`2025111T000000` as 1 November) and skip spaces.
    let b = main.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 15 || b[8] != b'T' || !digits(0..8) || !digits(9..15) {
        return Err("not of the form YYYYMMDDTHHMMSS".to_owned());
    }
    let field = |r: std::ops::Range<usize>| main[r].parse::<u32>().unwrap_or(u32::MAX);
    let (year, month, day) = (field(0..4) as i32, field(4..6), field(6..8));
    let (hour, minute, second) = (field(9..11), field(11..13), field(13..15));
    // chrono reads second 60 as a leap second (`12:00:60` as 12:00:59 and a
    // bit): not a time of day here.
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "{hour:02}:{minute:02}:{second:02} is no time of day (hours 00-23, minutes and seconds 00-59)"
        ));
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01-12"));
    }
    // Year 0000 has the form, but no service could carry it: a protobuf
    // Timestamp starts at 0001-01-01.
    if year == 0 {
        return Err("year 0000 is before 0001, the first year of a timestamp".to_owned());
    }
    chrono::NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(hour, minute, second))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{year:04}-{month:02} has no day {day:02}"))
}

/// `m2m:absRelTimestamp` (TS-0004 6.3.3): an absolute `m2m:timestamp` or a
/// time relative to now in milliseconds. The DAS parses `rts` and `ppl` with
/// it, the PDP the `pl` of a DAS's `dai`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsRelTimestamp {
    /// `YYYYMMDDThhmmss` (UTC).
    Absolute(chrono::DateTime<chrono::Utc>),
    /// Milliseconds from now (negative: in the past).
    Relative(chrono::TimeDelta),
}

impl AbsRelTimestamp {
    /// Parses either form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(t) = parse_timestamp(text) {
            return Some(Self::Absolute(t));
        }
        let ms: i64 = text.parse().ok()?;
        chrono::TimeDelta::try_milliseconds(ms).map(Self::Relative)
    }

    /// The instant it names, relative times counted from `now`; `None` when
    /// out of range.
    pub fn resolve(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Self::Absolute(t) => Some(t),
            Self::Relative(d) => now.checked_add_signed(d),
        }
    }
}

/// Formats an `m2m:timestamp`.
pub fn format_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}
