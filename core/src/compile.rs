//! placeholder
use std::sync::Arc;
use crate::model::AccessControlPolicy;
use crate::decision::PrivilegeKind;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError { pub path: String, pub message: String }

/// All invalid fields of one input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid")]
pub struct ValidationErrors(pub Vec<ValidationError>);

/// An ACP compiled for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledAcp { id: Arc<str> }

impl CompiledAcp {
    /// Validates and compiles.
    pub fn compile(id: impl Into<Arc<str>>, _acp: &AccessControlPolicy) -> Result<Self, ValidationErrors> { Ok(Self{id: id.into()}) }
    /// The ACP ID.
    pub fn id(&self) -> &Arc<str> { &self.id }
    #[allow(missing_docs)]
    pub fn kind(&self, _k: PrivilegeKind) {}
}
