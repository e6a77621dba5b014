//! Builds a user's Arduino sketch folder for the emulated ESP8266, the way
//! arduino-cli builds it for an ESP8266 board: the `.ino` files joined and
//! given prototypes ([`ino`]), the sketch's `.c`/`.cpp`/`.S` files, and the
//! libraries its headers name ([`library`], [`plan`]), compiled with the
//! ESP8266 core's flags (its warning levels, never `-Werror`) against this
//! project's board support and Arduino layer (`firmware/`), and linked to
//! the ESP8266's memory budget ([`size`]).
//!
//! The planning is pure; [`exec`] is the shell that lists folders, runs the
//! xtensa compiler and keeps a content-addressed cache outside the sketch
//! folder (nothing is ever written into it): an object is reused when its
//! flags, its source and every header it read are unchanged, and a whole
//! build is a lookup when none of the files it read changed.

pub mod exec;
pub mod ino;
pub mod library;
pub mod plan;
pub mod size;

use std::path::PathBuf;

pub use exec::{build, Built, Env};

/// arduino-cli's `--warnings` levels, with the ESP8266 core's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Warnings {
    /// `-w` (arduino-cli's default).
    #[default]
    None,
    /// The compiler's own defaults.
    Default,
    /// `-Wall`.
    More,
    /// `-Wall -Wextra`.
    All,
}

impl Warnings {
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Warnings::None => &["-w"],
            Warnings::Default => &[],
            Warnings::More => &["-Wall"],
            Warnings::All => &["-Wall", "-Wextra"],
        }
    }
}

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The sketch folder (holds `NAME.ino`).
    pub sketch: PathBuf,
    /// Single libraries' folders (`--library`), preferred over any other.
    pub library: Vec<PathBuf>,
    /// Folders of libraries (`--libraries`, like `~/Arduino/libraries`).
    pub libraries: Vec<PathBuf>,
    /// `NAME` or `NAME=VALUE`, for the sketch and its libraries (the core
    /// is built once for every sketch).
    pub defines: Vec<String>,
    pub warnings: Warnings,
}

/// The image `--firmware PATH` names: an ELF as it is, or a sketch folder
/// built first (a lookup when nothing changed). Prints what the build says.
pub fn firmware_image(
    path: &std::path::Path,
    root: &std::path::Path,
    library: &[PathBuf],
    libraries: &[PathBuf],
) -> crate::error::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let env = Env::discover(root)?;
    let req = Request {
        sketch: path.to_path_buf(),
        library: library.to_vec(),
        libraries: libraries.to_vec(),
        ..Request::default()
    };
    let b = build(&req, &env)?;
    eprint!("{}", b.messages);
    eprintln!(
        "sketch {}: {}{}",
        path.display(),
        b.elf.display(),
        if b.cached {
            " (unchanged, not rebuilt)"
        } else {
            ""
        }
    );
    Ok(b.elf)
}
