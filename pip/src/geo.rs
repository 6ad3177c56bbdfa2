//! Where an originator is, by country: the attribute behind `accc` (country
//! code) rules, TS-0003 Annex F.2.2. An originator's country comes either from
//! its IP address (operator-maintained CSV tables of `cidr,country`, then
//! MaxMind DB files such as GeoLite2-Country; longest prefix wins) or from a
//! reported position (the OpenStreetMap-derived boundaries shipped in the
//! `country-boundaries` crate). Every country in an answer is an ISO 3166-1
//! alpha-2 code in uppercase; subdivisions (`US-TX`) and anything else are
//! dropped, because `accc` only ever lists alpha-2 codes.
//!
//! A position carries an uncertainty radius. The project reading of Decision
//! 5 is that a rule listing countries holds only when the whole uncertainty
//! disk lies inside listed countries, so [`CountryLocator::countries`]
//! over-approximates: it returns every country that a point of the disk may
//! be in (a dependent territory rather than its sovereign, as for a single
//! point), never fewer, and adds [`OUTSIDE_EVERY_COUNTRY`] (not a country
//! code, so in no list) when part of the disk may lie outside every country,
//! at sea for instance.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use country_boundaries::{BOUNDARIES_ODBL_360X180, CountryBoundaries, LatLon};
use ipnet::{IpNet, Ipv4Net};
use prefix_trie::joint::map::JointPrefixMap;

/// Why a country source cannot be loaded; names the file and the line or field.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A country code that is not an assigned ISO 3166-1 alpha-2 code (nor
    /// a reserved code of a place in one, such as `IC` or `UK`).
    #[error("invalid country code {code:?}: expected an assigned ISO 3166-1 alpha-2 code")]
    Country {
        /// The code as given.
        code: String,
    },
    /// A line of a `cidr,country` CSV source that cannot be used.
    #[error("{file}:{line}: {reason}")]
    CsvLine {
        /// The source's name (its path, for a file).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A file that cannot be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file that is not a usable MaxMind DB.
    #[error("{}: not a readable MaxMind DB: {source}", path.display())]
    Mmdb {
        /// The file.
        path: PathBuf,
        /// The reader's reason.
        source: maxminddb::MaxMindDbError,
    },
    /// The shipped country boundaries dataset did not load (a build problem, not an input one).
    #[error("country boundaries dataset {field}: {reason}")]
    Boundaries {
        /// Which part of the dataset.
        field: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Two uppercase ASCII letters; kept as bytes so a table of a million
/// prefixes costs no heap per entry.
type Code = [u8; 2];

/// `Some(uppercase code)` when `s` is an assigned ISO 3166-1 alpha-2 code
/// ([`authz_core::location::is_country_code`]): `accc` lists only those, so
/// a source answering another (`XX`, a database's `EU`) names no country.
fn alpha2(s: &str) -> Option<Code> {
    match s.as_bytes() {
        [a, b] if authz_core::location::is_country_code(s) => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// Only an exact uppercase alpha-2 id of the boundaries dataset is a country;
/// its other ids are subdivisions such as `US-TX`.
fn is_alpha2_id(id: &str) -> bool {
    id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase())
}

fn code_str(code: &Code) -> Option<&str> {
    std::str::from_utf8(code).ok()
}

/// The assigned ISO 3166-1 code of a dataset area: the boundaries dataset
/// also names areas by *exceptionally reserved* codes (Canary Islands `IC`,
/// Ceuta and Melilla `EA`, ...), which are no country codes. `accc` holds
/// country codes and IP databases report these places under their country,
/// so a position there answers that country (the same rule matching
/// whichever way the country is found, Decision 5); likewise a table's `UK`
/// is `GB` ([`authz_core::location::reserved_code_country`]).
pub fn assigned_code(code: &str) -> &str {
    authz_core::location::reserved_code_country(code).unwrap_or(code)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the same host as
/// `a.b.c.d`; dual-stack sockets report IPv4 peers that way.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// IP prefixes → country, longest prefix wins; IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are looked up as IPv4.
#[derive(Debug, Default, Clone)]
pub struct IpCountryTable {
    map: JointPrefixMap<IpNet, Code>,
}

impl IpCountryTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `net` to `country` (two ASCII letters, stored uppercase, a
    /// reserved code of a place as its country's: [`assigned_code`]). Host bits
    /// of `net` are cleared; a prefix inside `::ffff:0:0/96` is stored as the
    /// IPv4 prefix it maps, since lookups of mapped addresses are done as IPv4.
    /// Inserting the same prefix again replaces its country.
    pub fn insert(&mut self, net: IpNet, country: &str) -> Result<(), GeoError> {
        // The reserved codes of places reported under their country (the
        // Canary Islands' `IC`: `ES`) answer that country, as a position
        // there does ([`assigned_code`]).
        let code = alpha2(assigned_code(&country.to_ascii_uppercase())).ok_or_else(|| {
            GeoError::Country {
                code: country.to_owned(),
            }
        })?;
        self.map.insert(canonical_net(net), code);
        Ok(())
    }

    /// CSV text `cidr,country` per line; blank lines and lines starting with '#' skipped; an optional header line `cidr,country` skipped; a bare address means /32 or /128; whitespace trimmed. Errors name `source` and the 1-based line.
    pub fn from_csv(source: &str, text: &str) -> Result<Self, GeoError> {
        let mut table = Self::new();
        table.read_csv(&mut HashMap::new(), source, text)?;
        Ok(table)
    }

    /// Reads `cidr,country` CSV files ([`IpCountryTable::from_csv`]) into one
    /// table, so the longest prefix wins whichever file gives it, and one
    /// prefix given two countries is an error whether the two lines are in
    /// one file or two. Errors name the path.
    pub fn load_csvs(paths: &[PathBuf]) -> Result<Self, GeoError> {
        let mut table = Self::new();
        let mut given = HashMap::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
                path: path.to_owned(),
                source,
            })?;
            table.read_csv(&mut given, &path.display().to_string(), &text)?;
        }
        Ok(table)
    }

    /// Reads CSV text into this table; `given` holds where each prefix was
    /// given before (file, line) and as which country: the same prefix
    /// twice with two countries is a mistake, not "last wins".
    fn read_csv(
        &mut self,
        given: &mut HashMap<IpNet, (String, usize, String)>,
        source: &str,
        text: &str,
    ) -> Result<(), GeoError> {
        let mut seen_content = false;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            // A file saved by a spreadsheet may start with a byte-order mark.
            let line = if index == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            }
            .trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| GeoError::CsvLine {
                file: source.to_owned(),
                line: line_no,
                reason,
            };
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let first_content = !seen_content;
            seen_content = true;
            let [cidr, country] = fields[..] else {
                return Err(bad(format!(
                    "expected `cidr,country`, found {} field(s)",
                    fields.len()
                )));
            };
            if first_content
                && cidr.eq_ignore_ascii_case("cidr")
                && country.eq_ignore_ascii_case("country")
            {
                continue;
            }
            let net = parse_net(cidr).map_err(bad)?;
            self.insert(net, country).map_err(|e| bad(e.to_string()))?;
            let upper = assigned_code(&country.to_ascii_uppercase()).to_owned();
            match given.get(&canonical_net(net)) {
                Some((file, line, earlier)) if *earlier != upper => {
                    let place = if file == source {
                        format!("line {line}")
                    } else {
                        format!("line {line} of {file}")
                    };
                    return Err(bad(format!(
                        "{cidr} is {earlier} on {place} and {upper} here: one country per prefix"
                    )));
                }
                Some(_) => {}
                None => {
                    given.insert(canonical_net(net), (source.to_owned(), line_no, upper));
                }
            }
        }
        Ok(())
    }

    /// Reads a `cidr,country` CSV file (see [`IpCountryTable::from_csv`]);
    /// errors name the path.
    pub fn load_csv(path: &Path) -> Result<Self, GeoError> {
        Self::load_csvs(&[path.to_owned()])
    }

    /// The country of the longest prefix containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&str> {
        let (_, code) = self.map.get_lpm(&IpNet::from(canonical(ip)))?;
        code_str(code)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table has no prefix.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Host bits cleared; an IPv4-mapped IPv6 prefix becomes its IPv4 prefix.
fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// A prefix or bare address, read as `acip` entries are (no zero-padded
/// octet, which some tools read as octal, nor prefix length).
fn parse_net(s: &str) -> Result<IpNet, String> {
    if s.contains(':') {
        authz_core::compile::parse_ipv6_cidr(s).map(IpNet::V6)
    } else {
        authz_core::compile::parse_ipv4_cidr(s).map(IpNet::V4)
    }
}

/// A MaxMind DB (GeoLite2-Country / GeoIP2-Country / City layout) read through the `maxminddb` crate, memory-mapped or read into memory.
///
/// This build reads the file into memory (the crate's `mmap` feature is off):
/// GeoLite2-Country is about 9 MB.
#[derive(Debug)]
pub struct MmdbCountries {
    path: PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
}

impl MmdbCountries {
    /// Reads the database at `path` and checks its header and metadata; errors name the path.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|source| match source {
            maxminddb::MaxMindDbError::Io(source) => GeoError::Io {
                path: path.to_owned(),
                source,
            },
            source => GeoError::Mmdb {
                path: path.to_owned(),
                source,
            },
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader,
        })
    }

    /// The file this database was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `country.iso_code`, else `registered_country.iso_code`, uppercased;
    /// `None` when the address is not in the database (nor is any address
    /// of `::/96` but the mapped ones), the record has neither field as an
    /// assigned code, or the record cannot be decoded (a damaged file
    /// must not make an originator look as if it were somewhere).
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        // An IPv6 database keeps its IPv4 data under `::/96`, where an
        // IPv4-compatible `::a.b.c.d` (deprecated, and no IPv4 peer to the
        // engine or a CSV table) would find an IPv4 address's country.
        if let IpAddr::V6(v6) = ip
            && v6.to_ipv4_mapped().is_none()
            && v6.segments()[..6] == [0; 6]
        {
            return None;
        }
        // An IPv4-only database rejects IPv6 addresses; mapped ones are IPv4.
        let result = self.reader.lookup(canonical(ip)).ok()?;
        if !result.has_data() {
            return None;
        }
        for top in ["country", "registered_country"] {
            let path = [
                maxminddb::PathElement::Key(top),
                maxminddb::PathElement::Key("iso_code"),
            ];
            // A reserved code of a place answers its country, as from a
            // CSV table or a position ([`assigned_code`]).
            if let Ok(Some(code)) = result.decode_path::<&str>(&path)
                && let Some(code) = alpha2(assigned_code(&code.to_ascii_uppercase()))
            {
                return code_str(&code).map(str::to_owned);
            }
        }
        None
    }
}

