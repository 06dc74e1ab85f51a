//! Real devices from a board profile: gpio character-device lines and serial ports.
//!
//! The only code in the agent that opens hardware, called once at start-up. GPIO lines
//! are requested through `/dev/gpiochipN` (the character device, never sysfs) as plain
//! outputs; polarity (`active_low`) is applied by [`crate::signal::gpio::Polarity`], so
//! the kernel's own active-low flag is not set. Errors name the device and the fix.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use embedded_hal::digital::PinState;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::CdevPin;
use serialport::TTYPort;

use crate::board::{
    AckSetting, BoardError, DeviceKind, DeviceProblem, GpioProfile, LineProfile, ScannerKind,
    ScannerSection,
};
use crate::clock::SharedClock;
use crate::signal::gpio::{GpioPins, GpioSignal, OutputLine, Polarity};
use crate::signal::scanner_ack::ScannerAck;

/// How long one serial read waits before checking the stop flag.
pub const SERIAL_POLL: Duration = Duration::from_millis(200);

/// Opens every configured line of `gpio` as an output, initially off.
pub fn open_gpio_pins(gpio: &GpioProfile) -> Result<GpioPins<CdevPin>, BoardError> {
    let chip_path = gpio.chip.as_path();
    // Open the file ourselves first: gpio-cdev hides the io::ErrorKind we need for the
    // "not found" / "permission denied" messages.
    std::fs::File::open(chip_path)
        .map_err(|e| BoardError::device(DeviceKind::Gpio, chip_path, None, &e))?;
    let mut chip = Chip::new(chip_path).map_err(|e| cdev_error(chip_path, None, &e))?;
    let mut open = |l: &Option<LineProfile>| -> Result<Option<OutputLine<CdevPin>>, BoardError> {
        let Some(l) = l else { return Ok(None) };
        let line = chip
            .get_line(l.line)
            .map_err(|e| cdev_error(chip_path, Some(l.line), &e))?;
        let off = Polarity::from_active_low(l.active_low).level(false);
        let value = u8::from(off == PinState::High);
        let handle = line
            .request(LineRequestFlags::OUTPUT, value, &gpio.consumer)
            .map_err(|e| cdev_error(chip_path, Some(l.line), &e))?;
        let pin = CdevPin::new(handle).map_err(|e| cdev_error(chip_path, Some(l.line), &e))?;
        Ok(Some(OutputLine::new(pin, l.active_low)))
    };
    Ok(GpioPins {
        approve: open(&gpio.lines.approve)?,
        deny: open(&gpio.lines.deny)?,
        ready: open(&gpio.lines.ready)?,
        buzzer: open(&gpio.lines.buzzer)?,
        relay: open(&gpio.lines.relay)?,
    })
}

/// Opens the lines of `gpio` and starts a [`GpioSignal`] playing its patterns.
pub fn gpio_signal(
    gpio: &GpioProfile,
    clock: SharedClock,
) -> Result<GpioSignal<CdevPin>, BoardError> {
    let pins = open_gpio_pins(gpio)?;
    GpioSignal::spawn(pins, gpio.patterns.clone(), clock).map_err(|e| BoardError::Device {
        kind: DeviceKind::Gpio,
        path: gpio.chip.clone(),
        line: None,
        problem: DeviceProblem::Other,
        detail: e.to_string(),
    })
}

fn cdev_error(
    path: &Path,
    line: Option<u32>,
    e: &linux_embedded_hal::gpio_cdev::Error,
) -> BoardError {
    use std::error::Error as _;
    if let Some(io) = e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        return BoardError::device(DeviceKind::Gpio, path, line, io);
    }
    let detail = e.to_string();
    let problem = if detail.contains("EBUSY") || detail.contains("busy") {
        DeviceProblem::Busy
    } else if detail.contains("EACCES") || detail.contains("EPERM") {
        DeviceProblem::PermissionDenied
    } else {
        DeviceProblem::Other
    };
    BoardError::Device {
        kind: DeviceKind::Gpio,
        path: path.to_path_buf(),
        line,
        problem,
        detail,
    }
}

