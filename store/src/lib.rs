//! placeholder: filled by the store refactor
