//! The planning half of a sketch build, sans-IO: from a sketch folder's
//! listing and the candidate libraries to the ordered compile units and the
//! include path, the way arduino-cli discovers libraries.
//!
//! A sketch folder `NAME/` holds `NAME.ino` (the main file), maybe other
//! `.ino` files, `.c`/`.cpp`/`.S` files at its top, and anything under
//! `src/` (compiled recursively); other folders are not part of the build.
//!
//! Libraries are found by the headers the code includes, not by a list:
//! [`Discovery`] hands out one unit at a time to be preprocessed with the
//! include path so far (the shell runs the compiler's `-M -MG`, which lists
//! a missing header as written instead of failing); for each header that
//! nothing provided it picks the library arduino-cli would pick, puts its
//! include folder on the path and queues its sources, whose own includes are
//! discovered the same way, until every unit preprocesses with nothing
//! missing. Headers behind a false `#if` are never looked for, so a sketch
//! written for several boards only pulls what the ESP8266 branch includes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::library::{self, Library, SOURCE_EXTENSIONS};

/// The architecture libraries are matched against.
pub const ARCH: &str = "esp8266";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    C,
    Cpp,
    Asm,
}

impl Lang {
    pub fn of(p: &Path) -> Option<Lang> {
        match p.extension()?.to_str()? {
            "c" => Some(Lang::C),
            "cpp" | "cc" | "cxx" => Some(Lang::Cpp),
            "S" => Some(Lang::Asm),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Sketch,
    /// Index into the candidate libraries.
    Library(usize),
}

/// One translation unit to compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub source: PathBuf,
    pub lang: Lang,
    pub origin: Origin,
}

/// A sketch folder, from its listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sketch {
    pub dir: PathBuf,
    pub name: String,
    /// The main `.ino` first, then the others by name.
    pub inos: Vec<PathBuf>,
    /// `.c`, `.cpp`, `.S` at the top and under `src/`, by path.
    pub sources: Vec<PathBuf>,
}

impl Sketch {
    /// `files` are relative to `dir`, recursive, without hidden entries.
    pub fn from_listing(dir: &Path, files: &[PathBuf]) -> Result<Sketch, String> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: not a sketch folder", dir.display()))?;
        let top = |f: &&PathBuf| f.parent() == Some(Path::new(""));
        let is_ino =
            |f: &&PathBuf| matches!(f.extension().and_then(|e| e.to_str()), Some("ino" | "pde"));
        let main = [format!("{name}.ino"), format!("{name}.pde")]
            .into_iter()
            .map(PathBuf::from)
            .find(|m| files.contains(m))
            .ok_or_else(|| {
                let inos: Vec<String> = files
                    .iter()
                    .filter(top)
                    .filter(is_ino)
                    .map(|f| f.display().to_string())
                    .collect();
                format!(
                    "{}: no {name}.ino: a sketch's main file is named after its folder{}",
                    dir.display(),
                    if inos.is_empty() {
                        String::new()
                    } else {
                        format!(" (found {}; rename it or the folder)", inos.join(", "))
                    }
                )
            })?;
        let mut others: Vec<PathBuf> = files
            .iter()
            .filter(top)
            .filter(is_ino)
            .filter(|f| **f != main)
            .cloned()
            .collect();
        others.sort();
        let mut inos = vec![dir.join(&main)];
        inos.extend(others.into_iter().map(|f| dir.join(f)));
        let mut sources: Vec<PathBuf> = files
            .iter()
            .filter(|f| top(f) || f.starts_with("src"))
            .filter(|f| {
                f.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e))
            })
            .map(|f| dir.join(f))
            .collect();
        sources.sort();
        Ok(Sketch {
            dir: dir.to_path_buf(),
            name,
            inos,
            sources,
        })
    }
}

/// A header nothing provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The unit whose preprocessing found it missing.
    pub unit: Unit,
    pub header: String,
}

