//! A decision as a oneM2M response (TS-0003 6.2.2 steps 010-011; TS-0004
//! 6.6.3 and 7.3.3.15; TS-0009 6.3.2 for the HTTP status codes).
//!
//! [`Enforcement::of`] maps a [`Verdict`]:
//!
//! | decision | response |
//! | --- | --- |
//! | Permit | proceed; `ati` = the assigned Local-Token-IDs |
//! | Deny, status SYNTAX_ERROR (malformed request) | 4000 BAD_REQUEST, `m2m:dbg` = what is malformed |
//! | Deny with Token Request Information | 4103 ORIGINATOR_HAS_NO_PRIVILEGE, content `m2m:tqf` (and no debug information, TS-0009 6.5) |
//! | Deny because the PDP gave no usable decision (fail-closed, [`DecisionSource::FailClosed`]: unreachable, too slow, or an answer that is none, such as a PERMIT whose status is not OK, whatever that status) | 4103, `m2m:dbg` = [`FAIL_CLOSED_TEXT`], or with [`DenyDetail::Summary`] the summary with the reason ("DENY (fail-closed): PDP unreachable: ...") |
//! | any other Deny | 4103, `m2m:dbg` = a short text with the decision ID, or the PDP's summary with [`DenyDetail::Summary`] |
//!
//! `ati` (m2m:dynAuthLocalTokenIdAssignments) travels in the HTTP binding as
//! the header `X-M2M-ATI: lti1:tkid1+lti2:tkid2` ([`ati_header`]), in
//! successful and error responses alike. The root name of Token Request
//! Information in an HTTP body is not confirmed by the texts at hand (spec
//! notes §9 item 1); this SDK uses `m2m:tqf` with the short names of
//! m2m:dynAuthTokenReqInfo ([`token_request_info_json`]).

use authz_proto::pb;
use serde_json::{Map, Value, json};

use crate::client::{DecisionSource, Verdict};

/// A oneM2M Response Status Code (`rsc`, m2m:responseStatusCode, TS-0004
/// 6.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseStatusCode(pub u16);

impl ResponseStatusCode {
    /// 2000 OK.
    pub const OK: Self = Self(2000);
    /// 2001 CREATED.
    pub const CREATED: Self = Self(2001);
    /// 2002 DELETED.
    pub const DELETED: Self = Self(2002);
    /// 2004 UPDATED.
    pub const UPDATED: Self = Self(2004);
    /// 4000 BAD_REQUEST.
    pub const BAD_REQUEST: Self = Self(4000);
    /// 4004 NOT_FOUND.
    pub const NOT_FOUND: Self = Self(4004);
    /// 4005 OPERATION_NOT_ALLOWED.
    pub const OPERATION_NOT_ALLOWED: Self = Self(4005);
    /// 4015 UNSUPPORTED_MEDIA_TYPE.
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self(4015);
    /// 4102 CONTENTS_UNACCEPTABLE.
    pub const CONTENTS_UNACCEPTABLE: Self = Self(4102);
    /// 4103 ORIGINATOR_HAS_NO_PRIVILEGE.
    pub const ORIGINATOR_HAS_NO_PRIVILEGE: Self = Self(4103);
    /// 4105 CONFLICT.
    pub const CONFLICT: Self = Self(4105);
    /// 4106 ORIGINATOR_NOT_AUTHENTICATED.
    pub const ORIGINATOR_NOT_AUTHENTICATED: Self = Self(4106);
    /// 5000 INTERNAL_SERVER_ERROR.
    pub const INTERNAL_SERVER_ERROR: Self = Self(5000);

