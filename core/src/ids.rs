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
    /// `//sp` and `//sp/cse/`: the prefixes of the absolute forms of
    /// SP-relative IDs and of `C` stems, built once.
    sp_prefix: String,
    cse_prefix: String,
    /// `//sp/`, the prefix of an `S` stem.
    s_prefix: String,
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
    /// An SP-ID that is not `//fqdn` or `fqdn`: the ID, and why.
    #[error("'{0}' is not an SP-ID: {1} (expected //fqdn)")]
    BadSpId(String, String),
    /// A CSE-ID that is not `/cse-id` or `cse-id`: the ID, and why.
    #[error("'{0}' is not an SP-relative CSE-ID: {1} (expected /cse-id)")]
    BadCseId(String, String),
    /// A wildcard in an SP domain entry (Decision 1).
    #[error("wildcards are not allowed in an SP domain (TS-0003 7.1.3)")]
    WildcardInDomain,
    /// An `acor` entry or an originator `//x...` whose domain `x` is no
    /// domain name (a port, `_`, an empty or `-`-edged label).
    #[error(
        "'{0}' is not an SP domain name (expected //fqdn: dot-separated labels of letters, digits and '-')"
    )]
    BadDomain(String),
    /// An absolute ID with an empty segment, such as `//sp//x`.
    #[error("'{0}' has an empty path segment")]
    EmptySegment(String),
    /// A Role-ID that is not `issuerRelativeID@issuerID` (spec notes §7.2):
    /// the reason, naming it.
    #[error("{0}")]
    BadRoleId(String),
    /// An `@` in an originator: AE-IDs and CSE-IDs cannot hold one (it is
    /// not an RFC 3986 unreserved character; spec notes §8), Role-IDs go in
    /// the role IDs.
    #[error("'{0}' holds '@': an AE-ID or CSE-ID cannot, and a Role-ID is not an originator")]
    AtInOriginator(String),
    /// A control character or a non-ASCII character: identifiers are
    /// printable ASCII (RFC 3986 characters; spec notes §8), so such an ID
    /// names nothing, and invisible characters would make two IDs that
    /// look alike differ. Shown escaped.
    #[error("'{}' holds a control or non-ASCII character: IDs are printable ASCII", .0.escape_debug())]
    NotPrintable(String),
    /// `//fqdn` alone is an SP-ID: an originator is an AE-ID or CSE-ID,
    /// which has a path (`//fqdn/cse-id`, TS-0001 7.2).
    #[error("'{0}' is an SP-ID, not an AE-ID or CSE-ID (absolute IDs are //fqdn/cse-id/...)")]
    SpIdAsOriginator(String),
    /// `all`, the `acor` keyword for every originator (TS-0003 7.1.3), as
    /// an originator: it names no one AE or CSE.
    #[error("'all' is the acor keyword for every originator, not an AE-ID or CSE-ID")]
    AllAsOriginator,
    /// A resource ID with a control character (non-ASCII is allowed in a
    /// resource ID, unlike in an originator). Shown escaped.
    #[error("'{}' holds a control character", .0.escape_debug())]
    Control(String),
    /// An ID longer than [`MAX_ID_BYTES`]: its length (the ID itself is
    /// not quoted).
    #[error("is {0} bytes long; an ID has at most {MAX_ID_BYTES}")]
    TooLong(usize),
    /// An originator ID whose absolute form (with the hosting SP-ID and
    /// CSE-ID in front, Decision 2), the form it is stored, compared and
    /// sent in, is longer than [`MAX_ID_BYTES`]: that length.
    #[error(
        "is {0} bytes long in absolute form (with the hosting SP-ID and CSE-ID); an ID has at most {MAX_ID_BYTES}"
    )]
    TooLongAbsolute(usize),
}

/// The most bytes an ID (of a resource, an ACP, a parent, an `acpi`
/// entry, a decision's target) may have: far more than any structured
/// resource ID, and a bound on what one record, every snapshot that holds
/// it and every message that names it carry.
pub const MAX_ID_BYTES: usize = 2048;

/// Checks a resource ID in any of its forms (TS-0001 7.2: CSE-relative
/// `x/y`, SP-relative `/cse/x`, absolute `//fqdn/cse/x`): what a request's
/// target (`to`) and an ACP's `ri` must be. Not empty, at most
/// [`MAX_ID_BYTES`], no white space or control character, and no empty
/// `/` segment after the `//` or `/` prefix (`x/`, `a//b`, `/`, `//`,
/// `///x`): such an ID names no resource, yet `/mn1/acp1/` would otherwise
/// be taken for some resource other than the ACP `/mn1/acp1` and be judged
/// by other rules (TS-0001 10.2.3.1). `*` and non-ASCII characters are
/// allowed: resource names may hold them.
pub fn check_resource_id(id: &str) -> Result<(), IdError> {
    check_bounded(id)?;
    if id.chars().any(char::is_control) {
        return Err(IdError::Control(id.to_owned()));
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

/// Byte classes for [`check_originator_id`].
const WHITESPACE: u8 = 1;
const WILDCARD: u8 = 2;
const NON_ASCII: u8 = 4;
const SLASH: u8 = 8;
const AT: u8 = 16;
const CONTROL: u8 = 32;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            // The ASCII characters of `char::is_whitespace`.
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => WHITESPACE,
            b'*' => WILDCARD,
            b'@' => AT,
            b'/' => SLASH,
            0x00..=0x1f | 0x7f => CONTROL,
            0x80..=0xff => NON_ASCII,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The checks of [`HostingContext::canonicalize`] in one pass over the
/// bytes: not empty, at most [`MAX_ID_BYTES`], no whitespace, printable
/// ASCII, no `*`, no `@`, every
/// `/` segment non-empty in each form (`//fqdn/a/b`, `/a/b`, `stem`), and
/// a path after `//fqdn`. What a request's originator (`fr`) must pass
/// before it is decided on.
pub fn check_originator_id(id: &str) -> Result<(), IdError> {
    let Some((&first, rest)) = id.as_bytes().split_first() else {
        return Err(IdError::Empty);
    };
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong(id.len()));
    }
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
    if seen & (CONTROL | NON_ASCII) != 0 {
        return Err(IdError::NotPrintable(id.to_owned()));
    }
    if seen & WILDCARD != 0 {
        return Err(IdError::Wildcard);
    }
    if seen & AT != 0 {
        return Err(IdError::AtInOriginator(id.to_owned()));
    }
    if empty_segment {
        return Err(IdError::EmptySegment(id.to_owned()));
    }
    if let Some(abs) = id.strip_prefix("//") {
        let Some((domain, _)) = abs.split_once('/') else {
            return Err(IdError::SpIdAsOriginator(id.to_owned()));
        };
        // As in an `acor` entry and the hosting SP-ID (TS-0001 7.2: an
        // SP-ID is a domain name).
        if !is_fqdn(domain) {
            return Err(IdError::BadDomain(domain.to_owned()));
        }
    }
    if id == "all" {
        return Err(IdError::AllAsOriginator);
    }
    Ok(())
}

