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
/// apart. A micrometre covers that, and no more: a disk a millimetre
/// outside is outside (Decision 5 says distance + uncertainty <= radius).
pub const ROUNDING_TOLERANCE_M: f64 = 1e-6;

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

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted, two
/// bytes each.
const ASSIGNED: &[u8; 498] = b"\
ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFR\
GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISIT\
JEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLY\
MAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOM\
PAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURW\
SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ\
UAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// The country whose part an exceptionally reserved ISO 3166-1 code names
/// (`IC`, the Canary Islands: `ES`), or that it stands for (`UK`: `GB`):
/// no country code itself, but IP databases and the boundaries dataset use
/// some of them, and authors write `UK` for `GB`.
pub fn reserved_code_country(code: &str) -> Option<&'static str> {
    Some(match code {
        "IC" | "EA" => "ES",
        "AC" | "TA" => "SH",
        "CP" => "FR",
        "DG" => "IO",
        "CQ" => "GG",
        "UK" => "GB",
        "EL" => "GR",
        _ => return None,
    })
}

/// Is `code` an officially assigned ISO 3166-1 alpha-2 code, or `XK`
/// (Kosovo), in either case? Spec notes §2.1: `accc` lists such codes; one
/// that is not assigned (`UK`, `XX`) names no country and would never match.
pub fn is_country_code(code: &str) -> bool {
    let [a, b] = code.as_bytes() else {
        return false;
    };
    let upper = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    // `XK`, Kosovo, is user-assigned in ISO 3166-1 but the code IP
    // databases, the PIP's boundaries dataset and the EU use for it: a
    // policy must be able to name a country the PIP can answer.
    ASSIGNED.as_chunks::<2>().0.binary_search(&upper).is_ok() || upper == *b"XK"
}

/// Why `code` is no country code as [`is_country_code`] reads them, for an
/// error that names its field; `None` when it is one.
pub fn country_code_fault(code: &str) -> Option<String> {
    if is_country_code(code) {
        return None;
    }
    if code.len() != 2 {
        return Some(format!(
            "'{}' is not an ISO 3166-1 alpha-2 country code (two letters)",
            code.escape_debug()
        ));
    }
    Some(match reserved_code_country(&code.to_ascii_uppercase()) {
        Some(country) => format!(
            "'{code}' is a reserved code, not an assigned ISO 3166-1 alpha-2 country code: \
             the place it names is in {country}"
        ),
        None => format!(
            "'{}' is not an assigned ISO 3166-1 alpha-2 country code",
            code.escape_debug()
        ),
    })
}

/// A two-letter country code packed for fast comparison (upper case).
pub fn pack_country(code: &str) -> Option<u16> {
    is_country_code(code).then(|| {
        let b = code.as_bytes();
        u16::from_be_bytes([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec notes §2.1: `accc` holds ISO 3166-1 alpha-2 codes; the 249
    /// assigned ones (as of 2024: an independent list, less the six
    /// uninhabited territories AQ BV GS HM TF UM, held 243 of these).
    #[test]
    fn the_assigned_codes_are_249_sorted_and_case_blind() {
        let codes = ASSIGNED.as_chunks::<2>().0;
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
        for c in ["DE", "de", "Gb", "AQ", "UM", "SS", "XK", "xk"] {
            assert!(is_country_code(c), "{c}");
        }
        for c in ["XX", "ZZ", "EU", "UK", "IC", "D1", "DEU", "", "é"] {
            assert!(!is_country_code(c), "{c}");
        }
    }

    #[test]
    fn a_reserved_code_is_refused_naming_its_country() {
        let m = country_code_fault("UK").unwrap_or_default();
        assert!(
            m.contains("'UK' is a reserved code") && m.ends_with("GB"),
            "{m}"
        );
        let m = country_code_fault("ic").unwrap_or_default();
        assert!(m.ends_with("is in ES"), "{m}");
        let m = country_code_fault("XX").unwrap_or_default();
        assert!(
            m.contains("'XX' is not an assigned ISO 3166-1 alpha-2"),
            "{m}"
        );
        let m = country_code_fault("DEU").unwrap_or_default();
        assert!(m.contains("(two letters)"), "{m}");
        assert_eq!(country_code_fault("fr"), None);
    }

    fn at(lat: f64, lon: f64) -> Position {
        Position {
            lat,
            lon,
            uncertainty_m: 0.0,
        }
    }

    /// Decision 5: circles are measured by haversine on a sphere of the
    /// mean Earth radius, 6 371 008.8 m (what the README and the proto
    /// say): one degree of the equator is that radius times pi/180, and a
    /// metre more than the haversine distance near the pole is outside,
    /// although the WGS 84 ellipsoid measures the same points 4.5 m apart.
    #[test]
    fn circles_are_haversine_on_the_mean_earth_radius_decision_5() {
        let degree = 6_371_008.8 * std::f64::consts::PI / 180.0;
        assert!((distance_m(&at(0.0, 0.0), &at(0.0, 1.0)) - degree).abs() < 1e-6);
        let near_pole = at(89.508_984_210_433_61, 0.0);
        let d = distance_m(&at(89.5, 0.0), &near_pole);
        assert!((d - 999.0).abs() < 1e-3, "{d}");
        let circle = |radius_m| Circle {
            lat: 89.5,
            lon: 0.0,
            radius_m,
        };
        assert!(circle(1000.0).contains(&near_pole));
        assert!(!circle(998.0).contains(&near_pole));
    }
}
