//! `m2m:dynAuthDasRequest` (`dreq`) in oneM2M JSON short names (TS-0004
//! 6.3.5.x; spec notes §6.2), both ways: what Token Request Information
//! (`tqf`) shows the originator, what the originator hands back to the DAS,
//! and what a secured DAS request (`sdr`) carries encrypted for the DAS
//! (TS-0003 7.3.2.3 step 2.2).
//!
//! Reading checks the JSON types only and names each member by its short
//! name (`sdr.rfa[0]`), at most [`MAX_ERRORS`] of them; what the values
//! mean (an ID, a Role-ID, a time) is checked by whoever uses the request,
//! as for the gRPC message, and named as its fields are.

use serde_json::{Map, Value, json};

use crate::convert::ConversionError;
use crate::pb;

/// `dreq` in JSON short names; empty optional members are left out.
pub fn das_request_to_json(r: &pb::DasRequest) -> Value {
    let mut m = Map::new();
    m.insert("or".into(), json!(r.originator));
    if let Some(trt) = r.targeted_resource_type {
        m.insert("trt".into(), json!(trt));
    }
    m.insert("op".into(), json!(r.operation));
    if let Some(ip) = r.originator_ip.as_ref().and_then(|ip| ip.address.as_ref()) {
        m.insert(
            "oip".into(),
            match ip {
                pb::ip_address::Address::Ipv4(a) => json!({ "ip4": a }),
                pb::ip_address::Address::Ipv6(a) => json!({ "ip6": a }),
            },
        );
    }
    if let Some(region) = r
        .originator_location
        .as_ref()
        .and_then(|l| l.region.as_ref())
    {
        m.insert(
            "olo".into(),
            match region {
                pb::location_region::Region::CountryCodes(c) => json!({ "accc": c.codes }),
                pb::location_region::Region::Circle(c) => {
                    json!({ "accr": [c.latitude, c.longitude, c.radius_m] })
                }
            },
        );
    }
    let texts = [
        ("rts", &r.request_timestamp),
        ("trid", &r.targeted_resource_id),
        ("ppl", &r.proposed_privileges_lifetime),
    ];
    for (name, text) in texts {
        if !text.is_empty() {
            m.insert(name.into(), json!(text));
        }
    }
    let lists = [
        ("orid", &r.originator_role_ids),
        ("rfa", &r.role_ids_from_acps),
        ("tids", &r.token_ids),
    ];
    for (name, list) in lists {
        if !list.is_empty() {
            m.insert(name.into(), json!(list));
        }
    }
    if let Some(asi) = r.author_sign_indicator {
        m.insert("asi".into(), json!(asi));
    }
    Value::Object(m)
}

/// Reads a `dreq` written in JSON short names (the object itself, or one
/// wrapped as `{"dreq": {...}}` or `{"m2m:dreq": {...}}`). `path` prefixes
/// the names in errors. A member this type does not have is an error, so
/// that a misspelt one is not silently dropped.
pub fn das_request_from_json(
    value: &Value,
    path: &str,
) -> Result<pb::DasRequest, Vec<ConversionError>> {
    let value = match value.as_object() {
        Some(m) if m.len() == 1 => m.get("dreq").or_else(|| m.get("m2m:dreq")).unwrap_or(value),
        _ => value,
    };
    let mut reader = Reader {
        path,
        errors: Vec::new(),
    };
    let Some(m) = value.as_object() else {
        reader.error("", "must be a JSON object (m2m:dynAuthDasRequest)");
        return Err(reader.errors);
    };
    let mut r = pb::DasRequest::default();
    for (name, v) in m {
        match name.as_str() {
            "or" => r.originator = reader.text(name, v),
            "trt" => match v.as_u64().and_then(|t| u32::try_from(t).ok()) {
                Some(t) => r.targeted_resource_type = Some(t),
                None => reader.error(name, "must be a resource type number"),
            },
            "op" => match v.as_i64().and_then(|o| i32::try_from(o).ok()) {
                Some(o) => r.operation = o,
                None => reader.error(name, "must be an operation number (1-5)"),
            },
            "oip" => r.originator_ip = reader.ip(v),
            "olo" => r.originator_location = reader.location(v),
            "orid" => r.originator_role_ids = reader.list(name, v),
            "rts" => r.request_timestamp = reader.text(name, v),
            "trid" => r.targeted_resource_id = reader.text(name, v),
            "ppl" => r.proposed_privileges_lifetime = reader.text(name, v),
            "rfa" => r.role_ids_from_acps = reader.list(name, v),
            "tids" => r.token_ids = reader.list(name, v),
            "asi" => match v.as_bool() {
                Some(b) => r.author_sign_indicator = Some(b),
                None => reader.error(name, "must be a boolean"),
            },
            _ => reader.error(name, "is no member of m2m:dynAuthDasRequest"),
        }
    }
    for required in ["or", "op"] {
        if !m.contains_key(required) {
            reader.error(required, "required");
        }
    }
    if reader.errors.is_empty() {
        Ok(r)
    } else {
        Err(reader.errors)
    }
}