/// A Role-ID (m2m:roleID, spec notes §7.2): `issuerRelativeID@issuerID`,
/// the first of letters, digits, `.`, `_` and `-`, the second a lower-case
/// FQDN. Both an `acor` entry and a request's role IDs must be one, so that
/// no entry loads as something that can never match (TS-0003 7.1.3: no
/// wildcard in a Role-ID) and no claimed role is silently meaningless.
pub fn check_role_id(id: &str) -> Result<(), IdError> {
    check_plain(id)?;
    crate::token::check_scoped_id(id).map_err(IdError::BadRoleId)
}

/// Not empty, at most [`MAX_ID_BYTES`], no white space: what every ID is.
fn check_bounded(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong(id.len()));
    }
    if id.chars().any(char::is_whitespace) {
        return Err(IdError::Whitespace);
    }
    Ok(())
}

fn check_plain(id: &str) -> Result<(), IdError> {
    check_bounded(id)?;
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdError::NotPrintable(id.to_owned()));
    }
    Ok(())
}

/// Why a CSE-ID failed [`check_plain`]: the reason alone, as the ID is
/// quoted beside it (only a length is worth keeping of a too-long one).
fn cse_fault(e: IdError) -> String {
    match e {
        IdError::Empty => "it is empty".to_owned(),
        IdError::TooLong(n) => format!("it is {n} bytes long; an ID has at most {MAX_ID_BYTES}"),
        _ => "it holds white space, a control or a non-ASCII character".to_owned(),
    }
}