/// Position → countries with the country-boundaries dataset.
///
/// Loading parses the crate's 360×180 raster (about 1 MB of OpenStreetMap
/// boundaries, © OpenStreetMap contributors, ODbL) twice: once by the crate,
/// for exact point queries, and once here, keeping only the rings of
/// countries and, per cell, the edges among them that bound the land of all
/// countries together, for disk queries. That costs a few tens of milliseconds and a
/// few megabytes, once per process: build one and share it
/// (`Arc<CountryLocator>`); lookups take `&self`.
#[derive(Debug)]
pub struct CountryLocator {
    boundaries: CountryBoundaries,
    outlines: Outlines,
}

/// The entry of a disk answer that stands for "part of the disk may lie
/// outside every country" (at sea, or in an area the dataset gives to no
/// country). It is not an ISO 3166-1 alpha-2 code, so no `accc` list can
/// contain it: the engine reads a code that is not two letters as a country
/// no list contains, and a country rule then denies.
pub const OUTSIDE_EVERY_COUNTRY: &str = "--";

/// Mean Earth radius, metres: the one of the haversine distance the engine
/// uses for circles (the `geo` crate's `Haversine`), so that the disk here is
/// the disk of positions within the uncertainty radius by that distance.
const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.8;

/// The uncertainty radius is widened by this fraction and by
/// [`RADIUS_MARGIN_M`] before the disk's bounding box is computed: far more
/// than floating-point error, so the box never misses a point of the disk.
const RADIUS_MARGIN_REL: f64 = 1e-6;

/// See [`RADIUS_MARGIN_REL`].
const RADIUS_MARGIN_M: f64 = 1.0;

impl CountryLocator {
    /// Loads the shipped dataset (see the type's documentation for its cost).
    pub fn new() -> Result<Self, GeoError> {
        let boundaries = CountryBoundaries::from_reader(BOUNDARIES_ODBL_360X180).map_err(|e| {
            GeoError::Boundaries {
                field: "raster",
                reason: e.to_string(),
            }
        })?;
        let outlines = Outlines::parse(BOUNDARIES_ODBL_360X180)?;
        Ok(Self {
            boundaries,
            outlines,
        })
    }

