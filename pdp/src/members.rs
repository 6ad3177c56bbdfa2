//! `<group>` members given as resource IDs (TS-0001 9.6.2.1; spec notes
//! §2.4).
//!
//! A `<group>` lists its members in `mid` by the resource IDs of `<AE>` and
//! `<remoteCSE>` resources, while a request names its originator by AE-ID or
//! CSE-ID. The PRP records those IDs as the `aei` of an `<AE>` and the `csi`
//! of a `<remoteCSE>`, and the PDP's replica indexes them
//! ([`Snapshot::member_resources`]). [`WithMemberResources`] wraps the
//! attribute source of one decision so that the engine's group questions
//! about the originator cover the groups that list the originator itself
//! (members given as AE-IDs or CSE-IDs, as before) or any resource standing
//! for it.
//!
//! The resources are looked up only when the engine asks about groups,
//! which it does only after no rule naming the originator directly
//! permitted: a Permit by such a rule costs nothing more.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;

use authz_core::HostingContext;
use authz_core::attributes::{AttributeSource, Lookup};
use authz_core::request::Position;
use chrono::{DateTime, Utc};

use crate::replica::Snapshot;

/// An [`AttributeSource`] for one decision whose group answers also cover
/// the resources that stand for the originator in `<group>` member lists.
pub struct WithMemberResources<'a> {
    inner: &'a dyn AttributeSource,
    snap: &'a Snapshot,
    hosting: &'a HostingContext,
    /// The decision's originator (absolute), when known up front.
    originator: Option<&'a str>,
    /// Its resources (absolute IDs), once looked up.
    found: OnceLock<Vec<String>>,
}

impl<'a> WithMemberResources<'a> {
    /// Wraps `inner` for a decision against `snap`, whose originator was
    /// canonicalized with `hosting`. With `originator` (absolute), its
    /// resources are looked up once and kept
    /// ([`WithMemberResources::member_resources`]); without, at each
    /// question (a hash lookup that nearly always misses).
    pub fn new(
        inner: &'a dyn AttributeSource,
        snap: &'a Snapshot,
        hosting: &'a HostingContext,
        originator: Option<&'a str>,
    ) -> Self {
        Self {
            inner,
            snap,
            hosting,
            originator,
            found: OnceLock::new(),
        }
    }

    /// The resource IDs found for the originator given to
    /// [`WithMemberResources::new`], once the engine asked about its groups
    /// (`None` before): what a fetch has to ask the PIP about besides the
    /// originator.
    pub fn member_resources(&self) -> Option<&[String]> {
        self.found.get().map(Vec::as_slice)
    }

    fn resources_of(&self, originator: &str) -> Cow<'_, [String]> {
        match self.originator {
            Some(o) if o == originator => Cow::Borrowed(
                self.found
                    .get_or_init(|| self.snap.member_resources(self.hosting, o)),
            ),
            _ => Cow::Owned(self.snap.member_resources(self.hosting, originator)),
        }
    }
}

/// Whether a group lists the originator or one of its resources, from the
/// answers for each: a listing wins; otherwise an unavailable answer makes
/// the whole unavailable (the rule then names the group as missing).
fn either(a: Lookup<bool>, b: Lookup<bool>) -> Lookup<bool> {
    match (a, b) {
        (Lookup::Found(true), _) | (_, Lookup::Found(true)) => Lookup::Found(true),
        (Lookup::Unavailable(why), _) | (_, Lookup::Unavailable(why)) => Lookup::Unavailable(why),
        (Lookup::Found(false), _) | (_, Lookup::Found(false)) => Lookup::Found(false),
        (Lookup::NotFound, Lookup::NotFound) => Lookup::NotFound,
    }
}

