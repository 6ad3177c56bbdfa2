//! PEP SDK for CSEs: filled by its own issue; see the README roadmap.
