//! The guest's side of indirect dynamic authorization (TS-0003 7.3.2.3):
//! the `dreq` and `sdr` of a 4103's Token Request Information (`m2m:tqf`,
//! JSON short names) back as the gRPC [`pb::IssueTokenRequest`], and
//! `IssueToken` at the DAS the `m2m:tqf` names, authenticated by the guest's client secret
//! (`authorization: Bearer <secret>`). The `guest-token` example program
//! (`cargo run -p door-lock-cse --example guest-token`) wraps it.

use authz_proto::convert::join_errors;
use authz_proto::das_json::das_request_from_json;
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

/// The DASes of a 4103 body (`{"m2m:tqf": {"dasi": [{"uri", "dreq",
/// "sdr"}]}}`, or the `m2m:tqf` value alone): the `uri` of each, with what
/// to present to it: its `dreq` (m2m:dynAuthDasRequest in JSON short names)
/// and its `sdr`, the request encrypted for the DAS, passed on as it is
/// (TS-0003 7.3.2.3 steps 2.2 and 3).
pub fn das_infos(body: &Value) -> Result<Vec<(String, pb::IssueTokenRequest)>, GuestError> {
    let tqf = body.get("m2m:tqf").unwrap_or(body);
    let dasi = tqf["dasi"]
        .as_array()
        .ok_or_else(|| GuestError::Tqf("no m2m:tqf.dasi".into()))?;
    dasi.iter()
        .enumerate()
        .map(|(i, d)| {
            let uri = d["uri"]
                .as_str()
                .ok_or_else(|| GuestError::Tqf(format!("dasi[{i}] has no uri")))?;
            let das_request = match d.get("dreq") {
                Some(dreq) => Some(
                    das_request_from_json(dreq, &format!("dasi[{i}].dreq"))
                        .map_err(|e| GuestError::Tqf(join_errors(&e)))?,
                ),
                None => None,
            };
            let secured_das_request = match d.get("sdr") {
                Some(Value::String(sdr)) => sdr.clone(),
                Some(_) => return Err(GuestError::Tqf(format!("dasi[{i}].sdr: not a string"))),
                None => String::new(),
            };
            if das_request.is_none() && secured_das_request.is_empty() {
                return Err(GuestError::Tqf(format!(
                    "dasi[{i}] has neither dreq nor sdr"
                )));
            }
            Ok((
                uri.to_owned(),
                pb::IssueTokenRequest {
                    das_request,
                    secured_das_request,
                },
            ))
        })
        .collect()
}

/// `IssueToken` at the DAS `uri` with `request` (one of [`das_infos`]), as
/// the client whose secret is `secret`.
pub async fn issue_token(
    uri: &str,
    request: pb::IssueTokenRequest,
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
    let mut call = tonic::Request::new(request);
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