/// Why `name`, which [`is_fqdn`] refused, is no domain name: the first
/// fault found, in the terms of its definition.
fn fqdn_fault(name: &str) -> String {
    if name.is_empty() {
        return "the domain name is empty".to_owned();
    }
    if name.len() > 253 {
        return format!("the domain name is {} bytes long, at most 253", name.len());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return format!(
            "it holds {:?}: a domain name has dot-separated labels of letters, digits and '-'",
            c
        );
    }
    for label in name.split('.') {
        if label.is_empty() {
            return "it has an empty label (two dots, or a dot at an end)".to_owned();
        }
        if label.len() > 63 {
            return format!(
                "its label '{label:.16}...' is {} bytes long, at most 63",
                label.len()
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return format!("its label '{label}' starts or ends with '-'");
        }
    }
    "it is no domain name".to_owned()
}

/// Whether `name` is an FQDN: dot-separated labels of letters, digits and
/// `-` (any case: domains compare case-insensitively), neither starting
/// nor ending with `-`, at most 63 bytes each and 253 in all.
pub fn is_fqdn(name: &str) -> bool {
    // One pass over the bytes: an absolute originator's domain is checked
    // on every decision it makes.
    let bytes = name.as_bytes();
    if bytes.len() > 253 {
        return false;
    }
    let (mut label, mut previous) = (0usize, b'.');
    for &b in bytes {
        if b == b'.' {
            if label == 0 || previous == b'-' {
                return false;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || (b == b'-' && label > 0) {
            label += 1;
            if label > 63 {
                return false;
            }
        } else {
            return false;
        }
        previous = b;
    }
    label > 0 && previous != b'-'
}

impl HostingContext {
    /// Builds a context from an SP-ID (`//sp.example.com` or `sp.example.com`)
    /// and a CSE-ID (`/id-in` or `id-in`).
    pub fn new(sp_id: &str, cse_id: &str) -> Result<Self, IdError> {
        let sp = sp_id.strip_prefix("//").unwrap_or(sp_id);
        if !is_fqdn(sp) {
            return Err(IdError::BadSpId(sp_id.to_owned(), fqdn_fault(sp)));
        }
        let cse = cse_id.strip_prefix('/').unwrap_or(cse_id);
        check_plain(cse).map_err(|e| IdError::BadCseId(cse_id.to_owned(), cse_fault(e)))?;
        if let Some(c) = cse.chars().find(|c| matches!(c, '/' | '*' | '@')) {
            let why = match c {
                '/' => "it has '/' after its leading one, but a CSE-ID is one segment",
                '*' => "it holds '*', a wildcard",
                _ => "it holds '@', which no CSE-ID can",
            };
            return Err(IdError::BadCseId(cse_id.to_owned(), why.to_owned()));
        }
        let sp = sp.to_ascii_lowercase();
        Ok(Self {
            sp_prefix: format!("//{sp}"),
            cse_prefix: format!("//{sp}/{cse}/"),
            s_prefix: format!("//{sp}/"),
            sp,
            cse: cse.to_owned(),
        })
    }

    /// The CSE-relative form of a resource ID of this CSE (TS-0001 7.2:
    /// `x`, SP-relative `/cse-id/x` or absolute `//sp/cse-id/x`, the domain
    /// in any case), as its records name resources and ACPs: the ID itself
    /// when already CSE-relative, `None` for an ID of another CSE or SP, or
    /// of the CSEBase itself.
    pub fn cse_relative<'a>(&self, id: &'a str) -> Option<&'a str> {
        let sp_relative = match id.strip_prefix("//") {
            Some(abs) => {
                let (fqdn, rest) = abs.split_at(abs.find('/')?);
                if !fqdn.eq_ignore_ascii_case(&self.sp) {
                    return None;
                }
                rest
            }
            None if id.starts_with('/') => id,
            None => return Some(id),
        };
        sp_relative
            .strip_prefix('/')?
            .strip_prefix(self.cse.as_str())?
            .strip_prefix('/')
            .filter(|rest| !rest.is_empty())
    }

    /// The SP domain, lower case, without the leading `//`.
    pub fn sp_fqdn(&self) -> &str {
        &self.sp
    }

    /// The hosting CSE-ID without its leading `/`.
    pub fn cse_id(&self) -> &str {
        &self.cse
    }

    /// The ID this CSE's records hold the resource `id` under: its
    /// CSE-relative form ([`Self::cse_relative`]), or, for the CSEBase
    /// named by its CSE-ID ([`Self::names_cse_base`]), the CSEBase's
    /// resource ID, the CSE-ID without `/`; `None` for an ID of another CSE
    /// or SP. The one reading of a target or parent for the PDP and the PRP.
    pub fn held_resource_id<'a>(&'a self, id: &'a str) -> Option<&'a str> {
        match self.cse_relative(id) {
            Some(relative) => Some(relative),
            None => self.names_cse_base(id).then_some(self.cse.as_str()),
        }
    }

    /// Whether `id` names this CSE's CSEBase by its CSE-ID: SP-relative
    /// `/cse` or absolute `//sp/cse` (the domain in any case, a trailing
    /// `/` allowed), which [`HostingContext::cse_relative`] has no
    /// CSE-relative form for. The CSEBase's resource ID is then the CSE-ID
    /// without `/` ([`HostingContext::cse_id`]), as the PEP names it.
    pub fn names_cse_base(&self, id: &str) -> bool {
        let sp_relative = match id.strip_prefix("//") {
            Some(abs) => {
                let (fqdn, rest) = abs.split_at(abs.find('/').unwrap_or(abs.len()));
                if !fqdn.eq_ignore_ascii_case(&self.sp) {
                    return false;
                }
                rest
            }
            None => id,
        };
        sp_relative
            .strip_prefix('/')
            .is_some_and(|cse| cse.strip_suffix('/').unwrap_or(cse) == self.cse)
    }

    /// What makes the relative originator ID `id` absolute (Decision 2):
    /// `//sp` before an SP-relative ID, `//sp/` before an `S` stem, the
    /// hosting CSE's `//sp/cse/` before any other.
    fn absolute_prefix(&self, id: &str) -> &str {
        match id.as_bytes().first() {
            Some(b'/') => self.sp_prefix.as_str(),
            Some(b'S') => self.s_prefix.as_str(),
            _ => self.cse_prefix.as_str(),
        }
    }

    /// Whether the absolute form of the originator ID `id` is at most
    /// [`MAX_ID_BYTES`] long ([`IdError::TooLongAbsolute`] otherwise), without
    /// building it: the form the PIP stores and is asked, so one an ID
    /// given relative grows past the bound is refused where it is given.
    pub fn check_absolute_length(&self, id: &str) -> Result<(), IdError> {
        let len = if id.starts_with("//") {
            id.len()
        } else {
            self.absolute_prefix(id).len() + id.len()
        };
        if len > MAX_ID_BYTES {
            return Err(IdError::TooLongAbsolute(len));
        }
        Ok(())
    }

    /// The absolute form `//sp/...` of an originator ID (Decision 2).
    ///
    /// Fails for IDs that cannot name an originator: empty, with whitespace,
    /// with a wildcard, or whose absolute form is longer than
    /// [`MAX_ID_BYTES`].
    pub fn canonicalize<'a>(&self, id: &'a str) -> Result<Cow<'a, str>, IdError> {
        let mut buf = IdBuffer::new();
        let (in_buf, _) = self.canonicalize_into(id, &mut buf)?;
        Ok(if in_buf {
            Cow::Owned(buf.as_str().to_owned())
        } else {
            Cow::Borrowed(id)
        })
    }

    /// [`HostingContext::canonicalize`] into a caller's buffer, which a
    /// decision keeps on its stack instead of allocating. Returns whether
    /// the absolute form was written into `buf` (otherwise `id` is already
    /// absolute and `buf` is left empty), and its [`IdShape`].
    fn canonicalize_into(&self, id: &str, buf: &mut IdBuffer) -> Result<(bool, IdShape), IdError> {
        let slashes = Slashes::of(id)?;
        let bytes = id.as_bytes();
        if bytes == b"all" {
            return Err(IdError::AllAsOriginator);
        }
        if bytes.starts_with(b"//") {
            let Some(fqdn_end) = slashes.first_from(2) else {
                return Err(IdError::SpIdAsOriginator(id.to_owned()));
            };
            let shape = IdShape {
                fqdn_end,
                last_slash: slashes.last_from(2),
            };
            // As in an `acor` entry (OriginatorEntry::parse).
            if !is_fqdn(&id[2..fqdn_end]) {
                return Err(IdError::BadDomain(id[2..fqdn_end].to_owned()));
            }
            if !slashes.upper_in(id, 2, fqdn_end) {
                return Ok((false, shape));
            }
            let lower = id[..fqdn_end].to_ascii_lowercase();
            buf.set(&lower, &id[fqdn_end..]);
            return Ok((true, shape));
        }
        let last = slashes.last_from(0);
        // Built by hand: `format!` costs more than the rest of a decision.
        let prefix = self.absolute_prefix(id);
        // Checked on the form everything downstream holds (the PIP stores
        // and is asked absolute IDs), not only on the form given
        // ([`Self::check_absolute_length`], with the prefix at hand).
        if prefix.len() + id.len() > MAX_ID_BYTES {
            return Err(IdError::TooLongAbsolute(prefix.len() + id.len()));
        }
        buf.set(prefix, id);
        let start = prefix.len();
        Ok((
            true,
            IdShape {
                fqdn_end: self.sp_prefix.len(),
                // Without a `/` of its own, the ID's last segment follows the prefix.
                last_slash: Some(last.map_or(start - 1, |i| start + i)),
            },
        ))
    }
}

