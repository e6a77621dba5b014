//! The agent's line protocol on any text: classifying a device line never
//! panics, and a value's percent-encoding is printable, free of the
//! separators (space, `=`) and decodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_hil::agent::{decode_value, encode_value, parse_line};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split_inclusive('\n') {
        let _ = parse_line(line);
    }
    let _ = decode_value(&text);
    let enc = encode_value(data);
    assert!(
        enc.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'='),
        "encoded value has a separator or unprintable byte: {enc:?}"
    );
    assert_eq!(
        decode_value(&enc).as_deref(),
        Ok(data),
        "decode(encode(v)) != v"
    );
});
