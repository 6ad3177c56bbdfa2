//! Whatever an HTTP client sends, the `PepLayer` answers it as the oneM2M
//! HTTP binding does (developers' guide; TS-0009): arbitrary methods,
//! paths (percent-encoding that is not UTF-8, the CSEBase, empty
//! addresses), query strings (repeated, undecodable and unknown
//! parameters), `X-M2M-Origin`, `X-M2M-RI`, `Content-Type` and
//! `Authorization` values (empty, white space, 40 000 bytes, bytes outside
//! ASCII, given twice) and bodies (JSON with and without `acpi`, duplicate
//! roots, not UTF-8, larger than the layer reads), through the layer in
//! front of a real PDP over gRPC. Every request either reaches the CSE's
//! handler (a Permit, for the originator the policy names and one From) or
//! gets the layer's own answer: a 4xxx `X-M2M-RSC` whose HTTP status is the
//! binding's for that code, the request's `X-M2M-RI` echoed byte for byte,
//! and JSON content holding `m2m:dbg` or `m2m:tqf`. Never a panic, and never
//! a 5xx from the layer itself.

mod common;

use std::convert::Infallible;

use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{CseContext, PepClient, PepConfig, PepLayer, ResponseStatusCode};
use authz_proto::pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};

/// What the handler answers, so that its responses are told apart from the
/// layer's.
const HANDLED: &str = "handled by the CSE";

fn cse() -> CseContext {
    CseContext::new("//home.example", "/mn-cse-123456").expect("cse")
}

/// Mostly `valid`, now and then `junk`: a request then has one or two bad
/// parts among good ones, and as many reach the PDP (and the handler) as
/// are refused before.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    valid: impl Strategy<Value = T> + 'static,
    junk: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![10 => valid, 1 => junk].boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values).prop_map(str::to_owned).boxed()
}

/// Header bytes that are no value the header should have: empty, padded,
/// huge, or outside ASCII (which HTTP allows as obs-text).
fn junk_header() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        one_of(&["", " ", "\t x \t", "all", "C*", ";;;=;ty", "+", "Bearer x"])
            .prop_map(String::into_bytes),
        Just("C".repeat(40_000).into_bytes()),
        Just(b"C\xe9\xff".to_vec()),
        "[ -~\t]{0,30}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![32u8..=126, 128u8..=255, Just(b'\t')], 0..20),
    ]
    .boxed()
}

/// A header: mostly one of `valid` (absent when `None`), else junk.
fn header(valid: &'static [Option<&'static str>]) -> BoxedStrategy<Option<Vec<u8>>> {
    mostly(
        prop::sample::select(valid).prop_map(|v| v.map(|v| v.as_bytes().to_vec())),
        prop::option::of(junk_header()),
    )
}

fn any_path() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "/node1",
            "/~/mn-cse-123456/node1",
            "/_/home.example/mn-cse-123456/node1",
            "/~/mn-cse-123456",
            "/~/in-cse/x",
            "/node1/child",
        ]),
        prop_oneof![
            one_of(&[
                "/",
                "/~/",
                "/_/",
                "/~",
                "//",
                "/node1/",
                "/%ff",
                "/%C3%A9",
                "/%",
                "/%zz",
                "/a%2Fb",
                "/_/other.example/cse/x",
            ]),
            "/[a-zA-Z0-9%~_./-]{0,30}",
            Just(format!("/{}", "n".repeat(40_000))),
        ],
    )
}

