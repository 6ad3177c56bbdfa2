//! What `authz check` reads, fed anything: `m2m:acp` documents and request
//! documents in oneM2M short names, with every key a policy author or a
//! client may write and values of every JSON type (numbers out of range,
//! negative, fractional, huge strings, nested junk). Reading either gives
//! the value or an error naming a path, never a panic; and a request and
//! policies that both read are decided (PERMIT or DENY, with an
//! explanation when asked), never a panic (TS-0003 7.1.4: what cannot be
//! determined is a Deny).

use authz_core::json::{parse_and_validate, request_from_json};
use authz_core::{
    Applicable, CompiledAcp, DecideOptions, HostingContext, InMemoryAttributes, PrivilegeKind,
    decide,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6..1e6f64).prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.5)),
        prop_oneof![-2..70i64, Just(4_294_967_296i64)].prop_map(Value::from),
        prop_oneof![
            Just("".to_owned()),
            Just("*".to_owned()),
            Just("all".to_owned()),
            Just("Cae1".to_owned()),
            Just("//sp.example.com".to_owned()),
            Just("/id-in/C*".to_owned()),
            Just("r@sp.example.com".to_owned()),
            Just("* * 8-18 * * 1-5 *".to_owned()),
            Just("*/0 * * * * * *".to_owned()),
            Just("0-59/100 * * * * * 1999-10000".to_owned()),
            Just("10.0.0.0/33".to_owned()),
            Just("::/0".to_owned()),
            Just("20261126T160000".to_owned()),
            Just("99991231T235959".to_owned()),
            Just("DE".to_owned()),
            Just("x".repeat(10_000)),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ]
}

/// A value: a leaf, or an array or object of leaves and of objects keyed
/// by the short names that may occur at that depth.
fn value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

const ACP_KEYS: &[&str] = &[
    "rn", "ri", "pi", "ty", "pv", "pvs", "acr", "acor", "acop", "acco", "actw", "acip", "ipv4",
    "ipv6", "aclr", "accc", "accr", "acaf", "acod", "spty", "mgd", "cnd", "chty", "et", "lbl",
];

const REQUEST_KEYS: &[&str] = &[
    "fr", "to", "op", "fu", "rrt", "spty", "mgd", "cnd", "tgty", "rids", "rtm", "oip", "ip4",
    "ip6", "olo", "accr", "accc", "authn", "uacpi",
];

/// A policy author's document using every rule component (table 7.1.3-1).
fn acp_template() -> Value {
    json!({"m2m:acp": {
        "rn": "acp1", "ri": "acp1", "pi": "cb",
        "pv": {"acr": [
            {"acor": ["Cae1", "/id-mn*/C*", "//partner.example.net", "r@sp.example.com", "grp1", "all"],
             "acop": 63,
             "acco": [
                {"actw": ["* * 8-18 * * 1-5 *"], "acip": {"ipv4": ["10.0.0.0/8"], "ipv6": ["fd00::/8"]}},
                {"aclr": {"accr": [50.0, 8.0, 1000.0]}},
                {"aclr": {"accc": ["DE", "FR"]}}
             ],
             "acaf": true,
             "acod": [{"ty": 3, "chty": [4, 23]}, {"chty": [13], "spty": {"mgd": 1001}}, {"chty": [28], "spty": {"cnd": "org.example.x"}}]},
            {"acor": ["Cae2"], "acop": 2}
        ]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}
    }})
}

/// A request using every short name `authz check` reads.
fn request_template() -> Value {
    json!({
        "fr": "Cae1", "to": "cnt", "op": 1, "fu": 2, "rrt": 13,
        "spty": {"mgd": 1001}, "tgty": 3, "rids": ["r@sp.example.com"],
        "rtm": "20261126T160000", "oip": {"ip4": "10.1.2.3"},
        "olo": {"accr": [50.0, 8.0, 10.0], "accc": ["DE"]}, "authn": true
    })
}

