//! An image's sizes against the ESP8266's memory budget (the same limits
//! `firmware/board/board.ld` links to): IRAM 32 KiB, code in the flash
//! window (960 KiB after the image header's 64 KiB), DRAM 80 KiB for
//! initialized data, constants (rodata lives in DRAM, as in the ESP8266
//! Arduino core), zeroed data, and what is left for heap and stack.

/// ESP8266 limits, in bytes.
pub const IRAM: u64 = 32 * 1024;
pub const FLASH: u64 = 1024 * 1024 - 64 * 1024;
pub const DRAM: u64 = 80 * 1024;
/// The link map keeps this much stack at the top of DRAM.
pub const STACK: u64 = 8 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    pub iram: u64,
    pub flash: u64,
    /// .data in the link map: initialized data and constants.
    pub data: u64,
    pub bss: u64,
}

impl Sizes {
    /// From `size -A` output (section, size, address columns).
    pub fn parse(size_a: &str) -> Sizes {
        let mut s = Sizes::default();
        for l in size_a.lines() {
            let mut cols = l.split_whitespace();
            let (Some(name), Some(n)) = (cols.next(), cols.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match name {
                ".iram" => s.iram = n,
                ".text" => s.flash = n,
                ".data" => s.data = n,
                ".bss" => s.bss = n,
                _ => {}
            }
        }
        s
    }

    pub fn dram(&self) -> u64 {
        self.data + self.bss
    }

    /// Heap the sketch starts with (DRAM left once the stack is set aside).
    pub fn heap(&self) -> i64 {
        DRAM as i64 - self.dram() as i64 - STACK as i64
    }

    /// Lines for the build's output, in the spirit of the ESP8266 core's
    /// own size report.
    pub fn report(&self) -> String {
        let pct = |n: u64, of: u64| n * 100 / of;
        format!(
            "RAM (globals and constants):  {:>7} / {} bytes ({}%), data+rodata {}, bss {}; heap left {} bytes (stack {})\n\
             IRAM (vectors, start-up):     {:>7} / {} bytes ({}%)\n\
             flash (code):                 {:>7} / {} bytes ({}%)",
            self.dram(),
            DRAM,
            pct(self.dram(), DRAM),
            self.data,
            self.bss,
            self.heap(),
            STACK,
            self.iram,
            IRAM,
            pct(self.iram, IRAM),
            self.flash,
            FLASH,
            pct(self.flash, FLASH),
        )
    }
}

/// What the linker says when a region overflows, made plain: which part of
/// the ESP8266 is too small and by how much.
pub fn explain_overflow(ld_stderr: &str) -> Option<String> {
    let mut reasons = Vec::new();
    for l in ld_stderr.lines() {
        if !l.contains("overflowed by") {
            // "will not fit in region": the overflow line follows.
        } else if let Some(rest) = l.split("region `").nth(1) {
            let region = rest.split('\'').next().unwrap_or("");
            let by = l
                .split("overflowed by ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("?");
            let what = match region {
                "dram" => "DRAM (80 KiB for globals, constants, heap and stack)",
                "iram" => "IRAM (32 KiB)",
                "irom" => "flash (960 KiB of code)",
                other => other,
            };
            let r = format!("{what} overflowed by {by} bytes");
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        if l.contains("DRAM budget exceeded") {
            reasons.push(
                "DRAM: less than 4 KiB would be left for the heap once globals, constants and the 8 KiB stack are placed"
                    .into(),
            );
        }
    }
    (!reasons.is_empty()).then(|| {
        format!(
            "the sketch does not fit the ESP8266: {}; move constant tables and strings to flash (PROGMEM, F(\"...\")), shrink buffers, or drop libraries",
            reasons.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_output_is_read_and_reported() {
        let out = "build/x.elf  :\nsection     size         addr\n.iram        651   1074790400\n.text      49008   1075904512\n.data       9980   1073643520\n.bss       29152   1073653504\n.comment      30            0\nTotal      88821\n";
        let s = Sizes::parse(out);
        assert_eq!(
            s,
            Sizes {
                iram: 651,
                flash: 49008,
                data: 9980,
                bss: 29152
            }
        );
        assert_eq!(s.heap(), 81920 - 39132 - 8192);
        let r = s.report();
        assert!(
            r.starts_with("RAM (globals and constants):    39132 / 81920 bytes (47%)"),
            "{r}"
        );
        assert!(
            r.contains("flash (code):                   49008 / 983040 bytes (4%)"),
            "{r}"
        );
    }

    #[test]
    fn overflows_are_explained() {
        let ld = "/usr/bin/ld: x.elf section `.bss' will not fit in region `dram'\n/usr/bin/ld: region `dram' overflowed by 2048 bytes\ncollect2: error: ld returned 1 exit status\n";
        assert_eq!(
            explain_overflow(ld).unwrap(),
            "the sketch does not fit the ESP8266: DRAM (80 KiB for globals, constants, heap and stack) overflowed by 2048 bytes; move constant tables and strings to flash (PROGMEM, F(\"...\")), shrink buffers, or drop libraries"
        );
        assert!(explain_overflow("undefined reference to `foo'").is_none());
    }
}
