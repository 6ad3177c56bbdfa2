//! The home gateway's resource tree, in memory: the CSEBase, the two
//! door-lock AEs (`Clock-AE1`, `Clock-AE2`, as in the developer guide's
//! credentials table), one `<container>` per door (`frontDoor`, `backDoor`)
//! and in each container the `<contentInstance>`s whose content is the lock
//! state, `LOCKED` or `UNLOCKED`. The latest one is the door's current state
//! (read through the `la` virtual resource); creating one is the command that
//! changes it.
//!
//! Unlock-command containers: a `<container>` whose parent is a door's
//! container (`frontDoor/unlock` in the example) takes unlock commands only.
//! An ACP cannot look at the content of a request, so "may unlock but not
//! lock" is given by structure: the babysitter's ACP grants CREATE of
//! contentInstances in the unlock container, and none in the door's. A
//! contentInstance created there must hold [`UNLOCK_COMMAND`] (anything else
//! is [`StoreError::Bad`], 4000); it stays there as the record of the
//! command (`cr` is who sent it), and the door's container gets an
//! `UNLOCKED` contentInstance with the same `cr`, so the door's `la` is its
//! state whichever way it was commanded. A command container starts empty.
//!
//! The tree is built from the `resources` of the policy bundle (`ri`, `pi`,
//! `ty`), the same records the PRP gets, so the CSE and the PDP agree on
//! resource IDs. Every resource's name (`rn`) is its ID, so a resource can be
//! addressed unstructured (`frontDoor`) or structured
//! (`mn-cse-123456/Clock-AE1/frontDoor`).
//!
//! Addressing and authorization targets: a contentInstance has no `acpi`
//! (TS-0001 10.2.3.1), so it and the `la`/`ol` virtual resources are
//! authorized against their container; every other resource against itself.

use std::collections::BTreeMap;

use authz_core::resources::Resource as PrpResource;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Most contentInstances a container keeps (`mni`); the oldest go first.
pub const MAX_INSTANCES: usize = 20;

/// The states a door lock can be in (the content of a contentInstance).
pub const STATES: [&str; 2] = ["LOCKED", "UNLOCKED"];

/// The only content an unlock-command container takes.
pub const UNLOCK_COMMAND: &str = "UNLOCKED";

/// Resource type codes used here (TS-0004 6.3.4.2.1).
pub mod ty {
    /// `<AE>`.
    pub const AE: u32 = 2;
    /// `<container>`.
    pub const CONTAINER: u32 = 3;
    /// `<contentInstance>`.
    pub const CONTENT_INSTANCE: u32 = 4;
    /// `<CSEBase>`.
    pub const CSE_BASE: u32 = 5;
}

/// One resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `ri`, also its `rn`.
    pub ri: String,
    /// `pi`; empty for the CSEBase.
    pub pi: String,
    /// `ty`.
    pub ty: u32,
    /// `acpi`, as the PRP has it.
    pub acpi: Vec<String>,
    /// `ct`.
    pub ct: DateTime<Utc>,
    /// `lt`.
    pub lt: DateTime<Utc>,
    /// `lbl`.
    pub lbl: Vec<String>,
    /// `con` of a contentInstance.
    pub con: Option<String>,
    /// `cr` of a contentInstance: who sent the command.
    pub cr: Option<String>,
    /// Creation order (the `st` stateTag at creation).
    pub seq: u64,
}

/// What an address names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    /// A stored resource.
    Resource(String),
    /// `<latest>` of a container.
    Latest(String),
    /// `<oldest>` of a container.
    Oldest(String),
}

