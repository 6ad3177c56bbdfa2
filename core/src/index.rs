//! The originator index of one set of rules, which answers `res_origs`
//! (TS-0003 7.1.3, 7.1.5) without scanning every rule, and the originator as
//! a decision prepares it to probe that index.
//!
//! Every `accessControlOriginators` entry is filed once, at compile time, by
//! kind ([`OriginatorIndex`]): `all`; a literal key (absolute ID,
//! SP-relative ID, stem of an AE registered with the hosting CSE, SP domain,
//! Role-ID); a wildcard pattern; and, for each literal ID as written, a
//! possible `<group>` resource ID. A decision prepares the originator once
//! ([`Originator`]): its absolute form split into `/` segments and the hashed
//! key of every literal kind it can match. Probing one rule set is then:
//!
//! - per key, a 64-bit Bloom test held inline in the rule set, so a rule set
//!   that does not name the originator (most of them) costs no memory beyond
//!   its header; on a hit, a bisection over hashes and a text comparison;
//! - per wildcard entry, a test of the segment count and of the first bytes
//!   of the last segment, before the segments are matched one by one.
//!
//! Keys are hashed with their kind, so the literal kinds share one table.
//! A hash hit is always confirmed on the text: a crafted originator that
//! collides with a listed ID gains nothing.

use std::cell::Cell;

use smallvec::SmallVec;

use crate::ids::{AbsoluteId, EntryScope, Glob, HostingContext};

/// Rule and `acor` position of one index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryRef {
    pub(crate) rule: u32,
    pub(crate) entry: u32,
}

/// What a literal key is: the same text means different originators in
/// different kinds (`/id-in` as an SP-relative CSE-ID, `id-in` as a stem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum KeyKind {
    /// A whole absolute ID `//fqdn/...`.
    Absolute = 1,
    /// An SP-relative ID `/cse/...` of the hosting SP.
    SpRelative = 2,
    /// The stem of an AE registered with the hosting CSE.
    CseStem = 3,
    /// An SP domain `fqdn`: every ID under it.
    Domain = 4,
    /// A Role-ID.
    Role = 5,
    /// A literal entry as written (an absolute one with its domain
    /// lower-cased), which may be a `<group>` resource ID.
    Group = 6,
}

/// A key hashed once per decision (or once at compile time), so that every
/// rule set of the applicable set costs only Bloom tests and a bisection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    hash: u64,
    bloom: u64,
    pub(crate) text: &'a str,
}

impl<'a> Key<'a> {
    pub(crate) fn new(kind: KeyKind, text: &'a str) -> Self {
        let hash = key_hash(kind, text.as_bytes());
        Self {
            hash,
            bloom: bloom_bits(hash),
            text,
        }
    }
}

#[inline(always)]
fn key_hash(kind: KeyKind, text: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write_u8(kind as u8);
    h.write(text);
    h.finish()
}

/// Two bits of a 64-bit Bloom filter, from bits of the hash that the
/// bisection order does not already spend.
fn bloom_bits(hash: u64) -> u64 {
    (1u64 << (hash >> 58)) | (1u64 << ((hash >> 52) & 63))
}

/// One literal key of a [`LiteralIndex`]: its hash, where it is, and its
/// text in the index's text arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    at: EntryRef,
    start: u32,
    len: u32,
}

/// Literal keys sorted by hash, behind a Bloom filter; the texts live in
/// one string so a rule set's index is two allocations, not one per key.
///
/// `repr(C)`: the filter and the kinds, read for every rule set of a
/// decision, come first, so they share a cache line with the header of
/// [`OriginatorIndex`].
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub(crate) struct LiteralIndex {
    bloom: u64,
    /// Which of the originator's key kinds ([`Originator::KINDS`], a bit
    /// each) occur among the keys: an originator hashes only those.
    originator_kinds: u8,
    slots: Box<[Slot]>,
    text: Box<str>,
}

