//! The door-lock CSE end to end over real HTTP, with a real PRP, PIP and
//! PDP on loopback (the babysitters are a `<group>` the PIP holds): every
//! case of the example gets the response status code and headers of
//! TS-0004 / TS-0009 (2001 CREATED, 2000 OK, 4103
//! ORIGINATOR_HAS_NO_PRIVILEGE → 403, 4000 → 400, 4004 → 404, `X-M2M-RI`
//! echoed); the PDP stopped → fail-closed 403 with the reason; the decision
//! cache answers a repeated request without a PDP round trip and drops its
//! entry after a policy change.
//!
//! The guest gets temporary access through a real DAS (in-process) by the
//! indirect flow of TS-0003 7.3.2.3: 4103 with `m2m:tqf`, `IssueToken` at the
//! DAS, and retries with the token (`Authorization`, answered with
//! `X-M2M-ATI`), its Token-ID (`tids`) and its Local-Token-ID (`ltids`).

mod common;

use std::time::Duration;

use authz_pep::CacheConfig;
use authz_proto::pb;
use common::*;
use door_lock_cse::guest;
use serde_json::Value;

const UNLOCK: &str = r#"{"m2m:cin": {"con": "UNLOCKED"}}"#;
const LOCK: &str = r#"{"m2m:cin": {"con": "LOCKED"}}"#;
const CIN: (&str, &str) = ("Content-Type", "application/json;ty=4");
const FRONT: &str = "/~/mn-cse-123456/frontDoor";
const FRONT_LA: &str = "/~/mn-cse-123456/frontDoor/la";
/// The front door's unlock-command container.
const FRONT_UNLOCK: &str = "/~/mn-cse-123456/frontDoor/unlock";
const BACK_LA: &str = "/~/mn-cse-123456/backDoor/la";

fn assert_denied(r: &Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {r:?}");
    assert_eq!(r.rsc(), 4103, "{what}");
    assert_eq!(r.header("X-M2M-RI"), Some("rq-test"), "{what}: RI echoed");
}

