//! oneM2M identifiers as the access control rules see them (TS-0001 7.2,
//! TS-0003 7.1.3, spec notes §8 and Decisions 1–3).
//!
//! An originator is compared in **absolute** form, `//sp-fqdn/...`. The
//! hosting CSE's SP-ID and CSE-ID ([`HostingContext`]) turn the shorter forms
//! into it: an AE-ID stem `Cxyz` becomes `//sp/hosting-cse/Cxyz`, an `Sxyz`
//! stem `//sp/Sxyz`, an SP-relative `/cse/...` becomes `//sp/cse/...`.
//!
//! An `accessControlOriginators` entry is classified once, at compile time,
//! into an [`OriginatorEntry`]. Entries keep their *scope* (absolute,
//! SP-relative, or relative to the hosting CSE) instead of being expanded, so
//! that a compiled policy does not depend on the hosting context and matching
//! needs no allocation.

use std::borrow::Cow;

use thiserror::Error;

/// The hosting CSE a request arrived at: its SP domain and CSE-ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostingContext {
    sp: String,
    cse: String,
    /// `//sp`, and `//sp/cse/`: the prefixes of the absolute forms of
    /// SP-relative IDs and of stems, built once.
    sp_prefix: String,
    cse_prefix: String,
}

/// An identifier that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// Empty identifier.
    #[error("must not be empty")]
    Empty,
    /// Whitespace inside an identifier.
    #[error("must not contain whitespace")]
    Whitespace,
    /// A wildcard where only a concrete identifier is allowed.
    #[error("must not contain the wildcard '*'")]
    Wildcard,
    /// An SP-ID that is not `//fqdn` or `fqdn`.
    #[error("'{0}' is not an SP-ID (expected //fqdn)")]
    BadSpId(String),
    /// A CSE-ID that is not `/cse-id` or `cse-id`.
    #[error("'{0}' is not an SP-relative CSE-ID (expected /cse-id)")]
    BadCseId(String),
    /// A wildcard in an SP domain entry (Decision 1).
    #[error("wildcards are not allowed in an SP domain (TS-0003 7.1.3)")]
    WildcardInDomain,
    /// An absolute ID with an empty segment, such as `//sp//x`.
    #[error("'{0}' has an empty path segment")]
    EmptySegment(String),
}

/// Byte classes for [`check_originator_id`].
const WHITESPACE: u8 = 1;
const WILDCARD: u8 = 2;
const NON_ASCII: u8 = 4;
const SLASH: u8 = 8;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            // The ASCII characters of `char::is_whitespace`.
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => WHITESPACE,
            b'*' => WILDCARD,
            b'/' => SLASH,
            0x80..=0xff => NON_ASCII,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The checks of [`HostingContext::canonicalize`] in one pass over the
/// bytes (this runs on every decision): not empty, no whitespace, no `*`,
/// and every `/` segment non-empty in each form (`//fqdn/a/b`, `/a/b`, `stem`).
fn check_originator_id(id: &str) -> Result<(), IdError> {
    let Some((&first, rest)) = id.as_bytes().split_first() else {
        return Err(IdError::Empty);
    };
    let mut seen = BYTE_CLASS[first as usize];
    // `//` anywhere but at the very start is an empty segment: a pair is
    // counted from the pair (1, 2) on.
    let (mut pairs, mut previous) = (0u8, 0u8);
    for &b in rest {
        let class = BYTE_CLASS[b as usize];
        seen |= class;
        pairs |= previous & class;
        previous = class;
    }
    // A trailing `/`, or nothing after the `/` or `//` prefix.
    let empty_segment = pairs & SLASH != 0 || id.ends_with('/');
    if seen & WHITESPACE != 0 || (seen & NON_ASCII != 0 && id.chars().any(char::is_whitespace)) {
        return Err(IdError::Whitespace);
    }
    if seen & WILDCARD != 0 {
        return Err(IdError::Wildcard);
    }
    if empty_segment {
        return Err(IdError::EmptySegment(id.to_owned()));
    }
    Ok(())
}

fn check_plain(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.chars().any(char::is_whitespace) {
        return Err(IdError::Whitespace);
    }
    Ok(())
}