/// Where the originator's absolute form is built: on the stack when it is
/// short, as it nearly always is, so a decision does not allocate for it.
struct IdBuffer {
    inline: arrayvec::ArrayString<96>,
    /// Used instead of `inline` when set (a longer ID).
    heap: Option<String>,
}

impl IdBuffer {
    fn new() -> Self {
        Self {
            inline: arrayvec::ArrayString::new(),
            heap: None,
        }
    }

    /// Holds `prefix` followed by `rest`.
    fn set(&mut self, prefix: &str, rest: &str) {
        self.inline.clear();
        if self.inline.try_push_str(prefix).is_err() || self.inline.try_push_str(rest).is_err() {
            self.heap = Some([prefix, rest].concat());
        }
    }

    fn as_str(&self) -> &str {
        self.heap.as_deref().unwrap_or(&self.inline)
    }
}

/// Where the parts of an absolute ID are, found while canonicalizing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdShape {
    /// End of the SP domain (`//fqdn`).
    fqdn_end: usize,
    /// The last `/` after the domain, if the ID has a path.
    last_slash: Option<usize>,
}

/// The `/` positions of an ID, found in the pass that checks it.
///
/// An ID of at most 64 bytes (nearly all of them) is classified 16 bytes
/// at a time into bitmasks, a form the compiler turns into a few vector
/// instructions; a byte that needs the exact check (whitespace, `*`, any
/// non-ASCII byte) or a longer ID takes [`check_originator_id`].
enum Slashes {
    /// A bit per byte: `/`, and ASCII upper case.
    Short { slash: u64, upper: u64 },
    /// A longer ID, searched byte by byte.
    Long(Vec<usize>),
}

impl Slashes {
    fn of(id: &str) -> Result<Self, IdError> {
        let bytes = id.as_bytes();
        if bytes.is_empty() || bytes.len() > 64 {
            check_originator_id(id)?;
            return Ok(Self::Long(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'/')
                    .map(|(i, _)| i)
                    .collect(),
            ));
        }
        let (mut slash, mut upper, mut unusual) = (0u64, 0u64, false);
        let mut chunks = bytes.chunks_exact(16);
        let mut at = 0;
        for chunk in &mut chunks {
            let mut block = [0u8; 16];
            block.copy_from_slice(chunk);
            let (s, u, x) = classify16(&block);
            slash |= u64::from(s) << at;
            upper |= u64::from(u) << at;
            unusual |= x != 0;
            at += 16;
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let (s, u, x) = classify16(&zero_padded(tail));
            slash |= u64::from(s) << at;
            upper |= u64::from(u) << at;
            // The padding is NUL, a control byte: only the tail's own count.
            unusual |= x & ((1u16 << tail.len()) - 1) != 0;
        }
        if unusual {
            check_originator_id(id)?;
        } else {
            // `//` anywhere but at the very start, or a trailing `/`, is
            // an empty segment (as in `check_originator_id`).
            let pairs = slash & (slash << 1) & !0b10;
            let trailing = slash >> (bytes.len() - 1) & 1;
            if pairs | trailing != 0 {
                return Err(IdError::EmptySegment(id.to_owned()));
            }
        }
        Ok(Self::Short { slash, upper })
    }

    /// The first `/` at or after `from`.
    fn first_from(&self, from: usize) -> Option<usize> {
        match self {
            Self::Short { slash, .. } => {
                let m = slash & (u64::MAX << from.min(63));
                (m != 0).then(|| m.trailing_zeros() as usize)
            }
            Self::Long(all) => all.iter().copied().find(|&i| i >= from),
        }
    }

    /// The last `/` at or after `from`.
    fn last_from(&self, from: usize) -> Option<usize> {
        match self {
            Self::Short { slash, .. } => {
                let m = slash & (u64::MAX << from.min(63));
                (m != 0).then(|| 63 - m.leading_zeros() as usize)
            }
            Self::Long(all) => all.last().copied().filter(|&i| i >= from),
        }
    }

    /// Is there an ASCII upper-case letter in `id[from..to]`?
    fn upper_in(&self, id: &str, from: usize, to: usize) -> bool {
        match self {
            Self::Short { upper, .. } => {
                let below_to = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
                upper & below_to & (u64::MAX << from.min(63)) != 0
            }
            Self::Long(_) => id
                .as_bytes()
                .get(from..to)
                .is_some_and(|b| b.iter().any(u8::is_ascii_uppercase)),
        }
    }
}

/// Fewer than 16 bytes, zero-padded to 16 (a zero byte is in no class of
/// [`classify16`]), read as two overlapping words instead of a `memcpy`.
#[inline(always)]
fn zero_padded(tail: &[u8]) -> [u8; 16] {
    let n = tail.len();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&tail[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (lo, hi) = if n >= 8 {
        // The high word holds bytes n-8..n; drop the ones `lo` has.
        let drop = 8 * (16 - n) as u32;
        (word(0), word(n - 8).checked_shr(drop).unwrap_or(0))
    } else {
        let lo = tail
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | (u64::from(b) << (8 * i)));
        (lo, 0)
    };
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&lo.to_le_bytes());
    block[8..].copy_from_slice(&hi.to_le_bytes());
    block
}

