//! Differential tests for `authz_core::time_window` (oneM2M extended crontab,
//! TS-0004 7.4.9.1; spec-notes §3).
//!
//! The `cron` crate (0.17) is used only as an *oracle*, never in production,
//! because its grammar differs from oneM2M's (stack-notes §3): day-of-week is
//! 1-7 with 1 = Sunday (oneM2M: 0-6, 0 = Sunday), years stop at 2100 (oneM2M:
//! 9999), `*/n` on the year counts from 1970 (oneM2M: from 2000), and it also
//! accepts names, `?`, `5/10`, `@daily` and 6-field expressions that oneM2M
//! rejects. The generators below therefore produce only expressions inside the
//! common subset: years within 2000-2100, no `*/n` on the year, steps no
//! larger than cron allows, and every day-of-week number shifted by +1 (with
//! `*/n` written as `1-7/n`) in the translation handed to cron.
//!
//! `next_match` is also checked against a second-by-second brute force over
//! a few days, and `TimeParts::from_unix` against chrono over chrono's whole
//! range.

use std::str::FromStr;

use authz_core::time_window::{TimeParts, TimeWindow};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use proptest::strategy::Union;

/// 2000-01-01T00:00:00Z.
const T2000: i64 = 946_684_800;
/// 2101-01-01T00:00:00Z (exclusive end of cron's year range).
const T2101: i64 = 4_133_980_800;

/// One field as the generator sees it.
#[derive(Clone, Copy)]
struct Field {
    min: u32,
    max: u32,
    /// cron rejects steps above its field maximum.
    step_max: u32,
    /// Day-of-week: shift by +1 for cron.
    dow: bool,
    /// Generate `*/n` (not on the year, see the module comment).
    star_step: bool,
}

const SEC: Field = Field {
    min: 0,
    max: 59,
    step_max: 59,
    dow: false,
    star_step: true,
};
const MIN: Field = Field {
    min: 0,
    max: 59,
    step_max: 59,
    dow: false,
    star_step: true,
};
const HOUR: Field = Field {
    min: 0,
    max: 23,
    step_max: 23,
    dow: false,
    star_step: true,
};
const DOM: Field = Field {
    min: 1,
    max: 31,
    step_max: 31,
    dow: false,
    star_step: true,
};
const MON: Field = Field {
    min: 1,
    max: 12,
    step_max: 12,
    dow: false,
    star_step: true,
};
const DOW: Field = Field {
    min: 0,
    max: 6,
    step_max: 7,
    dow: true,
    star_step: true,
};
const YEAR: Field = Field {
    min: 2000,
    max: 2100,
    step_max: 150,
    dow: false,
    star_step: false,
};

/// One list element as `(oneM2M text, cron text)`.
fn element(f: Field) -> BoxedStrategy<(String, String)> {
    let shift = u32::from(f.dow);
    let num = f.min..=f.max;
    let mut arms: Vec<BoxedStrategy<(String, String)>> = vec![
        num.clone()
            .prop_map(move |a| (a.to_string(), (a + shift).to_string()))
            .boxed(),
        (num.clone(), num.clone())
            .prop_map(move |(a, b)| {
                let (a, b) = (a.min(b), a.max(b));
                (format!("{a}-{b}"), format!("{}-{}", a + shift, b + shift))
            })
            .boxed(),
        (num.clone(), num, 1..=f.step_max)
            .prop_map(move |(a, b, n)| {
                let (a, b) = (a.min(b), a.max(b));
                (
                    format!("{a}-{b}/{n}"),
                    format!("{}-{}/{n}", a + shift, b + shift),
                )
            })
            .boxed(),
    ];
    if f.star_step {
        arms.push(
            (1..=f.step_max)
                .prop_map(move |n| {
                    let theirs = if f.dow {
                        format!("1-7/{n}")
                    } else {
                        format!("*/{n}")
                    };
                    (format!("*/{n}"), theirs)
                })
                .boxed(),
        );
    }
    Union::new(arms).boxed()
}