impl HostingContext {
    /// Builds a context from an SP-ID (`//sp.example.com` or `sp.example.com`)
    /// and a CSE-ID (`/id-in` or `id-in`).
    pub fn new(sp_id: &str, cse_id: &str) -> Result<Self, IdError> {
        let sp = sp_id.strip_prefix("//").unwrap_or(sp_id);
        check_plain(sp).map_err(|_| IdError::BadSpId(sp_id.to_owned()))?;
        if sp.contains('/') || sp.contains('*') {
            return Err(IdError::BadSpId(sp_id.to_owned()));
        }
        let cse = cse_id.strip_prefix('/').unwrap_or(cse_id);
        check_plain(cse).map_err(|_| IdError::BadCseId(cse_id.to_owned()))?;
        if cse.contains('/') || cse.contains('*') {
            return Err(IdError::BadCseId(cse_id.to_owned()));
        }
        let sp = sp.to_ascii_lowercase();
        Ok(Self {
            sp_prefix: format!("//{sp}"),
            cse_prefix: format!("//{sp}/{cse}/"),
            sp,
            cse: cse.to_owned(),
        })
    }

    /// The SP domain, lower case, without the leading `//`.
    pub fn sp_fqdn(&self) -> &str {
        &self.sp
    }

    /// The hosting CSE-ID without its leading `/`.
    pub fn cse_id(&self) -> &str {
        &self.cse
    }

    /// The absolute form `//sp/...` of an originator ID (Decision 2).
    ///
    /// Fails for IDs that cannot name an originator: empty, with whitespace,
    /// or with a wildcard.
    pub fn canonicalize<'a>(&self, id: &'a str) -> Result<Cow<'a, str>, IdError> {
        let mut buf = String::new();
        Ok(if self.canonicalize_into(id, &mut buf)? {
            Cow::Owned(buf)
        } else {
            Cow::Borrowed(id)
        })
    }

    /// [`HostingContext::canonicalize`] into a caller's buffer, which a
    /// decision reuses instead of allocating: `Ok(true)` when the absolute
    /// form was written into `buf` (cleared first), `Ok(false)` when `id` is
    /// already absolute and `buf` is left empty.
    pub fn canonicalize_into(&self, id: &str, buf: &mut String) -> Result<bool, IdError> {
        check_originator_id(id)?;
        buf.clear();
        let parts: [&str; 3] = match Scope::split(id) {
            Scope::Absolute { fqdn, rest } => {
                if !fqdn.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Ok(false);
                }
                buf.reserve(id.len());
                buf.push_str("//");
                buf.extend(fqdn.chars().map(|c| c.to_ascii_lowercase()));
                buf.push_str(rest);
                return Ok(true);
            }
            Scope::SpRelative(rest) => [&self.sp_prefix, rest, ""],
            Scope::Stem(stem) if stem.starts_with('S') => [&self.sp_prefix, "/", stem],
            Scope::Stem(stem) => [&self.cse_prefix, stem, ""],
        };
        // Built by hand: `format!` costs more than the rest of a decision.
        buf.reserve(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| buf.push_str(p));
        Ok(true)
    }
}

thread_local! {
    static ORIGINATOR: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A per-thread originator buffer that grew past this is given back.
const MAX_KEPT_BUFFER: usize = 4096;

/// Calls `f` with the absolute form of the originator `id`
/// ([`HostingContext::canonicalize`]) built in a buffer kept per thread, so
/// that a decision does not allocate for it. A nested call (an attribute
/// source that decides) gets a buffer of its own.
pub fn with_canonical_originator<R>(
    ctx: &HostingContext,
    id: &str,
    f: impl FnOnce(Result<&str, IdError>) -> R,
) -> R {
    let run = |buf: &mut String| match ctx.canonicalize_into(id, buf) {
        Ok(true) => f(Ok(buf.as_str())),
        Ok(false) => f(Ok(id)),
        Err(e) => f(Err(e)),
    };
    ORIGINATOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let out = run(&mut buf);
            if buf.capacity() > MAX_KEPT_BUFFER {
                *buf = String::new();
            }
            out
        }
        Err(_) => run(&mut String::new()),
    })
}

/// How an ID is anchored.
enum Scope<'a> {
    /// `//fqdn` followed by `rest` (empty or starting with `/`).
    Absolute { fqdn: &'a str, rest: &'a str },
    /// `/...`: relative to the hosting SP; the `&str` keeps its leading `/`.
    SpRelative(&'a str),
    /// No leading `/`: an AE-ID stem.
    Stem(&'a str),
}

impl<'a> Scope<'a> {
    fn split(id: &'a str) -> Self {
        if let Some(abs) = id.strip_prefix("//") {
            let cut = abs.find('/').unwrap_or(abs.len());
            Scope::Absolute {
                fqdn: &abs[..cut],
                rest: &abs[cut..],
            }
        } else if id.starts_with('/') {
            Scope::SpRelative(id)
        } else {
            Scope::Stem(id)
        }
    }
}

/// A canonical originator split for matching: `//fqdn` + `rest`.
#[derive(Debug, Clone, Copy)]
pub struct OriginatorParts<'a> {
    /// The full absolute ID.
    pub absolute: &'a str,
    /// Its SP domain.
    pub fqdn: &'a str,
    /// Everything after the domain, starting with `/` (may be empty).
    pub rest: &'a str,
}