impl LiteralIndex {
    pub(crate) fn build(entries: &[(KeyKind, &str, EntryRef)]) -> Self {
        let mut text = String::new();
        let mut bloom = 0;
        let mut originator_kinds = 0;
        let mut slots: Vec<Slot> = entries
            .iter()
            .map(|&(kind, key, at)| {
                let k = Key::new(kind, key);
                bloom |= k.bloom;
                if let Some(i) = Originator::KINDS.iter().position(|&o| o == kind) {
                    originator_kinds |= 1 << i;
                }
                let start = text.len();
                text.push_str(key);
                Slot {
                    hash: k.hash,
                    at,
                    start: u32::try_from(start).unwrap_or(u32::MAX),
                    len: u32::try_from(key.len()).unwrap_or(u32::MAX),
                }
            })
            .collect();
        slots.sort_by_key(|s| (s.hash, s.at.rule, s.at.entry));
        Self {
            bloom,
            originator_kinds,
            slots: slots.into_boxed_slice(),
            text: text.into_boxed_str(),
        }
    }

    fn text_of(&self, s: &Slot) -> &str {
        let start = s.start as usize;
        self.text.get(start..start + s.len as usize).unwrap_or("")
    }

    /// May the index hold this key? False means it certainly does not; the
    /// test reads only the filter held inline.
    #[inline(always)]
    fn may_contain(&self, key: Key<'_>) -> bool {
        self.bloom & key.bloom == key.bloom
    }

    /// The slots that hold exactly this key, in entry order.
    fn matching<'s>(&'s self, key: Key<'s>) -> impl Iterator<Item = EntryRef> + 's {
        let start = self.slots.partition_point(|s| s.hash < key.hash);
        self.slots[start..]
            .iter()
            .take_while(move |s| s.hash == key.hash)
            .filter(move |s| self.text_of(s) == key.text)
            .map(|s| s.at)
    }

    /// Appends every entry named by one of the originator's literal keys
    /// to `out`, those naming its SP domain last, and returns where they
    /// start: the entries before are ID entries (absolute, SP-relative,
    /// stem), which may also be `<group>` IDs. The Bloom tests run without
    /// a branch; a key's text is made only for one that passes.
    #[inline(always)]
    pub(crate) fn extend_with_originator<A: smallvec::Array<Item = EntryRef>>(
        &self,
        o: &Originator<'_>,
        out: &mut SmallVec<A>,
    ) -> usize {
        let wanted = self.originator_kinds & o.key_mask;
        if wanted == 0 {
            return out.len();
        }
        let b = self.bloom;
        let [k0, k1, k2, k3] = o.blooms(wanted);
        let mut hits = (u8::from(b & k0 == k0)
            | (u8::from(b & k1 == k1) << 1)
            | (u8::from(b & k2 == k2) << 2)
            | (u8::from(b & k3 == k3) << 3))
            & wanted;
        // Bit 3 is the domain (`Originator::KINDS`), taken last.
        let domain = hits & (1 << 3);
        hits &= !domain;
        while hits != 0 {
            let i = hits.trailing_zeros() as usize;
            self.extend_matching(o.key(i), out);
            hits &= hits - 1;
        }
        let ids_end = out.len();
        if domain != 0 {
            self.extend_matching(o.key(3), out);
        }
        ids_end
    }

    /// Appends every entry with exactly this key to `out`.
    #[inline(always)]
    pub(crate) fn extend_into<A: smallvec::Array<Item = EntryRef>>(
        &self,
        key: Key<'_>,
        out: &mut SmallVec<A>,
    ) {
        if self.may_contain(key) {
            self.extend_matching(key, out);
        }
    }

    #[inline(never)]
    fn extend_matching<A: smallvec::Array<Item = EntryRef>>(
        &self,
        key: Key<'_>,
        out: &mut SmallVec<A>,
    ) {
        for at in self.matching(key) {
            out.push(at);
        }
    }