impl Addressed {
    /// The resource access control is checked on: the container for its
    /// contentInstances and virtual resources, the resource itself otherwise.
    pub fn authorization_target(&self, store: &Store) -> Option<(String, u32)> {
        match self {
            Addressed::Latest(c) | Addressed::Oldest(c) => Some((c.clone(), ty::CONTAINER)),
            Addressed::Resource(ri) => {
                let r = store.get(ri)?;
                if r.ty == ty::CONTENT_INSTANCE {
                    let parent = store.get(&r.pi)?;
                    Some((parent.ri.clone(), parent.ty))
                } else {
                    Some((r.ri.clone(), r.ty))
                }
            }
        }
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The content is not acceptable (4102).
    #[error("{0}")]
    Contents(String),
    /// The request is malformed (4000).
    #[error("{0}")]
    Bad(String),
    /// The name is taken (4105).
    #[error("resource name {0} already exists")]
    Conflict(String),
    /// The operation is not allowed on this resource (4005).
    #[error("{0}")]
    NotAllowed(String),
    /// The resource does not exist (4004).
    #[error("resource {0} does not exist")]
    NotFound(String),
    /// A virtual resource (`la`, `ol`) or an addressed contentInstance
    /// names none (4004): the text says why.
    #[error("{0}")]
    NoInstance(&'static str),
    /// The content is in a serialization this CSE does not read (4015).
    #[error("{0}")]
    MediaType(String),
}

/// The resource tree.
#[derive(Debug, Clone, Default)]
pub struct Store {
    resources: BTreeMap<String, Resource>,
    cse_base: String,
    next: u64,
}

impl Store {
    /// The tree of the bundle's `resources` (CSEBase, AEs and containers;
    /// other types are skipped), each door's container starting `LOCKED`
    /// and each unlock-command container empty. Fails when there is no
    /// CSEBase or a parent is missing.
    pub fn from_bundle(resources: &[PrpResource], now: DateTime<Utc>) -> Result<Self, StoreError> {
        let mut store = Store::default();
        for r in resources {
            if ![ty::CSE_BASE, ty::AE, ty::CONTAINER].contains(&r.resource_type) {
                continue;
            }
            if r.resource_type == ty::CSE_BASE {
                store.cse_base = r.resource_id.clone();
            }
            store.resources.insert(
                r.resource_id.clone(),
                Resource {
                    ri: r.resource_id.clone(),
                    pi: r.parent_id.clone().unwrap_or_default(),
                    ty: r.resource_type,
                    acpi: r.acpi.clone().unwrap_or_default(),
                    ct: now,
                    lt: now,
                    lbl: Vec::new(),
                    con: None,
                    cr: None,
                    seq: 0,
                },
            );
        }
        if store.cse_base.is_empty() {
            return Err(StoreError::Bad("the bundle has no CSEBase (ty 5)".into()));
        }
        for r in store.resources.values() {
            if r.ty != ty::CSE_BASE && !store.resources.contains_key(&r.pi) {
                return Err(StoreError::Bad(format!(
                    "resource {}: parent {} is not in the bundle",
                    r.ri, r.pi
                )));
            }
        }
        let doors: Vec<(String, String)> = store
            .resources
            .values()
            .filter(|r| r.ty == ty::CONTAINER && store.commanded_door(&r.ri).is_none())
            .map(|r| (r.ri.clone(), r.pi.clone()))
            .collect();
        for (door, lock_ae) in doors {
            store.create_instance(&door, None, "LOCKED", &lock_ae, now)?;
        }
        Ok(store)
    }

    /// The CSEBase's resource ID.
    pub fn cse_base(&self) -> &str {
        &self.cse_base
    }

    /// A resource by ID.
    pub fn get(&self, ri: &str) -> Option<&Resource> {
        self.resources.get(ri)
    }

    /// The children of `ri`, oldest first.
    pub fn children(&self, ri: &str) -> Vec<&Resource> {
        let mut c: Vec<&Resource> = self.resources.values().filter(|r| r.pi == ri).collect();
        c.sort_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.ri.cmp(&b.ri)));
        c
    }

    /// Every descendant of `ri`, breadth first.
    pub fn descendants(&self, ri: &str) -> Vec<&Resource> {
        let mut out = Vec::new();
        let mut queue = vec![ri.to_owned()];
        while let Some(next) = queue.pop() {
            for c in self.children(&next) {
                queue.insert(0, c.ri.clone());
                out.push(c);
            }
        }
        out
    }

    /// The structured address (`cse-base/ae/container/...`) of `ri`.
    pub fn structured(&self, ri: &str) -> String {
        let mut parts = Vec::new();
        let mut at = self.get(ri);
        while let Some(r) = at {
            parts.push(r.ri.as_str());
            at = if r.pi.is_empty() {
                None
            } else {
                self.get(&r.pi)
            };
        }
        parts.reverse();
        parts.join("/")
    }