impl AttributeSource for WithMemberResources<'_> {
    fn role_verified(&self, originator: &str, role_id: &str, at: DateTime<Utc>) -> Lookup<bool> {
        self.inner.role_verified(originator, role_id, at)
    }

    fn knows_groups(&self) -> bool {
        self.inner.knows_groups()
    }

    // Whether an ID is a group does not depend on who asks.
    fn is_group(&self, group_id: &str) -> Lookup<bool> {
        self.inner.is_group(group_id)
    }

    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
        let mut answer = self.inner.group_has_member(group_id, originator);
        for id in self.resources_of(originator).iter() {
            if matches!(answer, Lookup::Found(true)) {
                break;
            }
            answer = either(answer, self.inner.group_has_member(group_id, id));
        }
        answer
    }

    fn for_each_group_containing(
        &self,
        originator: &str,
        visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        let ids = self.resources_of(originator);
        if ids.is_empty() {
            return self.inner.for_each_group_containing(originator, visit);
        }
        let mut groups: Vec<String> = Vec::new();
        for id in std::iter::once(originator).chain(ids.iter().map(String::as_str)) {
            match self
                .inner
                .for_each_group_containing(id, &mut |g| groups.push(g.to_owned()))
            {
                Lookup::Found(()) => {}
                other => return other,
            }
        }
        groups.sort_unstable();
        groups.dedup();
        for g in &groups {
            visit(g);
        }
        Lookup::Found(())
    }

    fn position(&self, originator: &str, at: DateTime<Utc>) -> Lookup<Position> {
        self.inner.position(originator, at)
    }

    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>> {
        self.inner.countries_of_position(position)
    }

    fn country_of_ip(&self, ip: IpAddr) -> Lookup<String> {
        self.inner.country_of_ip(ip)
    }
}

#[cfg(test)]
mod tests {
    use authz_core::attributes::InMemoryAttributes;
    use authz_proto::pb;
    use authz_proto::pb::watch_event::Event;

    use super::*;
    use crate::replica::Replica;

    const SP: &str = "//sp.example.com";

    fn hosting() -> HostingContext {
        HostingContext::new(SP, "/id-in").expect("hosting")
    }

    fn ae(id: &str, aei: &str) -> pb::TargetResource {
        pb::TargetResource {
            resource_id: id.into(),
            parent_id: "cb".into(),
            resource_type: 2,
            ae_id: aei.into(),
            ..Default::default()
        }
    }

    fn replica(resources: Vec<pb::TargetResource>) -> Replica {
        let r = Replica::new(None);
        r.apply_event(&pb::WatchEvent {
            revision: 1,
            tag: 0,
            event: Some(Event::Snapshot(pb::Snapshot {
                resources,
                ..Default::default()
            })),
        })
        .expect("snapshot");
        r
    }

    /// Spec notes §2.4: a group whose `mid` is the resource ID of an `<AE>`
    /// has the AE's originator (its `aei`) as member; a member given as an
    /// AE-ID still counts; nobody else is a member.
    #[test]
    fn groups_listing_the_originators_resource_count_as_its_own() {
        let r = replica(vec![
            ae("ae-light", "Clight"),
            ae("/id-in/ae-fan", "//sp.example.com/id-in/Cfan"),
        ]);
        let snap = r.load();
        let h = hosting();
        let attrs = InMemoryAttributes::default()
            .with_group(
                "//sp.example.com/id-in/grpLights",
                ["//sp.example.com/id-in/ae-light"],
            )
            .with_group(
                "//sp.example.com/id-in/grpFans",
                ["//sp.example.com/id-in/ae-fan"],
            )
            .with_group(
                "//sp.example.com/id-in/grpIds",
                ["//sp.example.com/id-in/Cbob"],
            );
        let light = "//sp.example.com/id-in/Clight";
        let source = WithMemberResources::new(&attrs, &snap, &h, Some(light));
        assert_eq!(source.member_resources(), None);
        assert_eq!(
            source.groups_containing(light),
            Lookup::Found(vec!["//sp.example.com/id-in/grpLights".to_owned()])
        );
        assert_eq!(
            source.member_resources(),
            Some(&["//sp.example.com/id-in/ae-light".to_owned()][..])
        );
        assert_eq!(
            source.group_has_member("//sp.example.com/id-in/grpLights", light),
            Lookup::Found(true)
        );
        assert_eq!(
            source.group_has_member("//sp.example.com/id-in/grpFans", light),
            Lookup::Found(false)
        );
        // An absolute aei and an SP-relative resource ID.
        let fan = WithMemberResources::new(&attrs, &snap, &h, None);
        assert_eq!(
            fan.groups_containing("//sp.example.com/id-in/Cfan"),
            Lookup::Found(vec!["//sp.example.com/id-in/grpFans".to_owned()])
        );
        // A member given as an AE-ID, as before.
        let bob_id = "//sp.example.com/id-in/Cbob";
        let bob = WithMemberResources::new(&attrs, &snap, &h, Some(bob_id));
        assert_eq!(
            bob.groups_containing(bob_id),
            Lookup::Found(vec!["//sp.example.com/id-in/grpIds".to_owned()])
        );
        assert_eq!(bob.member_resources(), Some(&[][..]));
        // Another originator whose ID ends like the AE-ID's is not the AE.
        let other_id = "//sp.example.com/mn-cse/Clight";
        let other = WithMemberResources::new(&attrs, &snap, &h, Some(other_id));
        assert_eq!(other.groups_containing(other_id), Lookup::Found(vec![]));
        assert_eq!(other.member_resources(), Some(&[][..]));
    }

