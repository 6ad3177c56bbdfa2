//! onem2m-authz pdp: filled by its own issue; see the README roadmap.
