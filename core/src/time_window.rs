//! Time windows (`actw`): the oneM2M extended crontab `m2m:scheduleEntry`
//! (TS-0004 7.4.9.1, Table 7.4.9.1-4; spec-notes §3 and project decisions 4
//! and 12) compiled into bitsets for a membership test. A window is seven
//! whitespace-separated fields — second 0-59, minute 0-59, hour 0-23,
//! day-of-month 1-31, month 1-12, day-of-week 0-6 (0 = Sunday), year
//! 2000-9999 — all in UTC, and an instant is inside the window when every
//! field matches (day-of-month and day-of-week are ANDed like the rest). A
//! field is `*` or a comma list of elements; an element is a number `a`, a
//! range `a-b` with `a <= b`, or a stepped range `a-b/n` or `*/n` (meaning
//! `min-max/n`) with `n >= 1`. Nothing else (names, `?`, `L`, `W`, `#`,
//! `@daily`, `5/10`, signs) is accepted. [`TimeParts`] breaks a request time
//! into fields once; [`TimeWindow::matches`] is then a few bit tests per
//! window, and [`TimeWindow::next_match`] finds when a window next opens.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// First year a window can name.
const FIRST_YEAR: u16 = 2000;
/// Last year a window can name.
const LAST_YEAR: u16 = 9999;
/// Number of `u64` words in the year bitmap (`125 * 64 == 8000` years).
const YEAR_WORDS: usize = 125;
/// Seconds per day.
const DAY_SECS: i64 = 86_400;

/// A parse error naming the crontab field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TimeWindowError {
    /// Human-readable reason, naming the field.
    pub message: String,
}

impl TimeWindowError {
    fn new(message: String) -> Self {
        Self { message }
    }
}

/// A request time broken into crontab fields once per request (UTC).
///
/// Computed by [`TimeParts::of`] or [`TimeParts::from_unix`] and reused for
/// every window. Values outside a field's range (which only hand-built values
/// can have) simply never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeParts {
    /// Second of the minute, 0-59.
    pub sec: u8,
    /// Minute of the hour, 0-59.
    pub min: u8,
    /// Hour of the day, 0-23.
    pub hour: u8,
    /// Day of the month, 1-31.
    pub dom: u8,
    /// Month of the year, 1-12.
    pub mon: u8,
    /// Day of the week, 0-6 with 0 = Sunday.
    pub dow: u8,
    /// Proleptic Gregorian year, clamped into `0..=65535` (years outside
    /// 2000-9999 never match a window).
    pub year: u16,
}

impl TimeParts {
    /// Breaks a UTC instant into fields; the sub-second part is dropped.
    /// Read off chrono's own fields, which hold the civil date already.
    pub fn of(t: DateTime<Utc>) -> Self {
        // The naive UTC value: `DateTime`'s own accessors apply the offset.
        let t = t.naive_utc();
        let year = t.year().clamp(0, i32::from(u16::MAX)) as u16;
        Self {
            sec: t.second() as u8,
            min: t.minute() as u8,
            hour: t.hour() as u8,
            dom: t.day() as u8,
            mon: t.month() as u8,
            dow: t.weekday().num_days_from_sunday() as u8,
            year,
        }
    }

    /// Breaks Unix seconds into fields without going through chrono
    /// (days-from-civil arithmetic). Total for every `i64`: years below 0
    /// clamp to 0 and above 65535 to 65535.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(DAY_SECS);
        let sod = secs.rem_euclid(DAY_SECS);
        let (year, mon, dom) = civil_from_days(days);
        Self {
            sec: (sod % 60) as u8,
            min: (sod / 60 % 60) as u8,
            hour: (sod / 3600) as u8,
            dom,
            mon,
            dow: weekday(days),
            year: year.clamp(0, i64::from(u16::MAX)) as u16,
        }
    }
}

/// Day of the week (0 = Sunday) of a day counted from 1970-01-01, a Thursday.
fn weekday(days: i64) -> u8 {
    // `days` is at most |i64::MIN / 86400|, so `+ 4` cannot overflow.
    (days + 4).rem_euclid(7) as u8
}

/// Civil date `(year, month, day)` of a day counted from 1970-01-01
/// (H. Hinnant's `civil_from_days`). Exact for every `|days| < 2^62`.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

/// Days from 1970-01-01 to a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Bits `1..=len` set.
fn month_days_mask(len: u8) -> u32 {
    (((1u64 << (u32::from(len) + 1)) - 2) & u64::from(u32::MAX)) as u32
}

/// Lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    let m = mask & u64::MAX.checked_shl(from).unwrap_or(0);
    (m != 0).then(|| m.trailing_zeros())
}

/// Is bit `i` of `mask` set (false when `i` is past the mask's width)?
#[inline(always)]
fn bit(mask: u64, i: u8) -> bool {
    mask.checked_shr(u32::from(i)).unwrap_or(0) & 1 != 0
}

/// The year field: `*` (the common case, kept small), one run of years
/// (`2026`, `2026-2030`: small too, for a policy may hold thousands of
/// windows), or a bitmap of 2000..=9999 where bit `y - 2000` stands for
/// year `y`. Each set has one form: a run is never a bitmap.
#[derive(Clone, PartialEq, Eq)]
enum YearSet {
    All,
    Run(u16, u16),
    Some(Box<[u64; YEAR_WORDS]>),
}

impl YearSet {
    #[inline(always)]
    fn contains(&self, year: u16) -> bool {
        match self {
            Self::All => (FIRST_YEAR..=LAST_YEAR).contains(&year),
            Self::Run(lo, hi) => (*lo..=*hi).contains(&year),
            Self::Some(words) => {
                let i = usize::from(year.wrapping_sub(FIRST_YEAR));
                words.get(i >> 6).is_some_and(|w| (w >> (i & 63)) & 1 != 0)
            }
        }
    }

