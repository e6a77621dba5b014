//! Arduino libraries as arduino-cli sees them, from a folder's listing
//! (pure: the I/O shell lists the files and reads `library.properties`).
//!
//! Layouts: with `library.properties` and a `src/` folder ("1.5" or
//! recursive layout) the include folder is `src/` and everything under it is
//! compiled; otherwise (the old flat layout) the include folder is the
//! library's own folder, and its files plus those in `utility/` are compiled,
//! `utility/` being on the include path of the library's own files only.
//! `examples/` and `extras/` are never compiled.
//!
//! A header the sketch includes and nothing on the include path provides is
//! looked up among the libraries' include folders (top level only), and when
//! several provide it the one arduino-cli would take wins: a library given
//! with `--library` before any in a `--libraries` folder, then one made for
//! this architecture (`architectures=esp8266`) before an
//! architecture-independent one (`*`) before one for other chips, then the
//! closest match between the header's name and the library's name or
//! folder (same, prefix, suffix, contains).

use std::path::{Path, PathBuf};

/// Where a library came from; decides ties as arduino-cli's locations do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    /// A folder of libraries (`--libraries DIR`, like `~/Arduino/libraries`).
    User,
    /// One library's own folder (`--library DIR`).
    Given,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `library.properties` + `src/`, compiled recursively.
    Recursive,
    /// Sources at the top, plus `utility/`.
    Flat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    pub dir: PathBuf,
    /// `name=` of library.properties, else the folder's name.
    pub name: String,
    pub version: Option<String>,
    /// `architectures=` (empty: `*`).
    pub architectures: Vec<String>,
    pub layout: Layout,
    pub location: Location,
    /// Headers directly in the include folder (what `#include <X.h>` finds).
    pub headers: Vec<String>,
    /// Files to compile, absolute.
    pub sources: Vec<PathBuf>,
}

pub const SOURCE_EXTENSIONS: &[&str] = &["c", "cpp", "cc", "cxx", "S"];
const HEADER_EXTENSIONS: &[&str] = &["h", "hpp", "hh"];

fn ext(p: &Path) -> &str {
    p.extension().and_then(|e| e.to_str()).unwrap_or("")
}

