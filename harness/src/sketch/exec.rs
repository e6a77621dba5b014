//! The I/O shell of a sketch build: lists the sketch and library folders,
//! drives [`plan::Discovery`] with the compiler's `-M -MG`, compiles (two
//! jobs at a time), links against the board support in `firmware/`, and
//! reports sizes. Everything it writes goes to the cache folder.
//!
//! Cache layout (`Env::cache`, by default `~/.cache/mqtt-hil/sketch`, or
//! `$MQTT_HIL_CACHE/sketch`):
//! - `obj/K.o`: an object; `man/H.txt` lists, for the compile keyed H (the
//!   compiler, its flags and the source's path and bytes), every file the
//!   compile read with its SHA-256 and the object they made (`K`). An object
//!   is reused when all of them still hash the same (ccache's "direct
//!   mode").
//! - `lib/K.a`: the core's archives; `elf/K/NAME.elf` (+ `.map`): a link.
//! - `build/H.txt`: a whole build (H: the request, the tools, and the
//!   listing of the sketch and of every candidate library): the files it
//!   read with their hashes, and its image. A build whose files all hash
//!   the same is a lookup.
//! - `ino/H/NAME.ino.cpp`: a joined `.ino`; `lock`: one build at a time
//!   (parallel test processes wait, then find the cache filled).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::library::{Library, Location};
use super::plan::{self, Discovery, Lang, Next, Origin, Sketch, Unit};
use super::size::{self, Sizes};
use super::{ino, Request};
use crate::error::{Error, Result};

const CROSS: &str = "xtensa-lx106-elf-";
const SPECS: &str = "/usr/lib/xtensa-lx106-elf/picolibc.specs";

/// Where the build finds its tools and keeps its cache.
#[derive(Clone, Debug)]
pub struct Env {
    /// The project's `firmware/` folder (board support, Arduino layer, and
    /// lwIP's source in `.cache/lwip`, fetched by `make -C firmware`).
    pub firmware: PathBuf,
    pub cache: PathBuf,
    pub jobs: usize,
}

impl Env {
    /// `firmware/` found from the current folder, the `MQTT_HIL_FIRMWARE`
    /// variable or the executable's place in a checkout; the cache in
    /// `$MQTT_HIL_CACHE/sketch` or `~/.cache/mqtt-hil/sketch`.
    pub fn discover(root: &Path) -> Result<Env> {
        let candidates = [
            std::env::var_os("MQTT_HIL_FIRMWARE").map(PathBuf::from),
            Some(root.join("firmware")),
            std::env::current_exe()
                .ok()
                .and_then(|e| Some(e.parent()?.parent()?.parent()?.join("firmware"))),
        ];
        let firmware = candidates
            .into_iter()
            .flatten()
            .find(|f| f.join("board/board.ld").is_file())
            .ok_or_else(|| {
                Error::env(
                    "cannot find the emulated board's support files (firmware/board/board.ld)",
                    "run mqtt-hil from the repository's top folder, or set MQTT_HIL_FIRMWARE to its firmware/ folder",
                )
            })?;
        let firmware =
            std::path::absolute(&firmware).map_err(|e| Error::io("resolving firmware/", e))?;
        let cache = match std::env::var_os("MQTT_HIL_CACHE") {
            Some(c) => PathBuf::from(c).join("sketch"),
            None => match std::env::var_os("XDG_CACHE_HOME") {
                Some(c) => PathBuf::from(c).join("mqtt-hil/sketch"),
                None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                    .join(".cache/mqtt-hil/sketch"),
            },
        };
        let jobs = std::env::var("MQTT_HIL_BUILD_JOBS")
            .ok()
            .and_then(|j| j.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(2)));
        Ok(Env {
            firmware,
            cache,
            jobs: jobs.max(1),
        })
    }
}

/// A finished build.
#[derive(Clone, Debug)]
pub struct Built {
    pub elf: PathBuf,
    pub map: PathBuf,
    pub sizes: Sizes,
    /// Nothing was compiled or linked: every input was unchanged.
    pub cached: bool,
    /// Libraries used, as `name (folder)`.
    pub libraries: Vec<String>,
    /// Compiler warnings and the builder's own notes, for the user.
    pub messages: String,
}

