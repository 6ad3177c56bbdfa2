//! How the PIP answers attribute questions from its state: role
//! verification (TS-0003 7.4.3 step 4), group membership, the freshness of a
//! reported position, and countries of IP addresses and positions (Annex
//! F.2.2).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use authz_core::HostingContext;
use authz_core::request::Position;
use chrono::{DateTime, Utc};

use crate::geo::{CountryLocator, IpCountrySources, OUTSIDE_EVERY_COUNTRY};
use crate::records::PositionRecord;
use crate::state::PipState;

/// The verdict on one claimed role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleVerdict {
    /// The claimed Role-ID.
    pub role_id: String,
    /// Trusted, held by the originator and valid at the asked time.
    pub verified: bool,
    /// Why not, when not verified.
    pub reason: String,
    /// The role's validity when it exists, is trusted and is held by the
    /// originator (so that a cache can judge other times itself).
    pub validity: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The PIP's answering rules and country sources.
pub struct Resolver {
    hosting: HostingContext,
    /// Trusted Authorization Authorities, as configured and canonicalized.
    trusted: Vec<(String, Option<String>)>,
    max_position_age: Duration,
    ip: IpCountrySources,
    locator: Option<Arc<CountryLocator>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("trusted", &self.trusted)
            .field("max_position_age", &self.max_position_age)
            .field("ip_sources", &!self.ip.is_empty())
            .field("locator", &self.locator.is_some())
            .finish()
    }
}

impl Resolver {
    /// A resolver trusting `trusted_issuers` (IDs as written in a role's
    /// `tkis`), forgetting positions older than `max_position_age`.
    pub fn new(
        hosting: HostingContext,
        trusted_issuers: &[String],
        max_position_age: Duration,
        ip: IpCountrySources,
        locator: Option<Arc<CountryLocator>>,
    ) -> Self {
        let trusted = trusted_issuers
            .iter()
            .map(|t| (t.clone(), canonical_issuer(&hosting, t)))
            .collect();
        Self {
            hosting,
            trusted,
            max_position_age,
            ip,
            locator,
        }
    }

    /// The hosting CSE IDs are canonicalized with.
    pub fn hosting(&self) -> &HostingContext {
        &self.hosting
    }

    /// Whether any IP-to-country source is configured.
    pub fn has_ip_sources(&self) -> bool {
        !self.ip.is_empty()
    }

    fn is_trusted(&self, issuer: &str) -> bool {
        let canon = canonical_issuer(&self.hosting, issuer);
        self.trusted.iter().any(|(given, c)| {
            given == issuer || matches!((c, &canon), (Some(a), Some(b)) if a == b)
        })
    }

    /// TS-0003 7.4.3 step 4: the role exists, was issued by a trusted
    /// Authorization Authority, is held by exactly `originator` (absolute),
    /// and `at` lies within notBefore..=notAfter.
    pub fn verify_role(
        &self,
        state: &PipState,
        originator: &str,
        role_id: &str,
        at: DateTime<Utc>,
    ) -> RoleVerdict {
        let refuse = |reason: String, validity| RoleVerdict {
            role_id: role_id.to_owned(),
            verified: false,
            reason,
            validity,
        };
        // The originator's own `<role>` of that Role-ID; another holder's
        // says only that the originator does not hold it.
        let Some(role) = state
            .roles
            .get(&(role_id.to_owned(), originator.to_owned()))
        else {
            let other = state
                .roles
                .range((role_id.to_owned(), String::new())..)
                .next()
                .filter(|((id, _), _)| id == role_id);
            return refuse(
                match other {
                    Some((_, r)) => format!("held by {}, not by {originator}", r.holder),
                    None => "no such role in the role repository".to_owned(),
                },
                None,
            );
        };
        if !self.is_trusted(&role.issuer) {
            return refuse(
                format!(
                    "issuer {} is not a trusted Authorization Authority",
                    role.issuer
                ),
                None,
            );
        }
        if role.holder != originator {
            return refuse(
                format!("held by {}, not by {originator}", role.holder),
                None,
            );
        }
        let validity = Some((role.not_before, role.not_after));
        if at < role.not_before {
            return refuse(format!("not valid before {}", role.not_before), validity);
        }
        if at > role.not_after {
            return refuse(format!("expired at {}", role.not_after), validity);
        }
        RoleVerdict {
            role_id: role_id.to_owned(),
            verified: true,
            reason: String::new(),
            validity,
        }
    }

    /// Until when a position measured at `measured_at` may be used: at the
    /// latest the last second a protobuf Timestamp holds, so that the
    /// answer stays readable by every client.
    pub fn fresh_until(&self, measured_at: DateTime<Utc>) -> DateTime<Utc> {
        let last = DateTime::from_timestamp(authz_proto::convert::MAX_TIMESTAMP_SECONDS, 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        chrono::Duration::from_std(self.max_position_age)
            .ok()
            .and_then(|d| measured_at.checked_add_signed(d))
            .map_or(last, |t| t.min(last))
    }

    /// The subject's last position if it is usable at `at`, with the time
    /// it stops being fresh: measured at or before `at` (a fix measured
    /// after the time asked about says nothing about where the subject was
    /// then), and `at` before the end of its freshness.
    pub fn fresh_position<'s>(
        &self,
        state: &'s PipState,
        subject: &str,
        at: DateTime<Utc>,
    ) -> Option<(&'s PositionRecord, DateTime<Utc>)> {
        self.current_position(state, subject)
            .filter(|(p, until)| p.measured_at <= at && at < *until)
    }

    /// The subject's last position, with the time it stops being fresh,
    /// whatever time a request is about: what a cache keeps, judging each
    /// request time by `measured_at` and that end. (Answering "none" for a
    /// request time before the fix, or after its freshness, would be cached
    /// as "no position" for every later request.)
    pub fn current_position<'s>(
        &self,
        state: &'s PipState,
        subject: &str,
    ) -> Option<(&'s PositionRecord, DateTime<Utc>)> {
        let p = state.positions.get(subject)?;
        Some((p, self.fresh_until(p.measured_at)))
    }

    /// The countries `position` (with its uncertainty disk) may be in:
    /// [`OUTSIDE_EVERY_COUNTRY`] alone for a disk that meets no country (at
    /// sea), and empty, meaning unknown (the wire's `CountryAnswer`),
    /// without a country dataset, so that a PDP reports the country as
    /// missing rather than the originator as in no country.
    pub fn countries_of_position(&self, position: &Position) -> Vec<String> {
        match &self.locator {
            Some(l) => {
                let countries = l.countries(position.lat, position.lon, position.uncertainty_m);
                if countries.is_empty() {
                    vec![OUTSIDE_EVERY_COUNTRY.to_owned()]
                } else {
                    countries
                }
            }
            None => Vec::new(),
        }
    }

    /// The country of `ip`, if a source knows it.
    pub fn country_of_ip(&self, ip: IpAddr) -> Option<String> {
        self.ip.lookup(ip)
    }
}

/// An Authorization Authority's ID in one form, to compare issuers: an
/// AE-ID or CSE-ID in absolute form, or the SP's own domain `//fqdn` (which
/// issues Role-IDs, spec notes §7.2) lower-cased, since no originator ID is
/// an SP-ID alone.
fn canonical_issuer(hosting: &HostingContext, issuer: &str) -> Option<String> {
    match issuer.strip_prefix("//") {
        Some(fqdn) if !fqdn.is_empty() && !fqdn.contains('/') => Some(issuer.to_ascii_lowercase()),
        _ => hosting.canonicalize(issuer).ok().map(|c| c.into_owned()),
    }
}
