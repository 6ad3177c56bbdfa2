//! Attributes a request does not carry (TS-0003 6.2.2 steps 006–007): whether
//! a claimed role is verified, who is in a `<group>`, where the originator is,
//! which country a position or IP address is in.
//!
//! The engine asks through [`AttributeSource`] and only for what a rule it
//! evaluates needs. Calls are synchronous: the PDP answers from a local cache
//! and reports what it could not answer as [`Lookup::Unavailable`]; the engine
//! then treats the rule as not matching (TS-0003 7.1.4: indeterminate is Deny)
//! and lists the attribute in the decision so the caller can fetch it and ask
//! again. [`InMemoryAttributes`] is a complete source for tests and the CLI.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::request::Position;

/// The answer to one attribute query.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    /// The attribute has this value.
    Found(T),
    /// The source knows there is no value (not a group, no such role, no country).
    NotFound,
    /// The source could not answer (unreachable, not cached yet); the text says why.
    Unavailable(String),
}

/// Where the engine gets attributes the request does not carry.
pub trait AttributeSource: Send + Sync {
    /// Is `role_id` a role of `originator` (absolute ID) that is verified at
    /// `at` (the request time): issued by a trusted authority, held by
    /// exactly this originator, and within its validity (TS-0003 7.4.3)? A
    /// source with a clock also requires the role to be valid now ("still
    /// valid", 7.4.3 step 4), as the PDP's does. `Found(false)` and
    /// `NotFound` both mean the claim is not honoured.
    fn role_verified(&self, originator: &str, role_id: &str, at: DateTime<Utc>) -> Lookup<bool>;

    /// If `group_id` (an absolute resource ID, `//sp/cse/...`: TS-0001 7.2,
    /// Decision 2) names a `<group>`, is `originator` (absolute ID) one of
    /// its members? `NotFound` means `group_id` is not a group.
    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool>;

    /// Whether the source may know any `<group>` at all. `false` promises
    /// that [`Self::is_group`] answers no ID `Found(true)` nor
    /// `Unavailable`, so the engine skips asking it: it would otherwise ask
    /// on every decision a literal `acor` entry decides (the default: no
    /// groups). A source that cannot tell yet answers `true`.
    fn knows_groups(&self) -> bool {
        false
    }

    /// Is `group_id` (an absolute resource ID, `//sp/cse/...`) a `<group>`
    /// the source knows? `Found(true)`: it is, and an `acor` entry naming
    /// it is that group and nothing else (Decision 3): it matches the
    /// group's members, never the originator whose ID it is spelled like.
    /// `Found(false)` or `NotFound`: it is not a group. `Unavailable`: the
    /// source cannot tell yet (it is meant to answer from group IDs it
    /// holds locally, without a round trip, so this is a source that has
    /// not loaded them): the entry may be a group or an originator ID, so
    /// as an ID it is undetermined (7.1.4; Decision 10) and matches only
    /// as a group whose members the source lists. The default knows no
    /// group.
    fn is_group(&self, _group_id: &str) -> Lookup<bool> {
        Lookup::NotFound
    }

    /// Calls `visit` with the absolute resource ID (`//sp/cse/...`) of each
    /// `<group>` that has `originator` among its members and answers
    /// `Found(())`, if the source can list them at once. The engine matches
    /// `acor` entries of any form against them for the request's hosting
    /// CSE; a relative ID would be read against that CSE too, which need
    /// not be the one the source meant. The engine asks this once per decision (a visitor, so
    /// that no list is copied) and falls back to [`Self::group_has_member`]
    /// per candidate entry when the answer is not `Found` (so that an
    /// unavailable group is named in the decision).
    fn for_each_group_containing(
        &self,
        _originator: &str,
        _visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        Lookup::Unavailable("listing groups is not supported".to_owned())
    }

    /// [`Self::for_each_group_containing`], collected.
    fn groups_containing(&self, originator: &str) -> Lookup<Vec<String>> {
        let mut groups = Vec::new();
        match self.for_each_group_containing(originator, &mut |g| groups.push(g.to_owned())) {
            Lookup::Found(()) => Lookup::Found(groups),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::Unavailable(why) => Lookup::Unavailable(why),
        }
    }

    /// The last known position of `originator` that is still fresh at `at`.
    fn position(&self, originator: &str, at: DateTime<Utc>) -> Lookup<Position>;

    /// The ISO 3166-1 alpha-2 countries `position` may be in: with an
    /// uncertainty radius, every country its uncertainty disk may reach, so
    /// that a rule requiring all of them to be listed holds only when the
    /// whole disk lies in listed countries (Decision 5). `Found` with an
    /// empty list means no country (at sea). An entry that is not an
    /// alpha-2 code (the PIP answers `--` for a disk that reaches the sea)
    /// is in no `accc` list, so a country rule does not hold.
    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>>;

    /// The ISO 3166-1 alpha-2 country of `ip`.
    fn country_of_ip(&self, ip: IpAddr) -> Lookup<String>;
}

/// A source that knows nothing: every lookup is `NotFound`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAttributes;