    /// The alpha-2 countries the position may be in, sorted and
    /// deduplicated.
    ///
    /// With uncertainty 0: the one country containing the point (none at
    /// sea). Where the dataset nests a dependent territory in its sovereign
    /// (HK in CN, PR in US, AX in FI, RE in FR, ...), the territory's own
    /// code: the smallest area with an alpha-2 ID.
    ///
    /// With an uncertainty radius r metres: the disk is every point within r
    /// of the position by haversine distance on the mean Earth radius (the
    /// engine's distance), widened by 1 ppm and 1 m, and the answer holds
    /// every country that a point of it may be in by the point rule above. A
    /// rule listing countries must hold only when the whole disk lies inside
    /// listed countries (project Decision 5), so the answer errs towards
    /// more, never fewer:
    ///
    /// - the disk is replaced by its latitude/longitude bounding box (lat ±
    ///   d, lon ± asin(sin d / cos lat) for the angular radius d, split at
    ///   the antimeridian, every longitude when it reaches a pole), tested
    ///   against the countries' outer rings, not only against the dataset's
    ///   1° cells, so a small disk in a cell crossed by a border does not
    ///   pick up the neighbour; holes in outlines (enclaves) are ignored,
    ///   which can only add countries;
    /// - when the box lies wholly inside the area of a country found, every
    ///   point of the disk is in that area, so none answers a larger area:
    ///   of the countries found, only the smallest such area and any smaller
    ///   area the box meets are kept (smallest by the dataset's size, the
    ///   order the point rule takes), and the marker below is not added (the
    ///   box is land). So a disk wholly inside Hong Kong gives `HK` alone,
    ///   though China's area holds it too; a disk reaching over the border
    ///   gives `CN` and `HK`; a disk in mainland China gives `CN`. That the
    ///   box lies inside an area is proved per cell the box touches: the
    ///   cell lies wholly in the area, or no edge of the area's rings (outer
    ///   or inner, except on the cell's frame) meets the box and a point of
    ///   the box inside the cell lies in the area. Where it cannot be
    ///   proved, nothing is left out;
    /// - otherwise, when the box is not wholly covered by the land of the
    ///   countries found (part of it at sea, or in an area the dataset gives
    ///   to no country), the answer also holds [`OUTSIDE_EVERY_COUNTRY`], so
    ///   that no country list matches it. Coverage is proved per cell: the cell
    ///   lies wholly in a country, or no edge that bounds the countries' land
    ///   together (an edge of a country ring that is not shared with another
    ///   country ring, nor on the cell's frame) meets the box, and a point of
    ///   the box inside the cell lies in a country. A border drawn with
    ///   different vertices on its two sides counts as a boundary, which
    ///   again only adds the marker.
    ///
    /// A box that meets no country at all gives no country, like a point at
    /// sea. Invalid input (NaN, latitude outside ±90, longitude outside ±180,
    /// negative or NaN uncertainty) gives no country.
    pub fn countries(&self, lat: f64, lon: f64, uncertainty_m: f64) -> Vec<String> {
        if !(-90.0..=90.0).contains(&lat)
            || !(-180.0..=180.0).contains(&lon)
            || uncertainty_m.is_nan()
            || uncertainty_m < 0.0
        {
            return Vec::new();
        }
        if uncertainty_m == 0.0 {
            let Ok(position) = LatLon::new(lat, lon) else {
                return Vec::new();
            };
            // `ids` lists every area containing the point, smallest area
            // first (the crate's documented order). A dependent territory
            // lies inside its sovereign's area too (Hong Kong: HK and CN;
            // San Juan: PR and US), so the first alpha-2 ID is the most
            // specific country: the territory's own ISO 3166-1 code, as IP
            // geolocation databases report it. One point is in one country;
            // answering both would make `accc: ["HK"]` deny a point in Hong
            // Kong, since every answered country must be listed (Decision 5).
            return self
                .boundaries
                .ids(position)
                .into_iter()
                .find(|id| is_alpha2_id(id))
                .map(|id| vec![assigned_code(id).to_owned()])
                .unwrap_or_default();
        }
        let bbox = disk_bbox(lat, lon, uncertainty_m);
        let scan = self.outlines.scan(&bbox);
        let size = |code: &Code| self.outlines.size(code);
        // The smallest area holding the whole box is what every point of the
        // box is in, so no point of the box answers a larger area.
        let smallest_within = scan
            .within
            .iter()
            .min_by(|a, b| size(a).total_cmp(&size(b)))
            .map(size);
        let mut out: Vec<String> = scan
            .countries
            .iter()
            .filter(|code| smallest_within.is_none_or(|limit| size(code) <= limit))
            .filter_map(|code| code_str(code).map(|c| assigned_code(c).to_owned()))
            .collect();
        // Two reserved codes may map to one country (IC and ES).
        out.sort_unstable();
        out.dedup();
        // An area holding the box is land: no point of the box is outside
        // every country.
        let covered = scan.covered || smallest_within.is_some();
        if !out.is_empty() && !covered {
            out.push(OUTSIDE_EVERY_COUNTRY.to_owned());
            out.sort_unstable();
        }
        out
    }
}

/// A latitude/longitude box; `lon_ranges` are within [-180, 180] and split in
/// two when the box crosses the antimeridian.
struct GeoBox {
    min_lat: f64,
    max_lat: f64,
    lon_ranges: Vec<(f64, f64)>,
}

/// The bounding box of the disk of radius `r` metres around (`lat`, `lon`)
/// on the sphere of [`EARTH_MEAN_RADIUS_M`], after the margins.
fn disk_bbox(lat: f64, lon: f64, r: f64) -> GeoBox {
    // Angular radius, radians.
    let d = (r * (1.0 + RADIUS_MARGIN_REL) + RADIUS_MARGIN_M) / EARTH_MEAN_RADIUS_M;
    let dlat = d.to_degrees();
    let min_lat = (lat - dlat).max(-90.0);
    let max_lat = (lat + dlat).min(90.0);
    let full = vec![(-180.0, 180.0)];
    // A disk reaching a pole spans every longitude.
    if !dlat.is_finite() || lat - dlat <= -90.0 || lat + dlat >= 90.0 {
        return GeoBox {
            min_lat,
            max_lat,
            lon_ranges: full,
        };
    }
    // Here d < 90° - |lat| < 90°: the widest point of the cap is at
    // longitude ± asin(sin d / cos lat).
    let ratio = d.sin() / lat.to_radians().cos();
    if !ratio.is_finite() || ratio >= 1.0 {
        return GeoBox {
            min_lat,
            max_lat,
            lon_ranges: full,
        };
    }
    let dlon = ratio.asin().to_degrees();
    let (west, east) = (lon - dlon, lon + dlon);
    let lon_ranges = if east - west >= 360.0 {
        full
    } else if west < -180.0 {
        vec![(west + 360.0, 180.0), (-180.0, east)]
    } else if east > 180.0 {
        vec![(west, 180.0), (-180.0, east - 360.0)]
    } else {
        vec![(west, east)]
    };
    GeoBox {
        min_lat,
        max_lat,
        lon_ranges,
    }
}