fn assert_created(r: &Reply, what: &str) {
    assert_eq!(r.status, 201, "{what}: {r:?}");
    assert_eq!(r.rsc(), 2001, "{what}");
    assert_eq!(r.header("X-M2M-RI"), Some("rq-test"), "{what}: RI echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_phone_may_do_everything() {
    let stack = Stack::start(Options::default()).await;

    let r = stack.as_(OWNER, "POST", FRONT, &[CIN], UNLOCK).await;
    assert_created(&r, "owner unlocks the front door");
    assert_eq!(r.json()["m2m:cin"]["con"], "UNLOCKED");
    assert!(r.header("Content-Location").is_some());

    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.header("X-M2M-RI"), Some("rq-test"));
    assert_eq!(r.json()["m2m:cin"]["con"], "UNLOCKED");
    assert_eq!(r.json()["m2m:cin"]["cr"], "CownerPhone");

    // From outside the home network and on a Saturday night too.
    stack.clock.set(saturday(23, 30, 0));
    let r = stack
        .as_from(
            OWNER,
            OUTSIDE,
            "POST",
            "/~/mn-cse-123456/backDoor",
            &[CIN],
            UNLOCK,
        )
        .await;
    assert_created(&r, "owner unlocks the back door from outside");

    // Discovery of the door locks (the guide's first smartphone capability).
    let r = stack
        .as_(OWNER, "GET", "/~/mn-cse-123456?fu=1&ty=3", &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(
        r.json()["m2m:uril"],
        serde_json::json!([
            "mn-cse-123456/Clock-AE1/frontDoor",
            "mn-cse-123456/Clock-AE2/backDoor",
            "mn-cse-123456/Clock-AE1/frontDoor/unlock"
        ])
    );

    // A malformed token, Role-ID or Local-Token-ID makes the discovery as
    // malformed as any request (Decision 9: 4000), not an empty list that
    // would look complete.
    for (query, headers) in [
        ("", &[("Authorization", "hello")][..]),
        ("&rids=not_a_role", &[][..]),
        ("&ltids=a:b", &[][..]),
    ] {
        let path = format!("/~/mn-cse-123456?fu=1&ty=3{query}");
        let r = stack.as_(OWNER, "GET", &path, headers, "").await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{path}: {r:?}");
    }

    // Structured and unstructured addresses name the same container.
    let r = stack
        .as_(OWNER, "GET", "/mn-cse-123456/Clock-AE1/frontDoor", &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.json()["m2m:cnt"]["ri"], "frontDoor");

    let r = stack
        .as_(
            OWNER,
            "PUT",
            FRONT,
            &[("Content-Type", "application/json")],
            r#"{"m2m:cnt": {"lbl": ["front"]}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2004), "{r:?}");
    // What this CSE does not update, or a label that is no string, is a
    // bad request naming it (4000), not a 2004 for a change never made;
    // the labels stay as they were.
    for (body, names) in [
        (r#"{"m2m:cnt": {"lbl": [1, null]}}"#, "m2m:cnt.lbl[0]"),
        (
            r#"{"m2m:cnt": {"lbl": ["x"], "rn": "renamed"}}"#,
            "m2m:cnt.rn",
        ),
        (r#"{"m2m:cnt": {"mni": 5}}"#, "m2m:cnt.mni"),
        (r#"{"m2m:cin": {"lbl": ["x"]}}"#, "m2m:cin"),
    ] {
        let r = stack
            .as_(
                OWNER,
                "PUT",
                FRONT,
                &[("Content-Type", "application/json")],
                body,
            )
            .await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{body}: {r:?}");
        assert!(r.body.contains(names), "{body}: {r:?}");
    }
    let r = stack.as_(OWNER, "GET", FRONT, &[], "").await;
    assert_eq!(
        r.json()["m2m:cnt"]["lbl"],
        serde_json::json!(["front"]),
        "{r:?}"
    );
    // An AE's update is read under the AE's own root (TS-0004 7.3.3.3):
    // another root is 4000 naming it; its own, with labels this example
    // keeps for containers only, is 4005.
    const AE1: &str = "/~/mn-cse-123456/Clock-AE1";
    let json = [("Content-Type", "application/json")];
    let r = stack
        .as_(OWNER, "PUT", AE1, &json, r#"{"m2m:cnt": {"lbl": ["x"]}}"#)
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("m2m:ae"), "{}", r.dbg());
    let r = stack
        .as_(OWNER, "PUT", AE1, &json, r#"{"m2m:ae": {"lbl": ["x"]}}"#)
        .await;
    assert_eq!((r.status, r.rsc()), (405, 4005), "{r:?}");

    let r = stack.as_(OWNER, "DELETE", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2002), "{r:?}");

    // The unlock container is the owner's too: an unlock command there,
    // read back, and the door it unlocked.
    let r = stack.as_(OWNER, "POST", FRONT_UNLOCK, &[CIN], UNLOCK).await;
    assert_created(&r, "owner unlocks through the unlock container");
    let r = stack
        .as_(OWNER, "GET", &format!("{FRONT_UNLOCK}/la"), &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.json()["m2m:cin"]["cr"], "CownerPhone");
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!(r.json()["m2m:cin"]["con"], "UNLOCKED", "{r:?}");

    // acaf: the same originator without its credentials is refused.
    let r = stack
        .send(
            HOME,
            "GET",
            FRONT_LA,
            &[("X-M2M-Origin", "CownerPhone"), ("X-M2M-RI", "rq-test")],
            "",
        )
        .await;
    assert_denied(&r, "owner not authenticated");
    // Nor may another authenticated AE use the owner's From: its
    // Registrar CSE answers 4106 before any decision (TS-0003 7.2.1).
    let r = stack
        .send(
            HOME,
            "GET",
            FRONT_LA,
            &[
                ("X-M2M-Origin", "CownerPhone"),
                ("X-Demo-Psk", BABYSITTER.1),
                ("X-M2M-RI", "rq-test"),
            ],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (403, 4106), "{r:?}");
    assert_eq!(r.header("X-M2M-RI"), Some("rq-test"));
    // A From that is no originator ID at all names no other AE: a bad
    // request (400 / 4000, Decision 9), authenticated or not.
    for from in ["C*", "all", "Clock-AE1\tx"] {
        for psk in [Some(OWNER.1), None] {
            let mut headers = vec![("X-M2M-Origin", from), ("X-M2M-RI", "rq-test")];
            if let Some(psk) = psk {
                headers.push(("X-Demo-Psk", psk));
            }
            let r = stack.send(HOME, "GET", FRONT_LA, &headers, "").await;
            assert_eq!((r.status, r.rsc()), (400, 4000), "{from} {psk:?}: {r:?}");
        }
    }
}

/// The front door's state as the front lock reads it over HTTP
/// (`frontDoor/la`): `(con, cr)`.
async fn front_door_state(stack: &Stack) -> (String, String) {
    let r = stack.as_(LOCK1, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    let cin = &r.json()["m2m:cin"];
    let text = |k: &str| cin[k].as_str().unwrap_or_default().to_owned();
    (text("con"), text("cr"))
}

/// The owner locks the front door.
async fn owner_locks(stack: &Stack) {
    let r = stack.as_(OWNER, "POST", FRONT, &[CIN], LOCK).await;
    assert_created(&r, "owner locks the front door");
}

/// The babysitter's rule (in `acpFrontDoorUnlock`, the ACP of the unlock
/// container `frontDoor/unlock`) permits CREATE of a contentInstance there
/// when the request is authenticated (`acaf`), its time is in
/// `* * 15-18 * * 1-5 *` AND its IP in the home network (one `acco`
/// element: its tests are ANDed, TS-0003 7.1.5 and 7.1.3; the crontab in UTC,
/// Decision 4). The CSE carries the command out on the door, which the
/// front lock reads as its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_babysitter_unlocks_on_weekdays_15_to_19_from_home_only() {
    let stack = Stack::start(Options::default()).await;
    let cases = [
        (thursday(16, 0, 0), HOME, true, "Thursday 16:00 from home"),
        (
            thursday(15, 0, 0),
            HOME,
            true,
            "Thursday 15:00:00 from home",
        ),
        (
            thursday(18, 59, 59),
            HOME,
            true,
            "Thursday 18:59:59 from home",
        ),
        (
            thursday(19, 0, 0),
            HOME,
            false,
            "Thursday 19:00:00 from home",
        ),
        (
            thursday(14, 59, 59),
            HOME,
            false,
            "Thursday 14:59:59 from home",
        ),
        (saturday(16, 0, 0), HOME, false, "Saturday 16:00 from home"),
        (
            thursday(16, 0, 0),
            OUTSIDE,
            false,
            "Thursday 16:00 from outside",
        ),
    ];
    for (at, from, permitted, what) in cases {
        stack.clock.set(at);
        owner_locks(&stack).await;
        let r = stack
            .as_from(BABYSITTER, from, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
            .await;
        let state = front_door_state(&stack).await;
        if permitted {
            assert_created(&r, what);
            let cin = &r.json()["m2m:cin"];
            assert_eq!(
                (&cin["pi"], &cin["con"], &cin["cr"]),
                (
                    &Value::from("unlock"),
                    &Value::from("UNLOCKED"),
                    &Value::from("Cbabysitter")
                ),
                "{what}: the command, kept in the unlock container"
            );
            assert_eq!(
                state,
                ("UNLOCKED".to_owned(), "Cbabysitter".to_owned()),
                "{what}: the door follows the command"
            );
        } else {
            assert_denied(&r, what);
            assert!(!r.dbg().is_empty(), "{what}: a reason");
            assert_eq!(state.0, "LOCKED", "{what}: the door stays locked");
        }
    }
    // The window's explanation names the next opening (explain-denials on).
    stack.clock.set(saturday(16, 0, 0));
    let r = stack
        .as_(BABYSITTER, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
        .await;
    assert!(r.dbg().contains("20261130T150000"), "{}", r.dbg());
    assert!(
        r.dbg().contains("acpFrontDoorUnlock.pv.acr[1]"),
        "{}",
        r.dbg()
    );

    // Inside the window, from home: she may unlock, not lock. The door's
    // own container grants her no CREATE, whatever the content (an ACP
    // cannot look at it): 4103 by the PDP, before the CSE reads the body.
    stack.clock.set(thursday(16, 0, 0));
    owner_locks(&stack).await;
    for body in [LOCK, UNLOCK] {
        let r = stack.as_(BABYSITTER, "POST", FRONT, &[CIN], body).await;
        assert_denied(&r, &format!("babysitter posts {body} to frontDoor"));
        assert!(
            r.dbg()
                .contains("no rule of the applicable policies names the originator"),
            "{}",
            r.dbg()
        );
    }
    // The unlock container takes the unlock command only: a permitted
    // CREATE with other content is 4000 from the CSE, and changes nothing.
    for body in [LOCK, r#"{"m2m:cin": {"con": "OPEN"}}"#] {
        let r = stack
            .as_(BABYSITTER, "POST", FRONT_UNLOCK, &[CIN], body)
            .await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{body}: {r:?}");
        assert_eq!(r.header("X-M2M-RI"), Some("rq-test"));
        assert!(
            r.dbg().contains("takes only the unlock command"),
            "{}",
            r.dbg()
        );
    }
    assert_eq!(front_door_state(&stack).await.0, "LOCKED");

    // Everything else stays refused.
    let r = stack.as_(BABYSITTER, "GET", FRONT_LA, &[], "").await;
    assert_denied(&r, "babysitter reads the state");
    let r = stack
        .as_(BABYSITTER, "GET", &format!("{FRONT_UNLOCK}/la"), &[], "")
        .await;
    assert_denied(&r, "babysitter reads the commands");
    let r = stack
        .as_(
            BABYSITTER,
            "POST",
            "/~/mn-cse-123456/backDoor",
            &[CIN],
            UNLOCK,
        )
        .await;
    assert_denied(&r, "babysitter unlocks the back door");
    let r = stack.as_(BABYSITTER, "DELETE", FRONT_LA, &[], "").await;
    assert_denied(&r, "babysitter deletes the state");
    let r = stack
        .as_(BABYSITTER, "DELETE", &format!("{FRONT_UNLOCK}/la"), &[], "")
        .await;
    assert_denied(&r, "babysitter deletes the command history");
    let r = stack
        .as_(
            BABYSITTER,
            "POST",
            FRONT_UNLOCK,
            &[("Content-Type", "application/json;ty=23")],
            "{}",
        )
        .await;
    assert_denied(&r, "babysitter subscribes (acod chty is [4])");
    // Discovery lists what she may DISCOVER: nothing (TS-0004 7.3.3.14).
    let r = stack
        .as_(BABYSITTER, "GET", "/~/mn-cse-123456?fu=1", &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.json()["m2m:uril"], serde_json::json!([]), "{r:?}");
    let r = stack
        .send(
            HOME,
            "POST",
            FRONT_UNLOCK,
            &[
                ("X-M2M-Origin", "Cbabysitter"),
                ("X-M2M-RI", "rq-test"),
                CIN,
            ],
            UNLOCK,
        )
        .await;
    assert_denied(&r, "babysitter not authenticated (acaf)");
    assert_eq!(front_door_state(&stack).await.0, "LOCKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lock_ae_reaches_its_own_door_only() {
    let stack = Stack::start(Options::default()).await;
    let r = stack.as_(LOCK1, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.json()["m2m:cin"]["con"], "LOCKED");
    let r = stack.as_(LOCK1, "POST", FRONT, &[CIN], LOCK).await;
    assert_created(&r, "front lock reports its state");
    let r = stack.as_(LOCK1, "DELETE", FRONT_LA, &[], "").await;
    assert_denied(&r, "front lock deletes");
    let r = stack.as_(LOCK1, "GET", BACK_LA, &[], "").await;
    assert_denied(&r, "front lock reads the back door");
    let r = stack.as_(LOCK1, "POST", FRONT_UNLOCK, &[CIN], UNLOCK).await;
    assert_denied(&r, "front lock posts to the unlock container");
    let r = stack.as_(LOCK2, "GET", BACK_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    let r = stack.as_(LOCK2, "GET", FRONT_LA, &[], "").await;
    assert_denied(&r, "back lock reads the front door");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_and_unknown_resources() {
    let stack = Stack::start(Options::default()).await;
    // Nothing is under `la`: 4004, not the latest contentInstance.
    let r = stack
        .as_(OWNER, "GET", &format!("{FRONT_LA}/garbage/more"), &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (404, 4004), "{r:?}");
    // An empty container's `la` names no contentInstance: 4004, saying so
    // in a sentence.
    let unlock_la = format!("{FRONT_UNLOCK}/la");
    let r = stack.as_(OWNER, "GET", &unlock_la, &[], "").await;
    assert_eq!((r.status, r.rsc()), (404, 4004), "{r:?}");
    assert_eq!(r.dbg(), "the container has no contentInstance", "{r:?}");
    let r = stack.as_(OWNER, "DELETE", &unlock_la, &[], "").await;
    assert_eq!((r.status, r.rsc()), (404, 4004), "{r:?}");
    assert_eq!(r.dbg(), "no such contentInstance", "{r:?}");
    // Content in a serialization the CSE does not read: 4015 (TS-0009
    // 6.7), and the door keeps its state.
    let r = stack
        .as_(
            OWNER,
            "POST",
            FRONT,
            &[("Content-Type", "application/xml;ty=4")],
            UNLOCK,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (415, 4015), "{r:?}");
    assert_eq!(front_door_state(&stack).await.0, "LOCKED");
    // No X-M2M-Origin: 4000, decided by the PEP without the PDP.
    let r = stack
        .send(HOME, "GET", FRONT_LA, &[("X-M2M-RI", "rq-test")], "")
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert_eq!(r.header("X-M2M-RI"), Some("rq-test"));
    assert!(r.dbg().contains("From"), "{}", r.dbg());
    // ... also on a resource that does not exist: a primitive without its
    // mandatory parameters is 4000 before existence (4004) is looked at,
    // so a caller without an identity does not learn what exists.
    let r = stack
        .send(
            HOME,
            "GET",
            "/~/mn-cse-123456/garageDoor",
            &[("X-M2M-RI", "rq-test")],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("From"), "{}", r.dbg());
    let r = stack
        .send(
            HOME,
            "GET",
            "/~/mn-cse-123456/garageDoor",
            &[("X-M2M-Origin", OWNER.0), ("X-Demo-Psk", OWNER.1)],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "no X-M2M-RI: {r:?}");
    // An AE registration without From at this CSE, which does not register
    // AEs without From: 4000 before the target is looked up, too.
    let r = stack
        .send(
            HOME,
            "POST",
            "/~/mn-cse-123456/garageDoor",
            &[
                ("X-M2M-RI", "rq-test"),
                ("Content-Type", "application/json;ty=2"),
            ],
            r#"{"m2m:ae": {"api": "Nlock", "rr": false}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(
        r.dbg().contains("does not register AEs without From"),
        "{}",
        r.dbg()
    );
    // A tqi that is not a boolean.
    let r = stack
        .as_(OWNER, "GET", &format!("{FRONT_LA}?tqi=maybe"), &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    // A Role-ID the PDP rejects (INVALID_ARGUMENT naming the field).
    let r = stack
        .as_(
            OWNER,
            "GET",
            &format!("{FRONT_LA}?rids=not-a-role"),
            &[],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("role_ids[0]"), "{}", r.dbg());
    // A token that is not a JWS/JWE compact serialization.
    let r = stack
        .as_(
            OWNER,
            "GET",
            FRONT_LA,
            &[("Authorization", "not-a-token")],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("tokens[0]"), "{}", r.dbg());
    // Existence is checked before authorization: 4004.
    let r = stack
        .as_(OWNER, "GET", "/~/mn-cse-123456/garageDoor", &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (404, 4004), "{r:?}");
    // Content the lock does not understand: 4102.
    let r = stack
        .as_(
            OWNER,
            "POST",
            FRONT,
            &[CIN],
            r#"{"m2m:cin": {"con": "OPEN"}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4102), "{r:?}");
    // tqi=true on a Deny: still 4103 (Token Request Information needs a DAS,
    // which this setup has none of), with the reason.
    let r = stack
        .as_(BABYSITTER, "GET", &format!("{FRONT_LA}?tqi=true"), &[], "")
        .await;
    assert_denied(&r, "babysitter with tqi");
    assert!(r.json().get("m2m:dbg").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pdp_fails_closed() {
    let mut stack = Stack::start(Options {
        deadline: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    stack.stop_pdp().await;
    // A hang guard only; the PEP's 500 ms deadline is what ends the wait.
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        stack.as_(OWNER, "GET", FRONT_LA, &[], ""),
    )
    .await
    .expect("an answer, not a hang");
    assert_denied(&r, "PDP stopped");
    // The PEP's fail-closed Deny with its reason (the refused connection
    // retried until the attempts or the deadline ran out), not the PDP's.
    let dbg = r.dbg();
    let reason = dbg
        .strip_prefix("DENY (fail-closed): PDP unreachable: ")
        .unwrap_or_else(|| panic!("{dbg}"));
    assert!(
        reason.starts_with("UNAVAILABLE after ")
            || reason.starts_with("deadline of 500 ms exceeded"),
        "{dbg}"
    );
    let r = stack.as_(OWNER, "POST", FRONT, &[CIN], UNLOCK).await;
    assert_denied(&r, "PDP stopped, unlock");
    // A From that is no ID is a bad request whether or not a PDP answers
    // (Decision 9): the layer says so itself.
    let r = stack
        .send(
            HOME,
            "GET",
            FRONT_LA,
            &[("X-M2M-Origin", "C*"), ("X-M2M-RI", "rq-test")],
            "",
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("X-M2M-Origin"), "{}", r.dbg());
    // A discovery, whose results the CSE decides: not an empty list, as if
    // nothing were there, but the same fail-closed answer.
    let r = stack
        .as_(OWNER, "GET", "/~/mn-cse-123456?fu=1", &[], "")
        .await;
    assert_denied(&r, "PDP stopped, discovery");
    // Saying as much as the layer's Denies say (the CSE's deny detail).
    assert!(
        r.dbg().starts_with("DENY (fail-closed): PDP unreachable: "),
        "{}",
        r.dbg()
    );
    let state = stack
        .store
        .read()
        .expect("store")
        .state("frontDoor")
        .map(str::to_owned);
    assert_eq!(state.as_deref(), Some("LOCKED"), "nothing reached the CSE");
}

/// Takes the owner's RETRIEVE away on the front door (the owner keeps
/// CREATE); returns the PRP revision.
async fn owner_loses_retrieve(stack: &mut Stack) -> u64 {
    let mut acp = stack
        .prp
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpFrontDoor".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .acp
        .expect("acp");
    let rules = &mut acp.privileges.as_mut().expect("pv").rules;
    rules[0].operations = 1;
    stack
        .prp
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp),
        })
        .await
        .expect("update")
        .into_inner()
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_repeats_and_drops_entries_after_a_policy_change() {
    let mut stack = Stack::start(Options {
        cache: Some(CacheConfig {
            capacity: 100,
            // Long enough that only the revision can drop the entry here.
            ttl: Duration::from_secs(60),
        }),
        ..Options::default()
    })
    .await;
    let before = stack.decides();
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(
        stack.decides(),
        before + 1,
        "the first request asks the PDP"
    );
    for _ in 0..3 {
        let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
        assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    }
    assert_eq!(
        stack.decides(),
        before + 1,
        "repeats in the same second are cached"
    );
    assert_eq!(stack.pep.cache_len(), 1);

    // Another second is another key (time windows have 1 s granularity).
    stack.clock.advance(chrono::Duration::seconds(1));
    stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!(stack.decides(), before + 2);

    // The policy changes; the PDP's replica follows.
    let revision = owner_loses_retrieve(&mut stack).await;
    wait_for_revision(&stack.pdp_status, revision).await;
    // The next uncached decision reports the newer revision: the cache is
    // dropped, and the repeated request goes to the PDP and is now denied.
    let r = stack.as_(OWNER, "GET", BACK_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(stack.decides(), before + 3);
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_denied(&r, "owner after losing RETRIEVE");
    assert_eq!(stack.decides(), before + 4, "the entry was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_revision_polling_the_cache_drops_entries_by_itself() {
    let mut stack = Stack::start(Options {
        cache: Some(CacheConfig {
            capacity: 100,
            ttl: Duration::from_secs(60),
        }),
        revision_poll: Some(Duration::from_millis(20)),
        ..Options::default()
    })
    .await;
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    let calls = stack.decides();
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(stack.decides(), calls, "cached");

    let revision = owner_loses_retrieve(&mut stack).await;
    wait_for_revision(&stack.pdp_status, revision).await;
    let mut dropped = false;
    for _ in 0..200 {
        if stack.pep.cache_len() == 0 {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dropped, "the poll saw the new revision");
    let r = stack.as_(OWNER, "GET", FRONT_LA, &[], "").await;
    assert_denied(&r, "owner after losing RETRIEVE");
    assert_eq!(stack.decides(), calls + 1);
}

/// The example's DAS configuration (`guest-das.json`): the guest may get a
/// token to create a contentInstance (acop 1) in `frontDoor`. Its daytime
/// window is dropped here: the DAS decides `IssueToken` on its own wall
/// clock, whatever the time the test runs at.
fn guest_das() -> (Value, String) {
    let mut config: Value =
        serde_json::from_str(include_str!("../guest-das.json")).expect("guest-das.json");
    let rule = config["policies"][0]["rule"]
        .as_object_mut()
        .expect("policies[0].rule");
    assert!(rule.remove("acco").is_some());
    let secret = config["clients"][0]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    (config, secret)
}

/// TS-0003 7.3.2.3 through the HTTP binding: the guest's unlock is refused
/// with the Token Request Information, the guest gets a token from the DAS
/// it names, and the retries with the token, its Token-ID and the assigned
/// Local-Token-ID unlock the door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_unlocks_with_a_token_from_the_das_7_3_2_3() {
    let (das_config, secret) = guest_das();
    let stack = Stack::start(Options {
        das: Some(das_config),
        ..Options::default()
    })
    .await;
    let das_url = stack.das_url.clone().expect("DAS");
    // The DAS issues tokens valid from its wall clock: the CSE's too.
    stack.clock.set(chrono::Utc::now());

    // No ACP names the guest: 4103, and with tqi=true the way to the DAS.
    let r = stack.as_(GUEST, "POST", FRONT, &[CIN], UNLOCK).await;
    assert_denied(&r, "guest without a token");
    assert!(r.json().get("m2m:tqf").is_none(), "no tqi, no tqf: {r:?}");
    let r = stack
        .as_(GUEST, "POST", &format!("{FRONT}?tqi=true"), &[CIN], UNLOCK)
        .await;
    assert_denied(&r, "guest without a token, tqi");
    let dasi = r.json()["m2m:tqf"]["dasi"].clone();
    assert_eq!(dasi.as_array().map(Vec::len), Some(1), "{r:?}");
    assert_eq!(dasi[0]["uri"], das_url.trim_end_matches('/'));
    let dreq = &dasi[0]["dreq"];
    // Absolute at the hosting CSE, like `or` (TS-0003 7.3.2.3 step 2.2).
    assert_eq!(
        dreq["trid"], "//home.example/mn-cse-123456/frontDoor",
        "{dreq}"
    );
    assert_eq!(dreq["op"], 1, "CREATE: {dreq}");
    assert!(
        dreq["or"].as_str().unwrap_or_default().ends_with("Cguest"),
        "{dreq}"
    );

    // The guest asks the DAS, authenticated by its client secret.
    let infos = guest::das_infos(&r.json()).expect("m2m:tqf");
    let (uri, dreq) = infos.into_iter().next().expect("one DAS");
    let err = guest::issue_token(&uri, dreq.clone(), "wrong")
        .await
        .expect_err("wrong secret");
    assert!(
        matches!(&err, guest::GuestError::Refused { status, .. } if status.code() == tonic::Code::Unauthenticated),
        "{err}"
    );
    let issued = guest::issue_token(&uri, dreq, &secret)
        .await
        .expect("token");
    assert_eq!(issued.tokens.len(), 1, "{issued:?}");
    let token = issued.tokens[0].clone();
    let token_id = issued.token_ids[0].clone();

    // Retry with the token (the PDP may still be fetching the DAS's keys).
    let mut r = stack
        .as_(
            GUEST,
            "POST",
            FRONT,
            &[CIN, ("Authorization", &token)],
            UNLOCK,
        )
        .await;
    for _ in 0..100 {
        if r.status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = stack
            .as_(
                GUEST,
                "POST",
                FRONT,
                &[CIN, ("Authorization", &token)],
                UNLOCK,
            )
            .await;
    }
    assert_created(&r, "guest with the token");
    assert_eq!(r.json()["m2m:cin"]["cr"], "Cguest");
    let ati = r.header("X-M2M-ATI").expect("X-M2M-ATI").to_owned();
    let (lti, tid) = ati.split_once(':').expect("lti:tokenID");
    assert!(lti.starts_with("lt"), "{ati}");
    assert_eq!(tid, token_id);

    // Retry with the Local-Token-ID the PDP assigned.
    let r = stack
        .as_(GUEST, "POST", &format!("{FRONT}?ltids={lti}"), &[CIN], LOCK)
        .await;
    assert_created(&r, "guest with the Local-Token-ID");
    // And with the Token-ID (the PDP fetches the token from the DAS).
    let r = stack
        .as_(
            GUEST,
            "POST",
            &format!("{FRONT}?tids={token_id}"),
            &[CIN],
            UNLOCK,
        )
        .await;
    assert_created(&r, "guest with the Token-ID");

    // The grant carries the DAS rule's acaf: someone who only claims to be
    // the guest (no PSK: not authenticated) gets nothing from the guest's
    // token, its Local-Token-ID or its Token-ID (TS-0003 7.1.5 res_authn).
    for (path, extra) in [
        (format!("{FRONT}?ltids={lti}"), None),
        (format!("{FRONT}?tids={token_id}"), None),
        (FRONT.to_owned(), Some(("Authorization", token.as_str()))),
    ] {
        let mut headers = vec![("X-M2M-Origin", GUEST.0), ("X-M2M-RI", "rq-test"), CIN];
        headers.extend(extra);
        let r = stack.send(HOME, "POST", &path, &headers, LOCK).await;
        assert_denied(&r, &format!("unauthenticated 'Cguest' via {path}"));
    }

    // The token grants CREATE in the front door only.
    let r = stack
        .as_(GUEST, "GET", FRONT_LA, &[("Authorization", &token)], "")
        .await;
    assert_denied(&r, "guest reads with the token");
    let r = stack
        .as_(
            GUEST,
            "POST",
            "/~/mn-cse-123456/backDoor",
            &[CIN, ("Authorization", &token)],
            UNLOCK,
        )
        .await;
    assert_denied(&r, "guest unlocks the back door with the token");
    let state = stack
        .store
        .read()
        .expect("store")
        .state("frontDoor")
        .map(str::to_owned);
    assert_eq!(state.as_deref(), Some("UNLOCKED"));
}

/// Sets the `pvs` of `acpFrontDoor` to one rule for `acor` (acop 63,
/// `acaf`), as the admin; returns the PRP revision.
async fn set_front_door_pvs(stack: &mut Stack, acor: &[&str]) -> u64 {
    let mut acp = stack
        .prp
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpFrontDoor".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .acp
        .expect("acp");
    let rule = &mut acp.self_privileges.as_mut().expect("pvs").rules[0];
    rule.originators = acor.iter().map(|s| s.to_string()).collect();
    stack
        .prp
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp),
        })
        .await
        .expect("update")
        .into_inner()
        .revision
}

/// TS-0001 9.6.1.3.2 (spec notes §2.3): an Update that holds only `acpi`
/// is authorized by UPDATE in the `pvs` of the ACPs the resource references
/// now, not by their `pv`, and one that holds `acpi` and other attributes
/// is 4000. The PEP layer tells the two from the content; the CSE writes a
/// permitted change to the PRP, after which the new ACPs decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_acpi_is_judged_by_pvs_ts0001_9_6_1_3_2() {
    const JSON: (&str, &str) = ("Content-Type", "application/json");
    const TO_BACK_ACP: &str = r#"{"m2m:cnt": {"acpi": ["acpBackDoor"]}}"#;
    let mut stack = Stack::start(Options::default()).await;

    // acpi and lbl in one Update: 4000 from the layer, no decision asked.
    let calls = stack.decides();
    let r = stack
        .as_(
            OWNER,
            "PUT",
            FRONT,
            &[JSON],
            r#"{"m2m:cnt": {"acpi": ["acpBackDoor"], "lbl": ["front"]}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
    assert!(r.dbg().contains("must hold only acpi"), "{}", r.dbg());
    assert_eq!(stack.decides(), calls, "4000 before any decision");
    // A contentInstance has no acpi (spec notes §2.3): 4000 before any
    // decision too, whoever asks (it is authorized as its container, whose
    // pvs would otherwise judge it).
    owner_locks(&stack).await;
    let la = stack.as_(LOCK1, "GET", FRONT_LA, &[], "").await;
    let cin = la.json()["m2m:cin"]["ri"]
        .as_str()
        .expect("the latest contentInstance's ri")
        .to_owned();
    for (who, to) in [
        (LOCK1, format!("/~/mn-cse-123456/{cin}")),
        (OWNER, format!("/~/mn-cse-123456/{cin}")),
        (OWNER, FRONT_LA.to_owned()),
    ] {
        let calls = stack.decides();
        let r = stack
            .as_(
                who,
                "PUT",
                &to,
                &[JSON],
                r#"{"m2m:cin": {"acpi": ["acpHome"]}}"#,
            )
            .await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{to}: {r:?}");
        assert!(r.dbg().contains("no acpi to change"), "{}", r.dbg());
        assert_eq!(stack.decides(), calls, "{to}: 4000 before any decision");
    }

    // The owner is in acpFrontDoor's pv and pvs. Taken out of the pvs, the
    // owner may still update the labels (pv) but not the acpi (pvs).
    let revision = set_front_door_pvs(&mut stack, &[ADMIN]).await;
    wait_for_revision(&stack.pdp_status, revision).await;
    let r = stack.as_(OWNER, "PUT", FRONT, &[JSON], TO_BACK_ACP).await;
    assert_denied(&r, "owner without pvs changes acpi");
    assert!(
        r.dbg().starts_with("DENY"),
        "the PDP's Deny, not the PRP's refusal of the write: {}",
        r.dbg()
    );
    let r = stack
        .as_(
            OWNER,
            "PUT",
            FRONT,
            &[JSON],
            r#"{"m2m:cnt": {"lbl": ["front"]}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2004), "labels by pv: {r:?}");

    // Back in the pvs (whose rule asks for authentication): the owner
    // without credentials is refused by that rule, named in the summary.
    let revision = set_front_door_pvs(&mut stack, &[OWNER.0, ADMIN]).await;
    wait_for_revision(&stack.pdp_status, revision).await;
    let r = stack
        .send(
            HOME,
            "PUT",
            FRONT,
            &[("X-M2M-Origin", OWNER.0), ("X-M2M-RI", "rq-test"), JSON],
            TO_BACK_ACP,
        )
        .await;
    assert_denied(&r, "owner not authenticated changes acpi");
    assert!(r.dbg().contains("acpFrontDoor.pvs.acr[0]"), "{}", r.dbg());

    // The owner with credentials: permitted by the pvs; the PRP takes the
    // new acpi, and from then on acpBackDoor decides on frontDoor.
    // Its content's root is the container's own (TS-0004 7.3.3.3): any
    // other is 4000 naming it; `acpi` under both its names is one
    // attribute given twice: 4000 too. Neither changes anything.
    for (wrong, says) in [
        (r#"{"m2m:cin": {"acpi": ["acpBackDoor"]}}"#, "m2m:cnt"),
        (r#"{"x": {"acpi": ["acpBackDoor"]}}"#, "m2m:cnt"),
        (
            r#"{"m2m:cnt": {"acpi": ["acpBackDoor"]}, "m2m:ae": {}}"#,
            "m2m:cnt",
        ),
        (
            r#"{"m2m:cnt": {"accessControlPolicyIDs": ["acpHome"], "acpi": ["acpBackDoor"]}}"#,
            "give it once",
        ),
    ] {
        let r = stack.as_(OWNER, "PUT", FRONT, &[JSON], wrong).await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{wrong}: {r:?}");
        assert!(r.dbg().contains(says), "{wrong}: {}", r.dbg());
    }
    let r = stack.as_(OWNER, "GET", FRONT, &[], "").await;
    assert_eq!(
        r.json()["m2m:cnt"]["acpi"],
        serde_json::json!(["acpFrontDoor"])
    );
    let r = stack.as_(OWNER, "PUT", FRONT, &[JSON], TO_BACK_ACP).await;
    assert_eq!((r.status, r.rsc()), (200, 2004), "{r:?}");
    assert_eq!(
        r.json()["m2m:cnt"]["acpi"],
        serde_json::json!(["acpBackDoor"])
    );
    let record = stack
        .prp
        .get_resource(pb::GetResourceRequest {
            resource_id: "frontDoor".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let resource = record.resource.expect("resource");
    assert_eq!(resource.acpi, ["acpBackDoor"]);
    wait_for_revision(&stack.pdp_status, record.revision).await;
    let r = stack.as_(LOCK1, "POST", FRONT, &[CIN], LOCK).await;
    assert_denied(&r, "the front lock under acpBackDoor");
    let r = stack.as_(LOCK2, "POST", FRONT, &[CIN], LOCK).await;
    assert_created(&r, "the back lock under acpBackDoor");

    // A CSE restarted without --load-policies builds its tree from the
    // policies file again: it takes the acpi the PRP holds (the one the
    // PDP decides with), not the file's.
    let bundle = door_lock_cse::policies::Bundle::parse(&test_policies()).expect("bundle");
    let restarted: door_lock_cse::SharedStore = std::sync::Arc::new(std::sync::RwLock::new(
        door_lock_cse::store::Store::from_bundle(&bundle.resources, thursday(17, 0, 0))
            .expect("tree"),
    ));
    let acpi = |store: &door_lock_cse::SharedStore| {
        store
            .read()
            .expect("store")
            .get("frontDoor")
            .expect("frontDoor")
            .acpi
            .clone()
    };
    assert_eq!(acpi(&restarted), ["acpFrontDoor"], "the file's");
    let changed =
        door_lock_cse::acpi_from_prp(&restarted, &mut stack.prp.clone(), thursday(17, 0, 0))
            .await
            .expect("read from the PRP");
    assert_eq!(changed, 1, "only frontDoor's acpi changed");
    assert_eq!(acpi(&restarted), ["acpBackDoor"], "the PRP's");
    assert_eq!(
        restarted
            .read()
            .expect("store")
            .get("backDoor")
            .expect("backDoor")
            .acpi,
        ["acpBackDoor"],
        "unchanged ones as they were"
    );
}

/// Discovery (TS-0004 7.3.3.14; spec notes §1): the target's own access
/// check is skipped, and the result is the resources under it that match
/// the filter and on which the originator holds DISCOVER (acop bit 32).
/// The front lock, given DISCOVER on the unlock container only, discovers
/// it from the front door, on which it holds no DISCOVER; `ty` criteria
/// are ORed; a `ty` that is no resource type is 4000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_what_the_originator_may_discover_ts0004_7_3_3_14() {
    let mut stack = Stack::start(Options::default()).await;
    let r = stack
        .as_(LOCK1, "GET", &format!("{FRONT}?fu=1"), &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(
        r.json()["m2m:uril"],
        serde_json::json!([]),
        "no DISCOVER yet"
    );

    let mut acp = stack
        .prp
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpFrontDoorUnlock".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .acp
        .expect("acp");
    acp.privileges
        .as_mut()
        .expect("pv")
        .rules
        .push(pb::AccessControlRule {
            originators: vec![LOCK1.0.into()],
            operations: 32,
            authentication_flag: Some(true),
            ..Default::default()
        });
    let revision = stack
        .prp
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp),
        })
        .await
        .expect("update")
        .into_inner()
        .revision;
    wait_for_revision(&stack.pdp_status, revision).await;
    let r = stack
        .as_(LOCK1, "GET", &format!("{FRONT}?fu=1"), &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(
        r.json()["m2m:uril"],
        serde_json::json!(["mn-cse-123456/Clock-AE1/frontDoor/unlock"])
    );
    // DISCOVER is not RETRIEVE: the container itself stays closed to it.
    let r = stack.as_(LOCK1, "GET", FRONT_UNLOCK, &[], "").await;
    assert_denied(&r, "the front lock retrieves the unlock container");

    // `ty` criteria are ORed (repeated or joined by `+`, percent-encoded
    // alike); a type that is no resource type is malformed.
    let containers = [
        "mn-cse-123456/Clock-AE1/frontDoor",
        "mn-cse-123456/Clock-AE2/backDoor",
        "mn-cse-123456/Clock-AE1/frontDoor/unlock",
    ];
    for query in ["fu=1&ty=2&ty=3", "fu=1&ty=2+3", "fu=1&t%79=2&ty=3"] {
        let r = stack
            .as_(OWNER, "GET", &format!("/~/mn-cse-123456?{query}"), &[], "")
            .await;
        assert_eq!((r.status, r.rsc()), (200, 2000), "{query}: {r:?}");
        let uril: Vec<String> = serde_json::from_value(r.json()["m2m:uril"].clone()).expect("uril");
        for c in containers {
            assert!(uril.iter().any(|u| u == c), "{query}: {c} in {uril:?}");
        }
        assert!(
            uril.iter().any(|u| u.ends_with("/Clock-AE1")),
            "{query}: the AEs too: {uril:?}"
        );
        assert!(
            uril.iter()
                .all(|u| !u.contains("/frontDoor/") || u.ends_with("/unlock")),
            "{query}: no contentInstances: {uril:?}"
        );
    }
    let r = stack
        .as_(OWNER, "GET", "/~/mn-cse-123456?fu=1&ty=door", &[], "")
        .await;
    assert_eq!((r.status, r.rsc()), (400, 4000), "{r:?}");
}

/// A discovery that matches no resource is still a request the PDP must
/// judge: a malformed token is 400 / 4000 (the README's layer table) and
/// a PDP that cannot decide is the fail-closed 4103, as when something
/// matches; an empty list would tell an originator with no right at all
/// that nothing of the type exists under the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_that_matches_nothing_is_judged_all_the_same() {
    let mut stack = Stack::start(Options {
        deadline: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    // `ty` 4 under the unlock container: it holds no contentInstance.
    let empty = format!("{FRONT_UNLOCK}?fu=1&ty=4");
    let r = stack.as_(OWNER, "GET", &empty, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(r.json()["m2m:uril"], serde_json::json!([]), "nothing there");
    // The same with something to list, for comparison: 4000 both ways.
    for path in [empty.clone(), format!("{FRONT}?fu=1&ty=4")] {
        let r = stack
            .as_(OWNER, "GET", &path, &[("Authorization", "not-a-token")], "")
            .await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{path}: {r:?}");
        let r = stack
            .as_(OWNER, "GET", &format!("{path}&ltids=1bad"), &[], "")
            .await;
        assert_eq!((r.status, r.rsc()), (400, 4000), "{path} ltids: {r:?}");
    }
    stack.stop_pdp().await;
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        stack.as_(OWNER, "GET", &empty, &[], ""),
    )
    .await
    .expect("an answer, not a hang");
    assert_eq!((r.status, r.rsc()), (403, 4103), "PDP stopped: {r:?}");
}

/// An acpi change the CSE answers with 2004 is in force for every request
/// after it (TS-0001 9.6.1.3.2: the new ACPs decide from then on): the CSE
/// answers once the PDP decides with the new acpi, which also drops the
/// PEP's cached decisions of the old one. The front lock's Retrieve of the
/// front door, permitted and cached under `acpFrontDoor`, is denied right
/// after the owner moves the door to `acpBackDoor`, with no wait between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acpi_change_is_in_force_when_answered_ts0001_9_6_1_3_2() {
    let stack = Stack::start(Options {
        cache: Some(CacheConfig {
            capacity: 100,
            // Long enough that only the revision can drop the entry here.
            ttl: Duration::from_secs(60),
        }),
        ..Options::default()
    })
    .await;
    let r = stack.as_(LOCK1, "GET", FRONT, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    let r = stack.as_(LOCK1, "GET", FRONT, &[], "").await;
    assert_eq!((r.status, r.rsc()), (200, 2000), "{r:?}");
    assert_eq!(stack.pep.cache_len(), 1, "the Permit is cached");
    let r = stack
        .as_(
            OWNER,
            "PUT",
            FRONT,
            &[("Content-Type", "application/json")],
            r#"{"m2m:cnt": {"acpi": ["acpBackDoor"]}}"#,
        )
        .await;
    assert_eq!((r.status, r.rsc()), (200, 2004), "{r:?}");
    let r = stack.as_(LOCK1, "GET", FRONT, &[], "").await;
    assert_denied(
        &r,
        "the front lock right after the door moved to acpBackDoor",
    );
}

/// The babysitter's rule names the `<group>` `grpBabysitters`, which the
/// PIP holds (`groups.json`), not her AE-ID: a `<group>` in `acor` grants
/// its members (TS-0001 9.6.2.1), an `acor` entry the PIP knows as a group
/// is that group (project Decision 3), and the PDP asks the PIP for the
/// membership the request does not carry (TS-0003 6.2.2 steps 006-007).
/// Who may unlock through `frontDoor/unlock` changes with the group's
/// members in the PIP, with no ACP change; the rest of the rule (window,
/// home network, `acaf`) holds for every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_babysitters_are_a_group_in_the_pip_9_6_2_1() {
    let mut stack = Stack::start(Options::default()).await;
    // Thursday 16:00, from home.
    let r = stack
        .as_(BABYSITTER, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
        .await;
    assert_created(&r, "Cbabysitter, a member of grpBabysitters");
    let r = stack.as_(GUEST, "POST", FRONT_UNLOCK, &[CIN], UNLOCK).await;
    assert_denied(&r, "Cguest, authenticated but no member");

    // The babysitter leaves: the group in the PIP no longer lists her.
    stack.put_group("grpBabysitters", &[]).await;
    let r = stack
        .as_(BABYSITTER, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
        .await;
    assert_denied(&r, "Cbabysitter out of the group");
    assert!(
        r.dbg()
            .contains("no rule of the applicable policies names the originator"),
        "{}",
        r.dbg()
    );

    // Another sitter joins, under the same rule: the window and the home
    // network hold for her too.
    stack.put_group("grpBabysitters", &[GUEST.0]).await;
    let r = stack.as_(GUEST, "POST", FRONT_UNLOCK, &[CIN], UNLOCK).await;
    assert_created(&r, "Cguest in the group");
    assert_eq!(r.json()["m2m:cin"]["cr"], "Cguest");
    let r = stack
        .as_from(GUEST, OUTSIDE, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
        .await;
    assert_denied(&r, "Cguest in the group, from outside");
    assert!(r.dbg().contains("acip"), "{}", r.dbg());
    let r = stack.as_(GUEST, "POST", FRONT, &[CIN], LOCK).await;
    assert_denied(&r, "Cguest in the group locks frontDoor");

    // The babysitter is back.
    stack.put_group("grpBabysitters", &[BABYSITTER.0]).await;
    let r = stack
        .as_(BABYSITTER, "POST", FRONT_UNLOCK, &[CIN], UNLOCK)
        .await;
    assert_created(&r, "Cbabysitter back in the group");
    let r = stack.as_(GUEST, "POST", FRONT_UNLOCK, &[CIN], UNLOCK).await;
    assert_denied(&r, "Cguest out of the group again");
}