fn any_query() -> BoxedStrategy<String> {
    let valid = prop_oneof![
        4 => Just(String::new()),
        1 => one_of(&[
            "fu=1",
            "fu=2",
            "rcn=1",
            "tqi=true",
            "tqi=0",
            "rids=a@r.example+b@r.example",
            "tids=t1@das.example&tids=t2@das.example",
            "ltids=lt1%2Blt2",
        ]),
    ];
    let key = prop_oneof![
        one_of(&["fu", "tqi", "rids", "tids", "ltids", "rcn", "drt", ""]),
        "[a-z%]{0,4}",
    ];
    let value = prop_oneof![
        one_of(&[
            "1",
            "2",
            "0",
            "-1",
            "4294967296",
            "true",
            "false",
            "yes",
            "",
            "+",
            "%2B",
            "%ff",
            "%",
            "%zz",
        ]),
        "[a-zA-Z0-9%+@._-]{0,20}",
    ];
    let junk = prop::collection::vec((key, prop::option::of(value)), 1..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k,
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    mostly(valid, junk)
}

fn any_body() -> BoxedStrategy<Vec<u8>> {
    mostly(
        one_of(&[
            "",
            r#"{"m2m:cnt": {"acpi": ["acp1"]}}"#,
            r#"{"m2m:cnt": {"acpi": null}}"#,
            r#"{"m2m:cnt": {"lbl": ["x"]}}"#,
            r#"{"m2m:fwr": {"mgd": 1001}}"#,
            r#"{"m2m:fcnt": {"cnd": "org.onem2m.home.door"}}"#,
            r#"{"m2m:cin": {"con": "on"}}"#,
        ])
        .prop_map(String::into_bytes),
        prop_oneof![
            one_of(&[
                "{}",
                "[]",
                "null",
                r#"{"m2m:cnt": {"acpi": ["acp1"], "lbl": ["x"]}}"#,
                r#"{"m2m:cnt": {"acpi": ["mine"]}, "m2m:cnt": {"lbl": ["x"]}}"#,
                r#"{"m2m:fwr": {"mgd": -1}}"#,
                r#"{"m2m:fwr": {"mgd": 1e400}}"#,
                r#"{"m2m:fcnt": {"cnd": 5}}"#,
                r#"{"a": {}, "b": {}}"#,
                "<m2m:cnt><acpi>a</acpi></m2m:cnt>",
            ])
            .prop_map(String::into_bytes),
            Just(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
            Just(vec![b'{'; 3_000]),
            Just(b"{\"m2m:cnt\": {\"acpi\": [\"\xff\"]}}".to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
    )
}

/// One HTTP request as bytes, before the `http` crate checks it.
#[derive(Debug, Clone)]
struct Raw {
    method: String,
    path: String,
    query: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

fn any_raw() -> BoxedStrategy<Raw> {
    let method = mostly(
        one_of(&["GET", "POST", "PUT", "DELETE"]),
        one_of(&["PATCH", "HEAD", "OPTIONS", "TRACE", "NOTIFY", "get"]),
    );
    (
        method,
        any_path(),
        any_query(),
        (
            header(&[
                Some("CAlice"),
                Some("CAlice"),
                Some("/mn-cse-123456/CAlice"),
                Some("Cbob"),
                None,
            ]),
            header(&[Some("r1"), Some("rqi-2")]),
            header(&[
                None,
                Some("application/json"),
                Some("application/json;ty=4"),
                Some("application/json; ty=\"13\""),
                Some("application/vnd.onem2m-res+json;ty=28"),
                Some("application/json;ty=2"),
                Some("application/xml;ty=3"),
            ]),
            header(&[
                None,
                None,
                Some("aaa.bbb.ccc"),
                Some("aaa.bbb.ccc+ddd.eee.fff"),
            ]),
            prop_oneof![10 => Just(None), 1 => junk_header().prop_map(Some)],
        ),
        any_body(),
    )
        .prop_map(
            |(method, path, query, (fr, rqi, ct, auth, extra_fr), body)| {
                let mut headers: Vec<(&'static str, Vec<u8>)> = [
                    ("x-m2m-origin", fr),
                    ("x-m2m-ri", rqi),
                    ("content-type", ct),
                    ("authorization", auth),
                ]
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| (name, v)))
                .collect();
                // A header given twice.
                if let Some(v) = extra_fr {
                    headers.push(("x-m2m-origin", v));
                }
                Raw {
                    method,
                    path,
                    query,
                    headers,
                    body,
                }
            },
        )
        .boxed()
}

impl Raw {
    /// The request, or `None` when the `http` crate refuses its parts (so
    /// no server would hand it to the layer).
    fn request(&self) -> Option<http::Request<Full<Bytes>>> {
        let uri = if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        };
        let mut b = http::Request::builder()
            .method(http::Method::from_bytes(self.method.as_bytes()).ok()?)
            .uri(http::Uri::try_from(uri).ok()?);
        for (name, value) in &self.headers {
            b = b.header(*name, http::HeaderValue::from_bytes(value).ok()?);
        }
        b.body(Full::new(Bytes::from(self.body.clone()))).ok()
    }

    /// For a failure message, cut: a request may hold 40 000-byte values.
    fn show(&self) -> String {
        let text = format!("{self:?}");
        match text.char_indices().nth(2_000) {
            Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
            None => text,
        }
    }

    fn rqi(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == "x-m2m-ri")
            .map(|(_, v)| v.as_slice())
    }
}

/// Checks the response to `raw`: the handler's, for an originator the
/// policy permits, or a well-formed answer of the layer.
fn check(raw: &Raw, response: http::Response<Bytes>) -> Result<(), String> {
    let (parts, body) = response.into_parts();
    let origins = raw
        .headers
        .iter()
        .filter(|(n, _)| *n == "x-m2m-origin")
        .count();
    if body == HANDLED.as_bytes() {
        // A From given twice is ambiguous: the layer would decide on one
        // and the CSE might act on the other.
        if origins > 1 {
            return Err("the handler got a request with two X-M2M-Origin headers".into());
        }
        // Only what the policy grants gets through: CAlice, in any form.
        let origin = raw
            .headers
            .iter()
            .find(|(n, _)| *n == "x-m2m-origin")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim);
        return match origin {
            Some("CAlice" | "/mn-cse-123456/CAlice" | "//home.example/mn-cse-123456/CAlice") => {
                Ok(())
            }
            other => Err(format!("the handler got a request from {other:?}")),
        };
    }
    let rsc = parts
        .headers
        .get("x-m2m-rsc")
        .ok_or_else(|| format!("no X-M2M-RSC: {parts:?}"))?
        .to_str()
        .map_err(|e| e.to_string())?
        .parse::<u16>()
        .map_err(|e| format!("X-M2M-RSC not a number: {e}"))?;
    if !(4000..5000).contains(&rsc) {
        return Err(format!("the layer answered RSC {rsc}: {parts:?}"));
    }
    let expected = ResponseStatusCode(rsc).http_status();
    if parts.status != expected {
        return Err(format!(
            "RSC {rsc} with HTTP {}, not {expected}",
            parts.status
        ));
    }
    if parts.headers.get("x-m2m-ri").map(|v| v.as_bytes()) != raw.rqi() {
        return Err(format!(
            "X-M2M-RI not echoed: {:?}",
            parts.headers.get("x-m2m-ri")
        ));
    }
    let content: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the content is not JSON ({e}): {body:?}"))?;
    if content.get("m2m:dbg").is_none() && content.get("m2m:tqf").is_none() {
        return Err(format!("neither m2m:dbg nor m2m:tqf: {content}"));
    }
    Ok(())
}