/// The country rings of the boundaries raster, read from the same bytes as
/// the crate reads (format version 2: geometry sizes, then per cell the ids
/// covering it whole and, per partly covering id, outer and inner rings in
/// cell-local 16-bit coordinates). The crate keeps its polygons private, and
/// its own box query answers per 1° cell.
#[derive(Debug)]
struct Outlines {
    width: usize,
    height: usize,
    cells: Vec<OutlineCell>,
    /// The dataset's size of each country area: the order in which the
    /// crate's `ids` lists the areas containing a point, smallest first.
    sizes: HashMap<Code, f64>,
}

#[derive(Debug, Default)]
struct OutlineCell {
    /// Countries covering the whole cell.
    whole: Vec<Code>,
    /// Countries covering part of the cell.
    partial: Vec<Area>,
    /// The edges bounding the land of all `partial` countries together
    /// (see [`OutlineCell::border_of`]).
    border: Vec<Segment>,
}

/// One country's part of a cell: the crate's multipolygon (a point is in
/// it when it lies in more outer rings than inner rings).
#[derive(Debug)]
struct Area {
    code: Code,
    outer: Vec<Ring>,
    inner: Vec<Ring>,
}

/// A closed ring in cell-local coordinates (x east, y north, 0..=0xffff).
type Ring = Vec<(u16, u16)>;

/// An edge, endpoints in cell-local coordinates, the smaller one first.
type Segment = ((u16, u16), (u16, u16));

/// The largest cell-local coordinate.
const LOCAL_MAX: u16 = 0xffff;

impl Area {
    /// The crate's point test (`Multipolygon::covers`): winding numbers,
    /// more outer rings than inner rings around the point.
    fn covers(&self, p: Pt) -> bool {
        let count = |rings: &[Ring]| rings.iter().filter(|r| winds_around(r, p)).count();
        count(&self.outer) > count(&self.inner)
    }

    /// Whether every point of `rect` that lies in this cell is in this area:
    /// no edge of its rings (outer or inner, the cell's frame aside) meets
    /// the rectangle, so the rectangle's part in the cell is all in the area
    /// or all out of it, and one point of that part, by the crate's point
    /// test, tells which.
    fn holds(&self, rect: &Rect) -> bool {
        let pt = |q: (u16, u16)| (i64::from(q.0), i64::from(q.1));
        for ring in self.outer.iter().chain(&self.inner) {
            let Some(&last) = ring.last() else {
                continue;
            };
            let mut a = last;
            for &b in ring {
                if a != b && !on_frame(a, b) && rect.meets_segment(pt(a), pt(b)) {
                    return false;
                }
                a = b;
            }
        }
        self.covers(rect.probe())
    }
}

/// Whether the edge `a`-`b` lies on the cell's frame, where the dataset cut
/// the rings at the cell: no boundary of the area inside the cell.
fn on_frame(a: (u16, u16), b: (u16, u16)) -> bool {
    (a.0 == b.0 && (a.0 == 0 || a.0 == LOCAL_MAX)) || (a.1 == b.1 && (a.1 == 0 || a.1 == LOCAL_MAX))
}

/// Twice the signed area of `ring` (shoelace formula): positive when it runs
/// counter-clockwise with x east and y north.
fn signed_twice_area(ring: &[(u16, u16)]) -> i64 {
    let Some(&last) = ring.last() else {
        return 0;
    };
    let mut a = last;
    let mut sum = 0i64;
    for &b in ring {
        sum += i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1);
        a = b;
    }
    sum
}

/// Whether `ring` winds around `p` (the crate's winding-number test).
fn winds_around(ring: &[(u16, u16)], p: Pt) -> bool {
    let Some(&last) = ring.last() else {
        return false;
    };
    let pt = |q: (u16, u16)| (i64::from(q.0), i64::from(q.1));
    let mut winding = 0i64;
    let mut a = pt(last);
    for &q in ring {
        let b = pt(q);
        if a.1 <= p.1 {
            if b.1 > p.1 && orient(a, b, p) > 0 {
                winding += 1;
            }
        } else if b.1 <= p.1 && orient(a, b, p) < 0 {
            winding -= 1;
        }
        a = b;
    }
    winding != 0
}