/// One 16-byte block: a bit per `/`, a bit per ASCII upper-case letter,
/// and a bit per byte that needs the exact check. Written as plain loops
/// over a fixed-size array so that it compiles to vector compares.
#[inline(always)]
fn classify16(block: &[u8; 16]) -> (u16, u16, u16) {
    let (mut slash, mut upper, mut unusual) = (0u16, 0u16, 0u16);
    for (i, &b) in block.iter().enumerate() {
        slash |= u16::from(b == b'/') << i;
        upper |= u16::from(b.wrapping_sub(b'A') < 26) << i;
        // Controls, space, `*`, `@`, DEL and every non-ASCII byte (non-
        // short-circuit `|`, which vectorizes).
        let odd = (b <= b' ') | (b == b'*') | (b == b'@') | (b >= 0x7f);
        unusual |= u16::from(odd) << i;
    }
    (slash, upper, unusual)
}

/// An originator ID in absolute form, `//fqdn/...`, as
/// [`HostingContext::canonicalize`] gives it, with where its SP domain and
/// its last segment start (which canonicalization finds on its way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteId<'a> {
    text: &'a str,
    shape: IdShape,
}

impl<'a> AbsoluteId<'a> {
    /// Splits an ID that is already absolute (as
    /// [`HostingContext::canonicalize`] returned it). Never fails: text that
    /// is not of that form simply matches no entry that needs the form.
    pub fn parse(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let start = if text.starts_with("//") { 2 } else { 0 };
        let fqdn_end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(text.len(), |i| start + i);
        let last_slash = bytes[fqdn_end..]
            .iter()
            .rposition(|&b| b == b'/')
            .map(|i| fqdn_end + i);
        Self {
            text,
            shape: IdShape {
                fqdn_end,
                last_slash,
            },
        }
    }

    /// The whole ID.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The SP domain, without `//`.
    pub fn fqdn(&self) -> &'a str {
        self.text.get(2..self.shape.fqdn_end).unwrap_or("")
    }

    /// Everything after the domain: empty, or starting with `/`.
    pub fn rest(&self) -> &'a str {
        self.text.get(self.shape.fqdn_end..).unwrap_or("")
    }

    /// Where the SP domain is in [`AbsoluteId::as_str`] (after `//`).
    pub(crate) fn fqdn_span(&self) -> (usize, usize) {
        let end = self.shape.fqdn_end.min(self.text.len());
        (2.min(end), end)
    }

    /// Where the last `/`-separated segment starts in
    /// [`AbsoluteId::as_str`] (the domain when there is no path).
    pub(crate) fn last_segment_start(&self) -> usize {
        self.shape
            .last_slash
            .map_or(self.fqdn_span().0, |i| (i + 1).min(self.text.len()))
    }

    /// The last `/`-separated segment (the domain when there is no path).
    pub fn last_segment(&self) -> &'a str {
        match self.shape.last_slash {
            Some(i) => self.text.get(i + 1..).unwrap_or(""),
            None => self.fqdn(),
        }
    }
}