/// Builds the sketch; see the module docs for what is reused.
pub fn build(req: &Request, env: &Env) -> Result<Built> {
    std::fs::create_dir_all(&env.cache).map_err(|e| {
        Error::io(
            format!("creating the build cache {}", env.cache.display()),
            e,
        )
    })?;
    let lock = File::create(env.cache.join("lock"))
        .map_err(|e| Error::io("creating the build cache's lock", e))?;
    lock.lock()
        .map_err(|e| Error::io("locking the build cache", e))?;
    let b = Builder::new(req, env)?;
    let r = b.run();
    drop(lock);
    r
}

struct Builder<'a> {
    req: &'a Request,
    env: &'a Env,
    sketch: Sketch,
    candidates: Vec<Library>,
    tools: String,
    hashes: Mutex<HashMap<PathBuf, String>>,
    messages: Mutex<String>,
}

fn sha(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Files under `dir`, relative, recursive, hidden entries skipped.
fn listing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let rd = std::fs::read_dir(dir.join(&rel))
            .map_err(|e| Error::io(format!("reading {}", dir.join(&rel).display()), e))?;
        for entry in rd.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = rel.join(&name);
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

fn load_library(dir: &Path, location: Location) -> Result<Library> {
    let files = listing(dir)?;
    let props = std::fs::read_to_string(dir.join("library.properties")).ok();
    Ok(Library::from_listing(
        dir,
        props.as_deref(),
        &files,
        location,
    ))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e))
}

fn tool(name: &str) -> String {
    format!("{CROSS}{name}")
}

