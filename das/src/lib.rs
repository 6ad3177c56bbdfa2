//! onem2m-authz das: filled by its own issue; see the README roadmap.
