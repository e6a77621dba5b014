//! The bytes a board's UART sends, cut into lines for the agent driver,
//! sans-IO. A real ESP8266 first prints its ROM banner at 74880 baud, which
//! reads as binary garbage at the agent's 115200; sketches may print too.
//! Garbage is kept (as UART log, never as protocol) and an agent line glued
//! to garbage without a newline in between is cut loose, so `@ready` is seen
//! however the boot went.

/// Longest line kept whole; the agent's own lines are at most 1024 bytes.
pub const MAX_LINE: usize = 2048;

#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Feeds bytes; returns the complete lines they finish, without `\r\n`.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.buf);
                emit(&line, &mut out);
            } else {
                self.buf.push(b);
                if self.buf.len() >= MAX_LINE {
                    // A runaway stream (wrong baud, no newlines): flush it
                    // as noise rather than grow without bound.
                    let line = std::mem::take(&mut self.buf);
                    out.push(render(&line));
                }
            }
        }
        out
    }

    /// Forgets a partial line: after a reset, what came before is cut off.
    pub fn reset(&mut self) {
        self.buf.clear();
    }
}

fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

/// One raw line: trailing `\r` dropped; an `@` preceded by garbage (bytes
/// that are not printable ASCII) starts a line of its own.
fn emit(line: &[u8], out: &mut Vec<String>) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let glued = line
        .iter()
        .rposition(|&b| !printable(b))
        .and_then(|last_bad| {
            line[last_bad..]
                .iter()
                .position(|&b| b == b'@')
                .map(|p| last_bad + p)
        });
    match glued {
        Some(at) => {
            out.push(render(&line[..at]));
            out.push(render(&line[at..]));
        }
        None => out.push(render(line)),
    }
}

/// Printable text as is, anything else as `\xNN`, so a log line of garbage
/// is still one readable line.
fn render(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if printable(b) {
            s.push(b as char);
        } else if b != b'\r' {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        chunks.iter().flat_map(|c| s.push(c)).collect()
    }

    #[test]
    fn lines_are_cut_at_newlines_whatever_the_chunking() {
        assert_eq!(
            lines(&[b"@rea", b"dy fw=x\r", b"\n@ok st", b"atus\n"]),
            ["@ready fw=x", "@ok status"]
        );
    }

    #[test]
    fn rom_noise_glued_to_the_banner_is_cut_off() {
        // What a NodeMCU prints after reset, read at 115200: the ROM's
        // 74880-baud banner as garbage, then the agent without a newline.
        let boot =
            b"\x00\x8c\xfel\x9c\x9e|\x00\x8c\x02\x0cl@ready fw=mqtt-hil-agent/0.1 bug=none\r\n";
        assert_eq!(
            lines(&[boot]),
            [
                "\\x00\\x8c\\xfel\\x9c\\x9e|\\x00\\x8c\\x02\\x0cl",
                "@ready fw=mqtt-hil-agent/0.1 bug=none"
            ]
        );
    }

    #[test]
    fn an_at_in_plain_text_is_not_a_protocol_line() {
        assert_eq!(lines(&[b"mail me@host\n"]), ["mail me@host"]);
    }

    #[test]
    fn a_runaway_stream_is_flushed_in_bounded_pieces() {
        let junk = vec![0xaau8; MAX_LINE * 2 + 10];
        let out = lines(&[&junk]);
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with("\\xaa"));
    }

    #[test]
    fn reset_drops_a_partial_line() {
        let mut s = LineSplitter::new();
        assert!(s.push(b"half a li").is_empty());
        s.reset();
        assert_eq!(s.push(b"@ready\n"), ["@ready"]);
    }
}
