//! Country sources of the PIP (`authz_pip::geo`): CSV prefix tables, MaxMind
//! DB files written here byte by byte, and positions against the shipped
//! OpenStreetMap boundaries.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use authz_core::Lookup;
use authz_pip::geo::{
    CountryLocator, GeoError, IpCountrySources, IpCountryTable, MmdbCountries,
    OUTSIDE_EVERY_COUNTRY, assigned_code,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A fresh directory `authz-pip-geo-{name}-…` under the system temp dir,
/// removed with everything in it when the returned guard drops.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("authz-pip-geo-{name}-"))
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------- CSV tables

#[test]
fn csv_longest_prefix_wins() {
    let t = IpCountryTable::from_csv("t.csv", "10.0.0.0/8,DE\n10.1.0.0/16,FR\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(ip("10.1.2.3")), Some("FR"));
    assert_eq!(t.lookup(ip("10.2.0.1")), Some("DE"));
    assert_eq!(t.lookup(ip("11.0.0.1")), None);
    // Order of lines does not matter.
    let t = IpCountryTable::from_csv("t.csv", "10.1.0.0/16,FR\n10.0.0.0/8,DE\n").unwrap();
    assert_eq!(t.lookup(ip("10.1.255.255")), Some("FR"));
    assert_eq!(t.lookup(ip("10.0.0.0")), Some("DE"));
}

/// Decision 5 (one rule whichever way the country is found): a reserved
/// code of a place reported under its country answers that country from an
/// IP table too, as from a position there (the Canary Islands' `IC` is
/// `ES`), so an `accc` of `ES` admits both. `IC` and `ES` for one prefix
/// are then no conflict.
#[test]
fn csv_reserved_codes_answer_their_country_decision_5() {
    let t = IpCountryTable::from_csv(
        "t.csv",
        "10.0.0.0/8,IC
11.0.0.0/8,ea
12.0.0.0/8,IC
12.0.0.0/8,ES
13.0.0.0/8,UK
",
    )
    .unwrap();
    assert_eq!(t.lookup(ip("13.1.1.1")), Some("GB"));
    assert_eq!(t.lookup(ip("10.1.1.1")), Some("ES"));
    assert_eq!(t.lookup(ip("11.1.1.1")), Some("ES"));
    assert_eq!(t.lookup(ip("12.1.1.1")), Some("ES"));
}

#[test]
fn csv_ipv6_mapped_bare_comments_header() {
    let text = "\u{feff}# operator table\n\
                \n\
                cidr,country\n\
                \t2001:db8::/32 , jp \n\
                2001:db8:1::/48,KR\n\
                # a single host\n\
                192.0.2.7,CH\n\
                2001:db8:ffff::1,NO\n\
                ::ffff:198.51.100.0/120,IT\n\
                \n";
    let t = IpCountryTable::from_csv("ops.csv", text).unwrap();
    assert_eq!(t.len(), 5);
    assert!(!t.is_empty());
    // Stored uppercase.
    assert_eq!(t.lookup(ip("2001:db8:2::1")), Some("JP"));
    assert_eq!(t.lookup(ip("2001:db8:1:ffff::1")), Some("KR"));
    assert_eq!(t.lookup(ip("2001:db9::1")), None);
    // A bare address is one host.
    assert_eq!(t.lookup(ip("192.0.2.7")), Some("CH"));
    assert_eq!(t.lookup(ip("192.0.2.8")), None);
    assert_eq!(t.lookup(ip("2001:db8:ffff::1")), Some("NO"));
    assert_eq!(t.lookup(ip("2001:db8:ffff::2")), Some("JP"));
    // IPv4-mapped IPv6 is looked up as IPv4, both ways round.
    assert_eq!(t.lookup(ip("::ffff:192.0.2.7")), Some("CH"));
    assert_eq!(t.lookup(ip("198.51.100.9")), Some("IT"));
    assert_eq!(t.lookup(ip("::ffff:198.51.100.9")), Some("IT"));
    assert_eq!(t.lookup(ip("::ffff:198.51.101.9")), None);
}

#[test]
fn insert_validates_and_truncates() {
    let mut t = IpCountryTable::new();
    assert!(t.is_empty());
    // Host bits are cleared: this is 10.0.0.0/8.
    t.insert("10.9.9.9/8".parse().unwrap(), "de").unwrap();
    assert_eq!(t.lookup(ip("10.200.0.1")), Some("DE"));
    for bad in ["Germany", "D", "", "D1", "DEU", "é"] {
        let err = t.insert("10.0.0.0/8".parse().unwrap(), bad).unwrap_err();
        assert!(matches!(err, GeoError::Country { .. }), "{bad}: {err}");
    }
    // Same prefix again: last one wins.
    t.insert("10.0.0.0/8".parse().unwrap(), "AT").unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(ip("10.0.0.1")), Some("AT"));
}

#[test]
fn csv_errors_name_file_and_line() {
    let dir = temp_dir("csv");
    let cases = [
        ("# c\n10.1.0.0/16,FR\n10.0.0.0/33,DE\n", "10.0.0.0/33"),
        ("# c\n10.1.0.0/16,FR\n10.0.0.0/8,Germany\n", "Germany"),
        ("# c\n\n10.0.0.0/8\n", "field"),
        ("# c\n10.0.0.0/8,DE\n10.0.0.0/8,DE,extra\n", "field"),
        ("cidr,country\n10.0.0.0/8,DE\ncidr,country\n", "cidr"),
        ("# c\n10.1.0.0/16,FR\nnot-an-ip,DE\n", "not-an-ip"),
        // Read as `acip` entries are: no zero-padded octet (octal to some
        // tools) or prefix length.
        ("# c\n10.1.0.0/16,FR\n010.0.0.0/8,DE\n", "010.0.0.0/8"),
        ("# c\n10.1.0.0/16,FR\n10.0.0.0/08,DE\n", "10.0.0.0/08"),
        // One country per prefix (also when written another way), not
        // "the last line wins".
        ("10.0.0.0/8,DE\n# c\n10.0.0.0/8,AT\n", "DE on line 1 and AT"),
        (
            "10.0.0.0/8,DE\n# c\n::ffff:10.0.0.0/104,AT\n",
            "DE on line 1 and AT",
        ),
        // A prefix with host bits set, as in `acip`: refused, not widened.
        ("# c\n10.1.0.0/16,FR\n10.9.9.9/8,AT\n", "host bits"),
        // Spec notes §2.1: assigned ISO 3166-1 codes only.
        ("# c\n10.1.0.0/16,FR\n10.0.0.0/8,XX\n", "\"XX\""),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&path, text).unwrap();
        let err = IpCountryTable::load_csv(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, GeoError::CsvLine { line: 3, .. }),
            "case {i}: {msg}"
        );
        assert!(
            msg.starts_with(&format!("{}:3: ", path.display())),
            "case {i}: {msg}"
        );
        assert!(msg.contains(needle), "case {i}: {msg}");
    }
    let good = dir.path().join("good.csv");
    // The same prefix and country twice is no conflict.
    std::fs::write(&good, "10.0.0.0/8,DE\n10.0.0.0/8,de\n").unwrap();
    assert_eq!(
        IpCountryTable::load_csv(&good)
            .unwrap()
            .lookup(ip("10.0.0.1")),
        Some("DE")
    );
    let missing = dir.path().join("missing.csv");
    let err = IpCountryTable::load_csv(&missing).unwrap_err();
    assert!(matches!(err, GeoError::Io { .. }));
    assert!(err.to_string().contains("missing.csv"), "{err}");

    // Several files (`--ip-csv` repeated) are one table: the longest prefix
    // wins whichever file gives it, and one prefix with two countries is a
    // conflict across files too, naming both places.
    let wide = dir.path().join("wide.csv");
    let narrow = dir.path().join("narrow.csv");
    let other = dir.path().join("other.csv");
    std::fs::write(
        &wide,
        "10.0.0.0/8,DE
",
    )
    .unwrap();
    std::fs::write(
        &narrow,
        "# more specific
10.1.0.0/16,FR
",
    )
    .unwrap();
    std::fs::write(
        &other,
        "# c
10.0.0.0/8,FR
",
    )
    .unwrap();
    let both = IpCountryTable::load_csvs(&[wide.clone(), narrow.clone()]).unwrap();
    assert_eq!(both.lookup(ip("10.1.1.1")), Some("FR"));
    assert_eq!(both.lookup(ip("10.2.1.1")), Some("DE"));
    let err = IpCountryTable::load_csvs(&[wide.clone(), other.clone()]).unwrap_err();
    assert!(matches!(err, GeoError::CsvLine { line: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}:2: ", other.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("DE on line 1 of {} and FR", wide.display())),
        "{msg}"
    );
    dir.close().unwrap();
}

