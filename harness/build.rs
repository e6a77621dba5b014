// rstest's #[files] globs are expanded at compile time: rebuild the tests
// when scenario files come or go. The checkers' sources and their tests are
// embedded for `mqtt-hil coverage`, which reads what each cites and proves.
use std::io::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../scenarios");
    println!("cargo:rerun-if-changed=tests/fixtures");
    println!("cargo:rerun-if-changed=src/check");
    println!("cargo:rerun-if-changed=tests");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for (dir, keep) in [("src/check", "" as &str), ("tests", "check_")] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.extension().is_some_and(|x| x == "rs") && name.starts_with(keep) {
                files.push((format!("{dir}/{name}"), p));
            }
        }
    }
    files.sort();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("check_sources.rs");
    let mut f = std::fs::File::create(out).unwrap();
    writeln!(f, "&[").unwrap();
    for (rel, p) in files {
        writeln!(
            f,
            "    ({rel:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    writeln!(f, "]").unwrap();
}
