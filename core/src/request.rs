//! What a decision is asked about: the request parameters of TS-0003 tables
//! 7.1.2-1 (request), 7.1.2-2 (context) and 7.1.2-3 (security context), and
//! the hosting CSE the request arrived at.
//!
//! Tokens, token IDs and the other dynamic-authorization inputs of Annex G are
//! handled by the PDP before the engine runs; the engine sees their effect as
//! extra policies and extra verified roles.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::model::{Specialization, acop};

/// `m2m:operation` (TS-0004 6.3.4.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1 Create.
    Create,
    /// 2 Retrieve.
    Retrieve,
    /// 3 Update.
    Update,
    /// 4 Delete.
    Delete,
    /// 5 Notify.
    Notify,
}

impl Operation {
    /// Maps the `op` code of a request primitive; `None` for an unknown code.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::Create,
            2 => Self::Retrieve,
            3 => Self::Update,
            4 => Self::Delete,
            5 => Self::Notify,
            _ => return None,
        })
    }

    /// The `op` code of this operation.
    pub fn code(self) -> u32 {
        match self {
            Self::Create => 1,
            Self::Retrieve => 2,
            Self::Update => 3,
            Self::Delete => 4,
            Self::Notify => 5,
        }
    }

    /// The `acop` bit this operation needs. A discovery (Retrieve with
    /// filterUsage 1) needs DISCOVERY only, never RETRIEVE (TS-0003 7.1.3).
    pub fn acop_bit(self, discovery: bool) -> u32 {
        match self {
            Self::Create => acop::CREATE,
            Self::Retrieve if discovery => acop::DISCOVERY,
            Self::Retrieve => acop::RETRIEVE,
            Self::Update => acop::UPDATE,
            Self::Delete => acop::DELETE,
            Self::Notify => acop::NOTIFY,
        }
    }
}

/// A geographic position of the originator (`rq_loc`, TS-0003 Annex F).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
    /// Radius of the uncertainty disk in metres (0 when exact).
    pub uncertainty_m: f64,
}

/// One access control decision request (TS-0003 Annex G).
///
/// `repr(C)`, in the order a decision reads the fields: the target, the
/// originator, its roles and the operation first (every decision), then
/// what only some rules need.
#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct DecisionRequest {
    /// `to`: the target resource ID.
    pub target: String,
    /// `fr`: the (authenticated) originator as sent in From.
    pub originator: String,
    /// `rids`: Role-IDs the originator claims; verified by the attribute source.
    pub role_ids: Vec<String>,
    /// `op`.
    pub operation: Operation,
    /// True when the Retrieve carries filterUsage 1 (discovery).
    pub discovery: bool,
    /// True when the Update changes the target's `acpi` and nothing else
    /// (TS-0001 9.6.1.3.2): the applicable rules are then the `pvs` of the
    /// ACPs the target references now, not their `pv`
    /// ([`crate::resources::applicable_policies_for`]). The engine itself
    /// does not read it: only which ACPs, with which privileges, apply.
    pub updates_acpi: bool,
    /// `rq_authn` (table 7.1.2-3).
    pub authenticated: bool,
    /// `rq_time`: when the hosting CSE received the request.
    pub time: DateTime<Utc>,
    /// `rq_ip`: the originator's IP address.
    pub ip: Option<IpAddr>,
    /// Resource type of the target (`tgty`); needed by `acod` `ty`.
    pub target_type: Option<u32>,
    /// `rrt`: the resource type being created (CREATE only).
    pub resource_type: Option<u32>,
    /// `rq_loc` as a position, when the hosting CSE knows it.
    pub position: Option<Position>,
    /// `rq_loc` as country codes, when the hosting CSE knows them.
    pub countries: Vec<String>,
    /// `spty`: specialization of the resource being created (CREATE only).
    pub specialization: Option<Specialization>,
}

impl DecisionRequest {
    /// A request with only the mandatory parameters set; the rest empty.
    pub fn new(
        originator: impl Into<String>,
        operation: Operation,
        target: impl Into<String>,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            originator: originator.into(),
            role_ids: Vec::new(),
            operation,
            discovery: false,
            updates_acpi: false,
            target: target.into(),
            target_type: None,
            resource_type: None,
            specialization: None,
            time,
            ip: None,
            position: None,
            countries: Vec::new(),
            authenticated: false,
        }
    }

    /// The `acop` bit this request needs.
    pub fn acop_bit(&self) -> u32 {
        self.operation.acop_bit(self.discovery)
    }
}
