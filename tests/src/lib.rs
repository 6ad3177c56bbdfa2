//! Test support: an independent, deliberately naive reference evaluator of
//! TS-0003 clause 7.1.5 ([`mod@reference`]) and proptest generators of policies,
//! requests and attributes over a small shared vocabulary ([`generators`]).
//! `tests/differential.rs` compares the compiled engine with the reference.
//! [`serving`] starts gRPC servers on loopback for the services' tests;
//! [`tls`] makes certificates for their TLS tests; [`process`] waits on the
//! processes a test starts, and on what it awaits of them, with a bound.

#![warn(missing_docs)]

pub mod arbitrary;
pub mod generators;
pub mod mmdb;
pub mod process;
pub mod reference;
pub mod serving;
pub mod tls;