/// Every path in `v`, in pre-order (the root first).
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `template` with the value at each chosen path (by index, modulo the
/// number of paths) replaced, or removed when the edit has no value.
fn mutated(template: Value, edits: Vec<(usize, Option<Value>)>) -> Value {
    let mut doc = template;
    for (pick, new) in edits {
        let mut all = Vec::new();
        paths(&doc, &mut Vec::new(), &mut all);
        let path = &all[pick % all.len()];
        let Some((last, parent)) = path.split_last() else {
            doc = new.unwrap_or(Value::Null);
            continue;
        };
        let mut node = &mut doc;
        for step in parent {
            node = match node {
                Value::Object(m) => m.get_mut(step).expect("path"),
                Value::Array(a) => &mut a[step.parse::<usize>().expect("index")],
                _ => unreachable!("paths lead through containers"),
            };
        }
        match (node, new) {
            (Value::Object(m), Some(v)) => {
                m.insert(last.clone(), v);
            }
            (Value::Object(m), None) => {
                m.remove(last);
            }
            (Value::Array(a), Some(v)) => a[last.parse::<usize>().expect("index")] = v,
            (Value::Array(a), None) => {
                a.remove(last.parse::<usize>().expect("index"));
            }
            _ => {}
        }
    }
    doc
}

fn edits(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
    prop::collection::vec(
        (any::<usize>(), prop::option::weighted(0.8, value(keys))),
        0..3,
    )
}

fn acp_document() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => edits(ACP_KEYS).prop_map(|e| mutated(acp_template(), e)),
        1 => value(ACP_KEYS),
    ]
    .prop_map(|v| v.to_string())
}

fn request_document() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => edits(REQUEST_KEYS).prop_map(|e| mutated(request_template(), e)),
        1 => value(REQUEST_KEYS).prop_map(|v| json!({"m2m:rqp": v})),
    ]
    .prop_map(|v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_document_reads_or_names_a_path_and_what_reads_is_decided(
        policy in acp_document(),
        request in request_document(),
        explain in any::<bool>(),
    ) {
        let now = chrono::Utc::now();
        let acps = parse_and_validate(&policy);
        if let Err(e) = &acps {
            prop_assert!(!e.to_string().is_empty());
        }
        let req = request_from_json(&request, now);
        if let Err(e) = &req {
            prop_assert!(!e.to_string().is_empty());
        }
        if let (Ok(acps), Ok(req)) = (acps, req) {
            let ctx = HostingContext::new("//sp.example.com", "/id-in").expect("context");
            let compiled: Vec<CompiledAcp> = acps
                .iter()
                .map(|a| CompiledAcp::compile(a.resource_id.as_deref().unwrap_or("acp"), a))
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("validated but does not compile: {e}")))?;
            let applicable: Vec<Applicable<'_>> = compiled
                .iter()
                .map(|acp| Applicable { acp, kind: PrivilegeKind::Privileges })
                .collect();
            let d = decide(
                &req,
                &ctx,
                &applicable,
                &InMemoryAttributes::default(),
                &DecideOptions { explain, granted_roles: &[] },
            );
            prop_assert_eq!(d.explanation.is_some(), explain);
        }
    }
}

/// The templates the property mutates read as they are: most cases are
/// then one or two edits away from a valid document and reach the engine.
#[test]
fn the_templates_read() {
    parse_and_validate(&acp_template().to_string()).expect("the ACP template");
    request_from_json(&request_template().to_string(), chrono::Utc::now())
        .expect("the request template");
}

/// Arbitrary text, not JSON at all: an error, never a panic.
#[test]
fn text_that_is_no_json_is_an_error() {
    for text in [
        "",
        "{",
        "[",
        "\u{feff}",
        "{\"m2m:acp\":",
        "null",
        "1e999",
        "\"\\ud800\"",
    ] {
        assert!(parse_and_validate(text).is_err(), "{text:?}");
        assert!(
            request_from_json(text, chrono::Utc::now()).is_err(),
            "{text:?}"
        );
    }
}