impl Library {
    /// Builds the model from a folder's files (paths relative to `dir`,
    /// recursive listing) and the text of its `library.properties`.
    pub fn from_listing(
        dir: &Path,
        properties: Option<&str>,
        files: &[PathBuf],
        location: Location,
    ) -> Library {
        let props = properties.map(parse_properties).unwrap_or_default();
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let has_src = files.iter().any(|f| f.starts_with("src"));
        let layout = if properties.is_some() && has_src {
            Layout::Recursive
        } else {
            Layout::Flat
        };
        let include = Library::include_rel(layout);
        let mut headers: Vec<String> = files
            .iter()
            .filter(|f| f.parent() == Some(include) && HEADER_EXTENSIONS.contains(&ext(f)))
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        headers.sort();
        let mut sources: Vec<PathBuf> = files
            .iter()
            .filter(|f| SOURCE_EXTENSIONS.contains(&ext(f)))
            .filter(|f| match layout {
                Layout::Recursive => f.starts_with("src"),
                Layout::Flat => f.parent() == Some(Path::new("")) || f.starts_with("utility"),
            })
            .map(|f| dir.join(f))
            .collect();
        sources.sort();
        let name = get("name").unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let architectures = get("architectures")
            .map(|a| {
                a.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Library {
            dir: dir.to_path_buf(),
            name,
            version: get("version"),
            architectures,
            layout,
            location,
            headers,
            sources,
        }
    }

    fn include_rel(layout: Layout) -> &'static Path {
        match layout {
            Layout::Recursive => Path::new("src"),
            Layout::Flat => Path::new(""),
        }
    }

    /// The folder that goes on everyone's include path.
    pub fn include_dir(&self) -> PathBuf {
        match self.layout {
            Layout::Recursive => self.dir.join("src"),
            Layout::Flat => self.dir.clone(),
        }
    }

    /// Extra include folders for the library's own files (`utility/`).
    pub fn own_include_dirs(&self) -> Vec<PathBuf> {
        match self.layout {
            Layout::Flat
                if self
                    .sources
                    .iter()
                    .any(|s| s.starts_with(self.dir.join("utility"))) =>
            {
                vec![self.dir.join("utility")]
            }
            _ => Vec::new(),
        }
    }

    fn folder_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// arduino-cli's ranking of this library as the provider of `header`.
    fn priority(&self, header: &str, arch: &str) -> u32 {
        let stem = simplify(header.rsplit_once('.').map(|(s, _)| s).unwrap_or(header));
        let name = simplify(&self.name);
        let dir = simplify(&self.folder_name());
        let mut p = if self.architectures.iter().any(|a| a == arch) {
            1010
        } else if self.architectures.is_empty() || self.architectures.iter().any(|a| a == "*") {
            1000
        } else {
            0
        };
        p += if name == stem && dir == stem {
            700
        } else if name == stem || dir == stem {
            600
        } else if name.starts_with(&stem) || dir.starts_with(&stem) {
            500
        } else if name.ends_with(&stem) || dir.ends_with(&stem) {
            400
        } else if name.contains(&stem) || dir.contains(&stem) {
            300
        } else {
            0
        };
        p + match self.location {
            Location::User => 3,
            Location::Given => 10_000,
        }
    }

    /// Whether the library is meant for `arch` at all (or for any chip).
    pub fn compatible(&self, arch: &str) -> bool {
        self.architectures.is_empty() || self.architectures.iter().any(|a| a == "*" || a == arch)
    }
}

/// Lowercase, with everything but letters and digits made `_`.
fn simplify(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `key=value` lines; `#` comments and blank lines skipped.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The library that provides `header`, if any: the best-ranked of those
/// whose include folder has it (the first given wins a tie).
pub fn resolve<'a>(header: &str, libs: &'a [Library], arch: &str) -> Option<&'a Library> {
    let file = Path::new(header);
    // `#include <Foo/bar.h>` is looked up by its first component's folder
    // as well as a header at the top (arduino-cli only does the latter).
    let top = file.file_name()?.to_string_lossy().into_owned();
    if file.components().count() != 1 {
        return None;
    }
    let mut best: Option<(&Library, u32)> = None;
    for lib in libs.iter().filter(|l| l.headers.contains(&top)) {
        let p = lib.priority(header, arch);
        if best.is_none_or(|(_, bp)| p > bp) {
            best = Some((lib, p));
        }
    }
    best.map(|(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(dir: &str, props: Option<&str>, files: &[&str], loc: Location) -> Library {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        Library::from_listing(Path::new(dir), props, &files, loc)
    }

    #[test]
    fn recursive_layout_compiles_everything_under_src() {
        let l = lib(
            "/libs/arduino-mqtt",
            Some("name=MQTT\nversion=2.5.2\narchitectures=*\n"),
            &[
                "library.properties",
                "src/MQTT.h",
                "src/MQTTClient.h",
                "src/MQTTClient.cpp",
                "src/lwmqtt/client.c",
                "src/lwmqtt/lwmqtt.h",
                "examples/Basic/Basic.ino",
                "extras/test.cpp",
            ],
            Location::User,
        );
        assert_eq!(l.layout, Layout::Recursive);
        assert_eq!(l.name, "MQTT");
        assert_eq!(l.version.as_deref(), Some("2.5.2"));
        assert_eq!(l.include_dir(), Path::new("/libs/arduino-mqtt/src"));
        assert_eq!(l.headers, ["MQTT.h", "MQTTClient.h"]);
        assert_eq!(
            l.sources,
            [
                PathBuf::from("/libs/arduino-mqtt/src/MQTTClient.cpp"),
                PathBuf::from("/libs/arduino-mqtt/src/lwmqtt/client.c")
            ]
        );
    }

    #[test]
    fn flat_layout_compiles_the_top_and_utility() {
        let l = lib(
            "/libs/Old",
            None,
            &[
                "Old.h",
                "Old.cpp",
                "utility/helper.c",
                "utility/helper.h",
                "examples/x/x.ino",
                "deep/no.cpp",
            ],
            Location::User,
        );
        assert_eq!(l.layout, Layout::Flat);
        assert_eq!(l.name, "Old");
        assert_eq!(l.include_dir(), Path::new("/libs/Old"));
        assert_eq!(l.own_include_dirs(), [PathBuf::from("/libs/Old/utility")]);
        assert_eq!(
            l.sources,
            [
                PathBuf::from("/libs/Old/Old.cpp"),
                PathBuf::from("/libs/Old/utility/helper.c")
            ]
        );
        // library.properties without src/ is still the flat layout.
        let l = lib("/libs/P", Some("name=P"), &["P.h", "P.cpp"], Location::User);
        assert_eq!(l.layout, Layout::Flat);
    }

    #[test]
    fn resolution_prefers_given_then_architecture_then_name() {
        let a = lib(
            "/u/PubSubClient",
            Some("name=PubSubClient\narchitectures=*"),
            &["src/PubSubClient.h", "src/x.cpp"],
            Location::User,
        );
        let fork = lib(
            "/u/pubsub-fork",
            Some("name=PubSub Fork\narchitectures=*"),
            &["src/PubSubClient.h"],
            Location::User,
        );
        let avr = lib(
            "/u/PubSubClientAvr",
            Some("name=PubSubClient\narchitectures=avr"),
            &["src/PubSubClient.h"],
            Location::User,
        );
        let generic = lib(
            "/u/pubsubclient-a",
            Some("name=PubSubClient\narchitectures=*"),
            &["src/PubSubClient.h"],
            Location::User,
        );
        let esp = lib(
            "/u/pubsubclient-b",
            Some("name=PubSubClient\narchitectures=esp8266"),
            &["src/PubSubClient.h"],
            Location::User,
        );
        let libs = [fork.clone(), avr.clone(), a.clone()];
        assert_eq!(
            resolve("PubSubClient.h", &libs, "esp8266").unwrap().dir,
            a.dir
        );
        // Of two equal names, the one made for this chip.
        let libs = [generic.clone(), esp.clone()];
        assert_eq!(
            resolve("PubSubClient.h", &libs, "esp8266").unwrap().dir,
            esp.dir
        );
        // The name counts more than the architecture (as in arduino-cli).
        let libs = [a.clone(), esp.clone()];
        assert_eq!(
            resolve("PubSubClient.h", &libs, "esp8266").unwrap().dir,
            a.dir
        );
        // --library beats everything.
        let mut given = fork.clone();
        given.location = Location::Given;
        let libs = [a.clone(), esp, given.clone()];
        assert_eq!(
            resolve("PubSubClient.h", &libs, "esp8266").unwrap().dir,
            given.dir
        );
        assert!(resolve("Nope.h", &libs, "esp8266").is_none());
        assert!(!avr.compatible("esp8266"));
        assert!(a.compatible("esp8266"));
    }

    #[test]
    fn properties_ignore_comments_and_spaces() {
        assert_eq!(
            parse_properties("# c\nname = Adafruit MQTT Library \n\nbad line\nurl=a=b\n"),
            [
                ("name".to_string(), "Adafruit MQTT Library".to_string()),
                ("url".to_string(), "a=b".to_string())
            ]
        );
    }
}
