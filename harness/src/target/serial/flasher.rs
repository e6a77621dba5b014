//! Which flasher `mqtt-hil flash` uses (`--flasher`): esptool, the vendor's
//! tool run as a subprocess, or espflash 2.1 in process. Both write the same
//! plan (header sector last, [`super::flash::plan`]) and are followed by the
//! same boot check; `make bench` (benches/flash.rs) measures them side by
//! side, and the default is the one its figures favour.

use std::path::Path;

use crate::error::{Error, Result};
use crate::target::bench::Board;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flasher {
    Esptool,
    Espflash,
}

/// What `--flasher` is when not given: espflash, which `make bench`
/// measured faster than esptool through the ROM loader at both 115200 and
/// 921600 (figures in the README).
pub const DEFAULT: Flasher = Flasher::Espflash;

impl std::str::FromStr for Flasher {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Flasher, String> {
        match s {
            "esptool" => Ok(Flasher::Esptool),
            "espflash" => Ok(Flasher::Espflash),
            other => Err(format!(
                "`{other}` is no flasher: use esptool (subprocess, `make esptool`) or espflash (in process)"
            )),
        }
    }
}

impl std::fmt::Display for Flasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flasher::Esptool => "esptool",
            Flasher::Espflash => "espflash",
        })
    }
}

/// Puts the board in its ROM loader and writes `img` with `which`.
/// `root` is where esptool's venv is looked for; `work` a scratch folder.
pub async fn flash(
    which: Flasher,
    board: &Board,
    img: &[u8],
    root: &Path,
    work: &Path,
) -> Result<()> {
    match which {
        Flasher::Esptool => {
            // Found before the board is touched: a missing esptool leaves
            // the board running what it ran.
            let esptool = super::flash::find_esptool(root)?;
            let entry = super::flash::enter(board).await?;
            super::flash::flash(board, img, &esptool, work, entry).await
        }
        Flasher::Espflash => {
            let entry = super::flash::enter(board).await?;
            let (board, img) = (board.clone(), img.to_vec());
            tokio::task::spawn_blocking(move || super::espflash::flash(&board, &img, entry))
                .await
                .map_err(|e| Error::Usage(format!("espflash stopped: {e}")))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flasher_names_round_trip_and_others_are_refused() {
        for f in [Flasher::Esptool, Flasher::Espflash] {
            assert_eq!(f.to_string().parse::<Flasher>(), Ok(f));
        }
        let e = "esptool.py".parse::<Flasher>().unwrap_err();
        assert!(e.contains("esptool.py") && e.contains("espflash"), "{e}");
    }
}