/// One field: `*` or a list of 1-3 elements.
fn field(f: Field, star_weight: u32) -> BoxedStrategy<(String, String)> {
    prop_oneof![
        star_weight => Just(("*".to_owned(), "*".to_owned())),
        3 => proptest::collection::vec(element(f), 1..=3).prop_map(|els| {
            let (ours, theirs): (Vec<String>, Vec<String>) = els.into_iter().unzip();
            (ours.join(","), theirs.join(","))
        }),
    ]
    .boxed()
}

fn join(fields: [(String, String); 7]) -> (String, String) {
    let (ours, theirs): (Vec<String>, Vec<String>) = fields.into_iter().unzip();
    (ours.join(" "), theirs.join(" "))
}

/// A valid expression in the common subset, as `(oneM2M, cron)`.
fn expression() -> impl Strategy<Value = (String, String)> {
    (
        field(SEC, 2),
        field(MIN, 2),
        field(HOUR, 2),
        field(DOM, 2),
        field(MON, 2),
        field(DOW, 2),
        field(YEAR, 3),
    )
        .prop_map(|(a, b, c, d, e, f, g)| join([a, b, c, d, e, f, g]))
}

/// An expression that matches often (dense days), for the brute force.
fn dense_expression() -> impl Strategy<Value = (String, String)> {
    (
        field(SEC, 1),
        field(MIN, 1),
        field(HOUR, 1),
        field(DOM, 6),
        field(MON, 8),
        field(DOW, 3),
        Just(("*".to_owned(), "*".to_owned())),
    )
        .prop_map(|(a, b, c, d, e, f, g)| join([a, b, c, d, e, f, g]))
}

