//! (to be written)

/// (to be written)
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {}
