//! Strategy helpers the services' robustness property tests share: requests
//! that are mostly valid with now and then a hostile field, and hostile
//! doubles.

use proptest::prelude::*;

/// Mostly `valid`, now and then `junk`: a request then has one or two bad
/// fields among good ones, and as many good requests pass (and change
/// state) as are refused.
pub fn mostly<T: std::fmt::Debug + Clone + 'static>(
    valid: impl Strategy<Value = T> + 'static,
    junk: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![14 => valid, 1 => junk].boxed()
}

/// One of `values`.
pub fn one_of(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values).prop_map(str::to_owned).boxed()
}

/// Up to `n` of `item`.
pub fn some<T: std::fmt::Debug + Clone + 'static>(
    item: BoxedStrategy<T>,
    n: usize,
) -> BoxedStrategy<Vec<T>> {
    prop::collection::vec(item, 0..=n).boxed()
}

/// Any double, biased to what breaks arithmetic and bounds checks: NaN,
/// the infinities, signed zero, the coordinate bounds, the extremes, a
/// value that does not survive a round trip through a careless parser, and
/// plain coordinates.
pub fn hostile_f64() -> BoxedStrategy<f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(90.0),
        Just(-90.0),
        Just(180.0),
        Just(-180.0),
        Just(1e308),
        Just(f64::MIN_POSITIVE),
        Just(9.007_199_254_740_993e15),
        -200.0..200.0f64,
        any::<f64>(),
    ]
    .boxed()
}

/// `value`'s Debug for a failure message, cut to 2 000 characters: a
/// generated request may hold 40 000-byte IDs.
pub fn shown(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    match text.char_indices().nth(2_000) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text,
    }
}

/// A fresh directory under the system's temporary one, named after the
/// test (`authz-{prefix}-{name}-…`), removed with everything in it when the
/// returned guard drops: keep it bound for as long as the test uses it.
pub fn temp_dir(prefix: &str, name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("authz-{prefix}-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// A path not yet created, `name` in a fresh [`temp_dir`]: for what the
/// code under test creates itself (a store file, a data directory). Keep
/// the guard bound while the path is used.
pub fn temp_path(prefix: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let guard = temp_dir(prefix, name);
    let path = guard.path().join(name);
    (guard, path)
}
