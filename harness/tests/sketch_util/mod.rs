//! Builds the project's own sketches (firmware/sketches/) for the tests,
//! once: the build cache (under target/) is shared by every test process,
//! which wait for each other on its lock and then find the image there.

use std::path::{Path, PathBuf};

use mqtt_hil::sketch::{self, Env, Request, Warnings};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub fn env() -> Env {
    let root = root();
    Env {
        firmware: root.join("firmware"),
        cache: root.join("target/mqtt-hil-cache/sketch"),
        jobs: 2,
    }
}

/// The image of `firmware/sketches/NAME` built with these definitions
/// (all warnings on: our own sketches must build clean).
#[allow(dead_code)]
pub fn image(name: &str, defines: &[String]) -> PathBuf {
    let req = Request {
        sketch: root().join("firmware/sketches").join(name),
        library: Vec::new(),
        libraries: [root().join("firmware/libraries")]
            .into_iter()
            .filter(|d| d.is_dir())
            .collect(),
        defines: defines.to_vec(),
        warnings: Warnings::All,
    };
    match sketch::build(&req, &env()) {
        Ok(b) => {
            assert!(
                b.messages.trim().is_empty(),
                "building {name} {defines:?} warned:\n{}",
                b.messages
            );
            b.elf
        }
        Err(e) => panic!("building firmware/sketches/{name} {defines:?} failed (run `make firmware` first for lwIP's source):\n{e}"),
    }
}

/// The counter device, or one of its seeded bugs (bugs.txt), which are
/// built with `-DCOUNTER_DEVICE_BUG_<BUG>=1`.
#[allow(dead_code)]
pub fn counter_device(bug: Option<&str>) -> PathBuf {
    let defines: Vec<String> = bug
        .map(|b| {
            vec![format!(
                "COUNTER_DEVICE_BUG_{}=1",
                b.to_uppercase().replace('-', "_")
            )]
        })
        .unwrap_or_default();
    image("counter_device", &defines)
}