/// Opens a serial port in raw mode (8N1, no flow control) at `baud`.
pub fn open_serial_port(path: &Path, baud: u32) -> Result<TTYPort, BoardError> {
    serialport::new(path.to_string_lossy(), baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(SERIAL_POLL)
        .open_native()
        .map_err(|e| serial_error(path, e))
}

fn serial_error(path: &Path, e: serialport::Error) -> BoardError {
    let problem = match e.kind() {
        serialport::ErrorKind::NoDevice => DeviceProblem::Busy,
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => DeviceProblem::NotFound,
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            DeviceProblem::PermissionDenied
        }
        _ => DeviceProblem::Other,
    };
    BoardError::Device {
        kind: DeviceKind::Serial,
        path: path.to_path_buf(),
        line: None,
        problem,
        detail: e.description,
    }
}

/// A serial scanner: a blocking byte reader over the port, plus its acknowledgement.
///
/// `read` waits for bytes (polling every [`SERIAL_POLL`]) and returns `Ok(0)` (end of
/// input) once the stop flag is set, so the reader thread can end cleanly.
#[derive(Debug)]
pub struct SerialScanner {
    port: TTYPort,
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl SerialScanner {
    /// Opens the scanner of a `kind = "serial"` profile.
    pub fn open(profile: &ScannerSection) -> Result<SerialScanner, BoardError> {
        let path = match (profile.kind, &profile.path) {
            (ScannerKind::Serial, Some(p)) => p.clone(),
            _ => {
                return Err(BoardError::Device {
                    kind: DeviceKind::Serial,
                    path: profile.path.clone().unwrap_or_default(),
                    line: None,
                    problem: DeviceProblem::Other,
                    detail: "scanner.kind is not \"serial\" or scanner.path is missing".into(),
                })
            }
        };
        let port = open_serial_port(&path, profile.baud)?;
        Ok(SerialScanner {
            port,
            path,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A flag that, once set, makes `read` return end of input.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// A second handle on the port, for writing (acknowledgements).
    pub fn writer(&self) -> Result<TTYPort, BoardError> {
        self.port
            .try_clone_native()
            .map_err(|e| serial_error(&self.path, e))
    }

    /// The acknowledgement signal for this scanner, when `ack` asks for one.
    pub fn ack_signal(&self, ack: &AckSetting) -> Result<Option<ScannerAck<TTYPort>>, BoardError> {
        match ack.codes() {
            None => Ok(None),
            Some(codes) => Ok(Some(ScannerAck::new(self.writer()?, codes))),
        }
    }
}

impl Read for SerialScanner {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            match self.port.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::GpioLines;
    use crate::signal::gpio::GpioPatterns;

    fn gpio(chip: &str) -> GpioProfile {
        GpioProfile {
            chip: chip.into(),
            consumer: "test".into(),
            lines: GpioLines {
                approve: Some(LineProfile {
                    line: 17,
                    active_low: false,
                }),
                ..GpioLines::default()
            },
            patterns: GpioPatterns::default(),
        }
    }

    #[test]
    fn missing_gpio_chip_names_path_and_fix() {
        let err = open_gpio_pins(&gpio("/nonexistent/gpiochip9"))
            .err()
            .expect("an error");
        assert!(matches!(
            err,
            BoardError::Device {
                problem: DeviceProblem::NotFound,
                kind: DeviceKind::Gpio,
                ..
            }
        ));
        let s = err.to_string();
        assert!(s.starts_with("/nonexistent/gpiochip9 not found"), "{s}");
        assert!(
            s.contains("gpio.chip") && s.contains("docs/deploy.md"),
            "{s}"
        );
    }

    #[test]
    fn non_gpio_file_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gpiochip0");
        std::fs::write(&p, b"").unwrap();
        let err = open_gpio_pins(&gpio(p.to_str().unwrap()))
            .err()
            .expect("an error");
        assert!(err.to_string().contains(p.to_str().unwrap()), "{err}");
    }

    #[test]
    fn missing_serial_port_names_path_and_fix() {
        let err = open_serial_port(Path::new("/nonexistent/ttyACM9"), 115200).unwrap_err();
        assert!(matches!(
            err,
            BoardError::Device {
                problem: DeviceProblem::NotFound,
                kind: DeviceKind::Serial,
                ..
            }
        ));
        let s = err.to_string();
        assert!(s.starts_with("/nonexistent/ttyACM9 not found"), "{s}");
        assert!(s.contains("docs/deploy.md"), "{s}");
    }

    #[test]
    fn serial_scanner_needs_a_serial_profile() {
        let p = ScannerSection {
            kind: ScannerKind::Stdin,
            path: None,
            listen: None,
            baud: 9600,
            prefix: Default::default(),
            suffix: Default::default(),
            max_len: 64,
            ack: AckSetting::None,
        };
        assert!(SerialScanner::open(&p).is_err());
    }
}