    /// Does any entry have exactly this key?
    pub(crate) fn contains(&self, key: Key<'_>) -> bool {
        self.may_contain(key) && self.matching(key).next().is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every key with where it is, in hash order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, EntryRef)> + '_ {
        self.slots.iter().map(|s| (self.text_of(s), s.at))
    }
}

/// The first (up to) eight bytes of a segment, little-endian, zero-padded:
/// what a pattern's last segment is pre-tested on.
fn head_word(text: &[u8]) -> u64 {
    // One load for a segment of eight bytes or more (most), without the
    // `memcpy` call a copy of variable length compiles to.
    if let Some(head) = text.first_chunk::<8>() {
        return u64::from_le_bytes(*head);
    }
    text.iter()
        .enumerate()
        .fold(0, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
}

/// A wildcard entry (TS-0003 7.1.3, Decision 1): its anchor, its `/`
/// segments, where it sits, and a cheap pre-test.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) at: EntryRef,
    scope: EntryScope,
    /// The literal bytes the last segment starts with (at most eight), and
    /// which bytes of the originator's last segment they are compared with.
    head: u64,
    head_mask: u64,
    segments: Box<[Glob]>,
}

impl Pattern {
    pub(crate) fn new(scope: EntryScope, segments: &[String], at: EntryRef) -> Self {
        let last = segments.last().map_or("", String::as_str);
        let literal = &last[..last.find('*').unwrap_or(last.len())];
        let n = literal.len().min(8);
        Self {
            at,
            scope,
            head: head_word(literal.as_bytes()),
            head_mask: head_mask(n as u8),
            segments: segments.iter().map(|s| Glob::new(s)).collect(),
        }
    }

    /// Does the entry name the originator: the same number of `/`
    /// segments in the entry's scope, each matched by its glob (a `*` never
    /// spans a `/`)?
    #[inline]
    pub(crate) fn matches(&self, o: &Originator<'_>) -> bool {
        // The last segment is the same in every scope's view.
        if o.tail_head & self.head_mask != self.head {
            return false;
        }
        let Some(view) = o.view(&self.scope) else {
            return false;
        };
        let mut parts = view.split('/');
        self.segments
            .iter()
            .all(|g| parts.next().is_some_and(|t| g.matches(t)))
            && parts.next().is_none()
    }
}

/// A 64-bit Bloom filter over the literal heads of a rule set's wildcard
/// entries, so that a rule set whose patterns cannot match the originator's
/// last segment is passed over without reading them.
///
/// Every pattern's head (the literal bytes its last segment starts with) is
/// cut to the same length `len`, the shortest head of the set (at most
/// eight bytes); an originator can match a pattern only if the first `len`
/// bytes of its last segment equal that cut. A set with a pattern whose
/// last segment starts with `*` has `len` 0 and a filter that passes all.
#[derive(Debug, Clone, Copy, Default)]
struct PatternFilter {
    bloom: u64,
    /// [`head_mask`] of the cut length.
    mask: u64,
}

impl PatternFilter {
    fn build(patterns: &[Pattern]) -> Self {
        // Heads are prefixes, so the shortest head has the smallest mask.
        let Some(mask) = patterns.iter().map(|p| p.head_mask).min() else {
            // No pattern: nothing passes.
            return Self::default();
        };
        Self {
            bloom: patterns.iter().fold(0, |b, p| b | Self::bits(p.head, mask)),
            mask,
        }
    }

    /// The filter bits of a head word cut by `mask`. A zero mask (a pattern
    /// starting with `*`) gives the bits of 0 for every originator, so the
    /// filter passes all.
    #[inline(always)]
    fn bits(head: u64, mask: u64) -> u64 {
        bloom_bits((head & mask).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// May a pattern of the set match an originator whose last segment
    /// starts with `tail_head`? (Always false for an empty set.)
    #[inline(always)]
    fn may_match(&self, tail_head: u64) -> bool {
        let bits = Self::bits(tail_head, self.mask);
        self.bloom & bits == bits
    }
}

/// The mask of the first `len` (0-8) bytes of a little-endian head word.
fn head_mask(len: u8) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(len))) - 1
    }
}