/// The result of planning: what to compile, in order, and with which
/// include path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// Core folders first, then each library used, in discovery order.
    pub include_dirs: Vec<PathBuf>,
    /// Indices of the libraries used, in discovery order.
    pub libraries: Vec<usize>,
}

pub enum Next {
    /// Preprocess this unit with this include path, then [`Discovery::feed`]
    /// its dependency list.
    Preprocess(Unit, Vec<PathBuf>),
    Finished(Plan),
}

/// The library discovery loop (see the module docs).
pub struct Discovery {
    libraries: Vec<Library>,
    include_dirs: Vec<PathBuf>,
    used: Vec<usize>,
    queue: VecDeque<Unit>,
    done: Vec<Unit>,
    current: Option<Unit>,
    /// What arduino-cli would warn about (a library for other chips).
    pub warnings: Vec<String>,
}

impl Discovery {
    /// `first` are the sketch's units (the joined `.ino` first).
    pub fn new(core_include: Vec<PathBuf>, first: Vec<Unit>, libraries: Vec<Library>) -> Discovery {
        Discovery {
            libraries,
            include_dirs: core_include,
            used: Vec::new(),
            queue: first.into(),
            done: Vec::new(),
            current: None,
            warnings: Vec::new(),
        }
    }

    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    pub fn step(&mut self) -> Next {
        if let Some(u) = self.current.clone() {
            let dirs = self.dirs_for(&u);
            return Next::Preprocess(u, dirs);
        }
        match self.queue.pop_front() {
            Some(u) => {
                self.current = Some(u.clone());
                let dirs = self.dirs_for(&u);
                Next::Preprocess(u, dirs)
            }
            None => Next::Finished(Plan {
                units: self.done.clone(),
                include_dirs: self.include_dirs.clone(),
                libraries: self.used.clone(),
            }),
        }
    }

    /// Include path for one unit: everyone's, plus a flat library's
    /// `utility/` for its own files.
    pub fn dirs_for(&self, u: &Unit) -> Vec<PathBuf> {
        let mut d = self.include_dirs.clone();
        if let Origin::Library(i) = u.origin {
            d.extend(self.libraries[i].own_include_dirs());
        }
        d
    }

    /// The dependencies the preprocessor listed for the current unit; with
    /// `-MG`, a header it could not find is listed as written (a relative
    /// path), every found one by its absolute path.
    pub fn feed(&mut self, deps: &[String]) -> Result<(), Missing> {
        let unit = self
            .current
            .clone()
            .expect("feed() after step() returned a unit");
        let missing: Vec<&String> = deps.iter().filter(|d| Path::new(d).is_relative()).collect();
        if missing.is_empty() {
            self.current = None;
            self.done.push(unit);
            return Ok(());
        }
        for header in missing {
            let Some(lib) = library::resolve(header, &self.libraries, ARCH) else {
                return Err(Missing {
                    unit,
                    header: header.clone(),
                });
            };
            let idx = self
                .libraries
                .iter()
                .position(|l| l.dir == lib.dir)
                .expect("resolved from this list");
            if self.used.contains(&idx) {
                // Its folder is on the path and still no file: the header
                // is there by name only in a way the compiler does not take
                // (e.g. a broken link). Report it rather than loop.
                return Err(Missing {
                    unit,
                    header: header.clone(),
                });
            }
            if !self.libraries[idx].compatible(ARCH) {
                let l = &self.libraries[idx];
                self.warnings.push(format!(
                    "library {} ({}) claims to run on {} and may not work on the ESP8266 ({ARCH})",
                    l.name,
                    l.dir.display(),
                    l.architectures.join(", ")
                ));
            }
            self.used.push(idx);
            self.include_dirs.push(self.libraries[idx].include_dir());
            for s in &self.libraries[idx].sources {
                if let Some(lang) = Lang::of(s) {
                    self.queue.push_back(Unit {
                        source: s.clone(),
                        lang,
                        origin: Origin::Library(idx),
                    });
                }
            }
        }
        // The same unit again, now with more on the path.
        Ok(())
    }
}

