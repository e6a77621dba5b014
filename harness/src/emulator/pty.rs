//! A pseudo-terminal that plays the USB serial adapter of an emulated bench
//! board: the harness's `serial` target opens the slave side by path, as it
//! would open /dev/ttyUSB0, and the emulator works the master side. The
//! emulator keeps a slave descriptor open itself, so the master never reads
//! EIO while no one has the port open (the adapter stays plugged in), and
//! the line is raw from the start so nothing is echoed or translated.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

pub struct Pty {
    master: AsyncFd<OwnedFd>,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

fn check(r: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

impl Pty {
    /// Opens a raw pty pair; `link` (if given) becomes a symlink to the
    /// slave, a stable port name across the emulator's lifetime.
    pub fn open(link: Option<&Path>) -> std::io::Result<Pty> {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        // SAFETY: openpty writes two descriptors into the given ints; the
        // name, termios and window-size pointers may be null.
        check(
            unsafe {
                libc::openpty(
                    &mut master,
                    &mut slave,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    std::ptr::null(),
                )
            },
            "openpty",
        )?;
        // SAFETY: both descriptors were just returned by openpty and are
        // owned by nothing else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: termios is plain old data, filled by tcgetattr before use.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            check(libc::tcgetattr(slave.as_raw_fd(), &mut t), "tcgetattr")?;
            libc::cfmakeraw(&mut t);
            check(
                libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t),
                "tcsetattr",
            )?;
            let flags = check(libc::fcntl(master.as_raw_fd(), libc::F_GETFL), "fcntl")?;
            check(
                libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK),
                "fcntl",
            )?;
        }
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))?;
        if let Some(link) = link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(&slave_path, link).map_err(|e| {
                std::io::Error::new(e.kind(), format!("linking {}: {e}", link.display()))
            })?;
        }
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until
        // dropped, which is when the AsyncFd owning it is dropped.
        let master = unsafe { AsyncFd::register(master) }
            .map_err(|e| std::io::Error::other(format!("registering the pty: {e}")))?;
        Ok(Pty {
            master,
            _slave: slave,
            slave_path,
        })
    }

    /// The baud rate the port's user set (termios is shared by both ends
    /// of a pty), so the emulated line can run at the user's speed.
    pub fn baud(&self) -> u32 {
        // Rust's serialport sets every rate through termios2 (BOTHER and a
        // number), which tcgetattr reports as BOTHER, not as a Bnnn: read
        // the number itself, or a port set to 921600 runs at 115200.
        // SAFETY: termios2 is plain old data, filled by the ioctl.
        unsafe {
            let mut t2: libc::termios2 = std::mem::zeroed();
            if libc::ioctl(self._slave.as_raw_fd(), libc::TCGETS2, &mut t2) == 0
                && t2.c_cflag & libc::CBAUD == libc::BOTHER
                && t2.c_ospeed > 0
            {
                return t2.c_ospeed;
            }
        }
        // SAFETY: termios is plain old data, filled by tcgetattr.
        let speed = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(self._slave.as_raw_fd(), &mut t) != 0 {
                return 115200;
            }
            libc::cfgetospeed(&t)
        };
        const SPEEDS: &[(libc::speed_t, u32)] = &[
            (libc::B9600, 9600),
            (libc::B19200, 19200),
            (libc::B38400, 38400),
            (libc::B57600, 57600),
            (libc::B115200, 115200),
            (libc::B230400, 230400),
            (libc::B460800, 460800),
            (libc::B921600, 921600),
            (libc::B1500000, 1500000),
            (libc::B2000000, 2000000),
        ];
        SPEEDS
            .iter()
            .find(|(s, _)| *s == speed)
            .map(|(_, b)| *b)
            .unwrap_or(115200)
    }

    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Reads what the port's user wrote.
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| {
                // SAFETY: buf is valid for buf.len() bytes.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes toward the port's user. Like a UART with no one listening,
    /// bytes the line cannot take right now are dropped, never queued
    /// without bound; returns how many were taken.
    pub fn write_or_drop(&self, bytes: &[u8]) -> usize {
        let mut done = 0;
        while done < bytes.len() {
            // SAFETY: the slice is valid for its length.
            let n = unsafe {
                libc::write(
                    self.master.get_ref().as_raw_fd(),
                    bytes[done..].as_ptr().cast(),
                    bytes.len() - done,
                )
            };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        done
    }

    /// Writes everything, waiting for room (the ROM loader's answers must
    /// arrive whole).
    pub async fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| {
                // SAFETY: the slice is valid for its length.
                let n = unsafe {
                    libc::write(
                        fd.as_raw_fd(),
                        bytes[done..].as_ptr().cast(),
                        bytes.len() - done,
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => done += n,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn the_slave_is_a_raw_serial_port_for_serialport() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyEMU0");
        let pty = Pty::open(Some(&link)).unwrap();
        let mut port = serialport::new(link.to_string_lossy(), 115200)
            .timeout(std::time::Duration::from_secs(2))
            .open()
            .unwrap();
        // Binary-safe both ways: no echo, no CR/LF translation.
        let bytes = [0xc0u8, 0x00, b'\r', b'\n', 0xff, 0x11, 0x13];
        port.write_all(&bytes).unwrap();
        let mut got = vec![0u8; bytes.len()];
        let mut n = 0;
        while n < bytes.len() {
            n += pty.read(&mut got[n..]).await.unwrap();
        }
        assert_eq!(got, bytes);
        pty.write_all(&bytes).await.unwrap();
        let mut back = vec![0u8; bytes.len()];
        port.read_exact(&mut back).unwrap();
        assert_eq!(back, bytes);
        // A pty has no modem lines: the serial target must cope with that.
        let e = port.write_data_terminal_ready(true).unwrap_err();
        assert!(crate::target::serial::reset::no_lines(
            &std::io::Error::from(e)
        ));
    }
}