// ---------------------------------------------------------------- MaxMind DB

use authz_tests::mmdb;
use authz_tests::mmdb::country_record;

fn write_test_mmdb(dir: &std::path::Path, record_size: u16) -> PathBuf {
    use mmdb::Value::*;
    let mut w = mmdb::Writer::new(record_size);
    let de = w.add_data(&country_record("DE"));
    let fr = w.add_data(&country_record("FR"));
    let jp = w.add_data(&country_record("JP"));
    // A reserved code of a place (the Canary Islands): its country, ES.
    let canary = w.add_data(&country_record("IC"));
    // Only the registered country is known (e.g. an anycast or satellite block).
    let registered = w.add_data(&Map(vec![(
        "registered_country",
        Map(vec![("iso_code", Str("US"))]),
    )]));
    // No usable code at all.
    let nothing = w.add_data(&Map(vec![
        ("continent", Map(vec![("code", Str("EU"))])),
        ("country", Map(vec![("iso_code", Str("EUR"))])),
    ]));
    w.insert(ip("10.0.0.0"), 8, de);
    w.insert(ip("10.1.0.0"), 16, fr);
    w.insert(ip("192.0.2.0"), 24, registered);
    w.insert(ip("198.51.100.0"), 24, nothing);
    w.insert(ip("2001:db8::"), 32, jp);
    w.insert(ip("100.64.0.0"), 24, canary);
    w.insert(ip("2001:db8:1::"), 48, fr);
    // A user-assigned code (no country), and the reserved `UK` (GB).
    let unassigned = w.add_data(&country_record("XX"));
    let uk = w.add_data(&country_record("UK"));
    w.insert(ip("203.0.113.0"), 25, unassigned);
    w.insert(ip("203.0.113.128"), 25, uk);
    let path = dir.join(format!("test-{record_size}.mmdb"));
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

#[test]
fn mmdb_lookups() {
    let dir = temp_dir("mmdb");
    for record_size in [24, 28] {
        let path = write_test_mmdb(dir.path(), record_size);
        let db = MmdbCountries::open(&path).unwrap();
        assert_eq!(db.path(), path.as_path());
        assert_eq!(db.lookup(ip("10.2.3.4")).as_deref(), Some("DE"));
        assert_eq!(db.lookup(ip("10.1.3.4")).as_deref(), Some("FR"));
        assert_eq!(db.lookup(ip("::ffff:10.1.3.4")).as_deref(), Some("FR"));
        assert_eq!(db.lookup(ip("2001:db8:2::1")).as_deref(), Some("JP"));
        assert_eq!(db.lookup(ip("2001:db8:1::1")).as_deref(), Some("FR"));
        // country.iso_code missing: registered_country.iso_code.
        assert_eq!(db.lookup(ip("192.0.2.1")).as_deref(), Some("US"));
        // Decision 5: `IC` answers ES, as a CSV table and a position do.
        assert_eq!(db.lookup(ip("100.64.0.9")).as_deref(), Some("ES"));
        // Misses: not in the tree, or no alpha-2 code in the record.
        assert_eq!(db.lookup(ip("11.0.0.1")), None);
        assert_eq!(db.lookup(ip("198.51.100.1")), None);
        assert_eq!(db.lookup(ip("2001:db9::1")), None);
        assert_eq!(db.lookup(ip("::1")), None);
        // Spec notes §2.1: `accc` lists assigned ISO 3166-1 codes; `XX`
        // names no country, `UK` is GB.
        assert_eq!(db.lookup(ip("203.0.113.1")), None);
        assert_eq!(db.lookup(ip("203.0.113.129")).as_deref(), Some("GB"));
        // The database keeps 10.0.0.0/8 under ::10.0.0.0/104 too; the
        // IPv4-compatible `::10.2.3.4` is an IPv6 address (as to `acip` and
        // the CSV tables), with no country.
        assert_eq!(db.lookup(ip("::10.2.3.4")), None);
        assert_eq!(db.lookup(ip("::a02:304")), None);
    }
    dir.close().unwrap();
}

#[test]
fn mmdb_errors_name_the_path() {
    let dir = temp_dir("mmdb-bad");
    let corrupt = dir.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"this is not a MaxMind database at all").unwrap();
    let err = MmdbCountries::open(&corrupt).unwrap_err();
    assert!(matches!(err, GeoError::Mmdb { .. }), "{err}");
    assert!(err.to_string().contains("corrupt.mmdb"), "{err}");

    // A real database cut short: the metadata is gone.
    let good = write_test_mmdb(dir.path(), 24);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mmdb");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = MmdbCountries::open(&truncated).unwrap_err();
    assert!(err.to_string().contains("truncated.mmdb"), "{err}");

    let missing = dir.path().join("missing.mmdb");
    let err = MmdbCountries::open(&missing).unwrap_err();
    assert!(matches!(err, GeoError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.mmdb"), "{err}");
    dir.close().unwrap();
}

#[test]
fn sources_tables_first_then_mmdb() {
    let dir = temp_dir("sources");
    let mut sources = IpCountrySources::new();
    assert!(sources.is_empty());
    assert_eq!(sources.lookup(ip("10.1.0.1")), None);
    let mut override_table = IpCountryTable::new();
    override_table
        .insert("10.1.2.0/24".parse().unwrap(), "BE")
        .unwrap();
    sources.add_table(override_table);
    sources
        .add_table(IpCountryTable::from_csv("second", "10.1.3.0/24,NL\n10.1.2.0/24,LU\n").unwrap());
    sources.add_mmdb(MmdbCountries::open(&write_test_mmdb(dir.path(), 28)).unwrap());
    assert!(!sources.is_empty());
    // The first table wins over the second, and both over the mmdb file,
    // even where the mmdb file has a longer prefix.
    assert_eq!(sources.lookup(ip("10.1.2.9")).as_deref(), Some("BE"));
    assert_eq!(sources.lookup(ip("10.1.3.9")).as_deref(), Some("NL"));
    assert_eq!(sources.lookup(ip("10.1.4.9")).as_deref(), Some("FR"));
    assert_eq!(sources.lookup(ip("2001:db8::5")).as_deref(), Some("JP"));
    assert_eq!(sources.lookup(ip("203.0.113.1")), None);
    dir.close().unwrap();
}

// ---------------------------------------------------------------- positions

fn locator() -> &'static CountryLocator {
    static LOCATOR: OnceLock<CountryLocator> = OnceLock::new();
    LOCATOR.get_or_init(|| CountryLocator::new().unwrap())
}

#[test]
fn positions_in_cities_and_at_sea() {
    let l = locator();
    assert_eq!(l.countries(48.8566, 2.3522, 0.0), ["FR"]); // Paris
    assert_eq!(l.countries(52.5200, 13.4050, 0.0), ["DE"]); // Berlin
    assert_eq!(l.countries(33.0, -97.0, 0.0), ["US"]); // Dallas: "US-TX" dropped
    assert_eq!(l.countries(45.0, -30.0, 0.0), Vec::<String>::new()); // mid-Atlantic
    assert_eq!(l.countries(45.0, -30.0, 50_000.0), Vec::<String>::new());
    // The German exclave Büsingen inside Switzerland.
    assert_eq!(l.countries(47.6973, 8.6910, 0.0), ["DE"]);
}

/// Decision 5 (TS-0003 F.1.2 `accc`, F.2.2 position to country): one point
/// is in one country (spec notes §2.1: `accc` holds ISO 3166-1 alpha-2
/// country codes). The dataset nests dependent territories in their
/// sovereign's area; the answer is the territory's own ISO 3166-1 alpha-2
/// code (as IP geolocation databases report it), not both, which would make
/// `accc: ["HK"]` deny a point in Hong Kong.
#[test]
fn decision_5_a_point_in_a_dependent_territory_gives_the_territory_alone() {
    let l = locator();
    for (lat, lon, code) in [
        (22.30, 114.17, "HK"),     // Kowloon (CN around it)
        (18.4655, -66.1057, "PR"), // San Juan (US)
        (60.0973, 19.9348, "AX"),  // Mariehamn, Åland (FI)
        (-20.8821, 55.4507, "RE"), // Saint-Denis, Réunion (FR)
        (13.4745, 144.7504, "GU"), // Hagåtña, Guam (US)
        (78.2232, 15.6267, "SJ"),  // Longyearbyen, Svalbard (NO)
    ] {
        assert_eq!(l.countries(lat, lon, 0.0), [code], "({lat}, {lon})");
    }
    // The dataset also names areas by ISO 3166-1 *exceptionally reserved*
    // codes, which are no country codes (`accc` lists country codes, and IP
    // databases report these places under their country): the country's.
    for (lat, lon, uncertainty_m) in [
        (28.1235, -15.4363, 0.0),     // Las Palmas, Canary Islands ("IC")
        (28.4636, -16.2518, 2_000.0), // Santa Cruz de Tenerife, a disk on land
        (35.8894, -5.3213, 0.0),      // Ceuta ("EA")
    ] {
        let found = l.countries(lat, lon, uncertainty_m);
        assert!(
            found.iter().any(|c| c == "ES") && !found.iter().any(|c| c == "IC" || c == "EA"),
            "({lat}, {lon}, {uncertainty_m}): {found:?}"
        );
    }
    assert_eq!(l.countries(28.1235, -15.4363, 0.0), ["ES"]);
    // Not a dependent territory: still the one country.
    assert_eq!(l.countries(50.1109, 8.6821, 0.0), ["DE"]); // Frankfurt
    assert_eq!(l.countries(40.7128, -74.0060, 0.0), ["US"]); // New York ("US-NY" dropped)
    // The multi-country disk is unchanged: Basel's corner is CH, DE and FR.
    let basel = l.countries(47.59, 7.59, 30_000.0);
    for c in ["CH", "DE", "FR"] {
        assert!(basel.iter().any(|b| b == c), "{basel:?}");
    }

    let hong_kong = authz_core::Position {
        lat: 22.30,
        lon: 114.17,
        uncertainty_m: 0.0,
    };
    assert_eq!(
        decide_at(&country_rule(&["HK"]), hong_kong).effect,
        authz_core::Effect::Permit
    );
    assert_eq!(
        decide_at(&country_rule(&["CN"]), hong_kong).effect,
        authz_core::Effect::Deny
    );
}

/// Decision 5 with an uncertainty radius (TS-0003 F.2.2, position to
/// country): a disk wholly inside a dependent territory is in the territory
/// alone, as every point of it is. The dataset's area of the sovereign holds
/// the territory too (HK in CN, PR in US), but no point of the disk answers
/// the sovereign, and answering both would make `accc: ["HK"]` and
/// `accc: ["CN"]` both deny. A disk reaching over the territory's border may
/// be in either; a disk in the sovereign's own land is in it alone.
#[test]
fn decision_5_a_disk_inside_a_dependent_territory_gives_the_territory_alone() {
    let l = locator();
    for (lat, lon, r, code) in [
        (22.30, 114.17, 10.0, "HK"),     // Kowloon (CN around it)
        (22.30, 114.17, 500.0, "HK"),    // the same, ± 500 m
        (22.38, 114.13, 2_000.0, "HK"),  // New Territories
        (18.4655, -66.1057, 10.0, "PR"), // San Juan (US)
        (18.40, -66.06, 2_000.0, "PR"),
        (18.30, -66.00, 2_000.0, "PR"), // over the dataset's cell line at 66° W
        (60.0973, 19.9348, 10.0, "AX"), // Mariehamn, Åland (FI)
        (-21.1, 55.5, 3_000.0, "RE"),   // Réunion (FR)
        (13.45, 144.78, 2_000.0, "GU"), // Guam (US)
        (78.2232, 15.6267, 10.0, "SJ"), // Longyearbyen, Svalbard (NO)
        (43.94, 12.45, 1_000.0, "SM"),  // San Marino, inside Italy
    ] {
        assert_eq!(l.countries(lat, lon, r), [code], "({lat}, {lon}, {r})");
    }
    // Over the Shenzhen River at Lok Ma Chau: land on both sides, either
    // country, no marker.
    let lok_ma_chau = (22.51, 114.08);
    assert_eq!(
        l.countries(lok_ma_chau.0, lok_ma_chau.1, 3_000.0),
        ["CN", "HK"]
    );
    assert_eq!(l.countries(43.94, 12.45, 20_000.0), ["IT", "SM"]);
    // Mainland China, next to Hong Kong (Shenzhen) and far from it.
    assert_eq!(l.countries(22.60, 114.10, 1_000.0), ["CN"]);
    assert_eq!(l.countries(30.0, 110.0, 10_000.0), ["CN"]);
    assert_eq!(l.countries(39.9, 116.4, 10.0), ["CN"]); // Beijing

    let at = |(lat, lon): (f64, f64), uncertainty_m| authz_core::Position {
        lat,
        lon,
        uncertainty_m,
    };
    let effect = |codes: &[&str], p| decide_at(&country_rule(codes), p).effect;
    use authz_core::Effect::{Deny, Permit};
    let kowloon = at((22.30, 114.17), 500.0);
    assert_eq!(effect(&["HK"], kowloon), Permit);
    assert_eq!(effect(&["CN"], kowloon), Deny);
    let san_juan = at((18.4655, -66.1057), 10.0);
    assert_eq!(effect(&["PR"], san_juan), Permit);
    assert_eq!(effect(&["US"], san_juan), Deny);
    let border = at(lok_ma_chau, 3_000.0);
    assert_eq!(effect(&["CN", "HK"], border), Permit);
    assert_eq!(effect(&["HK"], border), Deny);
    assert_eq!(effect(&["CN"], border), Deny);
    assert_eq!(effect(&["CN"], at((22.60, 114.10), 1_000.0)), Permit);
}

#[test]
fn positions_on_the_rhine_between_strasbourg_and_kehl() {
    let l = locator();
    // Strasbourg cathedral is about 3.6 km west of the Rhine, the border
    // here; Kehl's centre is about 1 km east of it. Both points are well
    // clear of the border at the dataset's resolution.
    let (cathedral, kehl) = ((48.5819, 7.7510), (48.5722, 7.8150));
    assert_eq!(l.countries(cathedral.0, cathedral.1, 0.0), ["FR"]);
    assert_eq!(l.countries(kehl.0, kehl.1, 0.0), ["DE"]);
    // A disk reaching over the Rhine may be in either country.
    assert_eq!(l.countries(cathedral.0, cathedral.1, 5_000.0), ["DE", "FR"]);
    assert_eq!(l.countries(kehl.0, kehl.1, 5_000.0), ["DE", "FR"]);
    // A small disk stays in one country even though the dataset's 1° cell
    // holds both (outlines are tested, not just cells).
    assert_eq!(l.countries(cathedral.0, cathedral.1, 1_000.0), ["FR"]);
    assert_eq!(l.countries(kehl.0, kehl.1, 10.0), ["DE"]);
    // Sorted and deduplicated over a wide disk (Basel's three-country corner).
    let wide = l.countries(47.59, 7.59, 30_000.0);
    assert!(wide.windows(2).all(|w| w[0] < w[1]), "{wide:?}");
    for c in ["CH", "DE", "FR"] {
        assert!(wide.iter().any(|w| w == c), "{wide:?}");
    }
}

#[test]
fn invalid_positions_give_no_country() {
    let l = locator();
    let none = Vec::<String>::new();
    for (lat, lon, r) in [
        (f64::NAN, 2.35, 0.0),
        (48.85, f64::NAN, 0.0),
        (48.85, 2.35, f64::NAN),
        (48.85, 2.35, -1.0),
        (90.5, 0.0, 0.0),
        (-91.0, 0.0, 10.0),
        (48.85, 180.5, 0.0),
        (48.85, -400.0, 0.0),
        (f64::INFINITY, 0.0, 0.0),
        (48.85, f64::NEG_INFINITY, 10.0),
    ] {
        assert_eq!(l.countries(lat, lon, r), none, "{lat},{lon},{r}");
    }
    // Extreme but valid input does not panic.
    assert!(l.countries(48.85, 2.35, f64::INFINITY).len() > 200);
    assert!(l.countries(48.85, 2.35, f64::MAX).len() > 200);
    assert_eq!(l.countries(89.999, 0.0, 10.0), none);
    assert_eq!(l.countries(-90.0, 180.0, 0.0), none);
    // Across the antimeridian: Chukotka on both sides of 180° (the Gulf of
    // Anadyr is about 30 km south, so a 50 km disk is partly at sea).
    assert_eq!(l.countries(65.0, 179.9, 20_000.0), ["RU"]);
    assert_eq!(l.countries(65.0, -179.9, 20_000.0), ["RU"]);
    assert_eq!(
        l.countries(65.0, 179.9, 50_000.0),
        [OUTSIDE_EVERY_COUNTRY, "RU"]
    );
}

/// The point `distance_m` from (`lat`, `lon`) on the great circle leaving at
/// `bearing_deg`, on the sphere of the engine's haversine distance.
fn destination(lat: f64, lon: f64, bearing_deg: f64, distance_m: f64) -> (f64, f64) {
    let d = distance_m / 6_371_008.8;
    let (phi, theta) = (lat.to_radians(), bearing_deg.to_radians());
    let phi2 = (phi.sin() * d.cos() + phi.cos() * d.sin() * theta.cos()).asin();
    let lambda2 = lon.to_radians()
        + (theta.sin() * d.sin() * phi.cos()).atan2(d.cos() - phi.sin() * phi2.sin());
    let lon2 = (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (phi2.to_degrees(), lon2)
}

fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let p = |(lat, lon)| authz_core::Position {
        lat,
        lon,
        uncertainty_m: 0.0,
    };
    authz_core::location::distance_m(&p(a), &p(b))
}

/// Decision 5 (the whole uncertainty disk must lie inside) over many disks:
/// the answer is never fewer than what the disk holds. Points of the disk
/// (haversine, the engine's distance: rings at 0, ¼, ½, ¾ and all of the
/// radius, 48 bearings) are looked up with the crate's exact point test:
/// the country a point there answers (the smallest area containing it, a
/// dependent territory rather than its sovereign) is in the answer, and when
/// one is in no country, the answer holds the marker (or is empty, when no
/// point is in a country). And the answer holds no country that the crate's
/// per-cell box query rules out.
#[test]
fn decision_5_disk_answers_cover_every_point_of_the_disk() {
    use country_boundaries::{BOUNDARIES_ODBL_360X180, BoundingBox, CountryBoundaries, LatLon};
    let l = locator();
    let crate_boundaries = CountryBoundaries::from_reader(BOUNDARIES_ODBL_360X180).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut multi, mut marked, mut clean_coast) = (0, 0, 0);
    for case in 0..400 {
        // Mostly Europe, where borders and coasts are dense; some anywhere.
        let (lat, lon) = if case % 4 == 0 {
            (-60.0 + 130.0 * next(), -180.0 + 360.0 * next())
        } else {
            (36.0 + 24.0 * next(), -10.0 + 40.0 * next())
        };
        let r = 10f64.powf(1.0 + 4.5 * next()); // 10 m .. 300 km
        let got = l.countries(lat, lon, r);
        let has_marker = got.iter().any(|g| g == OUTSIDE_EVERY_COUNTRY);
        if got
            .iter()
            .filter(|g| g.len() == 2 && *g != OUTSIDE_EVERY_COUNTRY)
            .count()
            > 1
        {
            multi += 1;
        }
        if has_marker {
            marked += 1;
        }
        let mut some_point_at_sea = false;
        for ring in 0..=4 {
            let distance = r * f64::from(ring) / 4.0;
            for k in 0..48 {
                let (plat, plon) = destination(lat, lon, f64::from(k) * 7.5, distance);
                assert!(haversine_m((lat, lon), (plat, plon)) <= r * 1.000_001 + 1e-6);
                let ids: Vec<&str> = crate_boundaries
                    .ids(LatLon::new(plat, plon).unwrap())
                    .into_iter()
                    .filter(|id| id.len() == 2)
                    // Reserved codes (IC) stand for their country (ES).
                    .map(assigned_code)
                    .collect();
                // Smallest area first: the point's own answer.
                if let Some(id) = ids.first() {
                    assert!(
                        got.iter().any(|g| g == id),
                        "{lat},{lon} r={r}: {id} at {plat},{plon} missing from {got:?}"
                    );
                }
                if ids.is_empty() {
                    some_point_at_sea = true;
                    assert!(
                        got.is_empty() || has_marker,
                        "{lat},{lon} r={r}: {plat},{plon} is in no country, but {got:?} has no marker"
                    );
                }
            }
        }
        if !some_point_at_sea && !got.is_empty() && !has_marker {
            clean_coast += 1;
        }
        // The crate's cell query, on a box a little wider than the disk's.
        let dlat = 1.1 * r / 111_195.0;
        let dlon = (dlat / lat.to_radians().cos()).min(180.0);
        let wide = BoundingBox::new(
            (lat - dlat).max(-90.0),
            lon - dlon,
            (lat + dlat).min(90.0),
            lon + dlon,
        )
        .unwrap();
        let cells = crate_boundaries.intersecting_ids(wide);
        for g in got.iter().filter(|g| *g != OUTSIDE_EVERY_COUNTRY) {
            assert!(
                cells.contains(g.as_str()),
                "{lat},{lon} r={r}: {g} not in {cells:?}"
            );
        }
    }
    assert!(multi > 20, "too few border cases exercised: {multi}");
    assert!(marked > 20, "too few disks reaching the sea: {marked}");
    assert!(
        clean_coast > 20,
        "too few disks wholly on land: {clean_coast}"
    );
}

