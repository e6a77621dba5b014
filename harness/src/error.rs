//! Errors that stop a run before or outside any scenario verdict. Each says
//! what failed and what to do; the CLI maps them to exit code 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file (or another input) is invalid.
    #[error("{file}:{line}: {message}")]
    Input {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// An input file with a position down to the column (a JSON file
    /// that does not parse).
    #[error("{file}:{line}:{column}: {message}")]
    InputAt {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A usage error that is not tied to a file position.
    #[error("{0}")]
    Usage(String),
    /// A tool, package or service the harness needs is missing or broken.
    #[error("{what}\n  hint: {hint}")]
    Environment { what: String, hint: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn env(what: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Environment {
            what: what.into(),
            hint: hint.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