impl OutlineCell {
    /// The edges of the country rings (outer and inner) of `partial` that
    /// bound the countries' land together: an edge with land on both of its
    /// sides (a border between two countries, between two parts of one, or
    /// of an enclave and the hole it fills) lies inside that land and is
    /// dropped, as is an edge on the cell's frame (where the dataset cut the
    /// rings at the cell). An edge drawn twice with land on the same side
    /// stays: a territory's coast is drawn in its own area and again in its
    /// sovereign's (Puerto Rico in the United States'), and is still coast.
    /// The side is the ring's inside for an outer ring, its outside for an
    /// inner one, by the ring's orientation; a ring without one (no area)
    /// keeps its edges. What is left is coast, and borders with areas of no
    /// country. Sorted.
    fn border_of(partial: &[Area]) -> Vec<Segment> {
        /// Land to the left of the edge as its smaller endpoint first
        /// writes it, and land to the right.
        const LEFT: u8 = 1;
        const RIGHT: u8 = 2;
        let mut edges: Vec<(Segment, u8)> = Vec::new();
        for area in partial {
            let rings = area.outer.iter().map(|r| (r, true));
            for (ring, outer) in rings.chain(area.inner.iter().map(|r| (r, false))) {
                let Some(&last) = ring.last() else {
                    continue;
                };
                let twice_area = signed_twice_area(ring);
                let mut a = last;
                for &b in ring {
                    if a != b && !on_frame(a, b) {
                        // Counter-clockwise (x east, y north): the inside is
                        // on the left of each edge.
                        let inside_left = twice_area > 0;
                        let land_left = inside_left == outer;
                        let sides = match (twice_area == 0, land_left == (a < b)) {
                            (true, _) => 0,
                            (false, true) => LEFT,
                            (false, false) => RIGHT,
                        };
                        edges.push((if a < b { (a, b) } else { (b, a) }, sides));
                    }
                    a = b;
                }
            }
        }
        edges.sort_unstable();
        let mut border = Vec::new();
        for drawn in edges.chunk_by(|x, y| x.0 == y.0) {
            let sides = drawn.iter().fold(0, |s, e| s | e.1);
            if sides != LEFT | RIGHT || drawn.iter().any(|e| e.1 == 0) {
                border.push(drawn[0].0);
            }
        }
        border
    }

    /// Whether every point of `rect` that lies in this cell is in a country.
    fn covers(&self, rect: &Rect) -> bool {
        if !self.whole.is_empty() {
            return true;
        }
        if self.partial.is_empty() {
            return false;
        }
        let pt = |q: (u16, u16)| (i64::from(q.0), i64::from(q.1));
        if self
            .border
            .iter()
            .any(|&(a, b)| rect.meets_segment(pt(a), pt(b)))
        {
            return false;
        }
        // No bounding edge crosses the rectangle, so its part in the cell is
        // all land or all outside: one point tells which.
        let probe = rect.probe();
        self.partial.iter().any(|area| area.covers(probe))
    }
}