/// Decision 5 on the reviewed case: a position in the North Sea is in no
/// country; the same position with a 60 km uncertainty reaches the German
/// coast, and the disk is partly at sea, so it is in no listed country
/// either. A rule `accc: ["DE"]` (TS-0003 F.1.2) denies both: a less precise
/// position never turns a Deny into a Permit. A disk wholly inland is
/// decided by its countries alone.
#[test]
fn decision_5_a_disk_partly_at_sea_matches_no_country_rule() {
    let l = locator();
    assert_eq!(l.countries(54.8, 6.0, 0.0), Vec::<String>::new());
    let wide = l.countries(54.8, 6.0, 60_000.0);
    assert!(wide.iter().any(|c| c == "DE"), "{wide:?}");
    assert!(wide.iter().any(|c| c == OUTSIDE_EVERY_COUNTRY), "{wide:?}");
    assert!(!authz_core::location::is_country_code(
        OUTSIDE_EVERY_COUNTRY
    ));
    // Inland: Germany around Fulda, 100 km.
    assert_eq!(l.countries(50.5, 10.0, 100_000.0), ["DE"]);
    // The Strasbourg/Kehl disk crosses the Rhine, a border both countries'
    // outlines draw alike: land on both sides, no marker.
    assert_eq!(l.countries(48.5819, 7.7510, 5_000.0), ["DE", "FR"]);

    let germany = country_rule(&["DE"]);
    let north_sea = |r| authz_core::Position {
        lat: 54.8,
        lon: 6.0,
        uncertainty_m: r,
    };
    for r in [0.0, 60_000.0] {
        let d = decide_at(&germany, north_sea(r));
        assert_eq!(d.effect, authz_core::Effect::Deny, "r={r}: {d:?}");
        // Known to be in no (listed) country: an answer, not a missing attribute.
        assert_eq!(
            d.status,
            authz_core::AuthorizationStatus::Ok,
            "r={r}: {d:?}"
        );
    }
    // Listing every country the disk reaches does not help: part of it is sea.
    let neighbours = country_rule(&["DE", "DK", "NL"]);
    assert_eq!(
        decide_at(&neighbours, north_sea(60_000.0)).effect,
        authz_core::Effect::Deny
    );
    let fulda = authz_core::Position {
        lat: 50.5,
        lon: 10.0,
        uncertainty_m: 100_000.0,
    };
    assert_eq!(
        decide_at(&germany, fulda).effect,
        authz_core::Effect::Permit
    );
}