    /// What a CSE-relative address names (`""` is the CSEBase): an
    /// unstructured resource ID, or a structured path from the CSEBase's
    /// name, optionally ending in `la` or `ol` under a container.
    pub fn resolve(&self, address: &str) -> Option<Addressed> {
        if address.is_empty() {
            return Some(Addressed::Resource(self.cse_base.clone()));
        }
        let mut segments = address.split('/');
        let first = segments.next()?;
        // `-` stands for the CSEBase's name in a structured address
        // (`/~/mn-cse-123456/-/Clock-AE1`, as TS-0009's examples write it).
        let first = if first == "-" {
            self.cse_base.as_str()
        } else {
            first
        };
        let mut at = self.get(first)?;
        while let Some(seg) = segments.next() {
            if at.ty == ty::CONTAINER && (seg == "la" || seg == "ol") {
                // `la`/`ol` address a resource, not a parent: nothing may
                // follow them.
                if segments.next().is_some() {
                    return None;
                }
                let virtual_ = if seg == "la" {
                    Addressed::Latest(at.ri.clone())
                } else {
                    Addressed::Oldest(at.ri.clone())
                };
                return Some(virtual_);
            }
            at = self.get(seg).filter(|r| r.pi == at.ri)?;
        }
        Some(Addressed::Resource(at.ri.clone()))
    }

    /// The contentInstance `<latest>` or `<oldest>` stands for.
    pub fn instance(&self, addressed: &Addressed) -> Option<&Resource> {
        match addressed {
            Addressed::Resource(ri) => self.get(ri),
            Addressed::Latest(c) => self
                .children(c)
                .into_iter()
                .rfind(|r| r.ty == ty::CONTENT_INSTANCE),
            Addressed::Oldest(c) => self
                .children(c)
                .into_iter()
                .find(|r| r.ty == ty::CONTENT_INSTANCE),
        }
    }

    /// The door state of a container: its latest content.
    pub fn state(&self, container: &str) -> Option<&str> {
        self.instance(&Addressed::Latest(container.to_owned()))
            .and_then(|r| r.con.as_deref())
    }

    /// The door whose unlock-command container `container` is: its
    /// parent, when `container` is a container under a container.
    pub fn commanded_door(&self, container: &str) -> Option<&str> {
        let r = self.get(container).filter(|r| r.ty == ty::CONTAINER)?;
        self.get(&r.pi)
            .filter(|p| p.ty == ty::CONTAINER)
            .map(|p| p.ri.as_str())
    }

    /// Creates a contentInstance with content `con` in `container`, named
    /// `rn` or a generated name, and returns it. In a door's container
    /// `con` is the new state, `LOCKED` or `UNLOCKED` (else
    /// [`StoreError::Contents`]). In an unlock-command container `con` must
    /// be [`UNLOCK_COMMAND`] (else [`StoreError::Bad`]): the command is
    /// kept there and the door's container gets an `UNLOCKED`
    /// contentInstance by the same `creator`. Nothing changes on an error.
    pub fn create_instance(
        &mut self,
        container: &str,
        rn: Option<&str>,
        con: &str,
        creator: &str,
        now: DateTime<Utc>,
    ) -> Result<Resource, StoreError> {
        let parent = self
            .get(container)
            .ok_or_else(|| StoreError::NotFound(container.to_owned()))?;
        if parent.ty != ty::CONTAINER {
            return Err(StoreError::NotAllowed(format!(
                "{container} is not a container: only contentInstances are created, in a door's container"
            )));
        }
        match self.commanded_door(container).map(str::to_owned) {
            Some(door) => {
                if con != UNLOCK_COMMAND {
                    return Err(StoreError::Bad(format!(
                        "{container} takes only the unlock command (con {UNLOCK_COMMAND}), not '{con}'; \
                         other states are set in {door}"
                    )));
                }
                let command = self.insert_instance(container, rn, con, creator, now)?;
                self.insert_instance(&door, None, "UNLOCKED", creator, now)?;
                Ok(command)
            }
            None => {
                if !STATES.contains(&con) {
                    return Err(StoreError::Contents(format!(
                        "con must be LOCKED or UNLOCKED, not '{con}'"
                    )));
                }
                self.insert_instance(container, rn, con, creator, now)
            }
        }
    }

