//! The guest's side of indirect dynamic authorization (TS-0003 7.3.2.3):
//! the `dreq` of a 4103's Token Request Information (`m2m:tqf`, JSON short
//! names) back as the gRPC [`pb::DasRequest`], and `IssueToken` at the DAS
//! the `m2m:tqf` names, authenticated by the guest's client secret
//! (`authorization: Bearer <secret>`). The `guest-token` example program
//! (`cargo run -p door-lock-cse --example guest-token`) wraps it.

use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient;
use serde_json::Value;

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The `m2m:tqf` / `dreq` JSON is not usable.
    #[error("token request information: {0}")]
    Tqf(String),
    /// The DAS could not be reached (or its URI is no `http://` or
    /// `https://` URL; `https://` is TLS, verified against the webpki roots).
    #[error("DAS {uri}: {error}")]
    Connect {
        /// The DAS's URI.
        uri: String,
        /// What failed, with its causes.
        error: String,
    },
    /// The DAS refused.
    #[error("DAS {uri}: {status}")]
    Refused {
        /// The DAS's URI.
        uri: String,
        /// Its answer.
        status: Box<tonic::Status>,
    },
}

/// `dreq` (m2m:dynAuthDasRequest, JSON short names as the PEP writes them:
/// `or`, `trt`, `op`, `oip`, `orid`, `rts`, `trid`, `ppl`, `rfa`, `tids`,
/// `asi`) as the gRPC message.
pub fn das_request(dreq: &Value) -> Result<pb::DasRequest, GuestError> {
    let text = |k: &str| dreq[k].as_str().unwrap_or_default().to_owned();
    let list = |k: &str| -> Vec<String> {
        dreq[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let originator = text("or");
    if originator.is_empty() {
        return Err(GuestError::Tqf("dreq has no `or`".into()));
    }
    let operation = dreq["op"]
        .as_i64()
        .and_then(|op| i32::try_from(op).ok())
        .ok_or_else(|| GuestError::Tqf("dreq has no numeric `op`".into()))?;
    let address = match (dreq["oip"]["ip4"].as_str(), dreq["oip"]["ip6"].as_str()) {
        (Some(ip), _) => Some(pb::ip_address::Address::Ipv4(ip.to_owned())),
        (None, Some(ip)) => Some(pb::ip_address::Address::Ipv6(ip.to_owned())),
        (None, None) => None,
    };
    Ok(pb::DasRequest {
        originator,
        targeted_resource_type: dreq["trt"].as_u64().and_then(|t| u32::try_from(t).ok()),
        operation,
        originator_ip: address.map(|a| pb::IpAddress { address: Some(a) }),
        originator_location: None,
        originator_role_ids: list("orid"),
        request_timestamp: text("rts"),
        targeted_resource_id: text("trid"),
        proposed_privileges_lifetime: text("ppl"),
        role_ids_from_acps: list("rfa"),
        token_ids: list("tids"),
        author_sign_indicator: dreq["asi"].as_bool(),
    })
}

/// The DASes of a 4103 body (`{"m2m:tqf": {"dasi": [{"uri", "dreq"}]}}`, or
/// the `m2m:tqf` value alone): `(uri, dreq)` of each.
pub fn das_infos(body: &Value) -> Result<Vec<(String, pb::DasRequest)>, GuestError> {
    let tqf = body.get("m2m:tqf").unwrap_or(body);
    let dasi = tqf["dasi"]
        .as_array()
        .ok_or_else(|| GuestError::Tqf("no m2m:tqf.dasi".into()))?;
    dasi.iter()
        .map(|d| {
            let uri = d["uri"]
                .as_str()
                .ok_or_else(|| GuestError::Tqf("dasi without uri".into()))?;
            Ok((uri.to_owned(), das_request(&d["dreq"])?))
        })
        .collect()
}

/// `IssueToken` at the DAS `uri` for `dreq`, as the client whose secret is
/// `secret`.
pub async fn issue_token(
    uri: &str,
    dreq: pb::DasRequest,
    secret: &str,
) -> Result<pb::IssueTokenResponse, GuestError> {
    let connect = |error| GuestError::Connect {
        uri: uri.to_owned(),
        error,
    };
    // The client secret goes to this URI: https:// must be TLS.
    let channel = authz_proto::endpoint::endpoint(uri)
        .map_err(|e| connect(e.to_string()))?
        .connect()
        .await
        .map_err(|e| connect(authz_proto::endpoint::error_chain(&e)))?;
    let mut call = tonic::Request::new(pb::IssueTokenRequest {
        das_request: Some(dreq),
    });
    let refused = |status| GuestError::Refused {
        uri: uri.to_owned(),
        status: Box::new(status),
    };
    let bearer = format!("Bearer {secret}")
        .parse()
        .map_err(|_| refused(tonic::Status::invalid_argument("secret is not ASCII")))?;
    call.metadata_mut().insert("authorization", bearer);
    DynamicAuthorizationServerClient::new(channel)
        .issue_token(call)
        .await
        .map(tonic::Response::into_inner)
        .map_err(refused)
}
