//! `ci/images/build.sh`, the broker image builder, on bad recipes: a recipe
//! that names no Debian suite is refused, and one whose package cannot be
//! fetched from its suite fails naming the package and the suite — before
//! any image is made. And every recipe here names its suite. The good path
//! is `make images` itself, whose images every container test runs.
//!
//! The package check reads the suite's private package lists (made by
//! `make images` under ~/.cache/mqtt-hil/apt/SUITE) and, for a name they
//! lack, refreshes them once from the Debian mirror, as a real build does.
//! Needs Docker (build.sh checks for it first); without it these print
//! SKIPPED, unless MQTT_HIL_REQUIRE_DOCKER=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let required = std::env::var("MQTT_HIL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "MQTT_HIL_REQUIRE_DOCKER=1 but no Docker engine answers"
        );
        println!("SKIPPED: no Docker engine answers");
    }
    ok
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs build.sh on a recipe folder made from `recipe`.
fn build(recipe: &str) -> (Output, String) {
    build_in("bad-recipe", recipe)
}

/// The same, the recipe folder named `name`.
fn build_in(name: &str, recipe: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(name);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("recipe"), recipe).unwrap();
    let o = Command::new(root().join("ci/images/build.sh"))
        .arg(&folder)
        .output()
        .unwrap();
    let image = recipe
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE="))
        .unwrap_or_default()
        .to_string();
    (o, image)
}

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_package_that_cannot_be_fetched_is_named() {
    if !docker_ready() {
        return;
    }
    let image = format!("mqtt-hil/test-missing:{}", std::process::id());
    let (o, image) = build(&format!(
        "SUITE=trixie\nIMAGE={image}\nPACKAGES=(mosquitto mqtt-hil-no-such-package)\n\
         ENTRYPOINT='[\"/bin/true\"]'\n"
    ));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let err = t
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {t}"));
    assert!(err.contains("bad-recipe/recipe"), "{err}");
    assert!(err.contains("package mqtt-hil-no-such-package "), "{err}");
    // The package that exists is not blamed.
    assert!(!err.contains("mosquitto "), "{err}");
    assert!(err.contains("Debian trixie"), "{err}");
    assert!(!image_exists(&image), "{image} was made anyway");
}

/// A package that is in one suite and not in the other: the recipe's suite
/// decides, not the host's lists (`libssl3t64` is Debian 13's name for
/// Debian 12's `libssl3`).
#[test]
fn packages_come_from_the_recipe_suite() {
    if !docker_ready() {
        return;
    }
    let image = format!("mqtt-hil/test-suite:{}", std::process::id());
    let (o, image) = build(&format!(
        "SUITE=bookworm\nIMAGE={image}\nPACKAGES=(libssl3t64)\nENTRYPOINT='[\"/bin/true\"]'\n"
    ));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("package libssl3t64 is not in Debian bookworm"),
        "{t}"
    );
    assert!(!image_exists(&image));
}

#[test]
fn a_recipe_without_a_suite_is_refused() {
    if !docker_ready() {
        return;
    }
    let (o, image) = build(
        "IMAGE=mqtt-hil/test-nosuite:1\nPACKAGES=(mosquitto)\nENTRYPOINT='[\"/bin/true\"]'\n",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("names no Debian suite"), "{t}");
    assert!(!image_exists(&image));
}

/// Every recipe names its suite and the broker version its tag claims;
/// build.sh checks the version against the suite's package.
#[test]
fn every_recipe_names_its_suite() {
    for e in std::fs::read_dir(root().join("ci/images")).unwrap() {
        let recipe = e.unwrap().path().join("recipe");
        let Ok(text) = std::fs::read_to_string(&recipe) else {
            continue;
        };
        let suite = text.lines().find_map(|l| l.strip_prefix("SUITE="));
        assert!(
            matches!(suite, Some("bookworm" | "trixie")),
            "{}: SUITE={suite:?}",
            recipe.display()
        );
    }
}

/// What build.sh's bake left of recipe folder `name`: its bake containers
/// and temporary images.
fn bake_leftovers(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let container = format!("name=mqtt-hil-bake-{name}-");
    let image = format!("mqtt-hil-bake/{name}");
    for args in [
        &["ps", "-a", "--format", "{{.Names}}", "--filter", &container][..],
        &["images", "--format", "{{.Repository}}:{{.Tag}}", &image][..],
    ] {
        let o = Command::new("docker").args(args).output().unwrap();
        out.extend(String::from_utf8_lossy(&o.stdout).lines().map(String::from));
    }
    out
}

/// A bake (BAKE_RUN, BAKE_KEEP): what the command wrote under a kept path,
/// in a container of the assembled tree, is in the image; the bake's
/// container and temporary image are gone.
#[test]
fn a_bake_keeps_what_it_wrote() {
    if !docker_ready() {
        return;
    }
    let image = format!("mqtt-hil/test-bake:{}", std::process::id());
    let (o, image) = build_in(
        "bake-keeps",
        &format!(
            "SUITE=bookworm\nIMAGE={image}\nPACKAGES=(busybox-static)\n\
         ENTRYPOINT='[\"/bin/busybox\", \"cat\", \"/data/baked\"]'\n\
         BAKE_RUN=(/bin/busybox sh -c 'echo made by the bake > /data/baked')\n\
         BAKE_KEEP=(/data)\n"
        ),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let run = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &image])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", &image]).output();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "made by the bake\n",
        "{}",
        text(&run)
    );
    assert_eq!(bake_leftovers("bake-keeps"), Vec::<String>::new());
}

/// A bake that fails fails the build, with its output, and makes no image.
#[test]
fn a_failing_bake_is_reported_with_its_output() {
    if !docker_ready() {
        return;
    }
    let image = format!("mqtt-hil/test-bake-fails:{}", std::process::id());
    let (o, image) = build_in(
        "bake-fails",
        &format!(
            "SUITE=bookworm\nIMAGE={image}\nPACKAGES=(busybox-static)\n\
         ENTRYPOINT='[\"/bin/busybox\", \"true\"]'\n\
         BAKE_RUN=(/bin/busybox sh -c 'echo no space left; exit 3')\n\
         BAKE_KEEP=(/data)\n"
        ),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("bake-fails/recipe: the bake exited with status 3"),
        "{t}"
    );
    assert!(t.contains("no space left"), "{t}");
    assert!(!image_exists(&image), "{image} was made anyway");
    assert_eq!(bake_leftovers("bake-fails"), Vec::<String>::new());
}
