//! Location regions (TS-0003 Annex F; Decision 5): circles of
//! `[lat, lon, radius_m]` and ISO 3166-1 alpha-2 country codes.

use geo::{Distance, Haversine, Point};

use crate::request::Position;

/// Great-circle distance in metres between two positions (haversine, mean
/// Earth radius), ignoring their uncertainties.
pub fn distance_m(a: &Position, b: &Position) -> f64 {
    // geo's points are (x = longitude, y = latitude).
    Haversine.distance(Point::new(a.lon, a.lat), Point::new(b.lon, b.lat))
}

/// A circular region `accr` (TS-0003 F.1.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Circle {
    /// Centre latitude in degrees.
    pub lat: f64,
    /// Centre longitude in degrees.
    pub lon: f64,
    /// Radius in metres.
    pub radius_m: f64,
}

/// How far outside a circle a disk may reach and still count as inside:
/// the rounding of the haversine formula, which puts one point written two
/// ways (longitude 180 and -180, a pole at any longitude) about 1e-9 m
/// apart. A millimetre is far below any position's accuracy.
pub const ROUNDING_TOLERANCE_M: f64 = 1e-3;

impl Circle {
    /// Decision 5: the whole uncertainty disk of `p` must lie inside the
    /// circle (within [`ROUNDING_TOLERANCE_M`]).
    pub fn contains(&self, p: &Position) -> bool {
        let centre = Position {
            lat: self.lat,
            lon: self.lon,
            uncertainty_m: 0.0,
        };
        distance_m(&centre, p) + p.uncertainty_m <= self.radius_m + ROUNDING_TOLERANCE_M
    }
}

/// Is `code` an ISO 3166-1 alpha-2 shaped code (two ASCII letters)?
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A two-letter country code packed for fast comparison (upper case).
pub fn pack_country(code: &str) -> Option<u16> {
    is_country_code(code).then(|| {
        let b = code.as_bytes();
        u16::from_be_bytes([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
    })
}