impl<'a> OriginatorParts<'a> {
    /// Splits an absolute ID as returned by [`HostingContext::canonicalize`].
    pub fn of(absolute: &'a str) -> Self {
        let abs = absolute.strip_prefix("//").unwrap_or(absolute);
        // A byte loop: IDs are short, and `find` costs a memchr call.
        let cut = abs.bytes().position(|b| b == b'/').unwrap_or(abs.len());
        Self {
            absolute,
            fqdn: &abs[..cut],
            rest: &abs[cut..],
        }
    }

    /// For an originator in the hosting SP: the part after the domain.
    pub fn sp_relative(&self, ctx: &HostingContext) -> Option<&'a str> {
        (self.fqdn == ctx.sp).then_some(self.rest)
    }

    /// For an AE registered with the hosting CSE (`//sp/cse/stem`): the stem,
    /// from the originator's [`OriginatorParts::sp_relative`] part `rest`.
    pub fn stem_of(rest: &'a str, ctx: &HostingContext) -> Option<&'a str> {
        let after_cse = rest.strip_prefix('/')?.strip_prefix(ctx.cse.as_str())?;
        let stem = after_cse.strip_prefix('/')?;
        (!stem.is_empty() && !stem.bytes().any(|b| b == b'/')).then_some(stem)
    }
}

/// Where a literal or wildcard ID entry is anchored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryScope {
    /// `//fqdn/...`: the stored text is the whole absolute ID.
    Absolute,
    /// `/...` (and `S...` stems, which mean `/S...`): relative to the hosting SP.
    SpRelative,
    /// A `C...` (or other) stem: an AE registered with the hosting CSE.
    CseStem,
}

/// One `accessControlOriginators` entry, classified (TS-0003 7.1.3; Decisions 1 and 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OriginatorEntry {
    /// `all`.
    All,
    /// A Role-ID (contains `@`); matches a verified role of the originator.
    Role(String),
    /// `//fqdn`: every AE-ID and CSE-ID in that SP domain.
    Domain(String),
    /// An ID without wildcard. It may also be the resource ID of a `<group>`,
    /// which only the attribute source can tell.
    Exact {
        /// Anchor of `key`.
        scope: EntryScope,
        /// Absolute ID, SP-relative path (with leading `/`), or stem.
        key: String,
    },
    /// An ID with `*` wildcards, each confined to one `/` segment.
    Pattern {
        /// Anchor of `segments`.
        scope: EntryScope,
        /// The `/`-separated segments; for [`EntryScope::Absolute`] the first is the domain.
        segments: Vec<String>,
    },
}

impl OriginatorEntry {
    /// Classifies one `acor` entry.
    pub fn parse(entry: &str) -> Result<Self, IdError> {
        check_plain(entry)?;
        if entry == "all" {
            return Ok(Self::All);
        }
        if entry.contains('@') {
            return Ok(Self::Role(entry.to_owned()));
        }
        let (scope, text) = match Scope::split(entry) {
            Scope::Absolute { fqdn, rest } => {
                if rest.is_empty() {
                    if fqdn.contains('*') {
                        return Err(IdError::WildcardInDomain);
                    }
                    if fqdn.is_empty() {
                        return Err(IdError::EmptySegment(entry.to_owned()));
                    }
                    return Ok(Self::Domain(fqdn.to_ascii_lowercase()));
                }
                (
                    EntryScope::Absolute,
                    format!("//{}{}", fqdn.to_ascii_lowercase(), rest),
                )
            }
            Scope::SpRelative(rest) => (EntryScope::SpRelative, rest.to_owned()),
            Scope::Stem(stem) if stem.starts_with('S') => {
                (EntryScope::SpRelative, format!("/{stem}"))
            }
            Scope::Stem(stem) => (EntryScope::CseStem, stem.to_owned()),
        };
        let segments: Vec<String> = segments_of(&scope, &text).map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(IdError::EmptySegment(entry.to_owned()));
        }
        if text.contains('*') {
            Ok(Self::Pattern { scope, segments })
        } else {
            Ok(Self::Exact { scope, key: text })
        }
    }
}