struct Bytes<'a> {
    data: &'a [u8],
    field: &'static str,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GeoError> {
        if self.data.len() < n {
            return Err(GeoError::Boundaries {
                field: self.field,
                reason: "truncated".to_owned(),
            });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, GeoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, GeoError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<usize, GeoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn string(&mut self) -> Result<&'a [u8], GeoError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// A country code when `id` is an uppercase alpha-2 id.
fn id_code(id: &[u8]) -> Option<Code> {
    match id {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some([*a, *b]),
        _ => None,
    }
}

/// What [`Outlines::scan`] finds in a box.
struct Scan {
    /// Countries whose outer rings meet the box, sorted.
    countries: BTreeSet<Code>,
    /// Whether every point of the box is proved to lie in a country.
    covered: bool,
    /// The countries whose areas are proved to hold the whole box (a
    /// territory and its sovereign, say); empty when none is.
    within: BTreeSet<Code>,
}

impl Outlines {
    fn parse(data: &[u8]) -> Result<Self, GeoError> {
        let mut r = Bytes {
            data,
            field: "header",
        };
        let version = r.u16()?;
        if version != 2 {
            return Err(GeoError::Boundaries {
                field: "version",
                reason: format!("expected 2, found {version}"),
            });
        }
        r.field = "geometry sizes";
        let count = r.u32()?;
        let mut sizes = HashMap::new();
        for _ in 0..count {
            let id = id_code(r.string()?);
            let raw = r.take(8)?;
            if let Some(code) = id {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(raw);
                sizes.insert(code, f64::from_be_bytes(bytes));
            }
        }
        r.field = "raster size";
        let width = r.u32()?;
        let size = r.u32()?;
        if width == 0 || size % width != 0 {
            return Err(GeoError::Boundaries {
                field: "raster size",
                reason: format!("{size} cells do not make rows of {width}"),
            });
        }
        r.field = "cells";
        let mut cells = Vec::with_capacity(size);
        for _ in 0..size {
            let mut cell = OutlineCell::default();
            for _ in 0..r.u8()? {
                if let Some(code) = id_code(r.string()?) {
                    cell.whole.push(code);
                }
            }
            for _ in 0..r.u8()? {
                let code = id_code(r.string()?);
                let mut rings: [Vec<Ring>; 2] = [Vec::new(), Vec::new()];
                for kind in &mut rings {
                    for _ in 0..r.u8()? {
                        let n = r.u32()?;
                        let raw = r.take(n.checked_mul(4).ok_or(GeoError::Boundaries {
                            field: "cells",
                            reason: "ring too long".to_owned(),
                        })?)?;
                        // Subdivisions (`US-TX`) are no country: skipped.
                        if code.is_some() {
                            kind.push(
                                raw.chunks_exact(4)
                                    .map(|p| {
                                        (
                                            u16::from_be_bytes([p[0], p[1]]),
                                            u16::from_be_bytes([p[2], p[3]]),
                                        )
                                    })
                                    .collect(),
                            );
                        }
                    }
                }
                if let Some(code) = code {
                    let [outer, inner] = rings;
                    cell.partial.push(Area { code, outer, inner });
                }
            }
            cell.border = OutlineCell::border_of(&cell.partial);
            cells.push(cell);
        }
        Ok(Self {
            width,
            height: size / width,
            cells,
            sizes,
        })
    }

    /// The dataset's size of a country area, by which the crate orders
    /// `ids` (an area without one counts as 0, as there).
    fn size(&self, code: &Code) -> f64 {
        self.sizes.get(code).copied().unwrap_or(0.0)
    }

    /// The countries whose outer rings meet the box, whether the box lies
    /// wholly in countries, and which countries' areas hold it whole.
    fn scan(&self, bbox: &GeoBox) -> Scan {
        let mut found = BTreeSet::new();
        let mut covered = true;
        // The areas that hold the box in every cell seen so far; `None`
        // before the first cell.
        let mut within: Option<BTreeSet<Code>> = None;
        let (w, h) = (self.width as f64, self.height as f64);
        let (cell_w, cell_h) = (360.0 / w, 180.0 / h);
        // Rows are numbered from the north. A box edge lying on a cell edge
        // takes the cells on both sides, which only adds candidates (and
        // cells whose coverage must be proved).
        let index = |v: f64, last: usize| (v.max(0.0) as usize).min(last);
        let (last_row, last_col) = (self.height - 1, self.width - 1);
        let top = index(((90.0 - bbox.max_lat) / cell_h).ceil() - 1.0, last_row);
        let bottom = index(((90.0 - bbox.min_lat) / cell_h).floor(), last_row);
        for &(west, east) in &bbox.lon_ranges {
            let first = index(((west + 180.0) / cell_w).ceil() - 1.0, last_col);
            let last = index(((east + 180.0) / cell_w).floor(), last_col);
            for x in first..=last {
                let cell_west = -180.0 + x as f64 * cell_w;
                for y in top..=bottom {
                    let Some(cell) = self.cells.get(y * self.width + x) else {
                        covered = false;
                        within = Some(BTreeSet::new());
                        continue;
                    };
                    found.extend(cell.whole.iter().copied());
                    let need_countries = cell.partial.iter().any(|a| !found.contains(&a.code));
                    let need_coverage = covered && cell.whole.is_empty();
                    // An area lying over the whole cell holds the box's part in it.
                    let need_within = within
                        .as_ref()
                        .is_none_or(|w| w.iter().any(|c| !cell.whole.contains(c)));
                    if !need_countries && !need_coverage && !need_within {
                        continue;
                    }
                    let cell_south = 90.0 - (y + 1) as f64 * cell_h;
                    // Cell-local coordinates: 0..=0xffff across the cell,
                    // widened by one unit against rounding.
                    let to_x =
                        |lon: f64| ((lon - cell_west) / cell_w * 65535.0).clamp(0.0, 65535.0);
                    let to_y =
                        |lat: f64| ((lat - cell_south) / cell_h * 65535.0).clamp(0.0, 65535.0);
                    let rect = Rect {
                        x0: to_x(west).floor() as i64 - 1,
                        x1: to_x(east).ceil() as i64 + 1,
                        y0: to_y(bbox.min_lat).floor() as i64 - 1,
                        y1: to_y(bbox.max_lat).ceil() as i64 + 1,
                    };
                    if need_countries {
                        for area in &cell.partial {
                            if !found.contains(&area.code)
                                && area.outer.iter().any(|ring| rect.meets_ring(ring))
                            {
                                found.insert(area.code);
                            }
                        }
                    }
                    if need_coverage && !cell.covers(&rect) {
                        covered = false;
                    }
                    if need_within {
                        let holds = |code: &Code| {
                            cell.whole.contains(code)
                                || cell
                                    .partial
                                    .iter()
                                    .any(|a| a.code == *code && a.holds(&rect))
                        };
                        within = Some(match within.take() {
                            None => cell
                                .whole
                                .iter()
                                .chain(cell.partial.iter().map(|a| &a.code))
                                .filter(|code| holds(code))
                                .copied()
                                .collect(),
                            Some(w) => w.into_iter().filter(|code| holds(code)).collect(),
                        });
                    }
                }
            }
        }
        Scan {
            countries: found,
            covered,
            within: within.unwrap_or_default(),
        }
    }
}

/// An axis-parallel rectangle, bounds included.
struct Rect {
    x0: i64,
    x1: i64,
    y0: i64,
    y1: i64,
}

type Pt = (i64, i64);

fn orient(a: Pt, b: Pt, c: Pt) -> i64 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    p.0 >= a.0.min(b.0) && p.0 <= a.0.max(b.0) && p.1 >= a.1.min(b.1) && p.1 <= a.1.max(b.1)
}