/// Parses the make rule `-M` prints: `target: dep dep \` (escaped spaces
/// kept), the source itself (the first dependency) left out.
pub fn parse_deps(rule: &str) -> Vec<String> {
    let joined = rule.replace("\\\n", " ");
    let Some((_, deps)) = joined.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if !out.is_empty() {
        out.remove(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::library::Location;
    use std::collections::HashMap;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_sketch_folder_is_read_like_arduino_cli_reads_it() {
        let s = Sketch::from_listing(
            Path::new("/w/photocell"),
            &paths(&[
                "zeta.ino",
                "photocell.ino",
                "alpha.ino",
                "feeds.cpp",
                "feeds.h",
                "src/mqtt/codec.c",
                "lib/not_built.cpp",
                "data/x.cpp.txt",
                "README.md",
            ]),
        )
        .unwrap();
        assert_eq!(s.name, "photocell");
        assert_eq!(
            s.inos,
            paths(&[
                "/w/photocell/photocell.ino",
                "/w/photocell/alpha.ino",
                "/w/photocell/zeta.ino"
            ])
        );
        assert_eq!(
            s.sources,
            paths(&["/w/photocell/feeds.cpp", "/w/photocell/src/mqtt/codec.c"])
        );
    }

    #[test]
    fn a_folder_without_its_main_file_is_refused_with_a_hint() {
        let e = Sketch::from_listing(Path::new("/w/photocell"), &paths(&["main.ino"])).unwrap_err();
        assert_eq!(
            e,
            "/w/photocell: no photocell.ino: a sketch's main file is named after its folder (found main.ino; rename it or the folder)"
        );
    }

    #[test]
    fn deps_rules_parse_with_escapes_and_continuations() {
        let rule = "x.o: /s/x.cpp /core/Arduino.h \\\n /a\\ b/y.h PubSubClient.h\n";
        assert_eq!(
            parse_deps(rule),
            ["/core/Arduino.h", "/a b/y.h", "PubSubClient.h"]
        );
    }

    /// A pretend preprocessor: each file's includes, as `-M -MG` would list
    /// them given the include path (found: absolute; else as written).
    fn run(disc: &mut Discovery, includes: &HashMap<&str, Vec<&str>>) -> Result<Plan, Missing> {
        loop {
            match disc.step() {
                Next::Finished(p) => return Ok(p),
                Next::Preprocess(u, dirs) => {
                    let src = u.source.to_string_lossy().into_owned();
                    let mut deps = vec![src.clone()];
                    // Through the headers found, as the preprocessor goes.
                    let mut todo = vec![src];
                    while let Some(f) = todo.pop() {
                        for h in includes.get(f.as_str()).cloned().unwrap_or_default() {
                            let found = dirs
                                .iter()
                                .map(|d| d.join(h).to_string_lossy().into_owned())
                                .find(|p| includes.contains_key(p.as_str()));
                            let dep = found.clone().unwrap_or_else(|| h.to_string());
                            if !deps.contains(&dep) {
                                deps.push(dep);
                                if let Some(p) = found {
                                    todo.push(p);
                                }
                            }
                        }
                    }
                    disc.feed(&deps[1..])?;
                }
            }
        }
    }

    #[test]
    fn libraries_are_found_through_the_headers_included_transitively() {
        let a = Library::from_listing(
            Path::new("/libs/Adafruit_MQTT"),
            Some("name=Adafruit MQTT Library\narchitectures=*"),
            &paths(&[
                "Adafruit_MQTT.h",
                "Adafruit_MQTT_Client.h",
                "Adafruit_MQTT.cpp",
                "Adafruit_MQTT_Client.cpp",
            ]),
            Location::User,
        );
        let b = Library::from_listing(
            Path::new("/libs/Helpers"),
            Some("name=Helpers"),
            &paths(&["src/helpers.h", "src/helpers.c"]),
            Location::User,
        );
        let unused = Library::from_listing(
            Path::new("/libs/Unused"),
            None,
            &paths(&["Unused.h", "Unused.cpp"]),
            Location::User,
        );
        let includes: HashMap<&str, Vec<&str>> = [
            ("/b/sk.ino.cpp", vec!["Arduino.h", "Adafruit_MQTT_Client.h"]),
            ("/core/Arduino.h", vec![]),
            ("/core/Client.h", vec![]),
            (
                "/libs/Adafruit_MQTT/Adafruit_MQTT_Client.h",
                vec!["Adafruit_MQTT.h", "Client.h"],
            ),
            ("/libs/Adafruit_MQTT/Adafruit_MQTT.h", vec!["helpers.h"]),
            (
                "/libs/Adafruit_MQTT/Adafruit_MQTT.cpp",
                vec!["Adafruit_MQTT.h"],
            ),
            (
                "/libs/Adafruit_MQTT/Adafruit_MQTT_Client.cpp",
                vec!["Adafruit_MQTT_Client.h"],
            ),
            ("/libs/Helpers/src/helpers.h", vec![]),
            ("/libs/Helpers/src/helpers.c", vec!["helpers.h"]),
        ]
        .into_iter()
        .collect();
        let first = vec![Unit {
            source: "/b/sk.ino.cpp".into(),
            lang: Lang::Cpp,
            origin: Origin::Sketch,
        }];
        let mut d = Discovery::new(vec!["/core".into()], first, vec![unused, b, a]);
        let plan = run(&mut d, &includes).unwrap();
        assert_eq!(plan.libraries, [2, 1]);
        assert_eq!(
            plan.include_dirs,
            paths(&["/core", "/libs/Adafruit_MQTT", "/libs/Helpers/src"])
        );
        let srcs: Vec<String> = plan
            .units
            .iter()
            .map(|u| u.source.display().to_string())
            .collect();
        assert_eq!(
            srcs,
            [
                "/b/sk.ino.cpp",
                "/libs/Adafruit_MQTT/Adafruit_MQTT.cpp",
                "/libs/Adafruit_MQTT/Adafruit_MQTT_Client.cpp",
                "/libs/Helpers/src/helpers.c"
            ]
        );
    }

    #[test]
    fn a_header_nobody_has_is_reported_with_the_unit() {
        let includes: HashMap<&str, Vec<&str>> = [("/b/sk.ino.cpp", vec!["PubSubClient.h"])]
            .into_iter()
            .collect();
        let first = vec![Unit {
            source: "/b/sk.ino.cpp".into(),
            lang: Lang::Cpp,
            origin: Origin::Sketch,
        }];
        let mut d = Discovery::new(vec!["/core".into()], first, vec![]);
        let m = run(&mut d, &includes).unwrap_err();
        assert_eq!(m.header, "PubSubClient.h");
        assert_eq!(m.unit.source, Path::new("/b/sk.ino.cpp"));
    }

    #[test]
    fn a_library_for_other_chips_is_used_with_a_warning() {
        let avr = Library::from_listing(
            Path::new("/libs/AvrOnly"),
            Some("name=AvrOnly\narchitectures=avr"),
            &paths(&["src/AvrOnly.h", "src/AvrOnly.cpp"]),
            Location::User,
        );
        let includes: HashMap<&str, Vec<&str>> = [
            ("/b/sk.ino.cpp", vec!["AvrOnly.h"]),
            ("/libs/AvrOnly/src/AvrOnly.h", vec![]),
        ]
        .into_iter()
        .collect();
        let first = vec![Unit {
            source: "/b/sk.ino.cpp".into(),
            lang: Lang::Cpp,
            origin: Origin::Sketch,
        }];
        let mut d = Discovery::new(vec!["/core".into()], first, vec![avr]);
        let plan = run(&mut d, &includes).unwrap();
        assert_eq!(plan.libraries, [0]);
        assert_eq!(
            d.warnings,
            ["library AvrOnly (/libs/AvrOnly) claims to run on avr and may not work on the ESP8266 (esp8266)"]
        );
    }
}