fn segments_of<'a>(scope: &EntryScope, text: &'a str) -> std::str::Split<'a, char> {
    match scope {
        EntryScope::Absolute => text.trim_start_matches('/').split('/'),
        EntryScope::SpRelative => text[1..].split('/'),
        EntryScope::CseStem => text.split('/'),
    }
}

/// Does a wildcard `pattern` match `entry` entirely? (`*` never spans `/`;
/// callers only pass single segments.)
pub fn glob_segment(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No '*': the whole text must equal the pattern.
        return rest.is_empty();
    };
    for mid in parts {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The originator's `/` segments as each entry scope sees them, split once
/// per decision.
#[derive(Debug, Clone)]
pub struct OriginatorSegments<'a> {
    absolute: smallvec::SmallVec<[&'a str; 4]>,
    /// Index in `absolute` where the SP-relative path starts, when the
    /// originator is in the hosting SP.
    sp_relative_from: Option<usize>,
    cse_stem: Option<&'a str>,
}

impl<'a> OriginatorSegments<'a> {
    /// Splits a canonical originator for matching against wildcard entries,
    /// given its [`OriginatorParts::sp_relative`] part and its stem
    /// ([`OriginatorParts::stem_of`]), which the caller has already found.
    pub fn of(
        originator: &OriginatorParts<'a>,
        sp_relative: Option<&'a str>,
        cse_stem: Option<&'a str>,
    ) -> Self {
        let body = originator.absolute.get(2..).unwrap_or("");
        let mut absolute = smallvec::SmallVec::new();
        let mut start = 0;
        for_each_slash(body.as_bytes(), |i| {
            absolute.push(body.get(start..i).unwrap_or(""));
            start = i + 1;
        });
        absolute.push(body.get(start..).unwrap_or(""));
        Self {
            absolute,
            sp_relative_from: sp_relative.filter(|rest| !rest.is_empty()).map(|_| 1),
            cse_stem,
        }
    }

    fn for_scope(&self, scope: &EntryScope) -> Option<&[&'a str]> {
        match scope {
            EntryScope::Absolute => Some(&self.absolute),
            EntryScope::SpRelative => self.sp_relative_from.map(|i| &self.absolute[i..]),
            EntryScope::CseStem => self.cse_stem.as_ref().map(std::slice::from_ref),
        }
    }
}

/// Calls `f` with the position of every `/` in `bytes`, in order. Eight
/// bytes at a time (IDs are a few dozen bytes: `str::split` costs a memchr
/// call per segment, a byte loop a branch per byte).
fn for_each_slash(bytes: &[u8], mut f: impl FnMut(usize)) {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SLASHES: u64 = u64::from_ne_bytes([b'/'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ SLASHES;
        // The classic zero-byte test; exact for the lowest zero byte, and
        // every hit is confirmed below, so borrows cannot report a false one.
        let mut hits = x.wrapping_sub(ONES) & !x & HIGHS;
        while hits != 0 {
            let i = base + (hits.trailing_zeros() / 8) as usize;
            if bytes[i] == b'/' {
                f(i);
            }
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b'/' {
            f(base + i);
        }
    }
}

/// One segment of a wildcard entry, compiled for the common shapes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Glob {
    /// No `*`.
    Exact(Box<str>),
    /// `*` alone.
    Any,
    /// `prefix*`.
    Prefix(Box<str>),
    /// Any other shape.
    General(Box<str>),
}

impl Glob {
    /// Compiles one segment.
    pub fn new(segment: &str) -> Self {
        match segment.find('*') {
            None => Self::Exact(segment.into()),
            Some(_) if segment == "*" => Self::Any,
            Some(i) if i == segment.len() - 1 => Self::Prefix(segment[..i].into()),
            Some(_) => Self::General(segment.into()),
        }
    }

    /// Does the segment match `text` entirely?
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Self::Exact(s) => &**s == text,
            Self::Any => true,
            Self::Prefix(p) => text.starts_with(&**p),
            Self::General(g) => glob_segment(g, text),
        }
    }
}

/// Matches a wildcard entry against an originator (Decision 1): the same
/// number of `/` segments, each matched by its glob.
pub fn pattern_matches(
    scope: &EntryScope,
    segments: &[Glob],
    originator: &OriginatorSegments<'_>,
) -> bool {
    originator.for_scope(scope).is_some_and(|target| {
        target.len() == segments.len() && segments.iter().zip(target).all(|(g, t)| g.matches(t))
    })
}

