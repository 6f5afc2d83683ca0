//! Storm Flux topology files (YAML): `name`, `config`, `spouts`, `bolts`,
//! `streams`, with shell components (`FluxShellSpout`/`FluxShellBolt`) and
//! Rust components named by class.

use std::path::Path;

use crate::error::Error;
use crate::topology::Topology;

/// Parses a Flux file's text; `path` names it in errors and is the base of
/// relative shell commands' working directory.
pub fn parse(_text: &str, _path: &Path) -> Result<Topology, Error> {
    todo!("flux helper")
}

/// Reads and parses a Flux file.
pub fn load(path: &Path) -> Result<Topology, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Flux {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}