    /// Stores a contentInstance in the container `container` (checked by
    /// the caller) and drops the oldest beyond [`MAX_INSTANCES`].
    fn insert_instance(
        &mut self,
        container: &str,
        rn: Option<&str>,
        con: &str,
        creator: &str,
        now: DateTime<Utc>,
    ) -> Result<Resource, StoreError> {
        self.next += 1;
        let ri = match rn {
            Some(rn) => {
                let valid = !rn.is_empty()
                    && rn
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
                if !valid {
                    return Err(StoreError::Bad(format!("rn '{rn}' is not a valid name")));
                }
                // A path segment with a meaning of its own: `-` is the
                // CSEBase's name in a structured path, `.` and `..` are
                // what HTTP clients resolve away; a resource so named
                // would be reached at another one's address.
                if matches!(rn, "-" | "." | "..") {
                    return Err(StoreError::Bad(format!(
                        "rn '{rn}' is reserved in a resource path (the CSEBase '-', or a dot segment)"
                    )));
                }
                if self.resources.contains_key(rn) || rn == "la" || rn == "ol" {
                    return Err(StoreError::Conflict(rn.to_owned()));
                }
                rn.to_owned()
            }
            None => loop {
                // A generated name never replaces a resource named so by a
                // client.
                let ri = format!("cin{}-{}", now.format("%Y%m%dT%H%M%S"), self.next);
                if !self.resources.contains_key(&ri) {
                    break ri;
                }
                self.next += 1;
            },
        };
        let r = Resource {
            ri: ri.clone(),
            pi: container.to_owned(),
            ty: ty::CONTENT_INSTANCE,
            acpi: Vec::new(),
            ct: now,
            lt: now,
            lbl: Vec::new(),
            con: Some(con.to_owned()),
            cr: Some(creator.to_owned()),
            // Instances are ordered by creation, strictly even when a fixed
            // clock gives them the same time.
            seq: self.next,
        };
        self.resources.insert(ri, r.clone());
        let instances: Vec<String> = self
            .children(container)
            .into_iter()
            .filter(|c| c.ty == ty::CONTENT_INSTANCE)
            .map(|c| c.ri.clone())
            .collect();
        for old in instances
            .iter()
            .take(instances.len().saturating_sub(MAX_INSTANCES))
        {
            self.resources.remove(old);
        }
        Ok(r)
    }

