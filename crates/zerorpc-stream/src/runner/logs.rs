//! Component logs: every line a component logs (multi-lang `log`, a
//! collector's `log` or `report_error`, the runner's notes about it) goes to
//! `tracing` and, with a log directory, to `<dir>/<component>.log`, which
//! `zerorpc stream tail` reads.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::tuple::TaskId;

/// Multi-lang's log levels (Storm's ShellLogHandler: 0 trace .. 4 error).
pub(crate) fn level_name(level: u8) -> &'static str {
    match level {
        0 => "TRACE",
        1 => "DEBUG",
        2 => "INFO",
        3 => "WARN",
        _ => "ERROR",
    }
}

/// One component's log, shared by its tasks.
#[derive(Clone)]
pub(crate) struct ComponentLog {
    component: Arc<str>,
    file: Option<Arc<Mutex<BufWriter<File>>>>,
}

impl ComponentLog {
    /// Opens (truncates) `<dir>/<component>.log` when `dir` is given.
    pub(crate) fn open(dir: Option<&Path>, component: &str) -> Result<ComponentLog, Error> {
        let file = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("log directory {}", dir.display()), e))?;
                let path = dir.join(format!("{component}.log"));
                let f = File::create(&path)
                    .map_err(|e| Error::io(format!("log file {}", path.display()), e))?;
                Some(Arc::new(Mutex::new(BufWriter::new(f))))
            }
            None => None,
        };
        Ok(ComponentLog {
            component: component.into(),
            file,
        })
    }

    /// Logs a line of task `task` at a multi-lang level.
    pub(crate) fn log(&self, task: TaskId, level: u8, message: &str) {
        let c = &*self.component;
        match level {
            0 => tracing::trace!(component = c, task, "{message}"),
            1 => tracing::debug!(component = c, task, "{message}"),
            2 => tracing::info!(component = c, task, "{message}"),
            3 => tracing::warn!(component = c, task, "{message}"),
            _ => tracing::error!(component = c, task, "{message}"),
        }
        if let Some(file) = &self.file {
            let line = format!(
                "{} {:5} [{c}:{task}] {message}\n",
                utc_now(),
                level_name(level)
            );
            if let Ok(mut f) = file.lock() {
                // Flushed per line: `tail -f` and a killed runner see it.
                let _ = f.write_all(line.as_bytes()).and_then(|_| f.flush());
            }
        }
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_component_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = ComponentLog::open(Some(dir.path()), "count").unwrap();
        log.log(3, 3, "slow word");
        log.clone().log(4, 4, "boom");
        let text = std::fs::read_to_string(dir.path().join("count.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("WARN  [count:3] slow word"), "{text}");
        assert!(lines[1].ends_with("ERROR [count:4] boom"), "{text}");
        assert!(
            lines[0].starts_with("20") && lines[0].contains('T'),
            "{text}"
        );
    }
}