/// Decision 5 with the engine's distance: the disk is measured by haversine
/// on the mean Earth radius (about 111 195 m per degree of latitude), not
/// with 111 320 m per degree, which left a box about 0.11 % too small. North
/// of (48.1005, -100) the dataset puts Canada less than 100 km away; a
/// 100 km disk there must include CA.
#[test]
fn decision_5_the_disk_is_measured_by_haversine() {
    let l = locator();
    let centre = (48.1005, -100.0);
    // The first point due north that the dataset puts in Canada.
    let mut lat = 48.99;
    while l.countries(lat, centre.1, 0.0) != ["CA"] {
        lat += 0.000_01;
        assert!(lat < 49.01, "no Canada north of the centre");
    }
    let distance = haversine_m(centre, (lat, centre.1));
    assert!(
        distance < 100_000.0 && distance > 99_900.0,
        "Canada at {lat} is {distance} m away"
    );
    assert_eq!(l.countries(centre.0, centre.1, 100_000.0), ["CA", "US"]);
    // Just short of that point, only the United States.
    assert_eq!(l.countries(centre.0, centre.1, distance - 200.0), ["US"]);
}

/// Decision 5 around dependent territories and enclaves, where a disk may
/// leave out the sovereign: every point of a disk (rings at 0, ¼, ½, ¾ and
/// all of the radius, 48 bearings) answers, as a point, a country of the
/// disk's answer, and a point in no country comes with the marker (a
/// territory's coast is drawn in its sovereign's area too, and is coast
/// still). Centres on a grid over Hong Kong and Shenzhen, Puerto Rico,
/// Guam, Åland, San Marino and the Vatican, radii 10 m to 20 km.
#[test]
fn decision_5_disks_around_territories_cover_every_point() {
    let l = locator();
    let (mut alone, mut both) = (0, 0);
    for (lat0, lon0, span) in [
        (22.45, 114.10, 0.30),  // Hong Kong, Shenzhen
        (18.25, -66.40, 0.60),  // Puerto Rico
        (17.80, -66.59, 0.20),  // Puerto Rico's south coast, disks reaching the sea
        (13.45, 144.75, 0.50),  // Guam (US)
        (60.15, 19.95, 0.30),   // Åland
        (43.94, 12.46, 0.10),   // San Marino
        (41.903, 12.453, 0.01), // Vatican City
    ] {
        for i in 0..5 {
            for j in 0..5 {
                let lat = lat0 + span * (f64::from(i) / 4.0 - 0.5);
                let lon = lon0 + span * (f64::from(j) / 4.0 - 0.5);
                for r in [10.0, 300.0, 3_000.0, 20_000.0] {
                    let got = l.countries(lat, lon, r);
                    let has_marker = got.iter().any(|g| g == OUTSIDE_EVERY_COUNTRY);
                    let territories = ["HK", "PR", "GU", "AX", "SM", "VA"];
                    if let [one] = &got[..]
                        && territories.contains(&one.as_str())
                    {
                        alone += 1;
                    } else if got.len() > 1 {
                        both += 1;
                    }
                    for ring in 0..=4 {
                        let distance = r * f64::from(ring) / 4.0;
                        for k in 0..48 {
                            let (plat, plon) = destination(lat, lon, f64::from(k) * 7.5, distance);
                            let point = l.countries(plat, plon, 0.0);
                            for c in &point {
                                assert!(
                                    got.contains(c),
                                    "{lat},{lon} r={r}: {c} at {plat},{plon} missing from {got:?}"
                                );
                            }
                            assert!(
                                !point.is_empty() || got.is_empty() || has_marker,
                                "{lat},{lon} r={r}: {plat},{plon} is in no country, but {got:?} has no marker"
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!("alone {alone} both {both}");
    assert!(
        alone > 20,
        "too few disks inside a territory alone: {alone}"
    );
    assert!(both > 50, "too few disks over a border: {both}");
}

fn country_rule(codes: &[&str]) -> authz_core::CompiledAcp {
    let doc = serde_json::json!({"m2m:acp": {
        "ri": "acpCountry",
        "pv": {"acr": [{"acor": ["Cwalker"], "acop": 2, "acco": [{"aclr": {"accc": codes}}]}]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}
    }})
    .to_string();
    let acps = authz_core::json::parse_and_validate(&doc).expect("valid ACP");
    authz_core::CompiledAcp::compile(acps[0].id().expect("ri"), &acps[0]).expect("compiles")
}

/// Decides a Retrieve by `Cwalker`, whose request carries `position`; its
/// countries come from the locator, as the PIP gives them to the PDP.
fn decide_at(
    acp: &authz_core::CompiledAcp,
    position: authz_core::Position,
) -> authz_core::Decision {
    struct Located(&'static CountryLocator);
    impl authz_core::AttributeSource for Located {
        fn role_verified(
            &self,
            _: &str,
            _: &str,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Lookup<bool> {
            Lookup::NotFound
        }
        fn group_has_member(&self, _: &str, _: &str) -> Lookup<bool> {
            Lookup::NotFound
        }
        fn for_each_group_containing(&self, _: &str, _: &mut dyn FnMut(&str)) -> Lookup<()> {
            Lookup::Found(())
        }
        fn position(
            &self,
            _: &str,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Lookup<authz_core::Position> {
            Lookup::NotFound
        }
        fn countries_of_position(&self, p: &authz_core::Position) -> Lookup<Vec<String>> {
            Lookup::Found(self.0.countries(p.lat, p.lon, p.uncertainty_m))
        }
        fn country_of_ip(&self, _: IpAddr) -> Lookup<String> {
            Lookup::NotFound
        }
    }
    let hosting = authz_core::HostingContext::new("//sp.example.com", "/id-in").unwrap();
    let mut request = authz_core::DecisionRequest::new(
        "Cwalker",
        authz_core::Operation::Retrieve,
        "/id-in/cnt1",
        chrono::Utc::now(),
    );
    request.position = Some(position);
    authz_core::decide(
        &request,
        &hosting,
        &[authz_core::Applicable {
            acp,
            kind: authz_core::PrivilegeKind::Privileges,
        }],
        &Located(locator()),
        &authz_core::DecideOptions {
            explain: false,
            granted_roles: &[],
        },
    )
}

/// Every country the shipped boundaries dataset can answer (its alpha-2
/// ids, reserved ones read as their country) is an assigned ISO 3166-1
/// code, so a policy can list it (spec notes §2.1): sampled on a 0.25°
/// grid, which holds a point of every area the dataset's 1° cells name.
#[test]
fn every_country_of_the_boundaries_dataset_is_an_assigned_code() {
    use country_boundaries::{BOUNDARIES_ODBL_360X180, CountryBoundaries, LatLon};
    let boundaries = CountryBoundaries::from_reader(BOUNDARIES_ODBL_360X180).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..720 {
        for j in 0..1440 {
            let (lat, lon) = (-89.9 + f64::from(i) * 0.25, -179.9 + f64::from(j) * 0.25);
            for id in boundaries.ids(LatLon::new(lat, lon).unwrap()) {
                if id.len() == 2 {
                    seen.insert(assigned_code(id).to_owned());
                }
            }
        }
    }
    let odd: Vec<&String> = seen
        .iter()
        .filter(|c| !authz_core::location::is_country_code(c))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert!(seen.len() > 200, "{}", seen.len());
}