/// Where each kind of `acor` entry of a rule set is found (TS-0003 7.1.3).
///
/// `repr(C)`, hot fields first: a decision reads the two filters and the
/// flags of every applicable rule set (the first 66 bytes), and the tables
/// behind them only when a filter passes. `all` and the group entries,
/// which few rule sets have, live behind one pointer.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub(crate) struct OriginatorIndex {
    /// Absolute IDs, SP-relative IDs, stems, SP domains and Role-IDs.
    pub(crate) literals: LiteralIndex,
    patterns_filter: PatternFilter,
    /// Whether `rare.all` / `rare.groups` hold entries.
    has_all: bool,
    has_groups: bool,
    /// Wildcard entries.
    pub(crate) patterns: Box<[Pattern]>,
    rare: Option<Box<RareEntries>>,
}

/// The entries of a rule set that few rule sets have.
#[derive(Debug, Clone, Default)]
struct RareEntries {
    /// `all`.
    all: Box<[EntryRef]>,
    /// Literal entries as written: each may be a `<group>` resource ID.
    groups: LiteralIndex,
}

impl OriginatorIndex {
    pub(crate) fn new(
        all: Vec<EntryRef>,
        literals: LiteralIndex,
        patterns: Vec<Pattern>,
        groups: LiteralIndex,
    ) -> Self {
        let (has_all, has_groups) = (!all.is_empty(), !groups.is_empty());
        Self {
            literals,
            patterns_filter: PatternFilter::build(&patterns),
            has_all,
            has_groups,
            patterns: patterns.into_boxed_slice(),
            rare: (has_all || has_groups).then(|| {
                Box::new(RareEntries {
                    all: all.into_boxed_slice(),
                    groups,
                })
            }),
        }
    }

    /// The `all` entries.
    #[inline(always)]
    pub(crate) fn all(&self) -> &[EntryRef] {
        match &self.rare {
            Some(rare) if self.has_all => &rare.all,
            _ => &[],
        }
    }

    /// Whether the rule set has `all` entries.
    #[inline(always)]
    pub(crate) fn has_all(&self) -> bool {
        self.has_all
    }

    /// Whether any literal entry may be a `<group>` resource ID.
    #[inline(always)]
    pub(crate) fn has_groups(&self) -> bool {
        self.has_groups
    }

    /// The literal entries as written (possible `<group>` IDs), if any.
    pub(crate) fn groups(&self) -> Option<&LiteralIndex> {
        self.rare
            .as_deref()
            .filter(|_| self.has_groups)
            .map(|r| &r.groups)
    }

    /// The wildcard entries that may name the originator: none without
    /// reading them when the filter rules them all out.
    #[inline(always)]
    pub(crate) fn patterns_for(&self, o: &Originator<'_>) -> &[Pattern] {
        if self.patterns_filter.may_match(o.tail_head) {
            &self.patterns
        } else {
            &[]
        }
    }
}

/// The originator of one decision, in absolute form, prepared to probe
/// [`OriginatorIndex`]es: its literal keys hashed, and where the views that
/// wildcard entries of each scope are matched against start.
///
/// Built on every decision, so it works on byte offsets into the absolute
/// form and makes a key's text only when a Bloom test passes.
#[derive(Debug, Clone)]
pub(crate) struct Originator<'o> {
    /// `//fqdn/...`, as [`HostingContext::canonicalize`] gives it.
    pub(crate) absolute: &'o str,
    /// Per key kind ([`Originator::KINDS`] order): where its text is in
    /// `absolute`, and its hash and Bloom bits once a rule set holding keys
    /// of that kind asked for them (most rule sets name stems and
    /// SP-relative IDs, few absolute IDs or domains).
    spans: [(u32, u32); 4],
    hashes: [Cell<u64>; 4],
    blooms: [Cell<u64>; 4],
    /// Which of the four keys the originator has, and which are hashed (a
    /// bit per kind).
    key_mask: u8,
    hashed: Cell<u8>,
    /// [`head_word`] of the last segment.
    tail_head: u64,
}