fn at(secs: i64) -> DateTime<Utc> {
    // Every generated value is well inside chrono's range.
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn compile(ours: &str, theirs: &str) -> Result<(TimeWindow, cron::Schedule), TestCaseError> {
    let w = TimeWindow::parse(ours).map_err(|e| TestCaseError::fail(format!("{ours:?}: {e}")))?;
    let s = cron::Schedule::from_str(theirs)
        .map_err(|e| TestCaseError::fail(format!("cron rejected {theirs:?}: {e}")))?;
    Ok((w, s))
}

/// cron's `after` is strictly-after; this is "at or after" for whole seconds.
fn cron_at_or_after(s: &cron::Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    s.after(&(t - Duration::seconds(1))).next()
}

/// Our `next_match`, cut at cron's horizon (end of 2100).
fn ours_within_cron_horizon(w: &TimeWindow, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    w.next_match(t).filter(|n| n.timestamp() < T2101)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// `matches` agrees with cron's `includes` on random instants in
    /// 2000-2100, on each side's next match (positives), and on the second
    /// before each of them.
    #[test]
    fn time_window_matches_agrees_with_cron(
        (ours, theirs) in expression(),
        times in proptest::collection::vec(T2000..T2101, 6),
    ) {
        let (w, s) = compile(&ours, &theirs)?;
        for &secs in &times {
            let t = at(secs);
            let mine = w.matches(&TimeParts::of(t));
            prop_assert_eq!(mine, s.includes(t), "{} / {} at {}", ours, theirs, t);
            prop_assert_eq!(mine, w.matches(&TimeParts::from_unix(secs)));
        }
        // Positives: both sides' next matches must be inside for the other.
        for &secs in &times[..2] {
            let t = at(secs);
            if let Some(n) = ours_within_cron_horizon(&w, t) {
                prop_assert!(s.includes(n), "{} / {}: ours {} not in cron", ours, theirs, n);
                let before = n - Duration::seconds(1);
                prop_assert_eq!(w.matches(&TimeParts::of(before)), s.includes(before));
            }
            if let Some(n) = cron_at_or_after(&s, t) {
                prop_assert!(w.matches(&TimeParts::of(n)), "{} / {}: cron {} not ours", ours, theirs, n);
            }
        }
    }

    /// `next_match(t)` equals cron's `after(t - 1s).next()` (whole seconds).
    #[test]
    fn time_window_next_match_agrees_with_cron(
        (ours, theirs) in expression(),
        secs in T2000..T2101,
    ) {
        let (w, s) = compile(&ours, &theirs)?;
        let t = at(secs);
        let mine = ours_within_cron_horizon(&w, t);
        let cron = cron_at_or_after(&s, t);
        prop_assert_eq!(mine, cron, "{} / {} from {}", ours, theirs, t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `next_match` equals a second-by-second scan over three days, from a
    /// start that may carry a sub-second part (which rounds up).
    #[test]
    fn time_window_next_match_agrees_with_brute_force(
        (ours, _theirs) in dense_expression(),
        secs in T2000..T2101,
        nanos in prop_oneof![Just(0u32), 1u32..1_000_000_000],
    ) {
        let w = TimeWindow::parse(&ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after = DateTime::from_timestamp(secs, nanos).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let start = secs + i64::from(nanos > 0);
        const HORIZON: i64 = 3 * 86_400;
        let brute = (start..start + HORIZON).find(|&s| w.matches(&TimeParts::from_unix(s)));
        let mine = w.next_match(after);
        match brute {
            Some(b) => prop_assert_eq!(mine, Some(at(b)), "{} from {}", ours, after),
            None => prop_assert!(
                mine.is_none_or(|m| m.timestamp() >= start + HORIZON),
                "{} from {}: next_match {:?} inside an empty horizon", ours, after, mine
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// `TimeParts::from_unix` agrees with chrono over chrono's whole range
    /// (years clamped into u16), and with `TimeParts::of`.
    #[test]
    fn time_window_time_parts_agree_with_chrono(
        secs in prop_oneof![
            DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            T2000 - 86_400 * 800..T2101 + 86_400 * 800,
        ],
    ) {
        let t = at(secs);
        let p = TimeParts::from_unix(secs);
        prop_assert_eq!(p, TimeParts::of(t));
        prop_assert_eq!(u32::from(p.sec), t.second());
        prop_assert_eq!(u32::from(p.min), t.minute());
        prop_assert_eq!(u32::from(p.hour), t.hour());
        prop_assert_eq!(u32::from(p.dom), t.day());
        prop_assert_eq!(u32::from(p.mon), t.month());
        prop_assert_eq!(u32::from(p.dow), t.weekday().num_days_from_sunday());
        prop_assert_eq!(i64::from(p.year), i64::from(t.year()).clamp(0, 65_535));
    }

    /// Arbitrary text never panics the parser. (Random text almost never
    /// parses; strictness is pinned by the two properties below.)
    #[test]
    fn time_window_parse_never_panics(s in "[0-9*,/ \\-A-Za-z?#@+]{0,40}") {
        if let Ok(w) = TimeWindow::parse(&s) {
            let _ = w.matches(&TimeParts::from_unix(T2000));
        }
    }
}

/// The seven fields' names as the parser's errors give them, and bounds
/// (TS-0004 7.4.9.1, Table 7.4.9.1-4; Decision 4).
const FIELDS: [(&str, u32, u32); 7] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
    ("year", 2000, 9999),
];

/// Text that must not be accepted in field `i`: cron/Quartz syntax outside
/// the oneM2M grammar (names, `?`, `L`, `W`, `#`, macros, a step on a
/// single value, signs; Decision 4), a number outside the field's bounds
/// (`60` seconds, day-of-week `7`), a reversed range (Decision 12) or a
/// zero step. Alone, or as one item of a list whose other item is valid.
fn forbidden(i: usize) -> BoxedStrategy<String> {
    let (_, min, max) = FIELDS[i];
    let mut bad: Vec<String> = [
        "MON", "JAN", "mon", "?", "L", "5L", "W", "15W", "LW", "#", "1#3", "@daily", "@yearly",
        "5/10", "+5", "-1", "1-", "1--2", "*/0", "*/", "1-2/0", "1.5", "1,,2", ",1", "**", "*/+2",
    ]
    .iter()
    .map(|b| (*b).to_owned())
    .collect();
    bad.push((max + 1).to_string());
    bad.push(format!("{min}-{}", max + 1));
    if min > 0 {
        bad.push((min - 1).to_string());
    }
    bad.push(format!("{max}-{min}"));
    let valid = min.to_string();
    (proptest::sample::select(bad), 0..3u8)
        .prop_map(move |(b, shape)| match shape {
            0 => b,
            1 => format!("{valid},{b}"),
            _ => format!("{b},{valid}"),
        })
        .boxed()
}

/// Whitespace between fields: any run of spaces or tabs separates them.
fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_owned()),
        1 => "[ \t]{1,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    /// A valid expression with one field replaced by forbidden text is
    /// refused, and the error names that field (TS-0004 7.4.9.1; Decisions
    /// 4 and 12: anything outside the grammar is a validation error).
    #[test]
    fn time_window_parse_rejects_a_forbidden_field_naming_it(
        ((ours, _theirs), i, bad) in (expression(), 0..7usize)
            .prop_flat_map(|(e, i)| (Just(e), Just(i), forbidden(i))),
    ) {
        let mut fields: Vec<&str> = ours.split(' ').collect();
        prop_assert_eq!(fields.len(), 7, "{}", ours);
        fields[i] = &bad;
        let text = fields.join(" ");
        let name = FIELDS[i].0;
        match TimeWindow::parse(&text) {
            Ok(w) => prop_assert!(false, "{:?} parsed: {:?}", text, w),
            Err(e) => prop_assert!(
                e.message.starts_with(&format!("{name}:"))
                    || e.message.starts_with(&format!("{name} ")),
                "{:?}: the error should name the {} field: {}", text, name, e.message
            ),
        }
    }

    /// Every valid expression parses, and `as_str` gives back exactly the
    /// text parsed, whatever whitespace separates the fields ("7
    /// whitespace-separated fields", TS-0004 7.4.9.1).
    #[test]
    fn time_window_valid_expressions_parse_and_round_trip(
        (ours, _theirs) in expression(),
        seps in proptest::collection::vec(separator(), 6),
    ) {
        let mut text = String::new();
        for (k, field) in ours.split(' ').enumerate() {
            if k > 0 {
                text.push_str(&seps[k - 1]);
            }
            text.push_str(field);
        }
        let w = TimeWindow::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(w.as_str(), text.as_str());
        prop_assert_eq!(w.to_string(), text.clone());
        // The same fields with single spaces are the same window.
        let single = TimeWindow::parse(&ours)
            .map_err(|e| TestCaseError::fail(format!("{ours:?}: {e}")))?;
        for secs in [T2000, T2000 + 86_399, 1_700_000_000, T2101 - 1] {
            let t = TimeParts::from_unix(secs);
            prop_assert_eq!(w.matches(&t), single.matches(&t), "{:?} at {}", text, secs);
        }
    }
}

/// Strings cron accepts but the oneM2M grammar must reject.
#[test]
fn time_window_rejects_cron_only_syntax() {
    for s in [
        "0 0 0 * * *",         // 6 fields
        "@daily",              // macro
        "0 0 0 * JAN * *",     // month name
        "0 0 0 * * MON-FRI *", // weekday names
        "0 0 0 ? * 1 *",       // `?`
        "5/10 * * * * * *",    // single-value step
        "0 0 0 * * 7 *",       // cron's Saturday
        "0 0 0 * * 1-7 *",     // cron's full week
        "0 0 0 * * * 1970",    // before 2000
    ] {
        assert!(TimeWindow::parse(s).is_err(), "{s:?} should be rejected");
    }
    // And the one cron rejects but oneM2M accepts: day-of-week 0 (Sunday).
    assert!(TimeWindow::parse("0 0 0 * * 0 *").is_ok());
    assert!(cron::Schedule::from_str("0 0 0 * * 0 *").is_err());
}

/// Sanity for the translation itself on a fixed case: weekdays 1-5
/// (Mon-Fri) become cron's 2-6.
#[test]
fn time_window_translation_fixed_case() {
    let w = TimeWindow::parse("0 0 12 * * 1-5 *").unwrap_or_else(|e| panic!("{e}"));
    let s = cron::Schedule::from_str("0 0 12 * * 2-6 *").unwrap_or_else(|e| panic!("{e}"));
    let mon = Utc
        .with_ymd_and_hms(2024, 3, 18, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let sun = Utc
        .with_ymd_and_hms(2024, 3, 17, 12, 0, 0)
        .single()
        .unwrap_or_default();
    assert!(w.matches(&TimeParts::of(mon)) && s.includes(mon));
    assert!(!w.matches(&TimeParts::of(sun)) && !s.includes(sun));
}
