//! What the loader targets share: the checks every loader error must pass
//! besides "no panic".

use mqtt_hil::error::Error;

/// Lines a text has, counting a last line without its newline (and the
/// empty one after a final newline, where an error at the end may point).
pub fn lines(text: &str) -> usize {
    text.matches('\n').count() + 1
}

/// An input error must name a line of the file it read.
pub fn check_line(text: &str, e: &Error) {
    if let Error::Input { line, .. } = e {
        assert!(
            (1..=lines(text)).contains(line),
            "error on line {line} of a {}-line file: {e}",
            lines(text)
        );
    }
}

/// The same file with CRLF endings, when that cannot change what it
/// means: no CR of its own and no multi-line string (whose content would
/// change). `None` otherwise.
pub fn as_crlf(text: &str) -> Option<String> {
    if text.contains('\r') || text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    Some(text.replace('\n', "\r\n"))
}

/// What must not change between LF and CRLF endings: accepted or not, and
/// an error's whole text (file, line, message).
pub fn outcome<T>(r: &Result<T, Error>) -> Option<String> {
    r.as_ref().err().map(|e| e.to_string())
}
