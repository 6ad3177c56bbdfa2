//! onem2m-authz pip: filled by its own issue; see the README roadmap.