    /// The first year in the set at or after `from`.
    fn next_at_or_after(&self, from: u16) -> Option<u16> {
        let from = from.max(FIRST_YEAR);
        if from > LAST_YEAR {
            return None;
        }
        match self {
            Self::All => Some(from),
            Self::Run(lo, hi) => Some(from.max(*lo)).filter(|y| y <= hi),
            Self::Some(words) => {
                let i = usize::from(from - FIRST_YEAR);
                let mut w = i >> 6;
                let mut cur = words.get(w)? & (u64::MAX << (i & 63));
                loop {
                    if cur != 0 {
                        let idx = (w << 6) + cur.trailing_zeros() as usize;
                        return u16::try_from(idx).ok().map(|d| FIRST_YEAR + d);
                    }
                    w += 1;
                    cur = *words.get(w)?;
                }
            }
        }
    }
}

impl fmt::Debug for YearSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Run(lo, hi) if lo == hi => write!(f, "{lo}"),
            Self::Run(lo, hi) => write!(f, "{lo}-{hi}"),
            Self::Some(_) => {
                // Print as a compact list of ranges.
                let mut first = true;
                let mut y = self.next_at_or_after(FIRST_YEAR);
                while let Some(lo) = y {
                    let mut hi = lo;
                    while hi < LAST_YEAR && self.contains(hi + 1) {
                        hi += 1;
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    if lo == hi {
                        write!(f, "{lo}")?;
                    } else {
                        write!(f, "{lo}-{hi}")?;
                    }
                    y = hi.checked_add(1).and_then(|n| self.next_at_or_after(n));
                }
                Ok(())
            }
        }
    }
}

/// One crontab field's name and bounds.
#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 6,
};
const YEAR: Field = Field {
    name: "year",
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
};

/// One list element: values `lo, lo+step, ...` up to `hi`.
#[derive(Debug, Clone, Copy)]
struct Element {
    lo: u32,
    hi: u32,
    step: u32,
}

impl Element {
    /// The bits `0, step, 2 * step, ...` of one word: the shape of the
    /// element's values in any word, before [`Element::word`] moves it.
    fn pattern(self) -> u64 {
        if self.step >= 64 {
            1
        } else {
            // Doubling: a step of 1 takes six rounds, not 64.
            let mut p = 1u64;
            let mut span = self.step;
            while span < 64 {
                p |= p << span;
                span *= 2;
            }
            p
        }
    }

    /// The element's values `base..base + 64` as bits of one word (bit
    /// `i` = value `base + i`), given its [`Element::pattern`].
    ///
    /// Word by word rather than value by value, so that a field costs the
    /// same whatever its steps: a year list of many items would otherwise
    /// cost up to 8 000 bit settings per item, and an ACP of such windows
    /// seconds to compile.
    fn word(self, pattern: u64, base: u32) -> u64 {
        let (lo, hi, step) = (u64::from(self.lo), u64::from(self.hi), u64::from(self.step));
        let (base, end) = (u64::from(base), u64::from(base) + 63);
        if hi < base || lo > end || step == 0 {
            return 0;
        }
        // The first value at or after `base`, and the last within the word.
        let first = if lo >= base {
            lo
        } else {
            lo + (base - lo).div_ceil(step) * step
        };
        let last = hi.min(end);
        if first > last {
            return 0;
        }
        let (from, to) = (first - base, last - base);
        let below_to = if to >= 63 {
            u64::MAX
        } else {
            (1u64 << (to + 1)) - 1
        };
        (pattern << from) & below_to
    }

    /// Each value, in order: the plain definition [`Element::word`] is
    /// tested against.
    #[cfg(test)]
    fn for_each(self, mut f: impl FnMut(u32)) {
        let mut v = self.lo;
        while v <= self.hi {
            f(v);
            match v.checked_add(self.step) {
                Some(n) => v = n,
                None => break,
            }
        }
    }
}

impl Field {
    fn err(&self, reason: impl fmt::Display) -> TimeWindowError {
        TimeWindowError::new(format!("{}: {reason}", self.name))
    }

