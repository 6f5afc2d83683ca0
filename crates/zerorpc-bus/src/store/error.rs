//! What the store fails with.

use std::path::PathBuf;

/// An error from the durable log. Every variant names the store's file so
/// that a daemon's log line says which store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's directory could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another `Store` (in this process or another) has the file open.
    #[error("cannot open the store {path}: it is already open (by this or another process)")]
    AlreadyOpen {
        /// The store's file.
        path: PathBuf,
    },
    /// The file could not be opened as a store (not a redb file, a
    /// version this build cannot read, a repair that failed, ...).
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The store's file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// The file was written by a newer (or unknown) layout of this store.
    #[error("the store {path} has layout version {found}; this build reads version {expected}")]
    Layout {
        /// The store's file.
        path: PathBuf,
        /// The version recorded in the file.
        found: u64,
        /// The version this build writes and reads.
        expected: u64,
    },
    /// The file's contents fail their checksums or are inconsistent.
    #[error("the store {path} is corrupt: {detail}")]
    Corrupt {
        /// The store's file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing the file failed (disk full, I/O error). After an
    /// I/O error during a commit the store refuses further writes until it
    /// is reopened.
    #[error("I/O error on the store {path}: {source}")]
    Io {
        /// The store's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A record too large for the store (redb's limit is about 3 GiB).
    #[error("a record of {size} bytes is too large for the store {path}")]
    TooLarge {
        /// The store's file.
        path: PathBuf,
        /// The record's size.
        size: usize,
    },
    /// A time range with a NaN bound.
    #[error("invalid time range [{from}, {to}]")]
    BadTimeRange {
        /// The lower bound asked for.
        from: f64,
        /// The upper bound asked for.
        to: f64,
    },
    /// Anything else redb reports (a bug in this module or in redb rather
    /// than a problem with the data or the disk).
    #[error("store {path}: {source}")]
    Database {
        /// The store's file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Box<redb::Error>,
    },
}

impl StoreError {
    /// Sorts one of redb's errors into our variants.
    pub(super) fn from_redb(path: &std::path::Path, e: impl Into<redb::Error>) -> StoreError {
        let path = path.to_path_buf();
        match e.into() {
            redb::Error::Io(source) => StoreError::Io { path, source },
            redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
            redb::Error::ValueTooLarge(size) => StoreError::TooLarge { path, size },
            redb::Error::DatabaseAlreadyOpen => StoreError::AlreadyOpen { path },
            other => StoreError::Database {
                path,
                source: Box::new(other),
            },
        }
    }

    /// Sorts an error from opening the file.
    pub(super) fn from_open(path: &std::path::Path, e: redb::DatabaseError) -> StoreError {
        let path = path.to_path_buf();
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen { path },
            // redb's answer to a header it does not recognise.
            redb::DatabaseError::Storage(redb::StorageError::Io(source))
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                StoreError::Corrupt {
                    path,
                    detail: format!("not a store file, or an unreadable header ({source})"),
                }
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
                StoreError::Io { path, source }
            }
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
                StoreError::Corrupt { path, detail }
            }
            source => StoreError::Open { path, source },
        }
    }
}
