//! The example's policy bundle: `examples/door-lock-cse/policies.json`, in
//! the bundle format of `authz policy apply` (see [`authz_prp::bundle`],
//! which parses, validates and applies it).

pub use authz_prp::bundle::{Bundle, apply};

/// The example's own policies: `examples/door-lock-cse/policies.json`.
pub const DEFAULT_POLICIES: &str = include_str!("../policies.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_bundle_is_valid() {
        let b = Bundle::parse(DEFAULT_POLICIES).expect("bundle");
        let ids: Vec<_> = b.acps.iter().filter_map(|a| a.id()).collect();
        assert_eq!(
            ids,
            [
                "acpHome",
                "acpFrontDoor",
                "acpFrontDoorUnlock",
                "acpBackDoor"
            ]
        );
        assert!(b.resources.iter().any(|r| r.resource_id == "frontDoor"));
    }
}
