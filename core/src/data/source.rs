//! Reading line-based data files: where a bad line is, and whether to stop or skip it.

/// How bad lines are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineOptions {
    /// Skip malformed lines and count them instead of stopping at the first one.
    pub skip_bad_lines: bool,
}

/// A data file that could not be read: which file, which line (1-based, 0 for the whole
/// file) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{} {reason}", if *.line > 0 { format!(" {} {}:", unit, line) } else { ":".to_string() })]
pub struct DataError {
    /// The file's name.
    pub file: String,
    /// 1-based line number, 0 when the problem is not one line's.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// What `line` counts: `line` in a text file, `row` in a Parquet file.
    pub unit: &'static str,
}

impl DataError {
    /// An error on one line.
    pub fn at(file: &str, line: usize, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            reason: reason.into(),
            unit: "line",
        }
    }

    /// An error on one row (1-based) of a table file (Parquet).
    pub fn at_row(file: &str, row: usize, reason: impl Into<String>) -> Self {
        Self {
            unit: "row",
            ..Self::at(file, row, reason)
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(file: &str, reason: impl Into<String>) -> Self {
        Self::at(file, 0, reason)
    }
}

/// Iterates the non-empty lines of a file's bytes (LF or CRLF) with their 1-based numbers,
/// and applies [`LineOptions`] to each line's parse result.
#[derive(Debug)]
pub struct LineReader<'a> {
    file: &'a str,
    lines: std::iter::Enumerate<std::slice::Split<'a, u8, fn(&u8) -> bool>>,
    options: LineOptions,
    skipped: usize,
}

impl<'a> LineReader<'a> {
    /// Lines of `bytes`, reported as lines of `file`.
    pub fn new(file: &'a str, bytes: &'a [u8], options: LineOptions) -> Self {
        let is_newline: fn(&u8) -> bool = |b| *b == b'\n';
        Self {
            file,
            lines: bytes.split(is_newline).enumerate(),
            options,
            skipped: 0,
        }
    }

    /// The next non-blank line: (1-based line number, bytes without the line ending).
    pub fn next_line(&mut self) -> Option<(usize, &'a [u8])> {
        for (i, raw) in self.lines.by_ref() {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some((i + 1, line));
            }
        }
        None
    }

    /// Keeps a parsed value, or stops with the line's error, or skips and counts it.
    pub fn accept<T>(
        &mut self,
        line: usize,
        parsed: Result<T, String>,
    ) -> Result<Option<T>, DataError> {
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.options.skip_bad_lines => {
                self.skipped += 1;
                Ok(None)
            }
            Err(reason) => Err(DataError::at(self.file, line, reason)),
        }
    }

    /// Lines skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}
