//! What a UART reading at one baud rate makes of bytes sent at another,
//! sans-IO: the ESP8266's ROM prints its boot banner at 74880 baud (a 26 MHz
//! crystal on a ROM clocked for 40 MHz), which an adapter set to the
//! agent's 115200 reads as garbage. The emulated board puts exactly that
//! garbage on its line at every boot, so the serial target meets the same
//! noise as on a bench.

/// The banner the ROM prints after a reset, at 74880 baud; `mode` is
/// `(3,6)` for a boot from flash, `(1,6)` for the serial loader.
pub fn rom_banner(cause: u8, loader: bool) -> String {
    let mut s = format!(
        "\r\n ets Jan  8 2013,rst cause:{cause}, boot mode:({},6)\r\n\r\n",
        if loader { 1 } else { 3 }
    );
    if loader {
        s.push_str("waiting for host\r\n");
    }
    s
}

/// 8N1 framing, line idle high, as seen by a receiver at `read_baud` that
/// syncs on each falling edge and samples the middle of each bit.
pub fn misread(bytes: &[u8], sent_baud: u32, read_baud: u32) -> Vec<u8> {
    // Time in picoseconds keeps integer arithmetic exact enough.
    let sent_bit = 1_000_000_000_000u64 / sent_baud as u64;
    let read_bit = 1_000_000_000_000u64 / read_baud as u64;
    let bits: Vec<bool> = bytes
        .iter()
        .flat_map(|&b| {
            std::iter::once(false)
                .chain((0..8).map(move |i| b >> i & 1 == 1))
                .chain(std::iter::once(true))
        })
        .collect();
    let end = bits.len() as u64 * sent_bit;
    let level = |t: u64| bits.get((t / sent_bit) as usize).copied().unwrap_or(true);
    let step = read_bit / 16;
    let mut out = Vec::new();
    let mut t = 0;
    while t < end {
        if level(t) {
            t += step;
            continue;
        }
        // A start bit: sample the eight data bits in their middles.
        let mut b = 0u8;
        for i in 0..8 {
            if level(t + read_bit * 3 / 2 + read_bit * i) {
                b |= 1 << i;
            }
        }
        out.push(b);
        // Past the stop bit's middle, then wait for the line to go high.
        t += read_bit * 19 / 2;
        while t < end && !level(t) {
            t += step;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_same_rate_reads_back_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(misread(&bytes, 115200, 115200), bytes);
        }
    }

    #[test]
    fn the_rom_banner_at_74880_is_garbage_at_115200() {
        let banner = rom_banner(2, false);
        let seen = misread(banner.as_bytes(), 74880, 115200);
        assert_ne!(seen, banner.as_bytes());
        assert!(!seen.windows(3).any(|w| w == b"ets"), "{seen:x?}");
        assert!(seen
            .iter()
            .any(|b| !b.is_ascii_graphic() && !b" \r\n".contains(b)));
        // Faster bits than the reader: more bytes read than sent.
        assert!(seen.len() > banner.len() / 2);
        assert_eq!(misread(banner.as_bytes(), 74880, 74880), banner.as_bytes());
    }
}
