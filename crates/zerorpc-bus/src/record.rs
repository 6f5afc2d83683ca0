//! Recordings: one message per line, each a fedmsg envelope in canonical
//! JSON (which never contains a newline), as `fedmsg-tail`-style tools and
//! the bus's record/replay commands write and read them.
//!
//! [`RecordWriter`] appends lines to any [`Write`]; [`RecordReader`]
//! iterates over any [`BufRead`], skipping blank lines, accepting a last
//! line without its newline, and reporting a bad line by its number.
//! File errors are [`Error::Io`] naming the file; what is wrong with the
//! content is a [`RecordError`].

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::Error;

/// The longest line [`RecordReader`] accepts (bytes, without the newline):
/// a bound on memory for a file that is not a recording.
pub const MAX_LINE: usize = 64 << 20;

/// What is wrong with a recording's content, or with a message given to
/// [`RecordWriter::write`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A message with a line break cannot be one line.
    #[error("{name}: a message to record contains a line break (canonical JSON has none)")]
    LineBreak {
        /// The recording.
        name: String,
    },
    /// A message to record that is not JSON.
    #[error("{name}: a message to record is not JSON: {source}")]
    NotJson {
        /// The recording.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A line that is not a JSON object.
    #[error("{name}:{line}: {detail}")]
    BadLine {
        /// The recording.
        name: String,
        /// Its line number, from 1.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A line longer than [`MAX_LINE`].
    #[error("{name}:{line}: line longer than {max} bytes")]
    LineTooLong {
        /// The recording.
        name: String,
        /// Its line number, from 1.
        line: usize,
        /// The limit.
        max: usize,
    },
}

fn io_error(name: &str, source: std::io::Error) -> Error {
    Error::Io {
        path: name.to_owned(),
        source,
    }
}

/// Writes a recording, one message a line.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    inner: W,
    name: String,
}

impl RecordWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| io_error(&name, e))?;
        Ok(RecordWriter {
            inner: BufWriter::new(file),
            name,
        })
    }
}

impl<W: Write> RecordWriter<W> {
    /// Writes to `inner`; `name` is what errors call it.
    pub fn new(inner: W, name: impl Into<String>) -> Self {
        RecordWriter {
            inner,
            name: name.into(),
        }
    }

    /// Appends one message (JSON, without line breaks) and a newline.
    pub fn write(&mut self, json: &str) -> Result<(), Error> {
        if json.bytes().any(|b| b == b'\n' || b == b'\r') {
            return Err(RecordError::LineBreak {
                name: self.name.clone(),
            }
            .into());
        }
        serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|source| {
            RecordError::NotJson {
                name: self.name.clone(),
                source,
            }
        })?;
        self.inner
            .write_all(json.as_bytes())
            .and_then(|()| self.inner.write_all(b"\n"))
            .map_err(|e| io_error(&self.name, e))
    }

    /// Flushes buffered lines to the underlying writer. Call it before
    /// dropping a writer: a drop cannot report a failed flush.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush().map_err(|e| io_error(&self.name, e))
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, Error> {
        self.flush()?;
        Ok(self.inner)
    }
}

/// Reads a recording: an iterator of `(line number, message)`.
///
/// Blank lines are skipped, a final line without a newline is read, a
/// trailing `\r` is dropped. A line that is not a JSON object yields an
/// error naming its number, and the iteration goes on with the next line;
/// after an I/O error or a line longer than [`MAX_LINE`] the iteration
/// ends.
#[derive(Debug)]
pub struct RecordReader<R: BufRead> {
    inner: R,
    name: String,
    line: usize,
    buf: Vec<u8>,
    done: bool,
}

impl RecordReader<BufReader<File>> {
    /// Opens the file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| io_error(&name, e))?;
        Ok(RecordReader::new(BufReader::new(file), name))
    }
}

impl<R: BufRead> RecordReader<R> {
    /// Reads from `inner`; `name` is what errors call it.
    pub fn new(inner: R, name: impl Into<String>) -> Self {
        RecordReader {
            inner,
            name: name.into(),
            line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    fn bad_line(&self, detail: String) -> Error {
        RecordError::BadLine {
            name: self.name.clone(),
            line: self.line,
            detail,
        }
        .into()
    }

    /// Reads the next line into `buf` (without its line ending); `Ok(false)`
    /// at the end.
    fn read_line(&mut self) -> Result<bool, Error> {
        self.buf.clear();
        self.line += 1;
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut self.inner)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| io_error(&self.name, e))?;
        if n == 0 {
            return Ok(false);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE {
            return Err(RecordError::LineTooLong {
                name: self.name.clone(),
                line: self.line,
                max: MAX_LINE,
            }
            .into());
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(true)
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<(usize, serde_json::Value), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.read_line() {
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(true) => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let value = match serde_json::from_slice::<serde_json::Value>(&self.buf) {
                        Ok(v) => v,
                        Err(e) => return Some(Err(self.bad_line(format!("not JSON: {e}")))),
                    };
                    if !value.is_object() {
                        return Some(Err(self.bad_line("not a JSON object".to_owned())));
                    }
                    return Some(Ok((self.line, value)));
                }
            }
        }
        None
    }
}
