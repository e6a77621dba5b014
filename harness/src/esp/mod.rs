//! The ESP8266's side of flashing, sans-IO: SLIP framing, the firmware
//! image format the boot ROM reads, and an emulation of the ROM's serial
//! loader that the emulated bench board answers flashers with.

pub mod baud;
pub mod image;
pub mod rom;
pub mod slip;