    /// Parses a field: `None` for `*`, else its elements.
    fn parse(&self, text: &str) -> Result<Option<Vec<Element>>, TimeWindowError> {
        if text == "*" {
            return Ok(None);
        }
        text.split(',')
            .map(|el| self.element(el))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn element(&self, el: &str) -> Result<Element, TimeWindowError> {
        if el.is_empty() {
            return Err(self.err("empty list item"));
        }
        let (range, step) = match el.split_once('/') {
            Some((range, step)) => (range, Some(self.step(step)?)),
            None => (el, None),
        };
        let (lo, hi) = if range == "*" {
            if step.is_none() {
                return Err(self.err("'*' must be the whole field, not a list item"));
            }
            (self.min, self.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (self.number(a, el)?, self.number(b, el)?);
            if a > b {
                return Err(self.err(format_args!("range {a}-{b} is reversed")));
            }
            (a, b)
        } else {
            if step.is_some() {
                return Err(self.err(format_args!(
                    "a step needs a range (a-b/n or */n), found '{el}'"
                )));
            }
            let v = self.number(range, el)?;
            (v, v)
        };
        Ok(Element {
            lo,
            hi,
            step: step.unwrap_or(1),
        })
    }

    fn digits(text: &str) -> Option<u32> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| {
            text.bytes().fold(0u32, |acc, b| {
                acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))
            })
        })
    }

    fn number(&self, text: &str, el: &str) -> Result<u32, TimeWindowError> {
        if text.is_empty() {
            return Err(self.err(format_args!("missing number in '{el}'")));
        }
        let v =
            Self::digits(text).ok_or_else(|| self.err(format_args!("'{text}' is not a number")))?;
        if v < self.min || v > self.max {
            return Err(TimeWindowError::new(format!(
                "{} {text} out of range {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    fn step(&self, text: &str) -> Result<u32, TimeWindowError> {
        match Self::digits(text) {
            None => Err(self.err(format_args!("step '{text}' is not a number"))),
            Some(0) => Err(self.err("step 0 is not allowed")),
            Some(n) => Ok(n),
        }
    }

    /// Parses a field of at most 64 values into a bitmask (bit `v` = value `v`).
    fn mask(&self, text: &str) -> Result<u64, TimeWindowError> {
        let mut m = 0u64;
        match self.parse(text)? {
            None => (self.min..=self.max).for_each(|v| m |= 1 << v),
            Some(els) => els.into_iter().for_each(|e| m |= e.word(e.pattern(), 0)),
        }
        Ok(m)
    }

    /// Parses the year field.
    fn years(&self, text: &str) -> Result<YearSet, TimeWindowError> {
        let Some(els) = self.parse(text)? else {
            return Ok(YearSet::All);
        };
        let mut words = Box::new([0u64; YEAR_WORDS]);
        for e in els {
            let pattern = e.pattern();
            // Only the words the element spans.
            let first = ((e.lo - self.min) >> 6) as usize;
            let last = ((e.hi - self.min) >> 6) as usize;
            for (i, w) in words.iter_mut().enumerate().take(last + 1).skip(first) {
                *w |= e.word(pattern, self.min + 64 * i as u32);
            }
        }
        if words.iter().all(|&w| w == u64::MAX) {
            return Ok(YearSet::All);
        }
        let set = YearSet::Some(words);
        // One run of years: held as its two ends.
        if let Some(lo) = set.next_at_or_after(FIRST_YEAR) {
            let mut hi = lo;
            while hi < LAST_YEAR && set.contains(hi + 1) {
                hi += 1;
            }
            if hi == LAST_YEAR || set.next_at_or_after(hi + 1).is_none() {
                return Ok(YearSet::Run(lo, hi));
            }
        }
        Ok(set)
    }
}

/// A compiled extended-crontab entry (`m2m:scheduleEntry`).
///
/// Equality compares the source text as well as the compiled fields;
/// `Display` prints the source text.
#[derive(Clone, PartialEq, Eq)]
pub struct TimeWindow {
    source: String,
    sec: u64,
    min: u64,
    hour: u32,
    dom: u32,
    mon: u16,
    dow: u8,
    years: YearSet,
}

impl fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindow")
            .field("source", &self.source)
            .field("sec", &format_args!("{:#x}", self.sec))
            .field("min", &format_args!("{:#x}", self.min))
            .field("hour", &format_args!("{:#x}", self.hour))
            .field("dom", &format_args!("{:#x}", self.dom))
            .field("mon", &format_args!("{:#x}", self.mon))
            .field("dow", &format_args!("{:#x}", self.dow))
            .field("years", &self.years)
            .finish()
    }
}

/// What separates the fields of a time window, as its errors say.
const SEPARATORS: &str =
    "fields are separated by ASCII white space (space, tab, line feed, form feed, carriage return)";

impl TimeWindow {
    /// Parses one `m2m:scheduleEntry` (see the module docs for the grammar).
    /// The error names the field and the reason, e.g.
    /// `day-of-week 7 out of range 0-6` or `expected 7 fields, found 6`.
    pub fn parse(s: &str) -> Result<Self, TimeWindowError> {
        // Decision 4: anything but numbers, `*`, lists, ranges and steps is
        // an error, so white space that `split_ascii_whitespace` does not
        // separate on (a Unicode space, which looks like a separator; a
        // vertical tab) too.
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() && !c.is_ascii_whitespace())
        {
            return Err(TimeWindowError::new(format!(
                "U+{:04X} is no field separator: {SEPARATORS}",
                u32::from(c)
            )));
        }
        let fields: Vec<&str> = s.split_ascii_whitespace().collect();
        let [sec, min, hour, dom, mon, dow, year] = fields[..] else {
            return Err(TimeWindowError::new(format!(
                "expected 7 fields, found {}",
                fields.len()
            )));
        };
        // The narrowing casts below keep only bits the field's bounds allow.
        Ok(Self {
            source: s.to_owned(),
            sec: SECOND.mask(sec)?,
            min: MINUTE.mask(min)?,
            hour: HOUR.mask(hour)? as u32,
            dom: DAY_OF_MONTH.mask(dom)? as u32,
            mon: MONTH.mask(mon)? as u16,
            dow: DAY_OF_WEEK.mask(dow)? as u8,
            years: YEAR.years(year)?,
        })
    }

    /// The source text, exactly as given to [`TimeWindow::parse`].
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Is `t` inside the window? A handful of bit tests, no allocation.
    #[inline]
    pub fn matches(&self, t: &TimeParts) -> bool {
        // Non-short-circuit `&` keeps this branch-free up to the year test.
        (bit(self.sec, t.sec)
            & bit(self.min, t.min)
            & bit(u64::from(self.hour), t.hour)
            & bit(u64::from(self.dom), t.dom)
            & bit(u64::from(self.mon), t.mon)
            & bit(u64::from(self.dow), t.dow))
            && self.years.contains(t.year)
    }

    /// Convenience for `self.matches(&TimeParts::of(t))`; prefer computing
    /// [`TimeParts`] once when testing several windows.
    pub fn matches_at(&self, t: DateTime<Utc>) -> bool {
        self.matches(&TimeParts::of(t))
    }

    /// The first whole second at or after `after` that is inside the window
    /// (a sub-second part of `after` rounds up to the next second), or `None`
    /// when the window never opens again up to 9999-12-31T23:59:59Z.
    ///
    /// Walks years, months and days through the bitsets (one step per
    /// month), so impossible windows such as `0 0 0 31 2 * *` return `None`
    /// quickly.
    pub fn next_match(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut start = after.timestamp();
        if after.timestamp_subsec_nanos() > 0 {
            start = start.checked_add(1)?;
        }
        if !self.some_month_has_a_day() {
            return None;
        }
        let p = TimeParts::from_unix(start);
        let (y0, mo0, d0, tod0) = if p.year < FIRST_YEAR {
            (FIRST_YEAR, 1, 1, (0, 0, 0))
        } else {
            (p.year, p.mon, p.dom, (p.hour, p.min, p.sec))
        };
        // Days (bits 1..=31) whose weekday is allowed, for a month whose
        // first day falls on weekday `w`.
        let dow_days: [u32; 7] = std::array::from_fn(|w| {
            (1..=31u32)
                .filter(|d| bit(u64::from(self.dow), ((w as u32 + d - 1) % 7) as u8))
                .fold(0, |m, d| m | 1 << d)
        });
        let mut year = self.years.next_at_or_after(y0)?;
        loop {
            let same_year = year == y0;
            let mut month_from = if same_year { u32::from(mo0) } else { 1 };
            while let Some(month) = next_bit(u64::from(self.mon), month_from) {
                let month = month as u8;
                let same_month = same_year && month == mo0;
                let day_from = if same_month { u32::from(d0) } else { 1 };
                let first = days_from_civil(i64::from(year), month, 1);
                let mut days = self.dom
                    & month_days_mask(days_in_month(year, month))
                    & dow_days
                        .get(usize::from(weekday(first)))
                        .copied()
                        .unwrap_or(0)
                    & u32::MAX.checked_shl(day_from).unwrap_or(0);
                while days != 0 {
                    let day = days.trailing_zeros() as u8;
                    let from = if same_month && day == d0 {
                        tod0
                    } else {
                        (0, 0, 0)
                    };
                    if let Some((h, m, s)) = self.next_time_of_day(from) {
                        let secs = (first + i64::from(day) - 1) * DAY_SECS
                            + i64::from(h) * 3600
                            + i64::from(m) * 60
                            + i64::from(s);
                        return DateTime::from_timestamp(secs, 0);
                    }
                    days &= days - 1;
                }
                month_from = u32::from(month) + 1;
            }
            year = self.years.next_at_or_after(year.checked_add(1)?)?;
        }
    }

    /// Can the day-of-month and month fields ever meet (ignoring leap years
    /// and weekdays)? False for e.g. `31` with `2,4`.
    fn some_month_has_a_day(&self) -> bool {
        (1..=12u8).any(|m| {
            bit(u64::from(self.mon), m) && self.dom & month_days_mask(days_in_month(2000, m)) != 0
        })
    }

    /// The first `(hour, minute, second)` of the window at or after `from`
    /// within one day.
    fn next_time_of_day(&self, (h0, m0, s0): (u8, u8, u8)) -> Option<(u8, u8, u8)> {
        let mut hour_from = u32::from(h0);
        while let Some(h) = next_bit(u64::from(self.hour), hour_from) {
            let same_hour = h == u32::from(h0);
            let mut min_from = if same_hour { u32::from(m0) } else { 0 };
            while let Some(m) = next_bit(self.min, min_from) {
                let sec_from = if same_hour && m == u32::from(m0) {
                    u32::from(s0)
                } else {
                    0
                };
                if let Some(s) = next_bit(self.sec, sec_from) {
                    return Some((h as u8, m as u8, s as u8));
                }
                min_from = m + 1;
            }
            hour_from = h + 1;
        }
        None
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for TimeWindow {
    type Err = TimeWindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid test date")
    }

    fn tw(s: &str) -> TimeWindow {
        TimeWindow::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match TimeWindow::parse(s) {
            Ok(w) => panic!("{s:?} parsed: {w:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn at(w: &TimeWindow, t: DateTime<Utc>) -> bool {
        w.matches(&TimeParts::of(t))
    }

    // ---- parse errors, one per kind ----

    #[test]
    fn time_window_error_field_count() {
        assert_eq!(err("* * * * * *"), "expected 7 fields, found 6");
        assert_eq!(err("* * * * * * * *"), "expected 7 fields, found 8");
        assert_eq!(err(""), "expected 7 fields, found 0");
        assert_eq!(err("   "), "expected 7 fields, found 0");
        assert_eq!(err("@daily"), "expected 7 fields, found 1");
        // Decision 4: a no-break space is none of the allowed forms.
        assert_eq!(
            err("*\u{a0}* 15-18 * * 1-5 *"),
            "U+00A0 is no field separator: fields are separated by ASCII white space \
             (space, tab, line feed, form feed, carriage return)"
        );
        // A vertical tab is white space but separates nothing: an error
        // naming it, with what does separate fields.
        assert_eq!(
            err("*\u{b}* 15-18 * * 1-5 *"),
            "U+000B is no field separator: fields are separated by ASCII white space \
             (space, tab, line feed, form feed, carriage return)"
        );
    }

    #[test]
    fn time_window_error_out_of_range_names_field_and_bounds() {
        assert_eq!(err("60 * * * * * *"), "second 60 out of range 0-59");
        assert_eq!(err("* 60 * * * * *"), "minute 60 out of range 0-59");
        assert_eq!(err("* * 24 * * * *"), "hour 24 out of range 0-23");
        assert_eq!(err("* * * 0 * * *"), "day-of-month 0 out of range 1-31");
        assert_eq!(err("* * * 32 * * *"), "day-of-month 32 out of range 1-31");
        assert_eq!(err("* * * * 0 * *"), "month 0 out of range 1-12");
        assert_eq!(err("* * * * 13 * *"), "month 13 out of range 1-12");
        assert_eq!(err("* * * * * 7 *"), "day-of-week 7 out of range 0-6");
        assert_eq!(err("* * * * * * 1999"), "year 1999 out of range 2000-9999");
        assert_eq!(
            err("* * * * * * 10000"),
            "year 10000 out of range 2000-9999"
        );
        // Range bounds and huge numbers are checked too (no overflow).
        assert_eq!(err("* * * * * 1-7 *"), "day-of-week 7 out of range 0-6");
        assert_eq!(
            err("99999999999999999999 * * * * * *"),
            "second 99999999999999999999 out of range 0-59"
        );
    }

    #[test]
    fn time_window_error_reversed_range() {
        assert_eq!(err("* * 5-3 * * * *"), "hour: range 5-3 is reversed");
        assert_eq!(
            err("* * * * * * 2030-2020/2"),
            "year: range 2030-2020 is reversed"
        );
    }

    #[test]
    fn time_window_error_step() {
        assert_eq!(err("* */0 * * * * *"), "minute: step 0 is not allowed");
        assert_eq!(err("* 0-10/0 * * * * *"), "minute: step 0 is not allowed");
        assert_eq!(err("*/x * * * * * *"), "second: step 'x' is not a number");
        assert_eq!(err("*/ * * * * * *"), "second: step '' is not a number");
        assert_eq!(err("*/-2 * * * * * *"), "second: step '-2' is not a number");
        // Single-value step `5/10` is cron-only, not oneM2M.
        assert_eq!(
            err("5/10 * * * * * *"),
            "second: a step needs a range (a-b/n or */n), found '5/10'"
        );
    }

    #[test]
    fn time_window_error_not_a_number() {
        assert_eq!(err("* * * * JAN * *"), "month: 'JAN' is not a number");
        assert_eq!(
            err("* * * * * MON-FRI *"),
            "day-of-week: 'MON' is not a number"
        );
        assert_eq!(err("* * * ? * * *"), "day-of-month: '?' is not a number");
        assert_eq!(err("* * * L * * *"), "day-of-month: 'L' is not a number");
        assert_eq!(
            err("* * * 15W * * *"),
            "day-of-month: '15W' is not a number"
        );
        assert_eq!(err("* * * * * 5#3 *"), "day-of-week: '5#3' is not a number");
        assert_eq!(err("+5 * * * * * *"), "second: '+5' is not a number");
        assert_eq!(err("* * 1-2-3 * * * *"), "hour: '2-3' is not a number");
        assert_eq!(err("* * ** * * * *"), "hour: '**' is not a number");
    }

    #[test]
    fn time_window_error_list_and_sign_shapes() {
        assert_eq!(err("1,,2 * * * * * *"), "second: empty list item");
        assert_eq!(err("1, * * * * * *"), "second: empty list item");
        assert_eq!(err(",1 * * * * * *"), "second: empty list item");
        assert_eq!(err("-5 * * * * * *"), "second: missing number in '-5'");
        assert_eq!(err("5- * * * * * *"), "second: missing number in '5-'");
        assert_eq!(
            err("*,5 * * * * * *"),
            "second: '*' must be the whole field, not a list item"
        );
    }

    #[test]
    fn time_window_accepts_the_grammar() {
        for s in [
            "* * * * * * *",
            "0 0 0 1 1 0 2000",
            "59 59 23 31 12 6 9999",
            "0-59/15 */5 0-23/2 1,15,31 1-12/3 0-6 2000-9999/7",
            "*/1 0,30 9-17 * * 1-5 2024,2026-2030",
            "  * \t*\n*   * * * *  ",
            "05 007 * * * * *",
            "*/100 * * * * * *",
            "* * * * * * */4000",
        ] {
            let w = tw(s);
            assert_eq!(w.as_str(), s);
            assert_eq!(w.to_string(), s);
            assert_eq!(s.parse::<TimeWindow>().as_ref(), Ok(&w));
        }
        assert_eq!(tw("*/100 * * * * * *").sec, 1);
        assert_eq!(tw("0-23/2 * * * * * *").sec, 0x0055_5555);
        assert_eq!(tw("* * * * * * 2000-9999").years, YearSet::All);
    }

    /// A single year or one run of years is held as its two ends, not a
    /// 1 000-byte bitmap (a policy may hold thousands of such windows);
    /// it matches, and finds its next opening, as the bitmap would.
    #[test]
    fn a_run_of_years_is_held_as_its_ends() {
        assert_eq!(tw("0 0 0 1 1 * 2030").years, YearSet::Run(2030, 2030));
        assert_eq!(tw("0 0 0 1 1 * 2026-2030").years, YearSet::Run(2026, 2030));
        assert_eq!(tw("0 0 0 1 1 * 2026,2027").years, YearSet::Run(2026, 2027));
        assert_eq!(tw("0 0 0 1 1 * 9000-9999").years, YearSet::Run(9000, 9999));
        assert!(matches!(
            tw("0 0 0 1 1 * 2026,2028").years,
            YearSet::Some(_)
        ));
        let w = tw("0 0 12 1 1 * 2028-2030");
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        assert_eq!(
            w.next_match(at(2026, 6, 1)),
            Some(at(2028, 1, 1) + chrono::Duration::hours(12))
        );
        assert_eq!(w.next_match(at(2030, 6, 1)), None);
        assert!(w.matches(&TimeParts::of(at(2029, 1, 1) + chrono::Duration::hours(12))));
        assert!(!w.matches(&TimeParts::of(at(2031, 1, 1) + chrono::Duration::hours(12))));
    }

    // ---- matching ----

    /// spec-notes §3 / TS-0004 7.4.9.1: `* 0-5 2,6,10 * * * *` is
    /// 02:00:00-02:05:59, 06:00:00-06:05:59 and 10:00:00-10:05:59 every day.
    #[test]
    fn time_window_spec_example_ts0004_7_4_9_1() {
        let w = tw("* 0-5 2,6,10 * * * *");
        for h in [2, 6, 10] {
            assert!(at(&w, utc(2026, 3, 14, h, 0, 0)));
            assert!(at(&w, utc(2026, 3, 14, h, 5, 59)));
            assert!(at(&w, utc(2031, 12, 31, h, 3, 17)));
            assert!(!at(&w, utc(2026, 3, 14, h, 6, 0)));
            assert!(!at(&w, utc(2026, 3, 14, h - 1, 59, 59)));
        }
        for h in [0, 1, 3, 5, 7, 9, 11, 23] {
            assert!(!at(&w, utc(2026, 3, 14, h, 0, 0)));
        }
        // Every second of a day: 3 windows of 6 minutes.
        let day = utc(2026, 3, 14, 0, 0, 0).timestamp();
        let hits = (0..86_400)
            .filter(|s| w.matches(&TimeParts::from_unix(day + s)))
            .count();
        assert_eq!(hits, 3 * 6 * 60);
        // Outside 2000-9999 nothing matches.
        assert!(!at(&w, utc(1999, 3, 14, 2, 0, 0)));
        assert!(!at(&w, utc(10_000, 3, 14, 2, 0, 0)));
    }

    #[test]
    fn time_window_day_of_week_zero_is_sunday() {
        // 2024-03-17 was a Sunday, 2024-03-18 a Monday, 2024-03-16 a Saturday.
        let sun = utc(2024, 3, 17, 12, 0, 0);
        assert_eq!(TimeParts::of(sun).dow, 0);
        assert!(at(&tw("* * * * * 0 *"), sun));
        assert!(!at(&tw("* * * * * 0 *"), utc(2024, 3, 18, 12, 0, 0)));
        assert!(at(&tw("* * * * * 1 *"), utc(2024, 3, 18, 12, 0, 0)));
        assert!(at(&tw("* * * * * 6 *"), utc(2024, 3, 16, 12, 0, 0)));
        // Weekdays 1-5 exclude the weekend.
        let wd = tw("* * * * * 1-5 *");
        assert!(!at(&wd, sun));
        assert!(!at(&wd, utc(2024, 3, 16, 12, 0, 0)));
        assert!(at(&wd, utc(2024, 3, 15, 12, 0, 0)));
        // 1970-01-01 was a Thursday, 2000-01-01 a Saturday.
        assert_eq!(TimeParts::from_unix(0).dow, 4);
        assert_eq!(TimeParts::of(utc(2000, 1, 1, 0, 0, 0)).dow, 6);
    }

    #[test]
    fn time_window_dom_and_dow_are_anded() {
        // The 13th AND a Friday (Vixie cron would OR them).
        let w = tw("* * * 13 * 5 *");
        assert!(at(&w, utc(2026, 2, 13, 8, 0, 0))); // Friday the 13th
        assert!(!at(&w, utc(2026, 1, 13, 8, 0, 0))); // a Tuesday
        assert!(!at(&w, utc(2026, 2, 20, 8, 0, 0))); // another Friday
        // Feb 30 never exists.
        let never = tw("* * * 30 2 * *");
        assert_eq!(never.next_match(utc(2000, 1, 1, 0, 0, 0)), None);
    }

    #[test]
    fn time_window_year_bounds() {
        let w = tw("* * * * * * 2000,9999");
        assert!(at(&w, utc(2000, 1, 1, 0, 0, 0)));
        assert!(at(&w, utc(9999, 12, 31, 23, 59, 59)));
        assert!(!at(&w, utc(1999, 12, 31, 23, 59, 59)));
        assert!(!at(&w, utc(2001, 1, 1, 0, 0, 0)));
        assert!(!at(&w, utc(10_000, 1, 1, 0, 0, 0)));
        let all = tw("* * * * * * *");
        assert!(at(&all, utc(2000, 1, 1, 0, 0, 0)));
        assert!(at(&all, utc(9999, 12, 31, 23, 59, 59)));
        assert!(!at(&all, utc(1999, 12, 31, 23, 59, 59)));
        assert!(!at(&all, utc(10_000, 1, 1, 0, 0, 0)));
        // `*/n` on the year counts from 2000, not 1970.
        let every_7 = tw("* * * * * * */7");
        assert!(at(&every_7, utc(2000, 6, 1, 0, 0, 0)));
        assert!(at(&every_7, utc(2007, 6, 1, 0, 0, 0)));
        assert!(!at(&every_7, utc(2001, 6, 1, 0, 0, 0)));
        assert!(at(&every_7, utc(9994, 6, 1, 0, 0, 0))); // 9994 - 2000 = 7 * 1142
        assert!(!at(&every_7, utc(9997, 6, 1, 0, 0, 0)));
    }

    #[test]
    fn time_window_leap_day() {
        let w = tw("0 0 12 29 2 * *");
        assert!(at(&w, utc(2024, 2, 29, 12, 0, 0)));
        assert!(at(&w, utc(2000, 2, 29, 12, 0, 0))); // divisible by 400
        assert_eq!(
            w.next_match(utc(2024, 3, 1, 0, 0, 0)),
            Some(utc(2028, 2, 29, 12, 0, 0))
        );
        // 2100 is not a leap year: from 2097 the next Feb 29 is in 2104.
        assert_eq!(
            w.next_match(utc(2097, 1, 1, 0, 0, 0)),
            Some(utc(2104, 2, 29, 12, 0, 0))
        );
        let p = TimeParts::of(utc(2100, 3, 1, 0, 0, 0));
        assert_eq!((p.mon, p.dom), (3, 1));
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    /// Every field, as [`Element::for_each`] defines it value by value.
    fn element_strategy(field: Field) -> impl proptest::strategy::Strategy<Value = Element> {
        use proptest::strategy::Strategy;
        (field.min..=field.max, field.min..=field.max, 1u32..=200).prop_map(|(a, b, step)| {
            Element {
                lo: a.min(b),
                hi: a.max(b),
                step,
            }
        })
    }

    fn item_text(e: Element) -> String {
        format!("{}-{}/{}", e.lo, e.hi, e.step)
    }

    proptest::proptest! {
        /// A year list filled a word at a time holds exactly the years its
        /// items list one by one (Decision 4: ranges and steps), whatever
        /// the steps and where the ranges start and end in a word.
        #[test]
        fn year_set_word_fill_equals_value_by_value(
            items in proptest::collection::vec(element_strategy(YEAR), 1..6),
        ) {
            let text = items.iter().map(|e| item_text(*e)).collect::<Vec<_>>().join(",");
            let set = YEAR.years(&text).expect("valid year list");
            let mut expected = [false; 8000];
            for e in &items {
                e.for_each(|v| expected[(v - YEAR.min) as usize] = true);
            }
            for (i, want) in expected.iter().enumerate() {
                let year = YEAR.min as u16 + i as u16;
                proptest::prop_assert_eq!(set.contains(year), *want, "{} in {}", year, text);
            }
        }

        /// The same for the fields of up to 64 values.
        #[test]
        fn field_mask_word_fill_equals_value_by_value(
            which in 0usize..6,
            seed in proptest::collection::vec((0u32..64, 0u32..64, 1u32..70), 1..5),
        ) {
            let field = [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK][which];
            let span = field.max - field.min + 1;
            let items: Vec<Element> = seed
                .iter()
                .map(|&(a, b, step)| {
                    let (a, b) = (field.min + a % span, field.min + b % span);
                    Element { lo: a.min(b), hi: a.max(b), step }
                })
                .collect();
            let text = items.iter().map(|e| item_text(*e)).collect::<Vec<_>>().join(",");
            let mut expected = 0u64;
            for e in &items {
                e.for_each(|v| expected |= 1 << v);
            }
            proptest::prop_assert_eq!(field.mask(&text).expect("valid list"), expected, "{}", text);
        }
    }

    /// A year list of thousands of items (TS-0004 sets no bound on a
    /// scheduleEntry) compiles to the years it names: every even year
    /// (`2000-9999/2`, repeated) and 2001.
    #[test]
    fn time_window_long_year_list() {
        let items = vec!["2000-9999/2"; 20_000].join(",");
        let w = tw(&format!("* * * * * * {items},2001"));
        for (year, open) in [
            (2000, true),
            (2001, true),
            (2003, false),
            (2026, true),
            (9998, true),
            (9999, false),
        ] {
            assert_eq!(at(&w, utc(year, 6, 1, 0, 0, 0)), open, "{year}");
        }
    }

    proptest::proptest! {
        /// Chrono's fields and the civil-from-days arithmetic agree on
        /// every instant chrono can hold.
        #[test]
        fn time_parts_from_chrono_equal_from_unix(
            secs in chrono::DateTime::<Utc>::MIN_UTC.timestamp()..=chrono::DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::<Utc>::from_timestamp(secs, nanos).expect("in range");
            proptest::prop_assert_eq!(TimeParts::of(t), TimeParts::from_unix(secs));
        }
    }

    #[test]
    fn time_parts_fields() {
        let t = utc(2026, 7, 4, 13, 45, 9);
        let p = TimeParts::of(t);
        assert_eq!(
            p,
            TimeParts {
                sec: 9,
                min: 45,
                hour: 13,
                dom: 4,
                mon: 7,
                dow: 6,
                year: 2026
            }
        );
        // Sub-second parts are dropped; negative instants floor.
        assert_eq!(TimeParts::of(t + chrono::Duration::milliseconds(999)), p);
        let before_epoch = TimeParts::from_unix(-1);
        assert_eq!(
            before_epoch,
            TimeParts {
                sec: 59,
                min: 59,
                hour: 23,
                dom: 31,
                mon: 12,
                dow: 3,
                year: 1969
            }
        );
        // Total on extreme inputs; out-of-range years clamp and never match.
        assert_eq!(TimeParts::from_unix(i64::MIN).year, 0);
        assert_eq!(TimeParts::from_unix(i64::MAX).year, u16::MAX);
        assert!(!tw("* * * * * * *").matches(&TimeParts::from_unix(i64::MAX)));
        let far = utc(70_000, 1, 1, 0, 0, 0);
        assert_eq!(TimeParts::of(far).year, u16::MAX);
        assert_eq!(
            days_from_civil(2026, 7, 4),
            t.timestamp().div_euclid(DAY_SECS)
        );
        assert_eq!(
            civil_from_days(t.timestamp().div_euclid(DAY_SECS)),
            (2026, 7, 4)
        );
    }

    #[test]
    fn time_window_hand_built_parts_out_of_range_never_match() {
        let all = tw("* * * * * * *");
        let ok = TimeParts::of(utc(2026, 1, 1, 0, 0, 0));
        assert!(all.matches(&ok));
        for bad in [
            TimeParts { sec: 60, ..ok },
            TimeParts { sec: 255, ..ok },
            TimeParts { min: 64, ..ok },
            TimeParts { hour: 24, ..ok },
            TimeParts { dom: 0, ..ok },
            TimeParts { dom: 32, ..ok },
            TimeParts { mon: 0, ..ok },
            TimeParts { mon: 13, ..ok },
            TimeParts { dow: 7, ..ok },
            TimeParts { year: 1999, ..ok },
            TimeParts { year: 10_000, ..ok },
            TimeParts {
                year: u16::MAX,
                ..ok
            },
        ] {
            assert!(!all.matches(&bad), "{bad:?}");
        }
    }

    // ---- next_match, computed by hand ----

    #[test]
    fn time_window_next_match_weekday_afternoon_from_saturday() {
        // Weekdays 15:00:00-19:59:59; asked on Saturday 2024-03-16 → Monday 15:00:00.
        let w = tw("* * 15-19 * * 1-5 *");
        assert_eq!(
            w.next_match(utc(2024, 3, 16, 10, 0, 0)),
            Some(utc(2024, 3, 18, 15, 0, 0))
        );
        // Inside the window: the instant itself.
        assert_eq!(
            w.next_match(utc(2024, 3, 18, 16, 30, 5)),
            Some(utc(2024, 3, 18, 16, 30, 5))
        );
        // Friday after the window → Monday.
        assert_eq!(
            w.next_match(utc(2024, 3, 15, 20, 0, 0)),
            Some(utc(2024, 3, 18, 15, 0, 0))
        );
        // Wednesday morning → same day 15:00.
        assert_eq!(
            w.next_match(utc(2024, 3, 13, 9, 0, 0)),
            Some(utc(2024, 3, 13, 15, 0, 0))
        );
    }

    #[test]
    fn time_window_next_match_sub_second_rounds_up() {
        let w = tw("* * * * * * *");
        let t = utc(2026, 5, 5, 5, 5, 5);
        assert_eq!(w.next_match(t), Some(t));
        let t_frac = t + chrono::Duration::nanoseconds(1);
        assert_eq!(w.next_match(t_frac), Some(utc(2026, 5, 5, 5, 5, 6)));
        let even = tw("*/2 * * * * * *");
        assert_eq!(even.next_match(t_frac), Some(utc(2026, 5, 5, 5, 5, 6)));
        assert_eq!(even.next_match(t), Some(utc(2026, 5, 5, 5, 5, 6)));
    }

    #[test]
    fn time_window_next_match_carries() {
        // 30 seconds past every 10 minutes in hour 23; from 23:50:31 → next day 23:00:30.
        let w = tw("30 */10 23 * * * *");
        assert_eq!(
            w.next_match(utc(2026, 1, 1, 23, 50, 31)),
            Some(utc(2026, 1, 2, 23, 0, 30))
        );
        assert_eq!(
            w.next_match(utc(2026, 1, 1, 23, 41, 0)),
            Some(utc(2026, 1, 1, 23, 50, 30))
        );
        // Year rollover: last second of 2026 → first of 2027 for a Jan-1 window.
        let ny = tw("0 0 0 1 1 * *");
        assert_eq!(
            ny.next_match(utc(2026, 1, 1, 0, 0, 1)),
            Some(utc(2027, 1, 1, 0, 0, 0))
        );
        // Day 31 skips 30-day months.
        let d31 = tw("0 0 0 31 * * *");
        assert_eq!(
            d31.next_match(utc(2026, 4, 1, 0, 0, 0)),
            Some(utc(2026, 5, 31, 0, 0, 0))
        );
        // Before 2000: the first match in 2000.
        assert_eq!(
            tw("* * * * * * *").next_match(utc(1980, 6, 1, 0, 0, 0)),
            Some(utc(2000, 1, 1, 0, 0, 0))
        );
        // The next Friday the 13th after 2026-02-14 is 2026-03-13.
        assert_eq!(
            tw("0 0 0 13 * 5 *").next_match(utc(2026, 2, 14, 0, 0, 0)),
            Some(utc(2026, 3, 13, 0, 0, 0))
        );
        // Sparse years.
        let y = tw("0 0 0 1 1 * 2030,2100-2110/5");
        assert_eq!(
            y.next_match(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2030, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            y.next_match(utc(2030, 1, 1, 0, 0, 1)),
            Some(utc(2100, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            y.next_match(utc(2105, 1, 1, 0, 0, 1)),
            Some(utc(2110, 1, 1, 0, 0, 0))
        );
        assert_eq!(y.next_match(utc(2110, 1, 1, 0, 0, 1)), None);
    }

    #[test]
    fn time_window_next_match_end_of_range() {
        let all = tw("* * * * * * *");
        let last = utc(9999, 12, 31, 23, 59, 59);
        assert_eq!(all.next_match(last), Some(last));
        assert_eq!(
            all.next_match(last + chrono::Duration::milliseconds(1)),
            None
        );
        assert_eq!(all.next_match(utc(10_000, 1, 1, 0, 0, 0)), None);
        assert_eq!(all.next_match(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(
            all.next_match(DateTime::<Utc>::MIN_UTC),
            Some(utc(2000, 1, 1, 0, 0, 0))
        );
    }

    /// Dates no year has (Feb 30, Apr 31) and dates no year of the window
    /// has (Feb 29 in 2100-2103; Feb 29 on a Sunday in 2005-2031, as the
    /// fields are ANDed, Decision 4): `next_match` gives `None` rather than
    /// searching on, and still finds a rare date that exists. (How fast it
    /// gives up is for a benchmark to measure, not a test.)
    #[test]
    fn time_window_next_match_is_none_for_impossible_dates() {
        for s in [
            "0 0 0 31 2 * *",
            "0 0 0 30 2 * *",
            "0 0 0 31 4,6,9,11 * *",
            "0 0 0 29 2 * 2100-2103",
            // Feb 29 on a Sunday only in 2004-2027 at most (2004 and 2032 are Sundays):
            "0 0 0 29 2 0 2005-2031",
        ] {
            assert_eq!(tw(s).next_match(utc(2000, 1, 1, 0, 0, 0)), None, "{s}");
        }
        // Rare but possible: Feb 29 that is a Sunday.
        assert_eq!(
            tw("0 0 0 29 2 0 *").next_match(utc(2005, 1, 1, 0, 0, 0)),
            Some(utc(2032, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn time_window_debug_is_compact() {
        let d = format!("{:?}", tw("0 0 0 1 1 * 2030,2100-2110"));
        assert!(d.contains("years: 2030,2100-2110"), "{d}");
        assert!(format!("{:?}", tw("* * * * * * *")).contains("years: *"));
    }
}