fn segments_meet(a: Pt, b: Pt, c: Pt, d: Pt) -> bool {
    let (o1, o2, o3, o4) = (
        orient(a, b, c),
        orient(a, b, d),
        orient(c, d, a),
        orient(c, d, b),
    );
    if o1.signum() * o2.signum() < 0 && o3.signum() * o4.signum() < 0 {
        return true;
    }
    (o1 == 0 && on_segment(a, b, c))
        || (o2 == 0 && on_segment(a, b, d))
        || (o3 == 0 && on_segment(c, d, a))
        || (o4 == 0 && on_segment(c, d, b))
}

impl Rect {
    /// The rectangle's centre moved into the cell: a point of the
    /// rectangle's part in the cell, for a rectangle that meets the cell.
    fn probe(&self) -> Pt {
        let max = i64::from(LOCAL_MAX);
        (
            ((self.x0 + self.x1) / 2).clamp(0, max),
            ((self.y0 + self.y1) / 2).clamp(0, max),
        )
    }

    fn contains(&self, p: Pt) -> bool {
        (self.x0..=self.x1).contains(&p.0) && (self.y0..=self.y1).contains(&p.1)
    }

    fn corners(&self) -> [Pt; 4] {
        [
            (self.x0, self.y0),
            (self.x1, self.y0),
            (self.x1, self.y1),
            (self.x0, self.y1),
        ]
    }

    /// Whether the segment `a`-`b` and this rectangle share a point.
    fn meets_segment(&self, a: Pt, b: Pt) -> bool {
        if self.contains(a) || self.contains(b) {
            return true;
        }
        let disjoint = a.0.max(b.0) < self.x0
            || a.0.min(b.0) > self.x1
            || a.1.max(b.1) < self.y0
            || a.1.min(b.1) > self.y1;
        if disjoint {
            return false;
        }
        let corners = self.corners();
        (0..4).any(|k| segments_meet(a, b, corners[k], corners[(k + 1) % 4]))
    }

    /// Whether the region bounded by `ring` and this rectangle share a point:
    /// either the ring's boundary meets the rectangle, or the rectangle lies
    /// wholly inside the ring.
    fn meets_ring(&self, ring: &[(u16, u16)]) -> bool {
        let n = ring.len();
        if n == 0 {
            return false;
        }
        let pt = |i: usize| (i64::from(ring[i].0), i64::from(ring[i].1));
        let mut inside = false;
        let probe = self.corners()[0];
        for i in 0..n {
            let (a, b) = (pt(i), pt((i + 1) % n));
            if self.meets_segment(a, b) {
                return true;
            }
            // Crossing number for the probe corner (half-open in y).
            if (a.1 > probe.1) != (b.1 > probe.1) {
                let cross = orient(a, b, probe);
                if (b.1 > a.1) == (cross > 0) {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// All configured IP sources in order: CSV tables first, then mmdb files; the first answer wins.
#[derive(Debug, Default)]
pub struct IpCountrySources {
    tables: Vec<IpCountryTable>,
    mmdbs: Vec<MmdbCountries>,
}

impl IpCountrySources {
    /// No source: every lookup answers `None`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table after the tables already added (and before every mmdb file).
    pub fn add_table(&mut self, t: IpCountryTable) {
        self.tables.push(t);
    }

    /// Adds a MaxMind DB after the ones already added.
    pub fn add_mmdb(&mut self, m: MmdbCountries) {
        self.mmdbs.push(m);
    }

    /// The first answer of the tables, then of the mmdb files.
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        self.tables
            .iter()
            .find_map(|t| t.lookup(ip).map(str::to_owned))
            .or_else(|| self.mmdbs.iter().find_map(|m| m.lookup(ip)))
    }

    /// Whether no source was added.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.mmdbs.is_empty()
    }
}