    /// Updates the labels of a container.
    pub fn update_labels(
        &mut self,
        ri: &str,
        lbl: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Resource, StoreError> {
        let r = self
            .resources
            .get_mut(ri)
            .ok_or_else(|| StoreError::NotFound(ri.to_owned()))?;
        if r.ty != ty::CONTAINER {
            return Err(StoreError::NotAllowed(
                "only a container's labels can be updated in this example".into(),
            ));
        }
        r.lbl = lbl;
        r.lt = now;
        Ok(r.clone())
    }

    /// Sets the `acpi` of a resource that has one (the CSEBase, an AE, a
    /// container; a contentInstance has none); empty means not set.
    pub fn update_acpi(
        &mut self,
        ri: &str,
        acpi: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Resource, StoreError> {
        let r = self
            .resources
            .get_mut(ri)
            .ok_or_else(|| StoreError::NotFound(ri.to_owned()))?;
        if r.ty == ty::CONTENT_INSTANCE {
            return Err(StoreError::Bad(
                "a contentInstance has no acpi to change".into(),
            ));
        }
        r.acpi = acpi;
        r.lt = now;
        Ok(r.clone())
    }

    /// The resources that have an `acpi` (every one but contentInstances).
    pub fn ids_with_acpi(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .resources
            .values()
            .filter(|r| r.ty != ty::CONTENT_INSTANCE)
            .map(|r| r.ri.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Deletes a contentInstance.
    pub fn delete_instance(&mut self, ri: &str) -> Result<Resource, StoreError> {
        match self.resources.get(ri) {
            None => Err(StoreError::NotFound(ri.to_owned())),
            Some(r) if r.ty != ty::CONTENT_INSTANCE => Err(StoreError::NotAllowed(
                "only contentInstances can be deleted in this example".into(),
            )),
            Some(_) => self
                .resources
                .remove(ri)
                .ok_or_else(|| StoreError::NotFound(ri.to_owned())),
        }
    }

    /// The oneM2M JSON representation (`m2m:cb`, `m2m:ae`, `m2m:cnt`,
    /// `m2m:cin`) with short names.
    pub fn to_json(&self, r: &Resource, cse_id: &str) -> Value {
        let ts = |t: DateTime<Utc>| authz_core::json::format_timestamp(t);
        let mut body = json!({
            "ri": r.ri, "rn": r.ri, "ty": r.ty,
            "ct": ts(r.ct), "lt": ts(r.lt),
        });
        if !r.pi.is_empty() {
            body["pi"] = json!(r.pi);
        }
        if !r.acpi.is_empty() {
            body["acpi"] = json!(r.acpi);
        }
        if !r.lbl.is_empty() {
            body["lbl"] = json!(r.lbl);
        }
        match r.ty {
            ty::CSE_BASE => {
                body["csi"] = json!(cse_id);
                body["cst"] = json!(2); // MN-CSE
                body["srt"] = json!([2, 3, 4, 5]);
            }
            ty::AE => {
                body["aei"] = json!(r.ri);
                body["api"] = json!(format!("Nlock.{}", r.ri));
                body["rr"] = json!(false);
            }
            ty::CONTAINER => {
                let instances: Vec<&Resource> = self
                    .children(&r.ri)
                    .into_iter()
                    .filter(|c| c.ty == ty::CONTENT_INSTANCE)
                    .collect();
                body["cni"] = json!(instances.len());
                body["cbs"] = json!(
                    instances
                        .iter()
                        .map(|c| c.con.as_deref().map_or(0, str::len))
                        .sum::<usize>()
                );
                body["mni"] = json!(MAX_INSTANCES);
                body["st"] = json!(self.next);
            }
            _ => {
                let con = r.con.clone().unwrap_or_default();
                body["cs"] = json!(con.len());
                body["cnf"] = json!("text/plain:0");
                body["con"] = json!(con);
                if let Some(cr) = &r.cr {
                    body["cr"] = json!(cr);
                }
            }
        }
        json!({ root_name(r.ty): body })
    }
}

/// The JSON root of a resource of type `ty` in this CSE (TS-0004 8.2.4
/// short names; every type but the CSEBase, AE and container is a
/// contentInstance here).
pub fn root_name(ty: u32) -> &'static str {
    match ty {
        ty::CSE_BASE => "m2m:cb",
        ty::AE => "m2m:ae",
        ty::CONTAINER => "m2m:cnt",
        _ => "m2m:cin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let bundle: Vec<PrpResource> = serde_json::from_value(json!([
            {"ri": "mn-cse-123456", "ty": 5, "acpi": ["acpHome"]},
            {"ri": "Clock-AE1", "pi": "mn-cse-123456", "ty": 2, "acpi": ["acpFrontDoor"]},
            {"ri": "frontDoor", "pi": "Clock-AE1", "ty": 3, "acpi": ["acpFrontDoor"]},
            {"ri": "unlock", "pi": "frontDoor", "ty": 3, "acpi": ["acpFrontDoorUnlock"]}
        ]))
        .expect("resources");
        Store::from_bundle(&bundle, Utc::now()).expect("store")
    }

    #[test]
    fn addresses() {
        let s = store();
        assert_eq!(
            s.resolve(""),
            Some(Addressed::Resource("mn-cse-123456".into()))
        );
        assert_eq!(
            s.resolve("frontDoor"),
            Some(Addressed::Resource("frontDoor".into()))
        );
        assert_eq!(
            s.resolve("mn-cse-123456/Clock-AE1/frontDoor/la"),
            Some(Addressed::Latest("frontDoor".into()))
        );
        assert_eq!(
            s.resolve("frontDoor/ol"),
            Some(Addressed::Oldest("frontDoor".into()))
        );
        assert_eq!(
            s.resolve("-/Clock-AE1/frontDoor/la"),
            Some(Addressed::Latest("frontDoor".into())),
            "- for the CSEBase's name"
        );
        assert_eq!(s.resolve("-/frontDoor"), None, "not a child of the CSEBase");
        assert_eq!(
            s.resolve("-"),
            Some(Addressed::Resource("mn-cse-123456".into()))
        );
        assert_eq!(
            s.resolve("mn-cse-123456/frontDoor"),
            None,
            "not a child of the CSEBase"
        );
        assert_eq!(s.resolve("nothing"), None);
        // Nothing is under `la` or `ol`.
        assert_eq!(s.resolve("frontDoor/la/garbage"), None);
        assert_eq!(s.resolve("frontDoor/ol/x/y"), None);
        assert_eq!(
            s.structured("frontDoor"),
            "mn-cse-123456/Clock-AE1/frontDoor"
        );
        assert_eq!(s.state("frontDoor"), Some("LOCKED"));
        assert_eq!(
            s.resolve("frontDoor/unlock"),
            Some(Addressed::Resource("unlock".into()))
        );
        assert_eq!(
            s.structured("unlock"),
            "mn-cse-123456/Clock-AE1/frontDoor/unlock"
        );
        assert_eq!(s.commanded_door("unlock"), Some("frontDoor"));
        assert_eq!(s.commanded_door("frontDoor"), None);
        assert_eq!(s.state("unlock"), None, "a command container starts empty");
    }

