//! onem2m-authz prp: filled by its own issue; see the README roadmap.
