//! What the store's integration tests share.

use std::path::PathBuf;

/// A path not yet created, `name` in a fresh directory `authz-{prefix}-{name}-…`
/// under the system temp dir; the guard removes that directory and
/// everything in it when it drops, so keep it bound while the path is used.
pub fn temp_path(prefix: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let guard = tempfile::Builder::new()
        .prefix(&format!("authz-{prefix}-{name}-"))
        .tempdir()
        .expect("temp dir");
    let path = guard.path().join(name);
    (guard, path)
}