/// Calls `f` with the absolute form of the originator `id`
/// ([`HostingContext::canonicalize`]), built on the stack so that a
/// decision does not allocate for it.
pub fn with_canonical_originator<R>(
    ctx: &HostingContext,
    id: &str,
    f: impl FnOnce(Result<AbsoluteId<'_>, IdError>) -> R,
) -> R {
    let mut buf = IdBuffer::new();
    match ctx.canonicalize_into(id, &mut buf) {
        Ok((in_buf, shape)) => f(Ok(AbsoluteId {
            text: if in_buf { buf.as_str() } else { id },
            shape,
        })),
        Err(e) => f(Err(e)),
    }
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
            // A byte loop: IDs are short, and `find` costs a memchr call.
            let cut = abs.bytes().position(|b| b == b'/').unwrap_or(abs.len());
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
            check_role_id(entry)?;
            return Ok(Self::Role(entry.to_owned()));
        }
        let (scope, text) = match Scope::split(entry) {
            Scope::Absolute { fqdn, rest } => {
                // `///x` has no domain at all, whatever follows.
                if fqdn.is_empty() {
                    return Err(IdError::EmptySegment(entry.to_owned()));
                }
                // Checked as if each `*` were a letter (`//*/x`,
                // `//m2m*.example.com/x`): the rest must be a domain name,
                // as the hosting CSE's SP-ID must. Matching reads the `*`
                // as any other (Decision 1: within the segment, dots
                // included, as `//*/myCSEID` of table 7.1.3-2 needs).
                if !is_fqdn(&fqdn.replace('*', "a")) {
                    return Err(IdError::BadDomain(fqdn.to_owned()));
                }
                if rest.is_empty() {
                    if fqdn.contains('*') {
                        return Err(IdError::WildcardInDomain);
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
        // Exactly the two slashes of the anchor: a third is an empty segment.
        EntryScope::Absolute => text[2..].split('/'),
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

/// The absolute form of a resource ID (TS-0001 7.2), as token `ris` are
/// compared: `//sp/...` as is with the domain lower-cased, SP-relative
/// `/cse/...` under the hosting SP, CSE-relative `x/...` under the hosting
/// CSE; the hosting CSE's CSE-ID without `/`, the CSEBase's resource ID,
/// is `//sp/cse`. Structured and unstructured IDs of one resource stay
/// different.
pub fn canonical_resource_id(id: &str, hosting: &HostingContext) -> Result<String, String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.chars().any(char::is_whitespace) {
        return Err(format!("'{id}' must not contain whitespace"));
    }
    Ok(with_canonical_resource_id(id, hosting, str::to_owned))
}

/// The CSE that hosts the resource `id`, as a hosting context: the one its
/// absolute form ([`canonical_resource_id`]) names, which for a
/// CSE-relative ID is `hosting`'s own. IDs held by that resource are
/// relative to it (TS-0001 7.2): an `<AE>`'s `aei` stem, a `<group>`'s
/// CSE-relative or SP-relative `mid` entries.
pub fn resource_cse(id: &str, hosting: &HostingContext) -> Option<HostingContext> {
    let abs = canonical_resource_id(id, hosting).ok()?;
    let (sp, rest) = abs.strip_prefix("//")?.split_once('/')?;
    HostingContext::new(sp, rest.split('/').next()?).ok()
}

/// Calls `f` with [`canonical_resource_id`] of an `acor` entry (not
/// empty, no whitespace: as compiled), built on the stack so that a
/// decision does not allocate for it; the one place the rule is written. An absolute entry whose domain holds
/// upper case (rare: compiled keys are lower-cased) is lowered on the heap.
pub(crate) fn with_canonical_resource_id<R>(
    id: &str,
    hosting: &HostingContext,
    f: impl FnOnce(&str) -> R,
) -> R {
    let mut buf = IdBuffer::new();
    if let Some(abs) = id.strip_prefix("//") {
        let domain = abs.split('/').next().unwrap_or("");
        if !domain.bytes().any(|b| b.is_ascii_uppercase()) {
            return f(id);
        }
        let cut = domain.len();
        buf.set(&format!("//{}", domain.to_ascii_lowercase()), &abs[cut..]);
    } else if id.starts_with('/') {
        buf.set(&hosting.sp_prefix, id);
    } else if id == hosting.cse {
        // The CSEBase's own resource ID, as the PDP and the PEP name it (the
        // CSE-ID without `/`): the resource `//sp/cse`, not a child of it.
        buf.set(&hosting.cse_prefix[..hosting.cse_prefix.len() - 1], "");
    } else {
        buf.set(&hosting.cse_prefix, id);
    }
    f(buf.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack-built resource ID is [`canonical_resource_id`]'s.
    #[test]
    fn resource_id_on_the_stack_equals_canonical() {
        let c = ctx();
        for id in [
            "grp1",
            "Sgrp",
            "/cse2/grp1",
            "/Sgrp",
            "//m2msp.org/myCSEID/grp1",
            "//M2MSP.Org/myCSEID/Grp1",
            "//m2msp.org",
        ] {
            let expected = canonical_resource_id(id, &c).expect("resource ID");
            with_canonical_resource_id(id, &c, |got| assert_eq!(got, expected, "{id}"));
        }
    }

    fn ctx() -> HostingContext {
        HostingContext::new("//m2msp.org", "/myCSEID").unwrap()
    }

    /// An originator is an AE-ID or CSE-ID (TS-0003 table 7.1.2-1 `From`;
    /// TS-0001 7.2): `//fqdn` alone is an SP-ID, and an ID with a control
    /// or invisible character names nobody (spec notes §8: IDs are made of
    /// RFC 3986 characters). Neither is decided on, nor loaded as an
    /// `acor` entry that could never match.
    #[test]
    fn sp_ids_and_unprintable_ids_are_no_originators_table_7_1_2_1() {
        let c = ctx();
        for (id, expected) in [
            ("//evil.example", "is an SP-ID, not an AE-ID or CSE-ID"),
            ("all", "'all' is the acor keyword for every originator"),
            ("//M2MSP.org", "is an SP-ID"),
            ("C\u{0}x", "'C\\0x' holds a control or non-ASCII character"),
            ("C\u{7f}x", "control or non-ASCII"),
            (
                "C\u{200b}x",
                "'C\\u{200b}x' holds a control or non-ASCII character",
            ),
            ("/cse/Cé", "control or non-ASCII"),
        ] {
            let e = c.canonicalize(id).expect_err(id).to_string();
            assert!(e.contains(expected), "{id:?}: {e}");
            assert_eq!(
                check_originator_id(id).map_err(|e| e.to_string()),
                Err(e),
                "{id:?}"
            );
        }
        for entry in ["C\u{200b}x", "//sp\u{0}/C1", "Cé*"] {
            let e = OriginatorEntry::parse(entry).expect_err(entry).to_string();
            assert!(e.contains("control or non-ASCII"), "{entry:?}: {e}");
        }
        // `//fqdn` stays an SP domain entry (TS-0003 7.1.3).
        assert_eq!(
            OriginatorEntry::parse("//evil.example").expect("domain entry"),
            OriginatorEntry::Domain("evil.example".into())
        );
    }

    /// The hosting CSE's own identity: an SP-ID is `//` and an FQDN, a
    /// CSE-ID `/` and one segment that could be an ID.
    /// TS-0001 7.2: one resource of the hosting CSE in its three forms.
    #[test]
    fn cse_relative_forms_of_the_hosting_cses_resources() {
        let c = HostingContext::new("//sp.example.com", "/id-in").unwrap();
        for (id, rel) in [
            ("acp1", Some("acp1")),
            ("/id-in/acp1", Some("acp1")),
            ("//sp.example.com/id-in/acp1", Some("acp1")),
            ("//SP.Example.com/id-in/ae/cnt", Some("ae/cnt")),
            ("/id-mn/acp1", None),
            ("//other.example/id-in/acp1", None),
            ("/id-in", None),
            ("/id-in/", None),
            ("//sp.example.com", None),
            ("/id-input/acp1", None),
        ] {
            assert_eq!(c.cse_relative(id), rel, "{id}");
        }
    }

    #[test]
    fn hosting_context_takes_an_fqdn_and_a_cse_id() {
        for (sp, cse) in [
            ("//a@b:99", "/cse"),
            ("//sp..example", "/cse"),
            ("//-sp.example", "/cse"),
            ("//sp.example", "/@x"),
            ("//sp.example", "/c\u{0}"),
            ("//sp.example", "/a/b"),
            ("//sp.example", "/c*"),
        ] {
            assert!(HostingContext::new(sp, cse).is_err(), "{sp:?} {cse:?}");
        }
        let c = HostingContext::new("//M2M-sp.Example.com", "id-in").expect("valid");
        assert_eq!(c.sp_fqdn(), "m2m-sp.example.com");
        assert_eq!(c.cse_id(), "id-in");
    }

    /// TS-0001 7.2: the CSEBase's resource ID as the PDP and PEP name it
    /// (the CSE-ID without `/`) is the CSE's own absolute ID, as `/cse` and
    /// `//sp/cse` are; a child of it is under it.
    #[test]
    fn the_cse_base_resource_id_is_the_cse_ts0001_7_2() {
        let c = ctx();
        for id in [
            "myCSEID",
            "/myCSEID",
            "//m2msp.org/myCSEID",
            "//M2MSP.org/myCSEID",
        ] {
            assert_eq!(
                canonical_resource_id(id, &c).unwrap(),
                "//m2msp.org/myCSEID",
                "{id}"
            );
            with_canonical_resource_id(id, &c, |got| assert_eq!(got, "//m2msp.org/myCSEID"));
        }
        assert_eq!(
            canonical_resource_id("myCSEID2", &c).unwrap(),
            "//m2msp.org/myCSEID/myCSEID2"
        );
        assert_eq!(
            canonical_resource_id("/myCSEID/x", &c).unwrap(),
            "//m2msp.org/myCSEID/x"
        );
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
        if id.contains('@') {
            return Err(IdError::AtInOriginator(id.to_owned()));
        }
        let body = id
            .strip_prefix("//")
            .or_else(|| id.strip_prefix('/'))
            .unwrap_or(id);
        if body.split('/').any(str::is_empty) {
            return Err(IdError::EmptySegment(id.to_owned()));
        }
        if id.starts_with("//") && !body.contains('/') {
            return Err(IdError::SpIdAsOriginator(id.to_owned()));
        }
        if id == "all" {
            return Err(IdError::AllAsOriginator);
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn one_pass_id_check_equals_reference(id in "[/a*@\\t\\x00\\x7f \u{a0}\u{2003}\u{200b}é]{0,7}") {
            proptest::prop_assert_eq!(check_originator_id(&id), check_reference(&id));
        }

        /// The block-wise scan of `canonicalize` (IDs up to 64 bytes) and
        /// its byte-wise fallback (longer IDs) accept and reject exactly
        /// what the plain statement does.
        #[test]
        fn canonicalize_checks_equal_reference(id in "[/aA*@\\t\\n\\x01\\x7f \u{a0}\u{2003}\u{200b}é]{0,80}") {
            proptest::prop_assert_eq!(
                ctx().canonicalize(&id).map(|_| ()),
                check_reference(&id)
            );
        }

        /// The same for IDs of letters and slashes only (empty segments,
        /// leading `//`, trailing `/`, either side of 64 bytes).
        #[test]
        fn canonicalize_slash_checks_equal_reference(id in "[/aA]{0,80}") {
            proptest::prop_assert_eq!(
                ctx().canonicalize(&id).map(|_| ()),
                check_reference(&id)
            );
        }

        /// The one-pass `is_fqdn` agrees with its definition read
        /// literally: dot-separated labels of letters, digits and `-`, none
        /// starting or ending with `-`, 1 to 63 bytes each, 253 in all.
        #[test]
        fn is_fqdn_is_its_definition(name in "[a-zA-Z0-9.\\-_:*]{0,70}") {
            let literal = name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            proptest::prop_assert_eq!(is_fqdn(&name), literal, "{}", name);
        }

        /// Where canonicalization says the domain and the last segment are
        /// is where they are.
        #[test]
        fn shape_found_while_canonicalizing_equals_parse(
            prefix in "(|/|//)",
            segments in proptest::collection::vec("[a-zA-Z0-9.S]{1,12}", 1..7),
        ) {
            // `//fqdn` alone is an SP-ID, no originator; and its domain
            // is a domain name.
            proptest::prop_assume!(prefix != "//" || (segments.len() > 1 && is_fqdn(&segments[0])));
            let id = format!("{prefix}{}", segments.join("/"));
            let c = ctx();
            let found = with_canonical_originator(&c, &id, |r| {
                r.map(|a| (a.as_str().to_owned(), a.fqdn().to_owned(), a.rest().to_owned(), a.last_segment().to_owned()))
            });
            let (text, fqdn, rest, last) = found.expect("a valid ID");
            let parsed = AbsoluteId::parse(&text);
            proptest::prop_assert_eq!(&text, &c.canonicalize(&id).unwrap());
            proptest::prop_assert_eq!(
                (fqdn.as_str(), rest.as_str(), last.as_str()),
                (parsed.fqdn(), parsed.rest(), parsed.last_segment())
            );
            proptest::prop_assert_eq!(last.as_str(), text.rsplit('/').next().unwrap_or(""));
        }
    }

    /// Every ID a request or a record carries is bounded: an originator, a
    /// Role-ID or Token-ID, an `acor` entry, a member or a holder longer
    /// than [`MAX_ID_BYTES`] is refused as such.
    #[test]
    fn ids_are_at_most_max_id_bytes_long() {
        let long = format!("C{}", "x".repeat(MAX_ID_BYTES));
        assert_eq!(
            check_originator_id(&long),
            Err(IdError::TooLong(MAX_ID_BYTES + 1))
        );
        assert_eq!(check_originator_id(&long[1..]), Ok(()));
        assert_eq!(
            OriginatorEntry::parse(&long),
            Err(IdError::TooLong(MAX_ID_BYTES + 1))
        );
        let role = format!("{}@roles.example.com", "r".repeat(MAX_ID_BYTES));
        assert!(check_role_id(&role).is_err());
        assert!(crate::token::check_scoped_id(&role).is_err());
        // The absolute form (Decision 2) is bounded too: it is what the PIP
        // stores and is asked by.
        let ctx = HostingContext::new("//sp.example.com", "/id-in").unwrap();
        for (prefix, given) in [
            (
                "//sp.example.com/id-in/",
                format!("C{}", "x".repeat(MAX_ID_BYTES - 1)),
            ),
            (
                "//sp.example.com/",
                format!("S{}", "x".repeat(MAX_ID_BYTES - 1)),
            ),
            (
                "//sp.example.com",
                format!("/id-in/{}", "x".repeat(MAX_ID_BYTES - 7)),
            ),
        ] {
            assert_eq!(check_originator_id(&given), Ok(()));
            let absolute = prefix.len() + given.len();
            assert_eq!(
                ctx.canonicalize(&given),
                Err(IdError::TooLongAbsolute(absolute))
            );
            assert_eq!(
                ctx.check_absolute_length(&given),
                Err(IdError::TooLongAbsolute(absolute))
            );
            let fits = &given[..given.len() - (absolute - MAX_ID_BYTES)];
            assert_eq!(ctx.canonicalize(fits).map(|a| a.len()), Ok(MAX_ID_BYTES));
            assert_eq!(ctx.check_absolute_length(fits), Ok(()));
        }
    }

    /// TS-0001 7.2 and 10.2.3.1: a resource ID with an empty path segment
    /// names no resource (`/mn1/acpZ/` is not the ACP `/mn1/acpZ`, nor any
    /// other resource), so a target or an ACP `ri` with one is refused, as
    /// an originator with one is; `*` and non-ASCII are resource name
    /// characters and stay allowed.
    #[test]
    fn resource_ids_have_no_empty_segment_ts_0001_7_2() {
        for (id, expected) in [
            ("", IdError::Empty),
            ("/", IdError::EmptySegment("/".into())),
            ("//", IdError::EmptySegment("//".into())),
            ("///x", IdError::EmptySegment("///x".into())),
            ("a//b", IdError::EmptySegment("a//b".into())),
            ("/mn1/acpZ/", IdError::EmptySegment("/mn1/acpZ/".into())),
            ("/mn1//acpZ", IdError::EmptySegment("/mn1//acpZ".into())),
            ("//sp//acpZ", IdError::EmptySegment("//sp//acpZ".into())),
            ("acp/", IdError::EmptySegment("acp/".into())),
            ("a b", IdError::Whitespace),
            ("a\u{2003}b", IdError::Whitespace),
            ("a\u{1}b", IdError::Control("a\u{1}b".into())),
            ("a\u{7f}", IdError::Control("a\u{7f}".into())),
        ] {
            assert_eq!(check_resource_id(id), Err(expected), "{id:?}");
        }
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            check_resource_id(&long),
            Err(IdError::TooLong(MAX_ID_BYTES + 1))
        );
        assert_eq!(check_resource_id(&long[1..]), Ok(()));
        for id in [
            "acpZ",
            "/mn1/acpZ",
            "//sp.example/mn1/acpZ",
            "ae1/cnt*",
            "caf\u{e9}",
            "//sp.example",
        ] {
            assert_eq!(check_resource_id(id), Ok(()), "{id:?}");
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
        // TS-0003 7.1.3: no wildcard in an SP domain, and a third leading
        // slash leaves no domain to scope `*` to: `///*` must not become a
        // pattern that admits every bare `//fqdn` (nor `///x/C1` a key no
        // originator can equal).
        for entry in ["///*", "///x*", "///id-in/Cae", "///"] {
            assert_eq!(
                OriginatorEntry::parse(entry).unwrap_err(),
                IdError::EmptySegment(entry.to_owned()),
                "{entry}"
            );
        }
        assert_eq!(
            OriginatorEntry::parse("SmyAE").unwrap(),
            OriginatorEntry::Exact {
                scope: EntryScope::SpRelative,
                key: "/SmyAE".into()
            }
        );
    }

    /// TS-0003 7.1.3: an entry `//x` names "SP domain names", and `//x/...`
    /// an ID in that domain: an `x` that is no domain name (a port, `_`,
    /// an empty or `-`-edged label) is refused, as the hosting CSE's SP-ID
    /// is, instead of loading as an entry that matches no originator.
    #[test]
    fn an_entry_whose_domain_is_no_domain_name_is_refused_7_1_3() {
        for (entry, domain) in [
            ("//m2m.local:8080", "m2m.local:8080"),
            ("//a..b", "a..b"),
            ("//bad_host.com", "bad_host.com"),
            ("//-bad-.com/cse/Cae", "-bad-.com"),
            ("//m2m.local:8080/cse/C*", "m2m.local:8080"),
            ("//a..*/cse/Cae", "a..*"),
        ] {
            assert_eq!(
                OriginatorEntry::parse(entry).unwrap_err(),
                IdError::BadDomain(domain.to_owned()),
                "{entry}"
            );
        }
        // An originator with such a domain is refused the same way, so no
        // originator exists that no entry could name.
        let ctx = HostingContext::new("//m2m.local", "/cse").unwrap();
        for (id, domain) in [
            ("//m2m.local:8080/cse/Cae", "m2m.local:8080"),
            ("//bad_host.com/cse/Cae", "bad_host.com"),
        ] {
            assert_eq!(
                check_originator_id(id),
                Err(IdError::BadDomain(domain.to_owned())),
                "{id}"
            );
            assert_eq!(
                ctx.canonicalize(id),
                Err(IdError::BadDomain(domain.to_owned())),
                "{id}"
            );
        }
        // Wildcards in the domain of an ID entry stand for name characters.
        for entry in [
            "//*/cse/Cae",
            "//m2m*.example.com/cse/C*",
            "//M2M.example.com/cse/x",
        ] {
            assert!(OriginatorEntry::parse(entry).is_ok(), "{entry}");
        }
    }
}