impl<'o> Originator<'o> {
    /// The key kinds an originator can be named by, in the order of its
    /// key arrays: absolute ID, SP-relative ID (in the hosting SP), stem
    /// (of an AE registered with the hosting CSE), SP domain (with a path).
    const KINDS: [KeyKind; 4] = [
        KeyKind::Absolute,
        KeyKind::SpRelative,
        KeyKind::CseStem,
        KeyKind::Domain,
    ];

    /// Prepares an absolute originator ID for the hosting CSE `ctx`.
    pub(crate) fn new(id: AbsoluteId<'o>, ctx: &HostingContext) -> Self {
        let absolute = id.as_str();
        let b = absolute.as_bytes();
        let n = b.len();
        let (fqdn_start, fqdn_end) = id.fqdn_span();
        let last_start = id.last_segment_start();
        let mut o = Self {
            absolute,
            spans: [(0, 0); 4],
            hashes: Default::default(),
            blooms: Default::default(),
            key_mask: 0,
            hashed: Cell::new(0),
            tail_head: head_word(&b[last_start.min(n)..]),
        };
        o.set_key(0, 0, n);
        let fqdn = &b[fqdn_start..fqdn_end];
        if fqdn_end < n {
            // An SP domain authorizes every AE-ID and CSE-ID under it.
            o.set_key(3, fqdn_start, fqdn_end);
            if short_eq(fqdn, ctx.sp_fqdn().as_bytes()) {
                // The SP-relative form keeps its leading `/`.
                o.set_key(1, fqdn_end, n);
                // `/cse/rest` under the hosting CSE: `rest` is what a stem
                // entry names (Decision 2: `x` is `//sp/hosting-cse/x`,
                // whatever `x` holds).
                let cse = ctx.cse_id().as_bytes();
                let cse_start = fqdn_end + 1;
                let rest_start = cse_start + cse.len() + 1;
                if rest_start < n
                    && b[rest_start - 1] == b'/'
                    && short_eq(&b[cse_start..cse_start + cse.len()], cse)
                {
                    o.set_key(2, rest_start, n);
                }
            }
        }
        o
    }

    #[inline(always)]
    fn set_key(&mut self, i: usize, start: usize, end: usize) {
        self.spans[i] = (start as u32, end as u32);
        self.key_mask |= 1 << i;
    }

    /// The text of key `i`.
    fn text(&self, i: usize) -> &'o str {
        let (start, end) = self.spans[i];
        self.absolute
            .get(start as usize..end as usize)
            .unwrap_or("")
    }

    /// The Bloom bits of the keys in `wanted` (a bit per kind; others 0),
    /// hashing those not hashed yet.
    #[inline(always)]
    fn blooms(&self, wanted: u8) -> [u64; 4] {
        let mut todo = wanted & !self.hashed.get();
        if todo != 0 {
            self.hashed.set(self.hashed.get() | todo);
            while todo != 0 {
                let i = todo.trailing_zeros() as usize;
                let hash = key_hash(Self::KINDS[i], self.text(i).as_bytes());
                self.hashes[i].set(hash);
                self.blooms[i].set(bloom_bits(hash));
                todo &= todo - 1;
            }
        }
        let bloom = |i: usize| {
            if wanted & (1 << i) != 0 {
                self.blooms[i].get()
            } else {
                0
            }
        };
        [bloom(0), bloom(1), bloom(2), bloom(3)]
    }

    /// Key `i`, with its text (hashed by [`Originator::blooms`] before).
    fn key(&self, i: usize) -> Key<'o> {
        Key {
            hash: self.hashes[i].get(),
            bloom: self.blooms[i].get(),
            text: self.text(i),
        }
    }

    /// Its SP-relative form (`/cse/...`, `/Sxyz`), when it is of the
    /// hosting SP.
    pub(crate) fn sp_relative(&self) -> Option<&'o str> {
        (self.key_mask & (1 << 1) != 0).then(|| self.text(1))
    }

    /// The literal keys it can match.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key<'o>> + '_ {
        self.blooms(self.key_mask);
        (0..4)
            .filter(|i| self.key_mask & (1 << i) != 0)
            .map(|i| self.key(i))
    }

    /// The `/`-separated text an entry of `scope` is matched against, if
    /// any: the whole ID after `//`, the SP-relative path, or the stem.
    fn view(&self, scope: &EntryScope) -> Option<&'o str> {
        let (i, skip) = match scope {
            EntryScope::Absolute => (0, 2),
            EntryScope::SpRelative => (1, 1),
            EntryScope::CseStem => (2, 0),
        };
        (self.key_mask & (1 << i) != 0).then(|| {
            let (start, end) = self.spans[i];
            self.absolute
                .get(start as usize + skip..end as usize)
                .unwrap_or("")
        })
    }
}

