//! Recordings: writing and reading one message a line.

use std::io::{BufReader, Cursor, Write};

use zerorpc_bus::record::{RecordError, RecordReader, RecordWriter};
use zerorpc_bus::Error;

fn read_all(text: &[u8]) -> Vec<Result<(usize, serde_json::Value), Error>> {
    RecordReader::new(Cursor::new(text.to_vec()), "test.jsonl").collect()
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let msgs = [
        r#"{"i":1,"msg":{"a":"caf\u00e9"},"msg_id":"x1","topic":"t"}"#,
        r#"{"i":2,"msg":{},"msg_id":"x2","topic":"t"}"#,
    ];
    let mut w = RecordWriter::create(&path).unwrap();
    for m in msgs {
        w.write(m).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n{}\n", msgs[0], msgs[1]));

    let got: Vec<(usize, serde_json::Value)> = RecordReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, 1);
    assert_eq!(got[0].1["msg"]["a"], "café");
    assert_eq!(got[1].0, 2);
    assert_eq!(got[1].1["msg_id"], "x2");
}

#[test]
fn the_writer_refuses_line_breaks_and_non_json() {
    let mut w = RecordWriter::new(Vec::new(), "mem");
    let err = w.write("{\"a\":\n1}").unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::LineBreak { .. })),
        "{err:?}"
    );
    let err = w.write("{\"a\":1}\r").unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::LineBreak { .. })),
        "{err:?}"
    );
    let err = w.write("{\"a\":").unwrap_err();
    assert!(
        matches!(err, Error::Record(RecordError::NotJson { .. })),
        "{err:?}"
    );
    w.write("{\"a\":1}").unwrap();
    assert_eq!(w.into_inner().unwrap(), b"{\"a\":1}\n");
}

#[test]
fn blank_lines_a_missing_last_newline_and_crlf_are_fine() {
    let got = read_all(b"\n{\"a\":1}\n   \n{\"b\":2}\r\n\n{\"c\":3}");
    let got: Vec<(usize, serde_json::Value)> = got.into_iter().map(Result::unwrap).collect();
    let lines: Vec<usize> = got.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![2, 4, 6]);
    assert_eq!(got[2].1["c"], 3);
    assert!(read_all(b"").is_empty());
    assert!(read_all(b"\n\n").is_empty());
}

#[test]
fn a_bad_line_is_reported_by_number_and_reading_goes_on() {
    let got = read_all(b"{\"a\":1}\n{\"a\":\n[1,2]\n\xff\xfe\n{\"z\":0}\n");
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].as_ref().unwrap().0, 1);
    for (i, line, want) in [
        (1, 2, "not JSON"),
        (2, 3, "not a JSON object"),
        (3, 4, "not JSON"),
    ] {
        let err = got[i].as_ref().unwrap_err();
        match err {
            Error::Record(RecordError::BadLine { line: l, name, .. }) => {
                assert_eq!((*l, name.as_str()), (line, "test.jsonl"));
            }
            other => panic!("line {line}: {other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with(&format!("test.jsonl:{line}: ")), "{text}");
        assert!(text.contains(want), "{text}");
    }
    assert_eq!(got[4].as_ref().unwrap().0, 5);
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let err = RecordReader::open(&missing).unwrap_err();
    match &err {
        Error::Io { path, source } => {
            assert!(path.ends_with("missing.jsonl"), "{path}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let err = RecordWriter::create(&dir.path().join("no/such/dir.jsonl")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

/// A writer whose writes fail.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader whose reads fail after some data.
struct FailsAfter(Cursor<Vec<u8>>);

impl std::io::Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("cable cut")),
            n => Ok(n),
        }
    }
}

#[test]
fn io_errors_while_reading_or_writing_are_reported() {
    let mut w = RecordWriter::new(Broken, "broken");
    let err = w.write("{}").unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path == "broken"),
        "{err:?}"
    );

    let r = RecordReader::new(
        BufReader::new(FailsAfter(Cursor::new(b"{\"a\":1}\n".to_vec()))),
        "flaky",
    );
    let got: Vec<_> = r.collect();
    assert_eq!(got.len(), 2, "one message, then the error, then the end");
    assert_eq!(got[0].as_ref().unwrap().0, 1);
    assert!(
        matches!(got[1].as_ref().unwrap_err(), Error::Io { path, .. } if path == "flaky"),
        "{:?}",
        got[1]
    );
}
