//! `authz check` as a real process: the README's first command.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use authz_tests::process::{HANG_LIMIT, output_within, run_within};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn authz(args: &[&str]) -> (i32, String, String) {
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(args)
            .current_dir(root()),
        HANG_LIMIT,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `authz check` of the request `body` (written to `req`) against the
/// door-lock ACPs at the demo's hosting CSE: its decision JSON.
#[track_caller]
fn check_door_lock(req: &std::path::Path, body: &str) -> serde_json::Value {
    std::fs::write(req, body).unwrap();
    let (code, out, err) = authz(&[
        "check",
        "-p",
        "examples/door-lock-acp.json",
        "-r",
        req.to_str().unwrap(),
        CTX[0],
        CTX[1],
        CTX[2],
        CTX[3],
    ]);
    assert_eq!(code, 0, "{body}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// `authz check` of the request `body` (written to `req`) against the
/// door-lock ACPs exits 2 with `why` in its error.
#[track_caller]
fn assert_request_refused(req: &std::path::Path, body: &str, why: &str) {
    std::fs::write(req, body).unwrap();
    let (code, out, err) = authz(&[
        "check",
        "-p",
        "examples/door-lock-acp.json",
        "-r",
        req.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{body}: {out}");
    assert!(err.contains(why), "{body}: {err}");
}

const CTX: [&str; 4] = ["--cse-id", "/mn-cse-123456", "--sp-id", "//home.example"];

#[test]
fn babysitter_is_denied_on_saturday_with_next_opening() {
    // 2026-11-28 is a Saturday; the window `* * 15-18 * * 1-5 *` opens next
    // on Monday 2026-11-30 at 15:00:00 UTC (TS-0004 7.4.9.1, day-of-week 1 = Monday).
    let (code, out, err) = authz(&[
        "check",
        "--policy",
        "examples/door-lock-acp.json",
        "--request",
        "examples/request-babysitter-saturday.json",
        "--explain",
        CTX[0],
        CTX[1],
        CTX[2],
        CTX[3],
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dec"], 2);
    assert_eq!(v["sus"], 1);
    let rule = &v["explanation"]["failedRules"][0];
    assert_eq!(rule["rule"], "acpFrontDoor.pv.acr[1]");
    assert_eq!(
        rule["failed"]["elements"][0]["next_open"],
        "2026-11-30T15:00:00Z"
    );
}

#[test]
fn babysitter_is_permitted_on_a_weekday_afternoon() {
    let (code, out, err) = authz(&[
        "check",
        "--policy",
        "examples/door-lock-acp.json",
        "--request",
        "examples/request-babysitter-weekday.json",
        CTX[0],
        CTX[1],
        CTX[2],
        CTX[3],
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dec"], 1);
    assert_eq!(v["permittedBy"]["acr"], 1);
}

#[test]
fn request_on_the_acp_itself_uses_self_privileges() {
    // TS-0001 10.2.3.1: a request targeting an ACP is judged by its pvs.
    let dir = tempdir();
    let req = dir.path().join("req.json");
    std::fs::write(
        &req,
        r#"{"fr": "Cbabysitter", "to": "acpFrontDoor", "op": 3, "authn": true,
        "rtm": "20261126T160000", "oip": {"ip4": "192.168.1.23"}}"#,
    )
    .unwrap();
    let (code, out, _) = authz(&[
        "check",
        "-p",
        "examples/door-lock-acp.json",
        "-r",
        req.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["dec"], 2,
        "pv would permit this UPDATE, pvs does not: {out}"
    );
    assert_eq!(v["sus"], 2);
    // With --explain the author sees that only that ACP's pvs decided,
    // which the Deny alone does not say.
    let v = explain_door_lock(&req);
    assert_eq!(
        v["explanation"]["evaluated"],
        serde_json::json!(["acpFrontDoor.pvs"]),
        "{v}"
    );
    // A request on another resource: every loaded ACP's pv.
    std::fs::write(
        &req,
        r#"{"fr": "Cbabysitter", "to": "frontDoor", "op": 2, "authn": true}"#,
    )
    .unwrap();
    let v = explain_door_lock(&req);
    let evaluated = v["explanation"]["evaluated"].as_array().expect("a list");
    assert!(
        !evaluated.is_empty()
            && evaluated
                .iter()
                .all(|e| e.as_str().is_some_and(|e| e.ends_with(".pv"))),
        "{v}"
    );
}

/// TS-0001 10.2.3.1 for an ACP written without `ri`: the PRP stores it
/// under its `rn`, so a request to that name is on the ACP, judged by its
/// `pvs` alone, in `authz check` as at the PDP (its `pv` would permit).
#[test]
fn request_on_an_acp_without_ri_is_judged_by_its_pvs() {
    let dir = tempdir();
    let policy = dir.path().join("acpx.json");
    std::fs::write(
        &policy,
        r#"{"m2m:acp": {"rn": "acpX", "pv": {"acr": [{"acor": ["all"], "acop": 63}]},
            "pvs": {"acr": [{"acor": ["Cself"], "acop": 63}]}}}"#,
    )
    .unwrap();
    let req = dir.path().join("req.json");
    for (fr, dec) in [("Cother", 2), ("Cself", 1)] {
        std::fs::write(&req, format!(r#"{{"fr": "{fr}", "to": "acpX", "op": 4}}"#)).unwrap();
        let (code, out, err) = authz(&[
            "check",
            "-p",
            policy.to_str().unwrap(),
            "-r",
            req.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["dec"], dec, "{fr}: {out}");
        if dec == 1 {
            assert_eq!(v["permittedBy"]["privileges"], "pvs", "{out}");
        }
    }
}

/// `authz check --explain` of the request file `req` against the
/// door-lock ACPs: its decision JSON.
#[track_caller]
fn explain_door_lock(req: &std::path::Path) -> serde_json::Value {
    let (code, out, err) = authz(&[
        "check",
        "-p",
        "examples/door-lock-acp.json",
        "-r",
        req.to_str().unwrap(),
        "--explain",
    ]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// TS-0001 10.2.3.1: the ACP is the target whether the request names it
/// by its CSE-relative `ri`, SP-relative or absolute: its pvs decide.
#[test]
fn request_on_the_acp_uses_self_privileges_in_every_id_form() {
    let dir = tempdir();
    for to in [
        "acpFrontDoor",
        "/mn-cse-123456/acpFrontDoor",
        "//home.example/mn-cse-123456/acpFrontDoor",
    ] {
        let req = dir.path().join("req.json");
        let v = check_door_lock(
            &req,
            &format!(r#"{{"fr": "/mn-cse-123456/Clock1", "to": "{to}", "op": 2}}"#),
        );
        assert!(
            v["permittedBy"].is_null() || v["permittedBy"]["privileges"] == "pvs",
            "to {to}: judged by pv: {v}"
        );
    }
}

/// TS-0003 7.1.5 res_resourceType: an `acod` `ty` is compared with the
/// type of the targeted resource. When the target is one of the loaded
/// ACPs, that type is accessControlPolicy (1) without the request saying so.
#[test]
fn create_under_an_acp_knows_the_target_is_an_acp_7_1_5() {
    let dir = tempdir();
    let acp = dir.path().join("acp.json");
    std::fs::write(
        &acp,
        r#"{"m2m:acp": {"rn": "acp1", "ri": "acp1",
        "pv": {"acr": [{"acor": ["all"], "acop": 2}]},
        "pvs": {"acr": [{"acor": ["Cadmin"], "acop": 63,
                         "acod": [{"ty": 1, "chty": [23]}]}]}}}"#,
    )
    .unwrap();
    for (request, dec) in [
        // A subscription (23) under the ACP: ty 1 holds.
        (r#"{"fr": "Cadmin", "to": "acp1", "op": 1, "rrt": 23}"#, 1),
        // Said, it must be 1 (a contradicting tgty exits 2: see
        // invalid_request_exits_2_naming_the_field).
        (
            r#"{"fr": "Cadmin", "to": "acp1", "op": 1, "rrt": 23, "tgty": 1}"#,
            1,
        ),
        // Not a listed child type.
        (r#"{"fr": "Cadmin", "to": "acp1", "op": 1, "rrt": 4}"#, 2),
    ] {
        let req = dir.path().join("req.json");
        std::fs::write(&req, request).unwrap();
        let (code, out, err) = authz(&[
            "check",
            "-p",
            acp.to_str().unwrap(),
            "-r",
            req.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["dec"], dec, "{request}: {out}");
    }
}

#[test]
fn invalid_policy_exits_2_naming_file_and_field() {
    let dir = tempdir();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2,
        "acco": [{"actw": ["* * * * * 7 *"]}]}]}}}"#,
    )
    .unwrap();
    let (code, out, err) = authz(&[
        "check",
        "-p",
        bad.to_str().unwrap(),
        "-r",
        "examples/request-babysitter-weekday.json",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty());
    assert!(err.contains("bad.json"), "{err}");
    assert!(err.contains("pv.acr[0].acco[0].actw[0]"), "{err}");
    assert!(err.contains("day-of-week 7 out of range 0-6"), "{err}");
}

/// Issue #2, "bad files get a clear error and exit code 2": documents that
/// used to load as an ACP without rules, or by guessing, and decided Deny
/// with exit 0.
#[test]
fn policy_files_that_are_not_acps_exit_2() {
    let dir = tempdir();
    let file = dir.path().join("policy.json");
    for (body, says) in [
        (
            r#"{"m2m:acp": {"rn": "x", "acr": [{"acor": ["Cabc"], "acop": 2}]}}"#,
            "acr: `acr` belongs to a rule inside `pv`",
        ),
        (
            r#"{"m2m:acp": {"pV": {"acr": []}}}"#,
            "pV: short names are case-sensitive",
        ),
        (
            r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["Cabc"], "acop": 2, "acop": 63}]}}}"#,
            "duplicate key `acop`",
        ),
        (
            r#"{"m2m:acp": {"pv": {"acr": [[["Cabc"], 2]]}}}"#,
            "pv.acr[0]: expected an object",
        ),
        // TS-0003 7.1.3: wildcards are not applicable to Role-IDs; an
        // entry that could never match is an error, not a silent Deny.
        (
            r#"{"m2m:acp": {"pv": {"acr": [{"acor": ["guest*@roles.example.com"], "acop": 2}]}}}"#,
            "pv.acr[0].acor[0]",
        ),
        (
            r#"{"m2m:acp": {"pv": {"acr": [{"acor": [], "acop": 2}]}}}"#,
            "pv.acr[0].acor: names no originator",
        ),
        (r#"[]"#, "holds no m2m:acp resource"),
        (r#"{"m2m:acp": []}"#, "holds no m2m:acp resource"),
    ] {
        std::fs::write(&file, body).unwrap();
        let (code, out, err) = authz(&[
            "check",
            "-p",
            file.to_str().unwrap(),
            "-r",
            "examples/request-babysitter-weekday.json",
        ]);
        assert_eq!(code, 2, "{body}: {out}");
        assert!(err.contains(says), "{body}: {err}");
    }
    // The demo bundle is for `authz policy apply`, not an m2m:acp document.
    let (code, _, err) = authz(&[
        "check",
        "-p",
        "examples/door-lock-demo.json",
        "-r",
        "examples/request-babysitter-weekday.json",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("acps: a bundle"), "{err}");
}

/// TS-0001 9.6.1.3.2: `"uacpi": true` marks an Update of the target's acpi
/// alone, which the loaded ACPs' pvs judge, not their pv. The babysitter
/// holds UPDATE in acpFrontDoor's pv (weekday afternoons, from home), not
/// in its pvs; the owner holds both.
#[test]
fn uacpi_is_judged_by_the_pvs_of_the_loaded_acps_ts0001_9_6_1_3_2() {
    let dir = tempdir();
    let req = dir.path().join("req.json");
    let run = |body: &str| check_door_lock(&req, body);
    let babysitter = |uacpi: bool| {
        format!(
            r#"{{"fr": "Cbabysitter", "to": "frontDoor", "op": 3, "uacpi": {uacpi},
            "rtm": "20261126T160000", "oip": {{"ip4": "192.168.1.23"}}, "authn": true}}"#
        )
    };
    let v = run(&babysitter(false));
    assert_eq!(v["dec"], 1, "an ordinary Update, by pv: {v}");
    assert_eq!(v["permittedBy"]["privileges"], "pv");
    let v = run(&babysitter(true));
    assert_eq!(v["dec"], 2, "an acpi change, by pvs: {v}");
    assert_eq!(v["sus"], 2);
    let v = run(r#"{"fr": "CownerPhone", "to": "frontDoor", "op": 3, "uacpi": true}"#);
    assert_eq!(v["dec"], 1, "{v}");
    assert_eq!(v["permittedBy"]["acp"], "acpFrontDoor");
    assert_eq!(v["permittedBy"]["privileges"], "pvs");

    // Only an Update, and not of an ACP (which has no acpi): exit 2.
    for (body, why) in [
        (
            r#"{"fr": "CownerPhone", "to": "frontDoor", "op": 2, "uacpi": true}"#,
            "uacpi: an acpi change (TS-0001 9.6.1.3.2) is an op 3",
        ),
        (
            r#"{"fr": "CownerPhone", "to": "frontDoor", "op": 3, "tgty": 4, "uacpi": true}"#,
            "uacpi: a target of tgty 4 has no acpi",
        ),
        (
            r#"{"fr": "CownerPhone", "to": "acpFrontDoor", "op": 3, "uacpi": true}"#,
            "uacpi: the target acpFrontDoor is an ACP",
        ),
    ] {
        assert_request_refused(&req, body, why);
    }
}

#[test]
fn invalid_request_exits_2_naming_the_field() {
    let dir = tempdir();
    let req = dir.path().join("req.json");
    std::fs::write(&req, r#"{"fr": "C1", "to": "x", "op": 9}"#).unwrap();
    let (code, _, err) = authz(&[
        "check",
        "-p",
        "examples/door-lock-acp.json",
        "-r",
        req.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("op: 9 is not an operation"), "{err}");

    // Decision 9: a malformed request is an error naming the field, never
    // a decision.
    for (body, field) in [
        (r#"{"fr": "C 1", "to": "x", "op": 2}"#, "fr:"),
        (r#"{"fr": "C1", "to": "", "op": 2}"#, "to:"),
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rtm": "20261126T160000.zzz"}"#,
            "rtm:",
        ),
        (r#"{"fr": "C1", "to": "x"}"#, "op:"),
        // m2m:timestamp has every digit: not 1 November.
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rtm": "2025111T000000"}"#,
            "rtm:",
        ),
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "fr": "C2"}"#,
            "duplicate key `fr`",
        ),
        // A claimed Role-ID is name@issuer, as the PDP requires too.
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rids": ["not a role"]}"#,
            "rids[0]:",
        ),
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rids": ["r@x.org", "guest"]}"#,
            "rids[1]:",
        ),
        // Spec notes §7.2: issuerRelativeID@issuerID, the issuer a
        // lower-case FQDN.
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rids": ["a@b@c.org"]}"#,
            "rids[0]:",
        ),
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rids": ["guest*@x.org"]}"#,
            "rids[0]:",
        ),
        // Spec notes §8: an AE-ID or CSE-ID holds no `@`.
        (r#"{"fr": "guest@x.org", "to": "x", "op": 2}"#, "fr:"),
        // Seconds run 00-59 (chrono would read 60 as a leap second).
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "rtm": "20261128T120060"}"#,
            "rtm:",
        ),
        // Table 7.1.2-1 `From`: an AE-ID or CSE-ID; `//fqdn` alone is an
        // SP-ID, and an invisible or control character names nobody.
        (
            r#"{"fr": "//evil.example", "to": "x", "op": 2}"#,
            "fr: '//evil.example' is not an originator ID: '//evil.example' is an SP-ID",
        ),
        (r#"{"fr": "C\u0000x", "to": "x", "op": 2}"#, "fr:"),
        (r#"{"fr": "C\u200bx", "to": "x", "op": 2}"#, "fr:"),
        // As in a policy's acod: 0 is no m2m:resourceType, and a
        // containerDefinition is a URI.
        (
            r#"{"fr": "C1", "to": "x", "op": 1, "rrt": 0}"#,
            "rrt: 0 is no resource type",
        ),
        (
            r#"{"fr": "C1", "to": "x", "op": 2, "tgty": 0}"#,
            "tgty: 0 is no resource type",
        ),
        (
            r#"{"fr": "C1", "to": "x", "op": 1, "rrt": 28, "spty": {"cnd": ""}}"#,
            "spty.cnd: containerDefinition must not be empty",
        ),
        // README table: `spty` is the created resource's (Decision 13),
        // `mgd` only with `rrt` 13, `cnd` only with 28; without `rrt` it
        // would be silently ignored.
        (
            r#"{"fr": "Cd", "to": "r", "op": 2, "spty": {"mgd": 1001}}"#,
            "spty: the specialization of a created resource goes with its type rrt",
        ),
        // TS-0003 7.1.1, TS-0001 10.2.3.1: a request on an ACP is decided by
        // that ACP's pvs; the loaded ACPs cannot be an ACP's applicable set
        // (an ACP has no acpi), so an ACP that is not loaded cannot be
        // decided on, and a loaded one is of type 1.
        (
            r#"{"fr": "CownerPhone", "to": "acpOther", "op": 4, "tgty": 1}"#,
            "tgty: the target acpOther is an ACP (tgty 1), but no loaded ACP has that ri",
        ),
        (
            r#"{"fr": "CownerPhone", "to": "acpFrontDoor", "op": 2, "tgty": 3}"#,
            "tgty: the target is the loaded ACP acpFrontDoor, of resource type 1, not 3",
        ),
        // A structured address ending in a loaded ACP's name may be that
        // ACP, which only its pvs judge (TS-0003 7.1.1): not judged by the
        // loaded ACPs' pv as if it were another resource.
        (
            r#"{"fr": "CownerPhone", "to": "/cse/-/acpFrontDoor", "op": 4}"#,
            "to: '/cse/-/acpFrontDoor' is a structured address ending in 'acpFrontDoor', the name of the ACP loaded from examples/door-lock-acp.json; authz check takes resource IDs: to judge a request on that ACP (by its pvs, TS-0003 7.1.1), give its ri ('acpFrontDoor')",
        ),
        (
            r#"{"fr": "CownerPhone", "to": "cb/acpFrontDoor", "op": 2}"#,
            "to: 'cb/acpFrontDoor' is a structured address",
        ),
    ] {
        assert_request_refused(&req, body, field);
    }
    // An originator of 2048 bytes (the most an ID has) as given is longer
    // in the absolute form it is judged in (Decision 2).
    let grows = format!(r#"{{"fr": "C{}", "to": "x", "op": 2}}"#, "x".repeat(2047));
    assert_request_refused(&req, &grows, "fr: is 2064 bytes long in absolute form");
    // The hosting CSE's identity: an SP-ID is an FQDN, a CSE-ID one ID
    // segment.
    std::fs::write(&req, r#"{"fr": "C1", "to": "x", "op": 2}"#).unwrap();
    for (ctx, why) in [
        (
            ["--cse-id", "/@x"],
            "--cse-id: '/@x' is not an SP-relative CSE-ID: it holds '@'",
        ),
        (
            ["--cse-id", "c*"],
            "--cse-id: 'c*' is not an SP-relative CSE-ID: it holds '*', a wildcard",
        ),
        (
            ["--cse-id", "/a/b"],
            "--cse-id: '/a/b' is not an SP-relative CSE-ID: it has '/' after its leading one, but a CSE-ID is one segment",
        ),
        (
            ["--cse-id", "/"],
            "--cse-id: '/' is not an SP-relative CSE-ID: it is empty",
        ),
        (
            ["--sp-id", "//a@b:99"],
            "--sp-id: '//a@b:99' is not an SP-ID: it holds '@'",
        ),
        (
            ["--sp-id", "a_b.com"],
            "--sp-id: 'a_b.com' is not an SP-ID: it holds '_'",
        ),
        (
            ["--sp-id", "a..com"],
            "--sp-id: 'a..com' is not an SP-ID: it has an empty label",
        ),
        (
            ["--sp-id", "//-a.com"],
            "--sp-id: '//-a.com' is not an SP-ID: its label '-a' starts or ends with '-'",
        ),
    ] {
        let (code, _, err) = authz(&[
            "check",
            "-p",
            "examples/door-lock-acp.json",
            "-r",
            req.to_str().unwrap(),
            ctx[0],
            ctx[1],
        ]);
        assert_eq!(code, 2, "{ctx:?}");
        assert!(err.contains(why), "{ctx:?}: {err}");
    }
}

/// TS-0003 7.1.1: a request on an ACP is judged by the selfPrivileges of
/// *that* ACP, so one resource ID names one loaded ACP; two files giving
/// the same `ri` (in any ID form) exit 2 instead of deciding by file order.
#[test]
fn two_loaded_acps_with_one_resource_id_exit_2_ts_0003_7_1_1() {
    let dir = tempdir();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let req = dir.path().join("req.json");
    std::fs::write(
        &a,
        r#"{"m2m:acp": {"ri": "acp1", "pv": {"acr": []}, "pvs": {"acr": [{"acor": ["Ca"], "acop": 63}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        &b,
        r#"{"m2m:acp": {"ri": "/cse/acp1", "pv": {"acr": []}, "pvs": {"acr": [{"acor": ["Cb"], "acop": 63}]}}}"#,
    )
    .unwrap();
    std::fs::write(&req, r#"{"fr": "Cb", "to": "acp1", "op": 2}"#).unwrap();
    for (first, second) in [(&a, &b), (&b, &a)] {
        let (code, out, err) = authz(&[
            "check",
            "-p",
            first.to_str().unwrap(),
            "-p",
            second.to_str().unwrap(),
            "-r",
            req.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{out}");
        // The second file names the first, where the ID was loaded already.
        let (second_part, first_part) = err
            .split_once("names an ACP loaded from")
            .expect("the refusal");
        assert!(second_part.contains(second.to_str().unwrap()), "{err}");
        assert!(first_part.contains(first.to_str().unwrap()), "{err}");
    }
    // Different IDs load together.
    std::fs::write(
        &b,
        r#"{"m2m:acp": {"ri": "acp2", "pv": {"acr": []}, "pvs": {"acr": [{"acor": ["Cb"], "acop": 63}]}}}"#,
    )
    .unwrap();
    let (code, out, err) = authz(&[
        "check",
        "-p",
        a.to_str().unwrap(),
        "-p",
        b.to_str().unwrap(),
        "-r",
        req.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"dec\": 2"),
        "acp1's pvs do not name Cb: {out}"
    );
}

/// `authz check` of `request` against the policy files `policies` (in
/// `dir`) at the hosting CSE `/mn1` of `//sp.example`: exit code, stdout,
/// stderr.
fn check_in(dir: &std::path::Path, policies: &[&str], request: &str) -> (i32, String, String) {
    let req = dir.join("req.json");
    std::fs::write(&req, request).unwrap();
    let mut args = vec!["check".to_owned(), "--explain".to_owned()];
    for p in policies {
        args.push("-p".to_owned());
        args.push(dir.join(p).to_str().unwrap().to_owned());
    }
    args.extend(
        [
            "-r",
            req.to_str().unwrap(),
            "--cse-id",
            "/mn1",
            "--sp-id",
            "//sp.example",
        ]
        .map(String::from),
    );
    authz(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// TS-0001 10.2.3.1 (a request on an ACP is judged by its own pvs) and
/// TS-0001 7.2: `/mn1/acpZ/` and `/mn1//acpZ` are not the ACP `/mn1/acpZ`
/// nor any resource, so they exit 2 naming `to`, as an `fr` with an empty
/// segment does, rather than being permitted by the loaded ACP's `pv`.
#[test]
fn a_target_with_an_empty_segment_exits_2_ts_0001_10_2_3_1() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("z.json"),
        r#"{"m2m:acp":{"rn":"acpZ","ri":"acpZ","pv":{"acr":[{"acor":["Cw"],"acop":4}]},"pvs":{"acr":[{"acor":["Cadmin"],"acop":63}]}}}"#,
    )
    .unwrap();
    let (code, out, err) = check_in(
        dir.path(),
        &["z.json"],
        r#"{"fr":"Cw","to":"/mn1/acpZ","op":3}"#,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dec"], 2, "the ACP's pvs decide: {out}");
    assert_eq!(
        v["explanation"]["evaluated"],
        serde_json::json!(["acpZ.pvs"])
    );
    for to in ["/mn1/acpZ/", "/mn1//acpZ", "/", "//", "a//b"] {
        let (code, out, err) = check_in(
            dir.path(),
            &["z.json"],
            &format!(r#"{{"fr":"Cw","to":"{to}","op":3}}"#),
        );
        assert_eq!(code, 2, "{to}: {out}");
        assert!(
            err.contains(&format!(
                "req.json: to: '{to}' is not a resource ID: '{to}' has an empty path segment"
            )),
            "{to}: {err}"
        );
    }
    // A `*` is a resource name character, no wildcard, in a target.
    let (code, _, err) = check_in(
        dir.path(),
        &["z.json"],
        r#"{"fr":"Cw","to":"ae1/cnt*","op":3}"#,
    );
    assert_eq!(code, 0, "{err}");
}

/// An `acor` entry whose absolute form at the hosting CSE is longer than an
/// ID may be (2048 bytes; an `fr` that long is refused) can match no one:
/// exit 2 naming the file and the entry's path, as a PRP refuses it.
#[test]
fn an_acor_entry_too_long_in_absolute_form_exits_2() {
    let dir = tempdir();
    let stem = format!("C{}", "a".repeat(2040));
    std::fs::write(
        dir.path().join("long.json"),
        format!(
            r#"{{"m2m:acp":{{"ri":"acpL","pv":{{"acr":[{{"acor":["Cw","{stem}"],"acop":2}}]}},"pvs":{{"acr":[{{"acor":["Ca"],"acop":63}}]}}}}}}"#
        ),
    )
    .unwrap();
    let (code, _, err) = check_in(dir.path(), &["long.json"], r#"{"fr":"Cw","to":"x","op":2}"#);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("long.json") && err.contains("pv.acr[0].acor[1]"),
        "{err}"
    );
    assert!(err.contains("absolute form"), "{err}");
    // In a list, which resource it is in, as other errors of a list say
    // (a list of one too, as the parser names it).
    let acp_l = format!(
        r#"{{"ri":"acpL","pv":{{"acr":[{{"acor":["{stem}"],"acop":2}}]}},"pvs":{{"acr":[{{"acor":["Ca"],"acop":63}}]}}}}"#
    );
    let acp_a = r#"{"ri":"acpA","pv":{"acr":[]},"pvs":{"acr":[{"acor":["Ca"],"acop":63}]}}"#;
    for (file, text, path) in [
        (
            "list.json",
            format!(r#"{{"m2m:acp":[{acp_a},{acp_l}]}}"#),
            "m2m:acp[1].pv.acr[0].acor[0]",
        ),
        (
            "one.json",
            format!(r#"[{{"m2m:acp":{acp_l}}}]"#),
            "m2m:acp[0].pv.acr[0].acor[0]",
        ),
    ] {
        std::fs::write(dir.path().join(file), text).unwrap();
        let (code, _, err) = check_in(dir.path(), &[file], r#"{"fr":"Cw","to":"x","op":2}"#);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("{file}: {path}")), "{err}");
    }
}

/// TS-0001 10.2.3.1: a request names an ACP by its `ri`, so an `ri` no
/// request can name (white space, an empty segment, empty) exits 2 naming
/// the file and the path of the `ri`, rather than loading an ACP that is
/// never recognised as a target.
#[test]
fn an_acp_ri_that_is_no_resource_id_exits_2_ts_0001_10_2_3_1() {
    let dir = tempdir();
    let acp = |ri: &str| {
        format!(
            r#"{{"m2m:acp":{{"ri":"{ri}","pv":{{"acr":[]}},"pvs":{{"acr":[{{"acor":["Ca"],"acop":63}}]}}}}}}"#
        )
    };
    for (ri, why) in [
        (
            "a b",
            "ri: 'a b' is not a resource ID: must not contain whitespace",
        ),
        (
            "acp/",
            "ri: 'acp/' is not a resource ID: 'acp/' has an empty path segment",
        ),
        ("", "ri: the resource ID must not be empty"),
    ] {
        std::fs::write(dir.path().join("p.json"), acp(ri)).unwrap();
        let (code, out, err) = check_in(dir.path(), &["p.json"], r#"{"fr":"Ca","to":"x","op":2}"#);
        assert_eq!(code, 2, "{ri:?}: {out}");
        assert!(err.contains(&format!("p.json: {why}")), "{ri:?}: {err}");
    }
    // In a list, the path names the resource.
    std::fs::write(
        dir.path().join("p.json"),
        format!("[{}, {}]", acp("acp1"), acp("acp/")),
    )
    .unwrap();
    let (code, _, err) = check_in(dir.path(), &["p.json"], r#"{"fr":"Ca","to":"x","op":2}"#);
    assert_eq!(code, 2);
    assert!(err.contains("p.json: m2m:acp[1].ri: 'acp/'"), "{err}");
}

/// Decisions and explanations name an ACP by its label, `ri` else `rn`
/// (`permittedBy`, `evaluated`, `failedRules`), so two ACPs with one label
/// could not be told apart (`"evaluated": ["same.pv", "same.pv"]`): exit
/// 2 naming both files and positions, as for one `ri` (TS-0003 7.1.1).
#[test]
fn two_loaded_acps_with_one_label_exit_2_ts_0003_7_1_1() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("same.json"),
        r#"[{"m2m:acp":{"rn":"same","pv":{"acr":[{"acor":["Cae1"],"acop":4}]}}},{"m2m:acp":{"rn":"same","pv":{"acr":[{"acor":["Cae1"],"acop":8}]}}}]"#,
    )
    .unwrap();
    let request = r#"{"fr":"Cae1","to":"r","op":2}"#;
    let (code, out, err) = check_in(dir.path(), &["same.json"], request);
    assert_eq!(code, 2, "{out}");
    let same = dir.path().join("same.json").display().to_string();
    assert!(
        err.contains(&format!(
            "{same}[1]: rn: 'same' names an ACP loaded from {same}[0] (rn 'same') already"
        )),
        "{err}"
    );
    // An rn in one file, the same ID as ri in another, in either order.
    std::fs::write(
        dir.path().join("rn.json"),
        r#"{"m2m:acp":{"rn":"acpQ","pv":{"acr":[{"acor":["Cae1"],"acop":4}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ri.json"),
        r#"{"m2m:acp":{"ri":"acpQ","pv":{"acr":[{"acor":["Cae1"],"acop":8}]},"pvs":{"acr":[{"acor":["Cae1"],"acop":63}]}}}"#,
    )
    .unwrap();
    for (first, second) in [("rn.json", "ri.json"), ("ri.json", "rn.json")] {
        let (code, out, err) = check_in(dir.path(), &[first, second], request);
        assert_eq!(code, 2, "{out}");
        let (second_part, first_part) = err
            .split_once("names an ACP loaded from")
            .expect("the refusal");
        assert!(second_part.contains(second), "{err}");
        assert!(first_part.contains(first), "{err}");
    }
    // Different labels load, and each rule set is named apart.
    std::fs::write(
        dir.path().join("rn.json"),
        r#"{"m2m:acp":{"rn":"acpP","pv":{"acr":[{"acor":["Cae1"],"acop":4}]}}}"#,
    )
    .unwrap();
    let (code, out, err) = check_in(dir.path(), &["rn.json", "ri.json"], request);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["explanation"]["evaluated"],
        serde_json::json!(["acpP.pv", "acpQ.pv"])
    );
}

/// A fresh `authz-cli-…` directory under the system temp dir, removed with
/// its files when the returned guard drops.
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("authz-cli-")
        .tempdir()
        .unwrap()
}

/// Status 141 means the reader went away (SIGPIPE's 128 + 13); output that
/// cannot be written for another reason (a full disk) is a failure, 1,
/// with the reason on stderr.
#[test]
fn a_full_disk_is_a_failure_not_a_broken_pipe() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // Not Linux: no device that is always full.
    };
    let dir = tempdir();
    let req = dir.path().join("req.json");
    std::fs::write(&req, r#"{"fr": "C1", "to": "x", "op": 2}"#).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["check", "-p", "examples/door-lock-acp.json", "-r"])
        .arg(&req)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authz");
    let out = output_within(child, HANG_LIMIT, || {
        "authz check writing to /dev/full still running".into()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
}