impl<'a> Builder<'a> {
    fn new(req: &'a Request, env: &'a Env) -> Result<Builder<'a>> {
        let dir = absolute(&req.sketch)?;
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{}: not a folder; give the sketch's folder (the one that holds NAME.ino)",
                req.sketch.display()
            )));
        }
        let sketch = Sketch::from_listing(&dir, &listing(&dir)?).map_err(Error::Usage)?;
        let mut candidates = Vec::new();
        for l in &req.library {
            let l = absolute(l)?;
            if !l.is_dir() {
                return Err(Error::Usage(format!(
                    "--library {}: not a folder",
                    l.display()
                )));
            }
            candidates.push(load_library(&l, Location::Given)?);
        }
        for d in &req.libraries {
            let d = absolute(d)?;
            let rd = std::fs::read_dir(&d)
                .map_err(|e| Error::io(format!("--libraries {}", d.display()), e))?;
            let mut dirs: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            dirs.sort();
            for l in dirs {
                candidates.push(load_library(&l, Location::User)?);
            }
        }
        let version = Command::new(tool("gcc"))
            .arg("--version")
            .output()
            .map_err(|_| {
                Error::env(
                    format!("{} is not installed", tool("gcc")),
                    "install the Debian packages gcc-xtensa-lx106 and picolibc-xtensa-lx106-elf (`make -C firmware deps` does)",
                )
            })?;
        let specs = std::fs::read(SPECS).map_err(|_| {
            Error::env(
                format!("{SPECS} is missing"),
                "install the Debian package picolibc-xtensa-lx106-elf (`make -C firmware deps` does)",
            )
        })?;
        let tools = sha(&[version.stdout, specs].concat());
        let lwip = env.firmware.join(".cache/lwip/src/core/tcp.c");
        if !lwip.is_file() {
            return Err(Error::env(
                format!("lwIP's source is not there ({})", lwip.display()),
                "run `make -C firmware` once (it fetches lwIP's Debian source package)",
            ));
        }
        Ok(Builder {
            req,
            env,
            sketch,
            candidates,
            tools,
            hashes: Mutex::new(HashMap::new()),
            messages: Mutex::new(String::new()),
        })
    }

    fn note(&self, s: &str) {
        let mut m = self.messages.lock().unwrap();
        m.push_str(s);
        if !s.ends_with('\n') {
            m.push('\n');
        }
    }

    fn hash_file(&self, p: &Path) -> Option<String> {
        if let Some(h) = self.hashes.lock().unwrap().get(p) {
            return Some(h.clone());
        }
        let h = sha(&std::fs::read(p).ok()?);
        self.hashes
            .lock()
            .unwrap()
            .insert(p.to_path_buf(), h.clone());
        Some(h)
    }

    fn fw(&self, rel: &str) -> PathBuf {
        self.env.firmware.join(rel)
    }

    fn core_include(&self) -> Vec<PathBuf> {
        vec![
            self.fw("arduino"),
            self.fw("board"),
            self.fw("lwip-port"),
            self.fw(".cache/lwip/src/include"),
        ]
    }

    fn common_flags(&self) -> Vec<String> {
        [
            "-Os",
            "-g",
            "-free",
            "-fipa-pta",
            "-Werror=return-type",
            "-mlongcalls",
            "-mtext-section-literals",
            "-falign-functions=4",
            "-ffunction-sections",
            "-fdata-sections",
            "-specs=/usr/lib/xtensa-lx106-elf/picolibc.specs",
            "-D__ets__",
            "-DICACHE_FLASH",
            "-U__STRICT_ANSI__",
            "-D_GNU_SOURCE",
            "-DESP8266",
            "-DARDUINO=10819",
            "-DARDUINO_ESP8266_GENERIC",
            "-DARDUINO_ARCH_ESP8266",
            "-DARDUINO_BOARD=\"ESP8266_GENERIC\"",
            "-DARDUINO_BOARD_ID=\"generic\"",
            // The emulated lx106 runs at 40 MHz (CCOUNT, getCpuFreqMHz()).
            "-DF_CPU=40000000L",
            "-DMQTT_HIL_QEMU=1",
            "-DMQTT_HIL_SKETCH=1",
            "-DPICOLIBC_INTEGER_PRINTF_SCANF",
        ]
        .map(String::from)
        .to_vec()
    }

    fn lang_flags(lang: Lang) -> &'static [&'static str] {
        match lang {
            Lang::Cpp => &[
                "-x",
                "c++",
                "-std=gnu++17",
                "-fno-rtti",
                "-fno-exceptions",
                "-fno-threadsafe-statics",
                "-fno-use-cxa-atexit",
                "-fno-unwind-tables",
                "-fno-asynchronous-unwind-tables",
            ],
            Lang::C => &[
                "-x",
                "c",
                "-std=gnu17",
                "-Wpointer-arith",
                "-Wno-implicit-function-declaration",
                "-fno-inline-functions",
            ],
            Lang::Asm => &["-x", "assembler-with-cpp"],
        }
    }

    fn compiler(lang: Lang) -> String {
        match lang {
            Lang::Cpp => tool("g++"),
            _ => tool("gcc"),
        }
    }

    /// Flags for one unit of the sketch or a library.
    fn unit_flags(&self, u: &Unit, dirs: &[PathBuf]) -> Vec<String> {
        let mut f = self.common_flags();
        f.extend(self.req.warnings.flags().iter().map(|s| s.to_string()));
        f.extend(self.req.defines.iter().map(|d| format!("-D{d}")));
        f.extend(Self::lang_flags(u.lang).iter().map(|s| s.to_string()));
        f.push("-iquote".into());
        f.push(self.sketch.dir.display().to_string());
        for d in dirs {
            f.push(format!("-I{}", d.display()));
        }
        f
    }

    fn core_flags(&self, lang: Lang, lwip: bool) -> Vec<String> {
        let mut f = self.common_flags();
        f.push("-w".into());
        f.extend(Self::lang_flags(lang).iter().map(|s| s.to_string()));
        for d in self.core_include() {
            f.push(format!("-I{}", d.display()));
        }
        let _ = lwip;
        f
    }

    fn top_key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"mqtt-hil sketch build v1\n");
        h.update(self.tools.as_bytes());
        h.update(format!("{:?}\n{:?}\n", self.req, self.sketch).as_bytes());
        h.update(format!("{}\n", self.env.firmware.display()).as_bytes());
        for l in &self.candidates {
            h.update(format!("{l:?}\n").as_bytes());
        }
        for (dir, _) in self.core_sources() {
            h.update(format!("{}\n", dir.display()).as_bytes());
        }
        format!("{:x}", h.finalize())
    }

    fn run(&self) -> Result<Built> {
        let key = self.top_key();
        let manifest = self.env.cache.join(format!("build/{key}.txt"));
        if let Some(b) = self.lookup(&manifest) {
            return Ok(b);
        }
        // The joined .ino, in the cache.
        let inos: Vec<ino::InoFile> = self
            .sketch
            .inos
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|text| ino::InoFile {
                        path: p.clone(),
                        text,
                    })
                    .map_err(|e| Error::io(format!("reading {}", p.display()), e))
            })
            .collect::<Result<_>>()?;
        let merged = ino::merge(&inos);
        let ino_cpp = self.env.cache.join(format!(
            "ino/{}/{}.ino.cpp",
            &sha(merged.as_bytes())[..16],
            self.sketch.name
        ));
        write_atomic(&ino_cpp, merged.as_bytes())?;
        let mut first = vec![Unit {
            source: ino_cpp.clone(),
            lang: Lang::Cpp,
            origin: Origin::Sketch,
        }];
        for s in &self.sketch.sources {
            if let Some(lang) = Lang::of(s) {
                first.push(Unit {
                    source: s.clone(),
                    lang,
                    origin: Origin::Sketch,
                });
            }
        }
        let plan = self.discover(first)?;
        let libs: Vec<&Library> = plan
            .libraries
            .iter()
            .map(|i| &self.candidates[*i])
            .collect();

        // Compile: the core's units and the sketch's, two at a time.
        let mut jobs: Vec<Job> = Vec::new();
        for (src, lang) in self.core_sources() {
            let lwip = src.starts_with(self.fw(".cache/lwip"));
            jobs.push(Job {
                source: src.clone(),
                lang,
                flags: self.core_flags(lang, lwip),
                group: if lwip {
                    Group::Lwip
                } else if src.starts_with(self.fw("arduino")) {
                    Group::Arduino
                } else {
                    Group::Board
                },
            });
        }
        for u in &plan.units {
            let mut dirs = plan.include_dirs.clone();
            if let Origin::Library(i) = u.origin {
                dirs.extend(self.candidates[i].own_include_dirs());
            }
            jobs.push(Job {
                source: u.source.clone(),
                lang: u.lang,
                flags: self.unit_flags(u, &dirs),
                group: Group::Sketch,
            });
        }
        let results = self.compile_all(&jobs)?;

        // Archives for the Arduino layer and lwIP (objects pulled only when
        // referenced, as from the core's archive); the board's objects and
        // the sketch's go in whole.
        let archive = |g: Group| -> Result<PathBuf> {
            let objs: Vec<&Compiled> = results.iter().filter(|r| r.group == g).collect();
            let mut h = Sha256::new();
            for o in &objs {
                h.update(o.key.as_bytes());
            }
            let a = self.env.cache.join(format!("lib/{:x}.a", h.finalize()));
            if !a.is_file() {
                let tmp = a.with_extension(format!("tmp{}", std::process::id()));
                std::fs::create_dir_all(a.parent().unwrap())
                    .map_err(|e| Error::io("creating the cache", e))?;
                let _ = std::fs::remove_file(&tmp);
                let out = Command::new(tool("ar"))
                    .arg("rcs")
                    .arg(&tmp)
                    .args(objs.iter().map(|o| &o.obj))
                    .output()
                    .map_err(|e| Error::io("running xtensa-lx106-elf-ar", e))?;
                if !out.status.success() {
                    return Err(Error::Usage(format!(
                        "archiving the core failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                std::fs::rename(&tmp, &a).map_err(|e| Error::io("storing an archive", e))?;
            }
            Ok(a)
        };
        let arduino_a = archive(Group::Arduino)?;
        let lwip_a = archive(Group::Lwip)?;
        let objects: Vec<&PathBuf> = results
            .iter()
            .filter(|r| matches!(r.group, Group::Board | Group::Sketch))
            .map(|r| &r.obj)
            .collect();
        let ld = self.fw("board/board.ld");
        let link_args: Vec<String> = vec![
            format!("-specs={SPECS}"),
            "-DPICOLIBC_INTEGER_PRINTF_SCANF".into(),
            "-nostartfiles".into(),
            "-T".into(),
            ld.display().to_string(),
            "-Wl,--gc-sections".into(),
            "-Wl,--no-warn-rwx-segments".into(),
        ];
        let mut h = Sha256::new();
        h.update(format!("{link_args:?}").as_bytes());
        h.update(self.hash_file(&ld).unwrap_or_default().as_bytes());
        for r in &results {
            h.update(r.key.as_bytes());
        }
        let link_key = format!("{:x}", h.finalize());
        let out_dir = self.env.cache.join(format!("elf/{link_key}"));
        let elf = out_dir.join(format!("{}.elf", self.sketch.name));
        let map = out_dir.join(format!("{}.map", self.sketch.name));
        if !elf.is_file() {
            std::fs::create_dir_all(&out_dir).map_err(|e| Error::io("creating the cache", e))?;
            let tmp = elf.with_extension(format!("tmp{}", std::process::id()));
            let out = Command::new(tool("gcc"))
                .args(&link_args)
                .arg(format!("-Wl,-Map,{}", map.display()))
                .arg("-o")
                .arg(&tmp)
                .args(&objects)
                .arg("-Wl,--start-group")
                .arg(&arduino_a)
                .arg(&lwip_a)
                .args(["-lc", "-lm", "-lgcc", "-Wl,--end-group"])
                .output()
                .map_err(|e| Error::io("running the linker", e))?;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success() {
                let _ = std::fs::remove_file(&tmp);
                if let Some(why) = size::explain_overflow(&stderr) {
                    return Err(Error::Usage(format!(
                        "{}: {why}\n{stderr}",
                        self.sketch.dir.display()
                    )));
                }
                return Err(Error::Usage(format!(
                    "{}: linking failed:\n{stderr}",
                    self.sketch.dir.display()
                )));
            }
            if !stderr.trim().is_empty() {
                self.note(&stderr);
            }
            std::fs::rename(&tmp, &elf).map_err(|e| Error::io("storing the image", e))?;
        }
        let sizes = sizes_of(&elf)?;
        let libraries: Vec<String> = libs
            .iter()
            .map(|l| match &l.version {
                Some(v) => format!("{} {v} ({})", l.name, l.dir.display()),
                None => format!("{} ({})", l.name, l.dir.display()),
            })
            .collect();

        // Everything this build read, for the next lookup.
        let mut inputs: Vec<PathBuf> = self.sketch.inos.clone();
        for r in &results {
            inputs.extend(r.deps.iter().cloned());
        }
        inputs.push(ld);
        inputs.sort();
        inputs.dedup();
        let mut text = format!("elf {}\nmap {}\n", elf.display(), map.display());
        for l in &libraries {
            text.push_str(&format!("lib {l}\n"));
        }
        for p in &inputs {
            if let Some(h) = self.hash_file(p) {
                text.push_str(&format!("in {h} {}\n", p.display()));
            }
        }
        write_atomic(&manifest, text.as_bytes())?;
        Ok(Built {
            elf,
            map,
            sizes,
            cached: false,
            libraries,
            messages: self.messages.lock().unwrap().clone(),
        })
    }

    /// A previous identical build, if every file it read is unchanged.
    fn lookup(&self, manifest: &Path) -> Option<Built> {
        let text = std::fs::read_to_string(manifest).ok()?;
        let (mut elf, mut map, mut libs) = (None, None, Vec::new());
        for l in text.lines() {
            if let Some(p) = l.strip_prefix("elf ") {
                elf = Some(PathBuf::from(p));
            } else if let Some(p) = l.strip_prefix("map ") {
                map = Some(PathBuf::from(p));
            } else if let Some(p) = l.strip_prefix("lib ") {
                libs.push(p.to_string());
            } else if let Some(rest) = l.strip_prefix("in ") {
                let (h, p) = rest.split_once(' ')?;
                if self.hash_file(Path::new(p))? != h {
                    return None;
                }
            }
        }
        let elf = elf?;
        let sizes = sizes_of(&elf).ok()?;
        Some(Built {
            elf,
            map: map?,
            sizes,
            cached: true,
            libraries: libs,
            messages: String::new(),
        })
    }

    /// The board support, the Arduino layer and lwIP: what the firmware
    /// Makefile builds for its own images.
    fn core_sources(&self) -> Vec<(PathBuf, Lang)> {
        let mut out = Vec::new();
        let mut add = |dir: PathBuf, exts: &[&str]| {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut v: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| exts.contains(&e))
                    })
                    .collect();
                v.sort();
                for p in v {
                    if let Some(l) = Lang::of(&p) {
                        out.push((p, l));
                    }
                }
            }
        };
        add(self.fw("board"), &["c", "S"]);
        add(self.fw("lwip-port"), &["c"]);
        add(self.fw("arduino"), &["c", "cpp"]);
        add(self.fw(".cache/lwip/src/core"), &["c"]);
        add(self.fw(".cache/lwip/src/core/ipv4"), &["c"]);
        let eth = self.fw(".cache/lwip/src/netif/ethernet.c");
        out.push((eth, Lang::C));
        out
    }

    fn discover(&self, first: Vec<Unit>) -> Result<plan::Plan> {
        let mut d = Discovery::new(self.core_include(), first, self.candidates.clone());
        loop {
            match d.step() {
                Next::Finished(p) => {
                    for w in &d.warnings {
                        self.note(&format!("warning: {w}"));
                    }
                    return Ok(p);
                }
                Next::Preprocess(u, dirs) => {
                    let flags = self.unit_flags(&u, &dirs);
                    let out = Command::new(Self::compiler(u.lang))
                        .args(&flags)
                        .args(["-M", "-MG"])
                        .arg(&u.source)
                        .current_dir(&self.env.cache)
                        .output()
                        .map_err(|e| Error::io("running the xtensa compiler", e))?;
                    if !out.status.success() {
                        // A preprocessor error of the user's (#error, a bad
                        // directive): the compiler's own words.
                        return Err(Error::Usage(
                            String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
                        ));
                    }
                    let deps = plan::parse_deps(&String::from_utf8_lossy(&out.stdout));
                    if let Err(m) = d.feed(&deps) {
                        return Err(self.missing(&m, &flags));
                    }
                }
            }
        }
    }

    /// "No such file" in the compiler's words (file:line of the include),
    /// and where the builder looked.
    fn missing(&self, m: &plan::Missing, flags: &[String]) -> Error {
        let out = Command::new(Self::compiler(m.unit.lang))
            .args(flags)
            .args(["-E", "-o", "/dev/null"])
            .arg(&m.unit.source)
            .current_dir(&self.env.cache)
            .output();
        let compiler = out
            .map(|o| String::from_utf8_lossy(&o.stderr).trim_end().to_string())
            .unwrap_or_default();
        let mut msg = if compiler.is_empty() {
            format!(
                "{}: {}: No such file or directory",
                m.unit.source.display(),
                m.header
            )
        } else {
            compiler
        };
        msg.push_str(&format!(
            "\n`{}` is in neither the ESP8266 core ({}) nor any library; searched:",
            m.header,
            self.fw("arduino").display()
        ));
        if self.req.library.is_empty() && self.req.libraries.is_empty() {
            msg.push_str("\n  no library folders were given: add --library DIR (one library) or --libraries DIR (a folder of libraries, e.g. ~/Arduino/libraries)");
        }
        for l in &self.req.library {
            msg.push_str(&format!("\n  --library {}", l.display()));
        }
        for d in &self.req.libraries {
            let names: Vec<String> = self
                .candidates
                .iter()
                .filter(|l| {
                    l.location == Location::User
                        && l.dir.starts_with(absolute(d).unwrap_or_default())
                })
                .map(|l| l.name.clone())
                .collect();
            msg.push_str(&format!(
                "\n  --libraries {} ({})",
                d.display(),
                if names.is_empty() {
                    "no libraries in it".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        Error::Usage(msg)
    }

    fn compile_all(&self, jobs: &[Job]) -> Result<Vec<Compiled>> {
        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<Compiled>>> = Mutex::new(vec![None; jobs.len()]);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.env.jobs {
                s.spawn(|| loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        if *n >= jobs.len() || failure.lock().unwrap().is_some() {
                            return;
                        }
                        *n += 1;
                        *n - 1
                    };
                    match self.compile(&jobs[i]) {
                        Ok(c) => results.lock().unwrap()[i] = Some(c),
                        Err(e) => {
                            failure.lock().unwrap().get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap() {
            return Err(e);
        }
        Ok(results
            .into_inner()
            .unwrap()
            .into_iter()
            .flatten()
            .collect())
    }

    fn compile(&self, job: &Job) -> Result<Compiled> {
        let cc = Self::compiler(job.lang);
        let mut h = Sha256::new();
        h.update(self.tools.as_bytes());
        h.update(format!("{cc}\n{:?}\n{}\n", job.flags, job.source.display()).as_bytes());
        let src_hash = self
            .hash_file(&job.source)
            .ok_or_else(|| Error::Usage(format!("{}: cannot be read", job.source.display())))?;
        h.update(src_hash.as_bytes());
        let direct = format!("{:x}", h.finalize());
        let man = self.env.cache.join(format!("man/{direct}.txt"));
        if let Some(c) = self.reuse(&man, job) {
            return Ok(c);
        }
        let obj_dir = self.env.cache.join("obj");
        std::fs::create_dir_all(&obj_dir).map_err(|e| Error::io("creating the cache", e))?;
        let tmp = obj_dir.join(format!("{direct}.{}.tmp", std::process::id()));
        let dep = tmp.with_extension("d");
        let out = Command::new(&cc)
            .args(&job.flags)
            .arg("-c")
            .arg(&job.source)
            .arg("-o")
            .arg(&tmp)
            .arg("-MMD")
            .arg("-MF")
            .arg(&dep)
            .current_dir(&self.env.cache)
            .output()
            .map_err(|e| Error::io(format!("running {cc}"), e))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&dep);
            return Err(Error::Usage(format!(
                "{}\ncompiling {} failed",
                stderr.trim_end(),
                job.source.display()
            )));
        }
        if !stderr.trim().is_empty() {
            self.note(&stderr);
        }
        // -MMD leaves out system headers; the compiler and picolibc are
        // in the tool identity instead.
        let deps: Vec<PathBuf> = std::fs::read_to_string(&dep)
            .map(|t| {
                plan::parse_deps(&t)
                    .into_iter()
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        let _ = std::fs::remove_file(&dep);
        let mut lines = String::new();
        let mut k = Sha256::new();
        k.update(direct.as_bytes());
        for d in &deps {
            let dh = self.hash_file(d).unwrap_or_default();
            k.update(format!("{dh} {}\n", d.display()).as_bytes());
            lines.push_str(&format!("in {dh} {}\n", d.display()));
        }
        let key = format!("{:x}", k.finalize());
        let obj = obj_dir.join(format!("{key}.o"));
        std::fs::rename(&tmp, &obj).map_err(|e| Error::io("storing an object", e))?;
        write_atomic(&man, format!("obj {key}\n{lines}").as_bytes())?;
        let mut all = deps;
        all.push(job.source.clone());
        Ok(Compiled {
            obj,
            key,
            group: job.group,
            deps: all,
        })
    }

    fn reuse(&self, man: &Path, job: &Job) -> Option<Compiled> {
        let text = std::fs::read_to_string(man).ok()?;
        let mut key = None;
        let mut deps = vec![job.source.clone()];
        for l in text.lines() {
            if let Some(k) = l.strip_prefix("obj ") {
                key = Some(k.to_string());
            } else if let Some(rest) = l.strip_prefix("in ") {
                let (h, p) = rest.split_once(' ')?;
                if self.hash_file(Path::new(p))? != h {
                    return None;
                }
                deps.push(PathBuf::from(p));
            }
        }
        let key = key?;
        let obj = self.env.cache.join(format!("obj/{key}.o"));
        obj.is_file().then_some(Compiled {
            obj,
            key,
            group: job.group,
            deps,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Board,
    Arduino,
    Lwip,
    Sketch,
}

struct Job {
    source: PathBuf,
    lang: Lang,
    flags: Vec<String>,
    group: Group,
}

#[derive(Clone, Debug)]
struct Compiled {
    obj: PathBuf,
    key: String,
    group: Group,
    /// The source and every header it read.
    deps: Vec<PathBuf>,
}

fn sizes_of(elf: &Path) -> Result<Sizes> {
    let out = Command::new(tool("size"))
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| Error::io("running xtensa-lx106-elf-size", e))?;
    Ok(Sizes::parse(&String::from_utf8_lossy(&out.stdout)))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f =
        File::create(&tmp).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
