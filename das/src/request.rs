//! `dynAuthDasRequest` from the wire: checked, IDs made absolute, every
//! problem named by its proto field under the caller's prefix
//! (`das_request.operation`, `das_request.originator_ip.ipv4`).
//!
//! The checks shared with a PDP decision request (originator, operation,
//! target, Role-IDs, Token-IDs, IP) are those of
//! [`authz_proto::convert::decision_request_from_pb`], run on the equivalent
//! `DecisionRequest` with the field names mapped back.

use authz_core::HostingContext;
use authz_core::request::Position;
use authz_core::token::issuer_fqdn;
use authz_proto::convert::decision_request_from_pb;
use authz_proto::{ConversionError, pb};
use chrono::{DateTime, TimeDelta, Utc};

use crate::policy::{AbsRelTimestamp, DasRequest, canonical_resource_id};

fn add(errors: &mut Vec<ConversionError>, field: String, message: impl Into<String>) {
    errors.push(ConversionError {
        field,
        message: message.into(),
    });
}

/// Checks `dreq` (named `prefix`, e.g. `das_request`) and converts it.
///
/// `hosting` is where its IDs were received: the consulting CSE for
/// `Consult`, the configured context for `IssueToken`. With
/// `rts_max_skew` set, the policies are evaluated at `rts` (the time the
/// hosting CSE received the request) when given, and an `rts` further than
/// that from `now` is refused; with `None`, and always for requests
/// presented by the originator itself, at `now`, since an originator could
/// otherwise pick a time inside a window. The syntax of `rts` is checked
/// either way. `oip` and `olo` are converted as given; `IssueToken` then
/// replaces the IP with the address its call came from.
pub fn das_request_from_pb(
    dreq: &pb::DasRequest,
    prefix: &str,
    hosting: &HostingContext,
    now: DateTime<Utc>,
    rts_max_skew: Option<TimeDelta>,
) -> Result<DasRequest, Vec<ConversionError>> {
    let mut errors = Vec::new();
    let field = |name: &str| format!("{prefix}.{name}");

    // The checks a PDP applies to the same parameters.
    let equivalent = pb::DecisionRequest {
        originator: dreq.originator.clone(),
        role_ids: dreq.originator_role_ids.clone(),
        token_ids: dreq.token_ids.clone(),
        operation: dreq.operation,
        target: dreq.targeted_resource_id.clone(),
        target_type: dreq.targeted_resource_type,
        originator_ip: dreq.originator_ip.clone(),
        ..Default::default()
    };
    let converted = match decision_request_from_pb(&equivalent, now) {
        Ok(c) => Some(c.request),
        Err(e) => {
            // The decision request's names of the parameters back to the
            // DAS request's (`role_ids[0]` → `originator_role_ids[0]`).
            const RENAMED: [(&str, &str); 3] = [
                ("target_type", "targeted_resource_type"),
                ("target", "targeted_resource_id"),
                ("role_ids", "originator_role_ids"),
            ];
            for c in e {
                let name = RENAMED
                    .iter()
                    .find_map(|(pdp, das)| {
                        c.field
                            .strip_prefix(pdp)
                            .filter(|rest| rest.is_empty() || rest.starts_with(['[', '.']))
                            .map(|rest| format!("{das}{rest}"))
                    })
                    .unwrap_or(c.field);
                add(&mut errors, field(&name), c.message);
            }
            None
        }
    };

    let originator = if dreq.originator.is_empty() {
        None
    } else {
        match hosting.canonicalize(&dreq.originator) {
            Ok(o) => Some(o.into_owned()),
            Err(e) => {
                if converted.is_some() {
                    add(&mut errors, field("originator"), e.to_string());
                }
                None
            }
        }
    };
    let target = canonical_resource_id(&dreq.targeted_resource_id, hosting).ok();

    for (i, r) in dreq.role_ids_from_acps.iter().enumerate() {
        if issuer_fqdn(r).is_none() {
            add(
                &mut errors,
                field(&format!("role_ids_from_acps[{i}]")),
                format!("'{r}' is not a Role-ID (name@fqdn)"),
            );
        }
    }

    let (position, countries) = match dreq
        .originator_location
        .as_ref()
        .and_then(|l| l.region.as_ref())
    {
        None => {
            if dreq.originator_location.is_some() {
                add(
                    &mut errors,
                    field("originator_location"),
                    "one of country_codes or circle must be set",
                );
            }
            (None, Vec::new())
        }
        Some(pb::location_region::Region::CountryCodes(cc)) => {
            for (i, code) in cc.codes.iter().enumerate() {
                if let Some(fault) = authz_core::location::country_code_fault(code) {
                    add(
                        &mut errors,
                        field(&format!("originator_location.country_codes.codes[{i}]")),
                        fault,
                    );
                }
            }
            (None, cc.codes.clone())
        }
        Some(pb::location_region::Region::Circle(c)) => {
            let path = field("originator_location.circle");
            if !(-90.0..=90.0).contains(&c.latitude) {
                add(
                    &mut errors,
                    format!("{path}.latitude"),
                    format!("{} out of range -90..90", c.latitude),
                );
            }
            if !(-180.0..=180.0).contains(&c.longitude) {
                add(
                    &mut errors,
                    format!("{path}.longitude"),
                    format!("{} out of range -180..180", c.longitude),
                );
            }
            if !(c.radius_m.is_finite() && c.radius_m >= 0.0) {
                add(
                    &mut errors,
                    format!("{path}.radius_m"),
                    format!("{} must be a finite number of metres >= 0", c.radius_m),
                );
            }
            // The originator is somewhere in the circle: its centre, with
            // the radius as uncertainty (Decision 5 then needs the whole
            // circle inside a rule's region).
            let p = Position {
                lat: c.latitude,
                lon: c.longitude,
                uncertainty_m: c.radius_m,
            };
            (Some(p), Vec::new())
        }
    };

    let mut time = now;
    if !dreq.request_timestamp.is_empty() {
        let name = field("request_timestamp");
        match AbsRelTimestamp::parse(&dreq.request_timestamp).and_then(|t| t.resolve(now)) {
            None => add(
                &mut errors,
                name,
                format!(
                    "'{}' is not an m2m:absRelTimestamp (YYYYMMDDThhmmss or milliseconds)",
                    dreq.request_timestamp
                ),
            ),
            Some(t) => match rts_max_skew {
                Some(skew) if (t - now).abs() > skew => add(
                    &mut errors,
                    name,
                    format!(
                        "'{}' is more than {} s from the DAS clock",
                        dreq.request_timestamp,
                        skew.num_seconds()
                    ),
                ),
                Some(_) => time = t,
                None => {}
            },
        }
    }

    let proposed_lifetime = if dreq.proposed_privileges_lifetime.is_empty() {
        None
    } else {
        // A relative one too far off to add to the clock is simply longer
        // than any policy's maximum, which then bounds it.
        let parsed = AbsRelTimestamp::parse(&dreq.proposed_privileges_lifetime);
        if parsed.is_none() {
            add(
                &mut errors,
                field("proposed_privileges_lifetime"),
                format!(
                    "'{}' is not an m2m:absRelTimestamp (YYYYMMDDThhmmss or milliseconds)",
                    dreq.proposed_privileges_lifetime
                ),
            );
        }
        parsed
    };

    match (converted, originator, target) {
        (Some(c), Some(originator), Some(target)) if errors.is_empty() => Ok(DasRequest {
            originator,
            operation: c.operation,
            target,
            target_type: c.target_type,
            time,
            ip: c.ip,
            position,
            countries,
            proposed_lifetime,
            role_ids_from_acps: dreq.role_ids_from_acps.clone(),
            token_ids: dreq.token_ids.clone(),
        }),
        _ => {
            if errors.is_empty() {
                add(&mut errors, prefix.to_owned(), "invalid");
            }
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosting() -> HostingContext {
        HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting")
    }

    #[test]
    fn every_bad_field_is_named_under_the_prefix() {
        let dreq = pb::DasRequest {
            originator: String::new(),
            operation: 9,
            targeted_resource_id: "front door".into(),
            originator_ip: Some(pb::IpAddress {
                address: Some(pb::ip_address::Address::Ipv4("300.1.1.1".into())),
            }),
            targeted_resource_type: Some(0),
            originator_role_ids: vec!["nobody".into()],
            role_ids_from_acps: vec!["x".into()],
            request_timestamp: "yesterday".into(),
            proposed_privileges_lifetime: "1h".into(),
            originator_location: Some(pb::LocationRegion {
                region: Some(pb::location_region::Region::CountryCodes(
                    pb::CountryCodes {
                        codes: vec!["DEU".into()],
                    },
                )),
            }),
            ..Default::default()
        };
        let errors = das_request_from_pb(&dreq, "das_request", &hosting(), Utc::now(), None)
            .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "das_request.originator",
            "das_request.operation",
            "das_request.targeted_resource_id",
            "das_request.targeted_resource_type",
            "das_request.originator_ip.ipv4",
            "das_request.originator_role_ids[0]",
            "das_request.role_ids_from_acps[0]",
            "das_request.request_timestamp",
            "das_request.proposed_privileges_lifetime",
            "das_request.originator_location.country_codes.codes[0]",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
    }

    #[test]
    fn ids_become_absolute_and_rts_is_used_only_when_trusted() {
        let now = Utc::now();
        let rts = now - chrono::TimeDelta::hours(2);
        let dreq = pb::DasRequest {
            originator: "Cguest".into(),
            operation: pb::Operation::Update as i32,
            targeted_resource_id: "/mn-cse-123456/frontDoor".into(),
            request_timestamp: authz_core::json::format_timestamp(rts),
            ..Default::default()
        };
        let skew = Some(chrono::TimeDelta::hours(3));
        let r = das_request_from_pb(&dreq, "d", &hosting(), now, skew).expect("valid");
        assert_eq!(r.originator, "//home.example/mn-cse-123456/Cguest");
        assert_eq!(r.target, "//home.example/mn-cse-123456/frontDoor");
        assert_eq!(r.time.timestamp(), rts.timestamp());
        let r = das_request_from_pb(&dreq, "d", &hosting(), now, None).expect("valid");
        assert_eq!(r.time, now);
        let skew = Some(chrono::TimeDelta::hours(1));
        let e = das_request_from_pb(&dreq, "d", &hosting(), now, skew).expect_err("skew");
        assert_eq!(e[0].field, "d.request_timestamp");
    }
}