impl AttributeSource for NoAttributes {
    fn role_verified(&self, _: &str, _: &str, _: DateTime<Utc>) -> Lookup<bool> {
        Lookup::NotFound
    }
    fn group_has_member(&self, _: &str, _: &str) -> Lookup<bool> {
        Lookup::NotFound
    }
    fn for_each_group_containing(&self, _: &str, _: &mut dyn FnMut(&str)) -> Lookup<()> {
        Lookup::Found(())
    }
    fn position(&self, _: &str, _: DateTime<Utc>) -> Lookup<Position> {
        Lookup::NotFound
    }
    fn countries_of_position(&self, _: &Position) -> Lookup<Vec<String>> {
        Lookup::NotFound
    }
    fn country_of_ip(&self, _: IpAddr) -> Lookup<String> {
        Lookup::NotFound
    }
}

/// An in-memory [`AttributeSource`] for tests and the CLI.
///
/// Positions are exact (no freshness limit); countries of positions come from
/// a list of circles, countries of IPs from a CIDR table.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAttributes {
    /// When true, every claimed role is taken as verified (the CLI's mode).
    pub trust_claimed_roles: bool,
    /// Verified roles: (absolute originator, role ID).
    pub roles: HashSet<(String, String)>,
    /// Groups by absolute resource ID (`//sp/cse/...`), with their members'
    /// absolute IDs.
    pub groups: HashMap<String, HashSet<String>>,
    /// Known positions by absolute originator ID.
    pub positions: HashMap<String, Position>,
    /// Country regions as circles: (centre, radius in metres, country code).
    pub country_circles: Vec<(Position, f64, String)>,
    /// IP prefixes to country codes.
    pub ip_countries: Vec<(IpNet, String)>,
    /// When set, every lookup answers `Unavailable` with this reason (a PIP that is down).
    pub unavailable: Option<String>,
}

impl InMemoryAttributes {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a verified role for an absolute originator ID.
    pub fn with_role(mut self, originator: &str, role_id: &str) -> Self {
        self.roles
            .insert((originator.to_owned(), role_id.to_owned()));
        self
    }

    /// Adds a group by absolute resource ID, with its members' absolute IDs.
    pub fn with_group<'a>(
        mut self,
        group_id: &str,
        members: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.groups.insert(
            group_id.to_owned(),
            members.into_iter().map(str::to_owned).collect(),
        );
        self
    }

    /// Records a position for an absolute originator ID.
    pub fn with_position(mut self, originator: &str, position: Position) -> Self {
        self.positions.insert(originator.to_owned(), position);
        self
    }

    /// Maps an IP prefix to a country.
    pub fn with_ip_country(mut self, net: IpNet, country: &str) -> Self {
        self.ip_countries.push((net, country.to_owned()));
        self
    }

    /// Declares a circular region as belonging to a country.
    pub fn with_country_circle(mut self, centre: Position, radius_m: f64, country: &str) -> Self {
        self.country_circles
            .push((centre, radius_m, country.to_owned()));
        self
    }

    fn down<T>(&self) -> Option<Lookup<T>> {
        self.unavailable
            .as_ref()
            .map(|why| Lookup::Unavailable(why.clone()))
    }
}

impl AttributeSource for InMemoryAttributes {
    fn role_verified(&self, originator: &str, role_id: &str, _at: DateTime<Utc>) -> Lookup<bool> {
        if let Some(down) = self.down() {
            return down;
        }
        Lookup::Found(
            self.trust_claimed_roles
                || self
                    .roles
                    .contains(&(originator.to_owned(), role_id.to_owned())),
        )
    }

    fn knows_groups(&self) -> bool {
        // A source that is down cannot promise that no ID is a group.
        self.unavailable.is_some() || !self.groups.is_empty()
    }

    fn is_group(&self, group_id: &str) -> Lookup<bool> {
        if let Some(down) = self.down() {
            return down;
        }
        Lookup::Found(self.groups.contains_key(group_id))
    }

    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
        if let Some(down) = self.down() {
            return down;
        }
        match self.groups.get(group_id) {
            Some(members) => Lookup::Found(members.contains(originator)),
            None => Lookup::NotFound,
        }
    }

    fn for_each_group_containing(
        &self,
        originator: &str,
        visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        if let Some(down) = self.down() {
            return down;
        }
        for (g, members) in &self.groups {
            if members.contains(originator) {
                visit(g);
            }
        }
        Lookup::Found(())
    }

    fn position(&self, originator: &str, _at: DateTime<Utc>) -> Lookup<Position> {
        if let Some(down) = self.down() {
            return down;
        }
        self.positions
            .get(originator)
            .map_or(Lookup::NotFound, |p| Lookup::Found(*p))
    }

    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>> {
        if let Some(down) = self.down() {
            return down;
        }
        // Every region the uncertainty disk reaches.
        let found: Vec<String> = self
            .country_circles
            .iter()
            .filter(|(centre, radius, _)| {
                crate::location::distance_m(centre, position) <= *radius + position.uncertainty_m
            })
            .map(|(_, _, cc)| cc.clone())
            .collect();
        if found.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::Found(found)
        }
    }

    fn country_of_ip(&self, ip: IpAddr) -> Lookup<String> {
        if let Some(down) = self.down() {
            return down;
        }
        self.ip_countries
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
            .map_or(Lookup::NotFound, |(_, cc)| Lookup::Found(cc.clone()))
    }
}
