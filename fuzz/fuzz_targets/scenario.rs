//! The scenario loader on any text: no panic, every error on a line of
//! the file, and the same verdict and line with CRLF endings.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqtt_hil::scenario::parse;
use mqtt_hil_fuzz::{as_crlf, check_line, outcome};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let lf = parse(path, text);
    if let Err(e) = &lf {
        check_line(text, e);
    }
    if let Some(crlf) = as_crlf(text) {
        let got = parse(path, &crlf);
        assert_eq!(outcome(&lf), outcome(&got), "LF vs CRLF");
    }
});