    /// The HTTP status of this code in the HTTP binding (TS-0009 6.3.2):
    /// 2000, 2002 and 2004 → 200; 2001 → 201; 1xxx → 202; 4000 and 4102 →
    /// 400; 4004 → 404; 4005 → 405; 4015 → 415; 4103, 4106, 4107 and 4116
    /// → 403; 4105 → 409; 5000 → 500; any other 4xxx → 400, 5xxx and 6xxx
    /// → 500.
    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self.0 {
            2001 => S::CREATED,
            2000..=2999 => S::OK,
            1000..=1999 => S::ACCEPTED,
            4004 => S::NOT_FOUND,
            4005 => S::METHOD_NOT_ALLOWED,
            4015 => S::UNSUPPORTED_MEDIA_TYPE,
            4103 | 4106 | 4107 | 4116 => S::FORBIDDEN,
            4105 => S::CONFLICT,
            4000..=4999 => S::BAD_REQUEST,
            _ => S::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ResponseStatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How much a 4103 response tells the originator about why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenyDetail {
    /// "originator has no privilege" and the decision ID (for the operator's
    /// audit log); nothing about the policy.
    #[default]
    Minimal,
    /// The PDP's one-line summary (which rule named the originator, which
    /// condition failed, when a time window opens next). Helpful while
    /// developing; it discloses policy details to the originator.
    Summary,
}

/// What the CSE does with a request after the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Enforcement {
    /// Go on with the request.
    Proceed {
        /// Local-Token-IDs assigned to tokens of this request, for `ati`.
        assigned_token_ids: Vec<pb::LocalTokenIdAssignment>,
    },
    /// Answer with an error response.
    Reject(Rejection),
}

/// An error response.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The response status code.
    pub rsc: ResponseStatusCode,
    /// The content (`pc`): `{"m2m:dbg": "..."}` or `{"m2m:tqf": {...}}`.
    pub content: Value,
    /// Local-Token-IDs to report in `ati`.
    pub assigned_token_ids: Vec<pb::LocalTokenIdAssignment>,
}

impl Rejection {
    /// A rejection with `rsc` and debug information `text` (`m2m:dbg`).
    pub fn debug(rsc: ResponseStatusCode, text: impl Into<String>) -> Self {
        Self {
            rsc,
            content: json!({ "m2m:dbg": text.into() }),
            assigned_token_ids: Vec::new(),
        }
    }

    /// The content as JSON text.
    pub fn body(&self) -> String {
        self.content.to_string()
    }
}

/// What a fail-closed Deny tells the originator with [`DenyDetail::Minimal`]:
/// the PDP was unreachable, too slow, or answered nothing usable.
pub const FAIL_CLOSED_TEXT: &str =
    "originator has no privilege: no usable decision from the PDP, access denied (fail-closed)";

impl Enforcement {
    /// Maps a verdict to what the CSE does (see the module documentation).
    pub fn of(verdict: &Verdict, detail: DenyDetail) -> Self {
        let d = &verdict.decision;
        let ati = d.assigned_token_ids.clone();
        if d.decision == pb::AuthorizationDecision::Permit as i32 {
            return Enforcement::Proceed {
                assigned_token_ids: ati,
            };
        }
        // Fail-closed first: a PDP that gave no usable decision (a PERMIT
        // with a status other than OK, SYNTAX_ERROR included) is no fault of
        // the originator's request (Decision 9 keeps 4000 for those).
        let mut rejection = if verdict.source == DecisionSource::FailClosed {
            // The transport error is for the operator's log, not for the
            // originator, unless the summary was asked for.
            let text = match detail {
                DenyDetail::Summary => d.summary.clone(),
                DenyDetail::Minimal => FAIL_CLOSED_TEXT.to_owned(),
            };
            Rejection::debug(ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE, text)
        } else if d.status == pb::AuthorizationStatus::SyntaxError as i32 {
            Rejection::debug(ResponseStatusCode::BAD_REQUEST, d.summary.clone())
        } else if let Some(tqf) = d
            .token_request_info
            .as_ref()
            .filter(|t| !t.das_info.is_empty())
        {
            Rejection {
                rsc: ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
                content: json!({ "m2m:tqf": token_request_info_json(tqf) }),
                assigned_token_ids: Vec::new(),
            }
        } else {
            let text = match detail {
                DenyDetail::Summary if !d.summary.is_empty() => d.summary.clone(),
                _ => format!("originator has no privilege (decision {})", d.decision_id),
            };
            Rejection::debug(ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE, text)
        };
        rejection.assigned_token_ids = ati;
        Enforcement::Reject(rejection)
    }
}