    /// A contentInstance named `-`, `.` or `..` would be addressed as the
    /// CSEBase (`-`) or resolved away by HTTP clients (`.`, `..`), so its
    /// Content-Location would point at another resource: refused (4000).
    #[test]
    fn names_with_a_meaning_in_a_path_are_refused() {
        let mut s = store();
        let now = Utc::now();
        let before = s.children("frontDoor").len();
        for rn in ["-", ".", ".."] {
            let err = s
                .create_instance("frontDoor", Some(rn), "LOCKED", "CownerPhone", now)
                .expect_err(rn);
            assert!(
                matches!(err, StoreError::Bad(ref m) if m.contains("reserved")),
                "{rn}: {err:?}"
            );
        }
        assert_eq!(s.children("frontDoor").len(), before, "nothing stored");
        s.create_instance("frontDoor", Some("a.b-c"), "LOCKED", "CownerPhone", now)
            .expect("dots and dashes inside a name are fine");
    }

    #[test]
    fn an_unlock_command_unlocks_the_door_and_nothing_else_is_taken() {
        let mut s = store();
        let now = Utc::now();
        let command = s
            .create_instance("unlock", Some("u1"), "UNLOCKED", "Cbabysitter", now)
            .expect("unlock command");
        assert_eq!((command.pi.as_str(), command.ri.as_str()), ("unlock", "u1"));
        let state = s
            .instance(&Addressed::Latest("frontDoor".into()))
            .expect("state")
            .clone();
        assert_eq!(state.con.as_deref(), Some("UNLOCKED"));
        assert_eq!(state.cr.as_deref(), Some("Cbabysitter"));

        s.create_instance("frontDoor", None, "LOCKED", "CownerPhone", now)
            .expect("lock");
        let before = s.clone();
        for (con, rn) in [("LOCKED", None), ("OPEN", None), ("UNLOCKED", Some("u1"))] {
            let err = s
                .create_instance("unlock", rn, con, "Cbabysitter", now)
                .expect_err(con);
            let expected_bad = rn.is_none();
            assert_eq!(matches!(err, StoreError::Bad(_)), expected_bad, "{err:?}");
        }
        assert_eq!(s.state("frontDoor"), Some("LOCKED"));
        assert_eq!(s.children("unlock").len(), 1, "only the first command");
        assert_eq!(
            s.children("frontDoor").len(),
            before.children("frontDoor").len()
        );
    }

    #[test]
    fn commands_change_the_state() {
        let mut s = store();
        let now = Utc::now();
        s.create_instance("frontDoor", None, "UNLOCKED", "CownerPhone", now)
            .expect("unlock");
        assert_eq!(s.state("frontDoor"), Some("UNLOCKED"));
        assert!(matches!(
            s.create_instance("frontDoor", None, "OPEN", "CownerPhone", now),
            Err(StoreError::Contents(_))
        ));
        assert!(matches!(
            s.create_instance("Clock-AE1", None, "LOCKED", "CownerPhone", now),
            Err(StoreError::NotAllowed(_))
        ));
        for _ in 0..(MAX_INSTANCES + 5) {
            s.create_instance("frontDoor", None, "LOCKED", "Clock-AE1", now)
                .expect("lock");
        }
        let n = s
            .children("frontDoor")
            .iter()
            .filter(|r| r.ty == ty::CONTENT_INSTANCE)
            .count();
        assert_eq!(n, MAX_INSTANCES);
        let latest = s
            .instance(&Addressed::Latest("frontDoor".into()))
            .expect("latest")
            .clone();
        let target = Addressed::Resource(latest.ri.clone()).authorization_target(&s);
        assert_eq!(target, Some(("frontDoor".to_owned(), ty::CONTAINER)));
    }
}