/// Most errors one [`das_request_from_json`] reports: a list of a million
/// bad items costs no more to refuse than one of a few.
pub const MAX_ERRORS: usize = 32;

/// Collects the errors of one [`das_request_from_json`].
struct Reader<'p> {
    path: &'p str,
    errors: Vec<ConversionError>,
}

impl Reader<'_> {
    fn error(&mut self, name: &str, message: &str) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        let field = match (self.path.is_empty(), name.is_empty()) {
            (true, _) => name.to_owned(),
            (false, true) => self.path.to_owned(),
            (false, false) => format!("{}.{name}", self.path),
        };
        self.errors.push(ConversionError {
            field,
            message: message.to_owned(),
        });
    }

    fn text(&mut self, name: &str, v: &Value) -> String {
        match v.as_str() {
            Some(s) => s.to_owned(),
            None => {
                self.error(name, "must be a string");
                String::new()
            }
        }
    }

    fn list(&mut self, name: &str, v: &Value) -> Vec<String> {
        let Some(items) = v.as_array() else {
            self.error(name, "must be a list of strings");
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_owned()),
                None => self.error(&format!("{name}[{i}]"), "must be a string"),
            }
        }
        out
    }

    fn ip(&mut self, v: &Value) -> Option<pb::IpAddress> {
        let address = match (v.get("ip4"), v.get("ip6"), v.as_object().map(Map::len)) {
            (Some(Value::String(a)), None, Some(1)) => pb::ip_address::Address::Ipv4(a.clone()),
            (None, Some(Value::String(a)), Some(1)) => pb::ip_address::Address::Ipv6(a.clone()),
            _ => {
                self.error("oip", "must be {\"ip4\": address} or {\"ip6\": address}");
                return None;
            }
        };
        Some(pb::IpAddress {
            address: Some(address),
        })
    }

    fn location(&mut self, v: &Value) -> Option<pb::LocationRegion> {
        let region = match (v.get("accc"), v.get("accr"), v.as_object().map(Map::len)) {
            (Some(codes), None, Some(1)) => {
                pb::location_region::Region::CountryCodes(pb::CountryCodes {
                    codes: self.list("olo.accc", codes),
                })
            }
            (None, Some(circle), Some(1)) => {
                let numbers: Option<Vec<f64>> = circle
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_f64).collect());
                match numbers.as_deref() {
                    Some(&[latitude, longitude, radius_m]) => {
                        pb::location_region::Region::Circle(pb::Circle {
                            latitude,
                            longitude,
                            radius_m,
                        })
                    }
                    _ => {
                        self.error("olo.accr", "must be [latitude, longitude, radius in m]");
                        return None;
                    }
                }
            }
            _ => {
                self.error(
                    "olo",
                    "must be {\"accc\": [codes]} or {\"accr\": [lat, lon, r]}",
                );
                return None;
            }
        };
        Some(pb::LocationRegion {
            region: Some(region),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> pb::DasRequest {
        pb::DasRequest {
            originator: "//sp.example.com/id-in/Cphone".into(),
            targeted_resource_type: Some(3),
            operation: pb::Operation::Retrieve as i32,
            originator_ip: Some(pb::IpAddress {
                address: Some(pb::ip_address::Address::Ipv4("192.0.2.10".into())),
            }),
            originator_location: Some(pb::LocationRegion {
                region: Some(pb::location_region::Region::Circle(pb::Circle {
                    latitude: 52.5,
                    longitude: 13.4,
                    radius_m: 100.0,
                })),
            }),
            originator_role_ids: vec!["r1@das.example.com".into()],
            request_timestamp: "20261123T120000".into(),
            targeted_resource_id: "/id-in/cnt7Xk2".into(),
            proposed_privileges_lifetime: "20261123T130000".into(),
            role_ids_from_acps: vec!["guest@roles.example.com".into()],
            token_ids: vec!["tk42@das.example.com".into()],
            author_sign_indicator: Some(false),
        }
    }

    /// The spec notes' example `dreq` (§6.2) reads as written.
    #[test]
    fn reads_the_spec_notes_example() {
        let v: Value = serde_json::from_str(
            r#"{"or": "//sp.example.com/id-in/Cphone", "trt": 3, "op": 2,
               "oip": {"ip4": "192.0.2.10"}, "rts": "20261123T120000",
               "trid": "/id-in/cnt7Xk2", "ppl": "20261123T130000",
               "rfa": ["guest@roles.example.com"], "tids": ["tk42@das.example.com"]}"#,
        )
        .expect("json");
        let r = das_request_from_json(&v, "dreq").expect("reads");
        assert_eq!(r.originator, "//sp.example.com/id-in/Cphone");
        assert_eq!(r.targeted_resource_type, Some(3));
        assert_eq!(r.operation, pb::Operation::Retrieve as i32);
        assert_eq!(
            r.originator_ip.and_then(|ip| ip.address),
            Some(pb::ip_address::Address::Ipv4("192.0.2.10".into()))
        );
        assert_eq!(r.role_ids_from_acps, ["guest@roles.example.com"]);
        assert_eq!(r.token_ids, ["tk42@das.example.com"]);
        assert_eq!(r.proposed_privileges_lifetime, "20261123T130000");
    }

    #[test]
    fn round_trips_every_member() {
        let r = full();
        let back = das_request_from_json(&das_request_to_json(&r), "").expect("reads");
        assert_eq!(back, r);
        let wrapped = json!({ "m2m:dreq": das_request_to_json(&r) });
        assert_eq!(das_request_from_json(&wrapped, "").expect("reads"), r);
    }

    #[test]
    fn errors_name_each_member() {
        let v = json!({"or": 7, "op": "2", "rfa": ["a@b.c", 3], "oip": {"ip4": "x", "ip6": "y"},
                       "olo": {"accr": [1, 2]}, "rolez": []});
        let errors = das_request_from_json(&v, "sdr").expect_err("refused");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "sdr.or",
            "sdr.op",
            "sdr.rfa[1]",
            "sdr.oip",
            "sdr.olo.accr",
            "sdr.rolez",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
        let missing = das_request_from_json(&json!({"trid": "x"}), "dreq").expect_err("refused");
        let fields: Vec<&str> = missing.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["dreq.or", "dreq.op"]);
        let not_object = das_request_from_json(&json!([1]), "sdr").expect_err("refused");
        assert_eq!(not_object[0].field, "sdr");
        let many = json!({"or": "C", "op": 2, "rfa": vec![1; 100_000]});
        let errors = das_request_from_json(&many, "sdr").expect_err("refused");
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[0].field, "sdr.rfa[0]");
    }
}
