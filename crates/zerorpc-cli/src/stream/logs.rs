//! `zerorpc stream tail` and `zerorpc stream stats`: following a run's
//! component logs and its statistics file.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use zerorpc_stream::{render_table, RunStats};

use super::{Failure, StatsArgs, TailArgs};

// ---- tail ----

/// One log file being read.
struct LogFile {
    offset: u64,
    partial: String,
}

fn log_files(dir: &Path, component: Option<&str>) -> Result<Vec<PathBuf>, Failure> {
    if let Some(c) = component {
        return Ok(vec![dir.join(format!("{c}.log"))]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        (
            1,
            format!(
                "log directory {}: {e} (written by `zerorpc stream run --log-dir {}`)",
                dir.display(),
                dir.display()
            ),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads what was added to `path` since the last call: complete lines.
fn read_new(path: &Path, state: &mut LogFile) -> std::io::Result<Vec<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < state.offset {
        // Truncated: a new run.
        state.offset = 0;
        state.partial.clear();
    }
    f.seek(SeekFrom::Start(state.offset))?;
    let mut buf = Vec::new();
    f.take(len - state.offset).read_to_end(&mut buf)?;
    state.offset += buf.len() as u64;
    state.partial.push_str(&String::from_utf8_lossy(&buf));
    let mut lines = Vec::new();
    while let Some(i) = state.partial.find('\n') {
        lines.push(state.partial[..i].to_string());
        state.partial.drain(..=i);
    }
    Ok(lines)
}

pub(super) fn tail(a: &TailArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    let mut states: BTreeMap<PathBuf, LogFile> = BTreeMap::new();
    let mut lines = Vec::new();
    for path in log_files(&a.log_dir, a.component.as_deref())? {
        let mut st = LogFile {
            offset: 0,
            partial: String::new(),
        };
        match read_new(&path, &mut st) {
            Ok(l) => lines.extend(l),
            Err(e) if a.follow && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err((1, format!("{}: {e}", path.display()))),
        }
        states.insert(path, st);
    }
    // Lines start with their UTC time: merged in time order.
    lines.sort_by(|x, y| x.split(' ').next().cmp(&y.split(' ').next()));
    let skip = a.lines.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = std::io::stdout().lock();
    for l in &lines[skip..] {
        if writeln!(out, "{l}").is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    drop(out);
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            if a.component.is_none() {
                for p in log_files(&a.log_dir, None).unwrap_or_default() {
                    states.entry(p).or_insert(LogFile {
                        offset: 0,
                        partial: String::new(),
                    });
                }
            }
            let mut new = Vec::new();
            for (path, st) in states.iter_mut() {
                if let Ok(l) = read_new(path, st) {
                    new.extend(l);
                }
            }
            new.sort_by(|x, y| x.split(' ').next().cmp(&y.split(' ').next()));
            let mut out = std::io::stdout().lock();
            for l in &new {
                if writeln!(out, "{l}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
}

// ---- stats ----

fn read_stats(path: &Path) -> Result<RunStats, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a statistics file: {e}", path.display()))
}

pub(super) fn stats(a: &StatsArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    if !a.watch {
        let s = read_stats(&a.file).map_err(|e| (1, e))?;
        print!("{}", render_table(&s));
        return Ok(ExitCode::SUCCESS);
    }
    let clear = std::io::stdout().is_terminal();
    rt.block_on(async {
        let mut seen: Option<SystemTime> = None;
        let mut complained = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            let modified = std::fs::metadata(&a.file).and_then(|m| m.modified()).ok();
            if modified.is_none() || modified == seen {
                if modified.is_none() && !complained {
                    eprintln!("zerorpc stream: waiting for {}", a.file.display());
                    complained = true;
                }
                continue;
            }
            // (the runner replaces the file whole: a read sees one version)
            match read_stats(&a.file) {
                Ok(s) => {
                    seen = modified;
                    let mut out = std::io::stdout().lock();
                    let text = if clear {
                        format!("\x1b[2J\x1b[H{}", render_table(&s))
                    } else {
                        format!("{}\n", render_table(&s))
                    };
                    if out
                        .write_all(text.as_bytes())
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Err(e) => eprintln!("zerorpc stream: {e}"),
            }
        }
    })
}
