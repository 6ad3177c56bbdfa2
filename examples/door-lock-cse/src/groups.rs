//! The example's `<group>`s: `examples/door-lock-cse/groups.json`, kept by
//! the PIP (TS-0003 6.2.2 steps 006-007: the attributes a decision request
//! does not carry), which the PDP asks whether an originator is a member of
//! a group an `acor` names (TS-0001 9.6.2.1; project Decision 3: an `acor`
//! entry the PIP knows as a `<group>` is a group).
//!
//! The babysitter's rule names the group `grpBabysitters`, not her AE-ID:
//! the owner changes who may unlock through the unlock container by
//! changing the group's members in the PIP, with no ACP change.
//!
//! The file holds `{"groups": [{"m2m:grp": {"ri": ..., "mid": [...]}}]}`:
//! each group's resource ID (`ri`, as `acor` names it; read against the
//! hosting CSE) and its `mid` memberIDs (originator IDs). Other attributes
//! of a `<group>` are ignored.

use authz_core::HostingContext;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use serde::Deserialize;
use tonic::transport::Channel;

/// The example's own groups: `examples/door-lock-cse/groups.json`.
pub const DEFAULT_GROUPS: &str = include_str!("../groups.json");

/// One `<group>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Group {
    /// `ri`: the resource ID `acor` entries name the group by.
    pub ri: String,
    /// `mid`: the members' originator IDs.
    #[serde(default)]
    pub mid: Vec<String>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "m2m:grp")]
    grp: Group,
}

#[derive(Deserialize)]
struct File {
    groups: Vec<Entry>,
}

/// Why the groups could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    /// The file is not `{"groups": [{"m2m:grp": {"ri", "mid"}}]}`.
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
    /// A group without a resource ID.
    #[error("groups[{0}]: ri is empty")]
    NoId(usize),
    /// The PIP refused a write or a read.
    // The status as the bundle's errors give it: code, message and the
    // transport error's causes (a TLS alert), not tonic's debug dump.
    #[error("PIP, group {ri}: {}", authz_prp::bundle::status_text(.status))]
    Refused {
        /// The group.
        ri: String,
        /// The PIP's answer.
        status: Box<tonic::Status>,
    },
}

/// Parses a groups file.
pub fn parse(text: &str) -> Result<Vec<Group>, GroupsError> {
    // As every JSON file of the project: a BOM skipped, a repeated key
    // refused; then read again for errors with their line and column.
    authz_core::json::parse_json(text)?;
    let file: File = serde_json::from_str(text.trim_start_matches('\u{feff}'))?;
    let groups: Vec<Group> = file.groups.into_iter().map(|e| e.grp).collect();
    if let Some(i) = groups.iter().position(|g| g.ri.trim().is_empty()) {
        return Err(GroupsError::NoId(i));
    }
    Ok(groups)
}

/// The ID a group of this CSE is stored under: its absolute form
/// (`//sp/cse-id/ri` for a CSE-relative `ri`, `//sp/...` for an
/// SP-relative one), so that the PIP files it as this CSE's group, and
/// reads its relative members as this CSE's AEs, whatever SP-ID and
/// CSE-ID the PIP serves (TS-0001 7.2). An `ri` that is no resource ID is
/// sent as written, for the PIP to refuse naming it.
pub fn stored_id(cse: &HostingContext, ri: &str) -> String {
    authz_core::ids::canonical_resource_id(ri, cse).unwrap_or_else(|_| ri.to_owned())
}

/// Stores each group of the hosting CSE `cse` in the PIP as
/// `originator` (`PutGroup` replaces a group of the same ID, see
/// [`stored_id`]); returns the PIP revision the writes are in.
pub async fn apply(
    pip: &mut PolicyInformationPointClient<Channel>,
    originator: &str,
    cse: &HostingContext,
    groups: &[Group],
) -> Result<u64, GroupsError> {
    let refused = |ri: &str, status| GroupsError::Refused {
        ri: ri.to_owned(),
        status: Box::new(status),
    };
    for g in groups {
        pip.put_group(pb::PutGroupRequest {
            originator: originator.to_owned(),
            group: Some(pb::Group {
                group_id: stored_id(cse, &g.ri),
                member_ids: g.mid.clone(),
            }),
        })
        .await
        .map_err(|s| refused(&g.ri, s))?;
    }
    // PutGroup answers with the group, not the revision: a listing does.
    let listing = pip
        .list_groups(pb::ListGroupsRequest { ids_only: true })
        .await
        .map_err(|s| refused("*", s))?;
    Ok(listing.into_inner().revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As every JSON file of the project (README: "A leading byte order
    /// mark ... is skipped (RFC 8259 8.1)"; a repeated key is refused).
    #[test]
    fn a_bom_is_skipped_and_a_repeated_key_refused() {
        let bom = format!("\u{feff}{DEFAULT_GROUPS}");
        assert_eq!(
            parse(&bom).expect("with a BOM"),
            parse(DEFAULT_GROUPS).expect("groups")
        );
        let twice = r#"{"groups": [{"m2m:grp": {"ri": "g", "ri": "h"}}]}"#;
        match parse(twice) {
            Err(GroupsError::Parse(e)) => assert!(e.to_string().contains("ri"), "{e}"),
            other => panic!("a repeated key read: {other:?}"),
        }
    }

    #[test]
    fn the_shipped_groups_parse() {
        let groups = parse(DEFAULT_GROUPS).expect("groups.json");
        assert_eq!(
            groups,
            [Group {
                ri: "grpBabysitters".into(),
                mid: vec!["Cbabysitter".into()],
            }]
        );
        assert!(matches!(
            parse(r#"{"groups": [{"m2m:grp": {"ri": " "}}]}"#),
            Err(GroupsError::NoId(0))
        ));
        assert!(matches!(
            parse(r#"{"groups": [{"ri": "g"}]}"#),
            Err(GroupsError::Parse(_))
        ));
    }
}