    /// Decision 2: an `aei` stem names an AE of the CSE that hosts the
    /// `<AE>` resource. With the resource's ID naming its CSE (`/id-in/...`),
    /// the stem `Clight` is `//sp/id-in/Clight`, whichever CSE the request
    /// comes through: the AE `Clight` of another CSE is not that member.
    #[test]
    fn an_aei_stem_is_an_ae_of_the_resource_cse() {
        let r = replica(vec![ae("/id-in/ae-light", "Clight")]);
        let via_mn = HostingContext::new(SP, "/mn-cse").expect("hosting");
        let other = "//sp.example.com/mn-cse/Clight";
        assert!(r.load().member_resources(&via_mn, other).is_empty());
        let light = "//sp.example.com/id-in/Clight";
        assert_eq!(
            r.load().member_resources(&via_mn, light),
            vec!["//sp.example.com/id-in/ae-light".to_owned()]
        );
        assert_eq!(r.load().member_resources(&hosting(), light).len(), 1);
    }

    /// A remoteCSE's `csi`, and the index following a changed `aei` and a
    /// deleted resource.
    #[test]
    fn the_index_follows_changes_and_remote_cses() {
        let r = replica(vec![
            ae("ae-light", "Clight"),
            pb::TargetResource {
                resource_id: "csr-mn".into(),
                parent_id: "cb".into(),
                resource_type: 16,
                cse_id: "/mn-cse".into(),
                ..Default::default()
            },
        ]);
        let h = hosting();
        let mn = "//sp.example.com/mn-cse";
        let light = "//sp.example.com/id-in/Clight";
        assert_eq!(
            r.load().member_resources(&h, mn),
            vec!["//sp.example.com/id-in/csr-mn".to_owned()]
        );
        assert_eq!(r.load().member_resources(&h, light).len(), 1);
        r.apply_event(&pb::WatchEvent {
            revision: 2,
            tag: 0,
            event: Some(Event::ResourcePut(ae("ae-light", "Cdark"))),
        })
        .expect("put");
        assert!(r.load().member_resources(&h, light).is_empty());
        assert_eq!(
            r.load()
                .member_resources(&h, "//sp.example.com/id-in/Cdark")
                .len(),
            1
        );
        r.apply_event(&pb::WatchEvent {
            revision: 3,
            tag: 0,
            event: Some(Event::ResourceDeleted("ae-light".into())),
        })
        .expect("delete");
        let snap = r.load();
        assert!(
            snap.member_resources(&h, "//sp.example.com/id-in/Cdark")
                .is_empty()
        );
        assert!(!snap.member_index.contains_key("Cdark"));
        assert!(!snap.member_index.contains_key("Clight"));
    }

    /// An unavailable answer for the resource makes the membership
    /// unavailable unless the originator itself is listed.
    #[test]
    fn an_unavailable_resource_answer_is_unavailable() {
        assert_eq!(
            either(Lookup::Found(false), Lookup::Unavailable("down".into())),
            Lookup::Unavailable("down".into())
        );
        assert_eq!(
            either(Lookup::Found(true), Lookup::Unavailable("down".into())),
            Lookup::Found(true)
        );
        assert_eq!(
            either(Lookup::NotFound, Lookup::Found(false)),
            Lookup::Found(false)
        );
        assert_eq!(either(Lookup::NotFound, Lookup::NotFound), Lookup::NotFound);
    }
}