/// The `X-M2M-ATI` header value for assigned Local-Token-IDs
/// (`lti1:tkid1+lti2:tkid2`, TS-0009), or `None` when there are none.
pub fn ati_header(assigned: &[pb::LocalTokenIdAssignment]) -> Option<String> {
    if assigned.is_empty() {
        return None;
    }
    Some(
        assigned
            .iter()
            .map(|a| format!("{}:{}", a.local_token_id, a.token_id))
            .collect::<Vec<_>>()
            .join("+"),
    )
}

/// m2m:dynAuthTokenReqInfo in JSON short names: `{"dasi": [{"uri", "dreq",
/// "sdr"}]}` (TS-0004 6.3.5.x; spec notes §6.2). Empty optional parts are
/// left out.
pub fn token_request_info_json(tqf: &pb::TokenRequestInfo) -> Value {
    let dasi: Vec<Value> = tqf
        .das_info
        .iter()
        .map(|d| {
            let mut m = Map::new();
            m.insert("uri".into(), json!(d.uri));
            if let Some(r) = &d.das_request {
                m.insert("dreq".into(), das_request_json(r));
            }
            if !d.secured_das_request.is_empty() {
                m.insert("sdr".into(), json!(d.secured_das_request));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "dasi": dasi })
}

/// m2m:dynAuthDasRequest (`dreq`) in JSON short names
/// ([`authz_proto::das_json::das_request_to_json`]).
pub fn das_request_json(r: &pb::DasRequest) -> Value {
    authz_proto::das_json::das_request_to_json(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(decision: pb::Decision, source: DecisionSource) -> Verdict {
        Verdict { decision, source }
    }

    fn deny(status: pb::AuthorizationStatus) -> pb::Decision {
        pb::Decision {
            decision: pb::AuthorizationDecision::Deny as i32,
            status: status as i32,
            decision_id: "d-1".into(),
            summary: "DENY (ok): acpA.pv.acr[1]: acco[0] outside actw".into(),
            ..Default::default()
        }
    }

    /// A fail-closed Deny tells the originator only that the PDP gave no
    /// usable decision; the transport error is shown with `Summary` only.
    #[test]
    fn fail_closed_text_depends_on_the_detail() {
        let mut d = deny(pb::AuthorizationStatus::ProcessingError);
        d.summary = "DENY (fail-closed): PDP unreachable: UNAVAILABLE after 4 attempt(s): tcp connect error 10.0.0.7:50051".into();
        let v = verdict(d, DecisionSource::FailClosed);
        let text = |detail| match Enforcement::of(&v, detail) {
            Enforcement::Reject(r) => {
                assert_eq!(r.rsc, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
                r.content.to_string()
            }
            other => panic!("{other:?}"),
        };
        let minimal = text(DenyDetail::Minimal);
        assert!(
            minimal.contains("no usable decision from the PDP"),
            "{minimal}"
        );
        assert!(!minimal.contains("10.0.0.7"), "{minimal}");
        assert!(text(DenyDetail::Summary).contains("10.0.0.7"));
    }

    #[test]
    fn http_status_mapping() {
        use http::StatusCode as S;
        let cases = [
            (2000, S::OK),
            (2001, S::CREATED),
            (2002, S::OK),
            (2004, S::OK),
            (4000, S::BAD_REQUEST),
            (4102, S::BAD_REQUEST),
            (4004, S::NOT_FOUND),
            (4005, S::METHOD_NOT_ALLOWED),
            (4015, S::UNSUPPORTED_MEDIA_TYPE),
            (4103, S::FORBIDDEN),
            (4106, S::FORBIDDEN),
            (4107, S::FORBIDDEN),
            (4116, S::FORBIDDEN),
            (5000, S::INTERNAL_SERVER_ERROR),
        ];
        for (rsc, status) in cases {
            assert_eq!(ResponseStatusCode(rsc).http_status(), status, "{rsc}");
        }
    }

    #[test]
    fn permit_proceeds_with_ati() {
        let ati = vec![pb::LocalTokenIdAssignment {
            local_token_id: "lt1".into(),
            token_id: "tk1@das.example.com".into(),
        }];
        let d = pb::Decision {
            decision: pb::AuthorizationDecision::Permit as i32,
            assigned_token_ids: ati.clone(),
            ..Default::default()
        };
        assert_eq!(
            Enforcement::of(&verdict(d, DecisionSource::Pdp), DenyDetail::Minimal),
            Enforcement::Proceed {
                assigned_token_ids: ati.clone()
            }
        );
        assert_eq!(ati_header(&ati).as_deref(), Some("lt1:tk1@das.example.com"));
        assert_eq!(ati_header(&[]), None);
    }

    #[test]
    fn deny_kinds() {
        let Enforcement::Reject(r) = Enforcement::of(
            &verdict(deny(pb::AuthorizationStatus::Ok), DecisionSource::Pdp),
            DenyDetail::Minimal,
        ) else {
            panic!("reject")
        };
        assert_eq!(r.rsc, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
        assert_eq!(
            r.content["m2m:dbg"],
            "originator has no privilege (decision d-1)"
        );

        let Enforcement::Reject(r) = Enforcement::of(
            &verdict(deny(pb::AuthorizationStatus::Ok), DecisionSource::Pdp),
            DenyDetail::Summary,
        ) else {
            panic!("reject")
        };
        assert!(
            r.content["m2m:dbg"]
                .as_str()
                .is_some_and(|s| s.contains("actw"))
        );

        let Enforcement::Reject(r) = Enforcement::of(
            &verdict(
                deny(pb::AuthorizationStatus::SyntaxError),
                DecisionSource::Pdp,
            ),
            DenyDetail::Minimal,
        ) else {
            panic!("reject")
        };
        assert_eq!(r.rsc, ResponseStatusCode::BAD_REQUEST);
    }

    #[test]
    fn token_request_information_in_4103() {
        let mut d = deny(pb::AuthorizationStatus::Ok);
        d.token_request_info = Some(pb::TokenRequestInfo {
            das_info: vec![pb::DasInfo {
                uri: "http://das.home.example/das".into(),
                das_request: Some(pb::DasRequest {
                    originator: "//home.example/mn-cse-123456/Cguest".into(),
                    targeted_resource_type: Some(3),
                    operation: 1,
                    originator_ip: Some(pb::IpAddress {
                        address: Some(pb::ip_address::Address::Ipv4("192.168.1.9".into())),
                    }),
                    targeted_resource_id: "frontDoor".into(),
                    role_ids_from_acps: vec!["guest@roles.home.example".into()],
                    ..Default::default()
                }),
                secured_das_request: String::new(),
            }],
        });
        let Enforcement::Reject(r) =
            Enforcement::of(&verdict(d, DecisionSource::Pdp), DenyDetail::Summary)
        else {
            panic!("reject")
        };
        assert_eq!(r.rsc, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
        assert!(r.content.get("m2m:dbg").is_none(), "no debug info with tqf");
        assert_eq!(
            r.content,
            json!({"m2m:tqf": {"dasi": [{
                "uri": "http://das.home.example/das",
                "dreq": {"or": "//home.example/mn-cse-123456/Cguest", "trt": 3, "op": 1,
                         "oip": {"ip4": "192.168.1.9"}, "trid": "frontDoor",
                         "rfa": ["guest@roles.home.example"]}}]}})
        );
    }
}