/// The absolute form of a resource ID (TS-0001 7.2), as token `ris` are
/// compared: `//sp/...` as is with the domain lower-cased, SP-relative
/// `/cse/...` under the hosting SP, CSE-relative `x/...` under the hosting
/// CSE. Structured and unstructured IDs of one resource stay different.
pub fn canonical_resource_id(id: &str, hosting: &HostingContext) -> Result<String, String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.chars().any(char::is_whitespace) {
        return Err(format!("'{id}' must not contain whitespace"));
    }
    Ok(if let Some(abs) = id.strip_prefix("//") {
        let cut = abs.find('/').unwrap_or(abs.len());
        format!("//{}{}", abs[..cut].to_ascii_lowercase(), &abs[cut..])
    } else if id.starts_with('/') {
        format!("//{}{id}", hosting.sp_fqdn())
    } else {
        format!("//{}/{}/{id}", hosting.sp_fqdn(), hosting.cse_id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HostingContext {
        HostingContext::new("//m2msp.org", "/myCSEID").unwrap()
    }

    #[test]
    fn canonical_forms_decision_2() {
        let c = ctx();
        assert_eq!(
            c.canonicalize("C9886").unwrap(),
            "//m2msp.org/myCSEID/C9886"
        );
        assert_eq!(c.canonicalize("S988").unwrap(), "//m2msp.org/S988");
        assert_eq!(c.canonicalize("/cse2/C1").unwrap(), "//m2msp.org/cse2/C1");
        assert_eq!(
            c.canonicalize("//Other.ORG/x/C1").unwrap(),
            "//other.org/x/C1"
        );
        assert!(c.canonicalize("C*").is_err());
        assert!(c.canonicalize("").is_err());
        for bad in [
            "/",
            "//",
            "///id-in",
            "//m2msp.org//x",
            "/id-in/",
            "Cphone/",
        ] {
            assert!(c.canonicalize(bad).is_err(), "{bad}");
        }
    }

    /// The one-pass check equals its plain statement: not empty, no
    /// whitespace, no `*`, no empty segment after the `//` or `/` prefix.
    fn check_reference(id: &str) -> Result<(), IdError> {
        check_plain(id)?;
        if id.contains('*') {
            return Err(IdError::Wildcard);
        }
        let body = id
            .strip_prefix("//")
            .or_else(|| id.strip_prefix('/'))
            .unwrap_or(id);
        if body.split('/').any(str::is_empty) {
            return Err(IdError::EmptySegment(id.to_owned()));
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn one_pass_id_check_equals_reference(id in "[/a*\\t \u{a0}\u{2003}é]{0,7}") {
            proptest::prop_assert_eq!(check_originator_id(&id), check_reference(&id));
        }
    }

    proptest::proptest! {
        /// The word-at-a-time scan finds exactly the `/` of a byte loop,
        /// including next to `.` (`/` ^ 1, which the zero-byte test can
        /// flag after a borrow) and across the 8-byte chunk boundaries.
        #[test]
        fn slash_scan_equals_byte_loop(text in "[/./a\u{2f}\u{ff}]{0,40}") {
            let mut found = Vec::new();
            for_each_slash(text.as_bytes(), |i| found.push(i));
            let expected: Vec<usize> = text.bytes().enumerate().filter(|(_, b)| *b == b'/').map(|(i, _)| i).collect();
            proptest::prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn glob_is_anchored() {
        assert!(glob_segment("myCSE*", "myCSE12"));
        assert!(glob_segment("*", ""));
        assert!(glob_segment("a*b*c", "axxbyyc"));
        assert!(!glob_segment("a*b*c", "axxbyyd"));
        assert!(!glob_segment("C98*", "XC98"));
        assert!(glob_segment("ab", "ab"));
        assert!(!glob_segment("ab", "abc"));
        assert!(!glob_segment("a*a", "a"));
    }

    #[test]
    fn entry_kinds_decision_3() {
        assert_eq!(OriginatorEntry::parse("all").unwrap(), OriginatorEntry::All);
        assert!(matches!(
            OriginatorEntry::parse("guest@roles.example.com").unwrap(),
            OriginatorEntry::Role(_)
        ));
        assert_eq!(
            OriginatorEntry::parse("//M2MSP.org").unwrap(),
            OriginatorEntry::Domain("m2msp.org".into())
        );
        assert_eq!(
            OriginatorEntry::parse("//*").unwrap_err(),
            IdError::WildcardInDomain
        );
        // Decision 1 names `//fqdn`; `//fqdn/` is an ID with an empty segment.
        assert!(OriginatorEntry::parse("//m2msp.org/").is_err());
        assert_eq!(
            OriginatorEntry::parse("SmyAE").unwrap(),
            OriginatorEntry::Exact {
                scope: EntryScope::SpRelative,
                key: "/SmyAE".into()
            }
        );
    }
}