/// `a == b` for the short texts IDs are made of, without a call to
/// `memcmp`: 8 to 16 bytes are compared as two (overlapping) words.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn originator<'a>(ctx: &HostingContext, absolute: &'a str) -> Originator<'a> {
        Originator::new(AbsoluteId::parse(absolute), ctx)
    }

    proptest::proptest! {
        /// The pre-test on the last segment never rejects a pattern that
        /// matches: it compares only the literal bytes before the first `*`.
        #[test]
        fn head_pretest_never_rejects_a_match(
            prefix in "[a-c]{0,10}",
            star in proptest::bool::ANY,
            suffix in "[a-c*]{0,4}",
            text in "[a-c]{1,12}",
        ) {
            let glob = if star { format!("{prefix}*{suffix}") } else { prefix.clone() };
            let ctx = HostingContext::new("//sp", "/cse").unwrap();
            let p = Pattern::new(EntryScope::CseStem, std::slice::from_ref(&glob), EntryRef { rule: 0, entry: 0 });
            let absolute = format!("//sp/cse/{text}");
            proptest::prop_assert_eq!(
                p.matches(&originator(&ctx, &absolute)),
                crate::ids::glob_segment(&glob, &text),
                "glob {} text {}", glob, text
            );
        }
    }

    proptest::proptest! {
        /// The filter over a rule set's patterns never hides a pattern that
        /// matches: patterns with heads of different lengths (including
        /// none) share one filter cut to the shortest head.
        #[test]
        fn pattern_filter_never_hides_a_match(
            globs in proptest::collection::vec("[ab]{0,9}\\*?[ab]{0,2}", 0..5),
            text in "[ab]{1,12}",
        ) {
            let ctx = HostingContext::new("//sp", "/cse").unwrap();
            let patterns: Vec<Pattern> = globs
                .iter()
                .enumerate()
                .map(|(i, g)| Pattern::new(EntryScope::CseStem, std::slice::from_ref(g), EntryRef { rule: i as u32, entry: 0 }))
                .collect();
            let index = OriginatorIndex::new(Vec::new(), LiteralIndex::default(), patterns, LiteralIndex::default());
            let absolute = format!("//sp/cse/{text}");
            let o = originator(&ctx, &absolute);
            let offered = index.patterns_for(&o);
            for (i, g) in globs.iter().enumerate() {
                if crate::ids::glob_segment(g, &text) {
                    proptest::prop_assert!(
                        offered.iter().any(|p| p.at.rule == i as u32),
                        "glob {} matches {} but the filter hid it", g, text
                    );
                }
            }
        }
    }

    /// The filter does pass over a rule set whose patterns all start with
    /// other literal bytes than the originator's last segment, and a set
    /// without patterns offers none.
    #[test]
    fn pattern_filter_rules_out_other_heads() {
        let ctx = HostingContext::new("//sp", "/cse").unwrap();
        let at = EntryRef { rule: 0, entry: 0 };
        let set = |globs: &[&str]| {
            let patterns = globs
                .iter()
                .map(|g| Pattern::new(EntryScope::CseStem, &[g.to_string()], at))
                .collect();
            OriginatorIndex::new(
                Vec::new(),
                LiteralIndex::default(),
                patterns,
                LiteralIndex::default(),
            )
        };
        let o = originator(&ctx, "//sp/cse/Csensor0042");
        assert_eq!(set(&["Csensor00*", "Cmeter01*"]).patterns_for(&o).len(), 2);
        assert!(set(&["Cmeter01*", "Ccam7*"]).patterns_for(&o).is_empty());
        assert!(set(&[]).patterns_for(&o).is_empty());
        // A pattern without a literal head passes every originator.
        assert_eq!(set(&["*0042", "Cmeter01*"]).patterns_for(&o).len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn short_eq_is_eq(a in "[ab]{0,20}", b in "[ab]{0,20}") {
            proptest::prop_assert_eq!(short_eq(a.as_bytes(), b.as_bytes()), a == b);
            proptest::prop_assert!(short_eq(a.as_bytes(), a.as_bytes()));
        }
    }

    #[test]
    fn keys_of_kinds_do_not_mix() {
        let idx = LiteralIndex::build(&[
            (
                KeyKind::SpRelative,
                "/id-in",
                EntryRef { rule: 0, entry: 0 },
            ),
            (KeyKind::CseStem, "id-in", EntryRef { rule: 1, entry: 0 }),
        ]);
        assert!(idx.contains(Key::new(KeyKind::SpRelative, "/id-in")));
        assert!(!idx.contains(Key::new(KeyKind::Absolute, "/id-in")));
        assert!(!idx.contains(Key::new(KeyKind::SpRelative, "id-in")));
        let mut out: SmallVec<[EntryRef; 8]> = SmallVec::new();
        idx.extend_into(Key::new(KeyKind::CseStem, "id-in"), &mut out);
        assert_eq!(out.as_slice(), &[EntryRef { rule: 1, entry: 0 }]);
    }

    #[test]
    fn originator_keys_and_views() {
        let ctx = HostingContext::new("//m2m.example.com", "/id-in").unwrap();
        let o = originator(&ctx, "//m2m.example.com/id-in/Cae1");
        let texts: Vec<&str> = o.keys().map(|k| k.text).collect();
        assert_eq!(
            texts,
            [
                "//m2m.example.com/id-in/Cae1",
                "/id-in/Cae1",
                "Cae1",
                "m2m.example.com"
            ]
        );
        assert_eq!(o.view(&EntryScope::SpRelative), Some("id-in/Cae1"));
        assert_eq!(o.view(&EntryScope::CseStem), Some("Cae1"));
        // Deeper under the hosting CSE: what a CSE-relative entry
        // `Cae1/x` names (Decision 2).
        assert_eq!(
            originator(&ctx, "//m2m.example.com/id-in/Cae1/x").view(&EntryScope::CseStem),
            Some("Cae1/x")
        );
        // Not under it: on another CSE, or the hosting CSE itself.
        for other in [
            "//m2m.example.com/id-mn/Cae1",
            "//m2m.example.com/id-inx/Cae1",
            "//m2m.example.com/id-in",
        ] {
            assert_eq!(
                originator(&ctx, other).view(&EntryScope::CseStem),
                None,
                "{other}"
            );
        }
        let remote = originator(&ctx, "//other.org/cse/Cae1");
        assert_eq!(remote.keys().count(), 2);
        assert_eq!(remote.view(&EntryScope::SpRelative), None);
        assert_eq!(remote.view(&EntryScope::CseStem), None);
        // A bare SP-ID names no path: only the absolute key.
        assert_eq!(originator(&ctx, "//m2m.example.com").keys().count(), 1);
    }
}