/// A real PDP where CAlice may do everything on `node1` (a container) and
/// nobody anything else.
async fn pdp() -> (String, Pdp) {
    let hosting =
        authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting CSE");
    let pdp = Pdp::start(PdpConfig::new(hosting)).expect("pdp");
    let rule = pb::AccessControlRule {
        originators: vec!["CAlice".into()],
        operations: 63,
        ..Default::default()
    };
    let url = common::serve_one_acp(&pdp, rule, "CAlice", "node1", 3).await;
    (url, pdp)
}

#[test]
fn any_http_request_gets_the_handler_or_a_well_formed_onem2m_answer() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (layers, _pdp) = rt.block_on(async {
        let (url, pdp) = pdp().await;
        let client = PepClient::new(PepConfig::new([url])).expect("client");
        // The default layer, and one that reads at most 64 bytes of
        // content (so larger bodies take the limit's path).
        let layers = [
            PepLayer::new(client.clone(), cse()),
            PepLayer::new(client, cse()).with_content_limit(64),
        ];
        (layers, pdp)
    });
    let handler = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        let mut r = http::Response::new(Full::new(Bytes::from_static(HANDLED.as_bytes())));
        r.headers_mut()
            .insert("x-m2m-rsc", http::HeaderValue::from_static("2000"));
        Ok::<_, Infallible>(r)
    });
    // No store and no durable write: more cases than the services' take
    // well under a second.
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(raws in prop::collection::vec(any_raw(), 1..16), which in 0..2usize)| {
        let outcome: Result<(), String> = rt.block_on(async {
            for raw in &raws {
                let Some(request) = raw.request() else { continue };
                let response = layers[which]
                    .layer(handler)
                    .oneshot(request)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| format!("body: {e:?}"))?
                    .to_bytes();
                check(raw, http::Response::from_parts(parts, body))
                    .map_err(|e| format!("{e}\nfor {}", raw.show()))?;
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    });
    // Still deciding: CAlice retrieves node1.
    rt.block_on(async {
        let request = http::Request::builder()
            .method("GET")
            .uri("/~/mn-cse-123456/node1")
            .header("X-M2M-Origin", "CAlice")
            .header("X-M2M-RI", "last")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = layers[0]
            .layer(handler)
            .oneshot(request)
            .await
            .expect("infallible");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, HANDLED.as_bytes());
    });
}
